"""Trader-declared strategies, matched to the legs IB reports (DESIGN §3.1 in the daemon).

IB reports legs, not strategies; the trader declares them (``PUT
/v1/strategies/{id}`` or ``[strategies]`` in config) by conId or contract
fields, each with a signed whole ratio. A declaration becomes a live
strategy stop once every leg is held in one multiple of the ratios; until
then it waits (journaled). A later quantity that breaks the ratio is
reported loudly and does not restart the stop, which keeps its last valid
state until the trader fixes the book or dissolves the strategy.

Pure: the daemon feeds it the latest position of each id and applies what
it says to the topology.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from actors.book import contract_key
from actors.messages import Contract, PositionUpdate
from supervisor.core.facade import StrategyLegSpec, StrategyRefused


class Readiness(StrEnum):
    WAITING = "waiting"  # a leg is not held yet
    READY = "ready"  # every leg held, in one multiple of the ratios
    RATIO_BROKEN = "ratio_broken"  # held, but not in one multiple of the ratios
    ZERO_ENTRY = "zero_entry"  # E = 0: neither a debit nor a credit


@dataclass(frozen=True, slots=True)
class Declaration:
    id: str
    legs: tuple[StrategyLegSpec, ...]

    def matches(self, spec: StrategyLegSpec, pid: str, contract: Contract) -> bool:
        if spec.con_id is not None:
            return str(spec.con_id) == pid
        return spec.contract is not None and contract_key(spec.contract) == contract_key(contract)


@dataclass(frozen=True, slots=True)
class Assessment:
    readiness: Readiness
    legs: tuple[str | None, ...]  # the position id holding each declared leg
    detail: str = ""


def validate(strategy_id: str, legs: Sequence[StrategyLegSpec]) -> Declaration:
    """A well-formed declaration, or :class:`StrategyRefused` saying why."""
    if not strategy_id or len(strategy_id) > 200:
        raise StrategyRefused("id: a non-empty string of at most 200 characters")
    if len(legs) < 2:
        raise StrategyRefused("legs: a strategy has at least two legs")
    seen: set[object] = set()
    for i, leg in enumerate(legs):
        if leg.ratio == 0:
            raise StrategyRefused(f"legs[{i}].ratio: a signed whole number, not 0")
        if (leg.con_id is None) == (leg.contract is None):
            raise StrategyRefused(f"legs[{i}]: give either con_id or the contract fields")
        key = leg.con_id if leg.con_id is not None else contract_key(leg.contract)  # type: ignore[arg-type]
        if key in seen:
            raise StrategyRefused(f"legs[{i}]: the same contract twice")
        seen.add(key)
    symbols = {leg.contract.symbol for leg in legs if leg.contract is not None}
    if len(symbols) > 1:
        raise StrategyRefused(f"legs: one underlying symbol for all legs, got {sorted(symbols)}")
    return Declaration(strategy_id, tuple(legs))


def assess(decl: Declaration, held: Mapping[str, PositionUpdate]) -> Assessment:
    """Is the declaration ready to be a live stop, given what is held now?"""
    pids: list[str | None] = []
    for spec in decl.legs:
        pid = next(
            (p for p, u in held.items() if u.qty != 0 and decl.matches(spec, p, u.contract)),
            None,
        )
        pids.append(pid)
    if any(p is None for p in pids):
        missing = [i for i, p in enumerate(pids) if p is None]
        return Assessment(Readiness.WAITING, tuple(pids), f"legs {missing} are not held yet")
    updates = [held[p] for p in pids if p is not None]
    symbols = {u.contract.symbol for u in updates}
    if len(symbols) > 1:
        return Assessment(
            Readiness.RATIO_BROKEN, tuple(pids), f"legs on several symbols {sorted(symbols)}"
        )
    multiples = {u.qty / spec.ratio for u, spec in zip(updates, decl.legs, strict=True)}
    if len(multiples) != 1 or next(iter(multiples)) <= 0:
        held_q = [u.qty for u in updates]
        ratios = [spec.ratio for spec in decl.legs]
        return Assessment(
            Readiness.RATIO_BROKEN,
            tuple(pids),
            f"held quantities {held_q} are not one positive multiple of the ratios {ratios}",
        )
    entry = sum(
        u.qty * (u.contract.multiplier if u.contract.is_option else 1.0) * u.entry_price
        for u in updates
    )
    if entry == 0:
        return Assessment(Readiness.ZERO_ENTRY, tuple(pids), "E = 0: neither a debit nor a credit")
    return Assessment(Readiness.READY, tuple(pids))
