"""Simulated instruments and their prices, independent of any socket.

The gateway needs, for every contract a client subscribes to, a quote (bid,
ask, last, close) and, for options, the model computation IB sends as tick
type 13. This module is that market: underlyings whose price is set by hand
(tests) or moved by a seeded geometric random walk (the demo), and options
priced from their underlying with Black-Scholes-Merton. Any strike and expiry
of a known underlying is quotable, as any listed option is in TWS; contracts
made up on request get conIds derived from what they are (:func:`stable_con_id`),
so they do not depend on the order clients ask in. Scheduled moves (a crash
over some seconds, a drift per minute) move an underlying deterministically,
composed with the seeded walk and hand-set prices.

Pricing is delegated to ``actors.pricing`` on purpose: the simulator must quote
the same numbers the supervisor computes, so a test can check that a Greek the
supervisor received over the wire equals the one it would have computed
itself. A second BSM here could drift from the first.
"""

from __future__ import annotations

import math
import random
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from actors.pricing import bsm, year_fraction

#: Seconds in a (calendar) year, for the random walk's time step.
SECONDS_PER_YEAR = 365.0 * 24.0 * 3600.0

#: Synthetic conIds live in [base, base + span), far from the ids tests pick by hand.
_SYNTHETIC_CON_ID_BASE = 900_000_000
_SYNTHETIC_CON_ID_SPAN = 90_000_000


def stable_con_id(key: str) -> int:
    """A conId derived from a contract's identity, not from the order of requests.

    Two runs (or two clients) that ask for the same unheld option in a
    different order must see the same conId, as they would from TWS.
    """
    return _SYNTHETIC_CON_ID_BASE + zlib.crc32(key.encode()) % _SYNTHETIC_CON_ID_SPAN


@dataclass
class _Move:
    """A scheduled exponential move of one underlying (a crash or a drift).

    ``log_rate`` is the change of log-price per second; the move is applied
    up to ``until`` (``None``: for ever). Only the elapsed time matters, so
    the price reached at ``until`` does not depend on how often it is applied.
    """

    log_rate: float
    applied_to: float
    until: float | None


@dataclass
class Underlying:
    """A stock whose price drives itself and every option on it.

    ``close`` is the previous session's close (tick type 9): the first price
    set, so that a test can see "today's move" from the ticker.
    """

    symbol: str
    price: float
    vol: float
    con_id: int
    close: float


@dataclass(frozen=True)
class Instrument:
    """A contract the simulator can quote, with IB's identifying fields.

    ``expiry`` is ISO ``YYYY-MM-DD`` (the project's format); the wire uses
    ``YYYYMMDD`` (see :attr:`wire_expiry`). ``right`` is ``"C"`` or ``"P"``.
    """

    con_id: int
    symbol: str
    sec_type: str
    expiry: str | None = None
    strike: float | None = None
    right: str | None = None
    multiplier: int = 1
    currency: str = "USD"
    exchange: str = "SMART"

    @property
    def is_option(self) -> bool:
        """Whether this is an option (priced by BSM) rather than a stock."""
        return self.sec_type == "OPT"

    @property
    def wire_expiry(self) -> str:
        """``lastTradeDateOrContractMonth`` as IB sends it: ``YYYYMMDD`` or empty."""
        return self.expiry.replace("-", "") if self.expiry else ""

    @property
    def wire_multiplier(self) -> str:
        """IB leaves the multiplier of a stock empty and sends ``"100"`` for options."""
        return str(self.multiplier) if self.is_option else ""

    @property
    def local_symbol(self) -> str:
        """IB's localSymbol: the ticker for stocks, the OCC symbol for options."""
        if not self.is_option or self.expiry is None or self.strike is None:
            return self.symbol
        yymmdd = self.wire_expiry[2:]
        return f"{self.symbol:<6}{yymmdd}{self.right or ''}{round(self.strike * 1000):08d}"


@dataclass(frozen=True)
class Quote:
    """Top of book plus last trade and previous close, all per share."""

    bid: float
    ask: float
    last: float
    close: float
    bid_size: float
    ask_size: float
    last_size: float


@dataclass(frozen=True)
class ModelGreeks:
    """IB's option model computation (tick type 13), field for field.

    ``vega`` is per volatility point and ``theta`` per calendar day, as IB
    reports them and as ``actors.pricing.bsm`` returns them.
    """

    implied_vol: float
    delta: float
    opt_price: float
    pv_dividend: float
    gamma: float
    vega: float
    theta: float
    und_price: float


def normalize_right(right: str | None) -> str | None:
    """Map the spellings clients use (``C``, ``CALL``, ``p``…) to ``C``/``P``."""
    if not right:
        return None
    r = right.strip().upper()
    if r in ("C", "CALL"):
        return "C"
    if r in ("P", "PUT"):
        return "P"
    return None


def iso_expiry(expiry: str | None) -> str | None:
    """Accept ``YYYY-MM-DD`` or the wire's ``YYYYMMDD``; return ISO or ``None``."""
    if not expiry:
        return None
    e = expiry.strip()
    if len(e) == 8 and e.isdigit():
        return f"{e[:4]}-{e[4:6]}-{e[6:]}"
    if len(e) == 10 and e[4] == "-" and e[7] == "-":
        return e
    raise ValueError(f"expiry {expiry!r} is neither YYYY-MM-DD nor YYYYMMDD")


def _floor_tick(x: float, tick: float = 0.01) -> float:
    return round(math.floor(x / tick + 1e-9) * tick, 2)


def _ceil_tick(x: float, tick: float = 0.01) -> float:
    return round(math.ceil(x / tick - 1e-9) * tick, 2)


class Market:
    """Every underlying and instrument the simulator knows, and their prices.

    ``clock`` gives the time (epoch seconds) used for time to expiry; tests can
    freeze it. ``walk_speed`` scales the random walk's time step: 1.0 is a
    realistic (tiny) tick-to-tick move, the demo uses thousands so trailing
    stops visibly move and fire.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        rate: float = 0.0,
        dividend_yield: float = 0.0,
        walk_speed: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rate = rate
        self.dividend_yield = dividend_yield
        self.walk_speed = walk_speed
        self.clock = clock
        self.underlyings: dict[str, Underlying] = {}
        self.instruments: dict[int, Instrument] = {}
        self._rng = random.Random(seed)
        self._synthetic: set[int] = set()
        self._moves: dict[str, _Move] = {}

    # ------------------------------------------------------------ registry

    def _synthetic_con_id(self, key: str) -> int:
        """The stable conId for ``key``, probing past any id already taken."""
        con_id = stable_con_id(key)
        while con_id in self.instruments or con_id in self._synthetic:
            con_id += 1
        self._synthetic.add(con_id)
        return con_id

    def _adopt_con_id(self, und: Underlying, con_id: int) -> None:
        """Give an underlying the real conId of its stock once one is known.

        An underlying created by ``set_underlying`` alone gets a made-up
        conId; when a stock position (or a later ``set_underlying``) brings
        the real one, stock lookups by symbol must answer with it, or a client
        that qualified the stock would see a conId no position carries. The
        old id stays registered so existing subscriptions keep working.
        """
        if und.con_id != con_id and und.con_id in self._synthetic:
            und.con_id = con_id

    def set_underlying(
        self, symbol: str, price: float, vol: float = 0.25, con_id: int | None = None
    ) -> Underlying:
        """Create an underlying or move an existing one to ``price``.

        The first price becomes the previous close. A stock instrument is
        registered for it (with ``con_id`` or a synthetic one) so clients can
        subscribe to the underlying itself.
        """
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"underlying price must be positive, got {price}")
        if not (math.isfinite(vol) and vol > 0):
            raise ValueError(f"volatility must be positive, got {vol}")
        und = self.underlyings.get(symbol)
        if und is None:
            cid = con_id if con_id is not None else self._synthetic_con_id(f"STK:{symbol}")
            und = Underlying(symbol=symbol, price=price, vol=vol, con_id=cid, close=price)
            self.underlyings[symbol] = und
        else:
            und.price = price
            und.vol = vol
            if con_id is not None:
                self._adopt_con_id(und, con_id)
        if con_id is not None and con_id not in self.instruments:
            self.instruments[con_id] = Instrument(con_id=con_id, symbol=symbol, sec_type="STK")
        if und.con_id not in self.instruments:
            self.instruments[und.con_id] = Instrument(
                con_id=und.con_id, symbol=symbol, sec_type="STK"
            )
        return und

    def register(self, instrument: Instrument) -> Instrument:
        """Make an instrument quotable; its underlying must already exist."""
        if instrument.symbol not in self.underlyings:
            raise ValueError(f"no underlying {instrument.symbol!r}: call set_underlying first")
        if instrument.is_option:
            if instrument.strike is None or instrument.expiry is None:
                raise ValueError("an option needs strike and expiry")
            if instrument.right not in ("C", "P"):
                raise ValueError(f"option right must be 'C' or 'P', got {instrument.right!r}")
        if not instrument.is_option:
            self._adopt_con_id(self.underlyings[instrument.symbol], instrument.con_id)
        self.instruments[instrument.con_id] = instrument
        return instrument

    def resolve(
        self,
        *,
        con_id: int,
        symbol: str,
        sec_type: str,
        expiry: str | None,
        strike: float | None,
        right: str | None,
        multiplier: int | None = None,
    ) -> Instrument | None:
        """Find the instrument a client's contract means, as TWS would.

        By conId first; else by symbol (stock) or by symbol, expiry, strike
        and right (option). An option nobody registered is created on the
        fly if its underlying is known, the way any listed strike is quotable
        in TWS. Returns ``None`` when TWS would answer error 200.
        """
        if con_id:
            inst = self.instruments.get(con_id)
            if inst is not None:
                return inst
        if symbol not in self.underlyings:
            return None
        if sec_type == "STK":
            und = self.underlyings[symbol]
            return self.instruments.get(und.con_id)
        if sec_type != "OPT":
            return None
        iso = iso_expiry(expiry)
        r = normalize_right(right)
        if iso is None or strike is None or strike <= 0 or r is None:
            return None
        for inst in self.instruments.values():
            if (
                inst.is_option
                and inst.symbol == symbol
                and inst.expiry == iso
                and inst.strike is not None
                and abs(inst.strike - strike) < 1e-9
                and inst.right == r
            ):
                return inst
        mult = multiplier or 100
        key = f"OPT:{symbol}:{iso}:{strike:.4f}:{r}:{mult}"
        return self.register(
            Instrument(
                con_id=con_id or self._synthetic_con_id(key),
                symbol=symbol,
                sec_type="OPT",
                expiry=iso,
                strike=strike,
                right=r,
                multiplier=mult,
            )
        )

    # -------------------------------------------------------------- prices

    def model(self, inst: Instrument) -> ModelGreeks:
        """BSM price and Greeks of an option at the underlying's current price."""
        return self._model(inst, self.underlyings[inst.symbol].price)

    def _model(self, inst: Instrument, und_price: float) -> ModelGreeks:
        if not inst.is_option or inst.expiry is None or inst.strike is None:
            raise ValueError(f"{inst.local_symbol} is not an option")
        und = self.underlyings[inst.symbol]
        years = year_fraction(inst.expiry, self.clock())
        res = bsm(
            inst.right == "C",
            und_price,
            inst.strike,
            years,
            self.rate,
            self.dividend_yield,
            und.vol,
        )
        return ModelGreeks(
            implied_vol=und.vol,
            delta=res.delta,
            opt_price=res.price,
            pv_dividend=0.0,
            gamma=res.gamma,
            vega=res.vega,
            theta=res.theta,
            und_price=und_price,
        )

    def und_price(self, symbol: str) -> float:
        """The underlying's current price (``KeyError`` if unknown)."""
        return self.underlyings[symbol].price

    def mark(self, inst: Instrument) -> float:
        """The per-share fair price: the underlying's price or the BSM value."""
        und = self.underlyings[inst.symbol]
        if inst.is_option:
            return self.model(inst).opt_price
        return und.price

    def quote(self, inst: Instrument) -> Quote:
        """Bid/ask around the fair price, last at the fair price.

        Stocks: a one-cent-ish spread (1 bp, at least a cent wide). Options:
        2 % of the price, at least five cents wide. Prices are on a cent grid;
        an option whose bid would be at or below zero gets bid size 0, which
        ``ib_async`` turns into a NaN bid - what a real no-bid option shows.
        """
        und = self.underlyings[inst.symbol]
        fair = self.mark(inst)
        if inst.is_option:
            half = max(0.025, 0.01 * fair)
            close = self._model(inst, und.close).opt_price
            sizes = (10.0, 12.0, 1.0)
        else:
            half = max(0.005, 0.0001 * fair)
            close = und.close
            sizes = (300.0, 400.0, 100.0)
        bid = _floor_tick(fair - half)
        ask = max(_ceil_tick(fair + half), bid + 0.01)
        bid_size = sizes[0]
        if bid <= 0:
            bid, bid_size = 0.0, 0.0
        return Quote(
            bid=bid,
            ask=round(ask, 2),
            last=round(fair, 2),
            close=round(close, 2),
            bid_size=bid_size,
            ask_size=sizes[1],
            last_size=sizes[2],
        )

    def combo_quote(self, legs: Sequence[tuple[Instrument, int]]) -> Quote:
        """A combo's net quote from its legs, each ``(instrument, signed ratio)``.

        Bought legs (positive ratio) add their bid to the bid and their ask
        to the ask; sold legs subtract their ask from the bid and their bid
        from the ask. A net credit is a negative price, as IB quotes combos.
        Sizes are the smallest leg size over its ratio.
        """
        if not legs:
            raise ValueError("a combo needs at least one leg")
        bid = ask = last = close = 0.0
        bid_size = ask_size = math.inf
        for inst, ratio in legs:
            q = self.quote(inst)
            n = abs(ratio)
            if ratio > 0:
                bid += n * q.bid
                ask += n * q.ask
                bid_size = min(bid_size, q.bid_size / n)
                ask_size = min(ask_size, q.ask_size / n)
            else:
                bid -= n * q.ask
                ask -= n * q.bid
                bid_size = min(bid_size, q.ask_size / n)
                ask_size = min(ask_size, q.bid_size / n)
            sign = 1.0 if ratio > 0 else -1.0
            last += sign * n * q.last
            close += sign * n * q.close
        return Quote(
            bid=round(bid, 2),
            ask=round(ask, 2),
            last=round(last, 2),
            close=round(close, 2),
            bid_size=max(math.floor(bid_size), 1.0),
            ask_size=max(math.floor(ask_size), 1.0),
            last_size=1.0,
        )

    def walk(self, dt: float) -> list[str]:
        """Advance every underlying by one geometric-Brownian step of ``dt`` seconds.

        Deterministic for a given seed and call sequence. Returns the symbols
        moved (all of them), so the caller knows whom to re-quote.
        """
        years = max(dt, 0.0) * self.walk_speed / SECONDS_PER_YEAR
        moved: list[str] = []
        if years <= 0:
            return moved
        for symbol in sorted(self.underlyings):
            und = self.underlyings[symbol]
            z = self._rng.gauss(0.0, 1.0)
            und.price *= math.exp(und.vol * math.sqrt(years) * z - 0.5 * und.vol**2 * years)
            moved.append(symbol)
        return moved

    # --------------------------------------------------------------- moves

    def crash(self, symbol: str, pct: float, over_s: float, now: float) -> None:
        """Fall ``pct`` % (0 < pct < 100) over ``over_s`` seconds from ``now``, exponentially.

        The move multiplies whatever else moves the price (the random walk,
        ``set_underlying``), so composed with them it still takes off exactly
        ``pct`` %. A new crash or drift of the symbol replaces the old one.
        """
        if not (math.isfinite(pct) and 0.0 < pct < 100.0):
            raise ValueError(f"crash pct must be in (0, 100), got {pct}")
        if not (math.isfinite(over_s) and over_s > 0.0):
            raise ValueError(f"crash over_s must be positive, got {over_s}")
        self._require(symbol)
        self._moves[symbol] = _Move(math.log1p(-pct / 100.0) / over_s, now, now + over_s)

    def drift(self, symbol: str, pct_per_min: float, now: float) -> None:
        """Move ``pct_per_min`` % a minute (negative: falling) from ``now`` until stopped."""
        if not (math.isfinite(pct_per_min) and pct_per_min > -100.0):
            raise ValueError(f"drift must be finite and > -100 %/min, got {pct_per_min}")
        self._require(symbol)
        if pct_per_min == 0.0:
            self._moves.pop(symbol, None)
            return
        self._moves[symbol] = _Move(math.log1p(pct_per_min / 100.0) / 60.0, now, None)

    def stop_moves(self, symbol: str | None = None) -> None:
        """End the crash or drift of ``symbol`` (of every symbol if ``None``)."""
        if symbol is None:
            self._moves.clear()
        else:
            self._moves.pop(symbol, None)

    def moving(self) -> list[str]:
        """Symbols with a crash or drift under way."""
        return sorted(self._moves)

    def advance(self, now: float) -> list[str]:
        """Apply every scheduled move up to ``now``; return the symbols moved.

        Deterministic: the price depends only on the times passed in.
        """
        moved: list[str] = []
        for symbol in sorted(self._moves):
            m = self._moves[symbol]
            end = now if m.until is None else min(now, m.until)
            elapsed = end - m.applied_to
            if elapsed > 0.0:
                self.underlyings[symbol].price *= math.exp(m.log_rate * elapsed)
                m.applied_to = end
                moved.append(symbol)
            if m.until is not None and now >= m.until:
                del self._moves[symbol]
        return moved

    def _require(self, symbol: str) -> None:
        if symbol not in self.underlyings:
            raise ValueError(f"no underlying {symbol!r}: call set_underlying first")
