"""Enrichment: attach account and network metadata to a validated request."""
