"""Detectors: window features -> findings (score, reasons, context)."""
