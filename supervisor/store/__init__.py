"""The SQLite store: journal, stop and breaker state, exit claims."""
