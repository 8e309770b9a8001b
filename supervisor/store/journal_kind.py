"""The kinds of rows in the decision journal: one closed set for the store, API and CLI."""

from __future__ import annotations

from enum import StrEnum


class JournalKind(StrEnum):
    """What a journal row records. The store refuses any other kind."""

    STOP = "stop"  # a trailing-stop decision (ACTIVATE / UPDATE / TRIGGER), with its state
    BREAKER = "breaker"  # a breaker transition, with the breaker's state
    BREAKER_STATE = "breaker_state"  # the breaker's state changed without a transition
    FAILURE = "failure"  # a failure reported to the breaker
    SUCCESS = "success"  # a success reported to the breaker
    CHECK = "check"  # a pre-trade verdict
    ADMIN = "admin"  # an operator action (force-open, reset, kill)
    EXIT_ORDER = "exit_order"  # a step of an exit order's life
    POSITION = "position"  # a position opened, changed or closed
    STRATEGY = "strategy"  # a strategy declared, started, restarted, ended or refused
    MONEY = "money"  # daily P&L / NLV events that moved the high-water mark or tripped a loss
    KILL = "kill"  # a kill and each of its steps (cancel, confirm, flatten orders)
    HEARTBEAT = "heartbeat"  # the dead-man switch armed or fired
    RESTART = "restart"  # the daemon started and restored its state
