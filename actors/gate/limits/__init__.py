"""Portfolio limits: one class per limit family, listed once in :mod:`.registry`."""
