"""The Interactive Brokers adapter (ib_async)."""
