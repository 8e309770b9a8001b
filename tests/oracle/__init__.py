"""An independent reference implementation of risk-supervisor's `replay` contract.

Written from the product contract alone (never from `actors/` or `supervisor/`) so
that comparing the project's replay output with this one finds the project's
bugs. It is deliberately plain and slow: one class per concept, every rule
spelled out where it is applied, the contract's words quoted in docstrings.

Entry point: :func:`oracle_replay` (config TOML text + event lines → output
lines and the set of bad line numbers).
"""

from __future__ import annotations

from oracle.replay import ReplayResult, oracle_replay

__all__ = ["ReplayResult", "oracle_replay"]
