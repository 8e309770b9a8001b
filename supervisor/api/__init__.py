"""The trader-facing HTTP API."""
