"""Order controls (DESIGN §4.2): one class per control, listed once in :mod:`.registry`.

They judge the order itself — its size, value and price, how often such
orders were allowed — not the portfolio after it, and apply to every order,
risk-reducing ones included, in every breaker state, even when portfolio data
are stale.
"""
