"""Per-account features in event-time windows."""
