"""TOML configuration into typed, validated objects (DESIGN §6).

A risk daemon that silently ignores a misspelt limit is worse than one that
refuses to start, so every unknown key and every bad value is refused with a
message naming the key (``limits.max_portfolio_delta: …``), and all problems
are reported at once.
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from actors.book import PricingParams
from actors.circuit_breaker import BreakerParams, KindPolicy, default_kinds
from actors.gate.params import (
    BetaParams,
    GateParams,
    LimitParams,
    LossParams,
    MarginParams,
    OrderParams,
    StressParams,
)
from actors.messages import (
    LIMIT_CODES,
    Contract,
    FailureKind,
    KillMode,
    PriceSource,
    ReasonCode,
)
from actors.stop_guard import StopGuardParams
from actors.trailing_stop import StopParams
from supervisor.json_codec import contract as json_contract

T = TypeVar("T")


class ConfigError(ValueError):
    """Every problem found in a config file, one per line, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True, slots=True)
class IbConfig:
    host: str = "127.0.0.1"
    port: int = 7497
    client_id: int = 17
    account: str = ""
    readonly: bool = False
    exit_orders: bool = False
    cancel_on_open: bool = False
    connect_timeout_s: float = 10.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    probe_interval_s: float = 10.0


@dataclass(frozen=True, slots=True)
class ApiConfig:
    listen: Listen = Listen("127.0.0.1", 8780)
    token_env: str = ""
    # "auto": $XDG_CONFIG_HOME/risk-supervisor/api-token, created 0600 on first
    # start; a path: that file; "": no token (loopback only). See docs/api-security.md.
    token_file: str = "auto"
    allowed_hosts: tuple[str, ...] = ()  # extra Host names (behind a reverse proxy)
    heartbeat_timeout_s: float | None = None  # the dead-man switch, off by default
    heartbeat_action: KillMode = KillMode.HALT


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    listen: Listen = Listen("127.0.0.1", 9108)
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: str = "risk-supervisor.sqlite"


@dataclass(frozen=True, slots=True)
class RecordConfig:
    """``[record]``: every input event, one zstd file a UTC day (DESIGN §8)."""

    enabled: bool = True
    dir: str = "recordings"
    retention_days: int = 30


@dataclass(frozen=True, slots=True)
class StrategyLegConfig:
    """A declared leg: by IB conId or by contract fields, with a signed whole ratio."""

    ratio: int
    con_id: int | None = None
    contract: Contract | None = None


@dataclass(frozen=True, slots=True)
class KillConfig:
    flatten_slippage_pct: float = 1.0


@dataclass(frozen=True, slots=True)
class MarketDataConfig:
    """How the daemon watches contracts it does not hold (the collar's quotes)."""

    idle_unsubscribe_s: float = 300.0
    max_lines: int = 90  # IB's default limit is 100 lines per connection


@dataclass(frozen=True, slots=True)
class Config:
    ib: IbConfig = field(default_factory=IbConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    net_liquidation: float | None = None
    trailing_stop: StopParams = field(default_factory=StopParams)
    stop_overrides: Mapping[str, StopParams] = field(default_factory=dict)
    gate: GateParams = field(default_factory=GateParams)
    breaker: BreakerParams = field(default_factory=BreakerParams)
    stop_guard: StopGuardParams | None = None
    kill: KillConfig = field(default_factory=KillConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    market_data: MarketDataConfig = field(default_factory=MarketDataConfig)
    # [strategies.<id>] legs = [...]: a static book's spreads (DESIGN §3.1)
    strategies: Mapping[str, tuple[StrategyLegConfig, ...]] = field(default_factory=dict)

    def stop_params(self, symbol: str) -> StopParams:
        return self.stop_overrides.get(symbol, self.trailing_stop)

    @property
    def heartbeat_timeout_s(self) -> float | None:
        return self.api.heartbeat_timeout_s

    @property
    def heartbeat_action(self) -> KillMode:
        return self.api.heartbeat_action


# ----------------------------------------------------------------- reading


class _Table:
    """One TOML table being read: takes known keys, remembers problems and leftovers."""

    def __init__(self, data: Any, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.append(f"{path}: must be a table")
            data = {}
        self.data: dict[str, Any] = dict(data)

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def take(self, name: str, default: T, check: Callable[[Any], T | None], want: str) -> T:
        if name not in self.data:
            return default
        raw = self.data.pop(name)
        value = check(raw)
        if value is None:
            self.problems.append(f"{self.key(name)}: must be {want}, got {raw!r}")
            return default
        return value

    def number(
        self, name: str, default: float, *, low: float = -math.inf, strict: bool = False
    ) -> float:
        def check(x: Any) -> float | None:
            if isinstance(x, bool) or not isinstance(x, int | float):
                return None
            try:
                value = float(x)
            except OverflowError:
                return None
            if not math.isfinite(value) or value < low or (strict and value == low):
                return None
            return value

        bound = "" if low == -math.inf else (f" > {low:g}" if strict else f" >= {low:g}")
        return self.take(name, default, check, f"a finite number{bound}")

    def optional_number(
        self, name: str, *, low: float = 0.0, strict: bool = False, high: float | None = None
    ) -> float | None:
        """An optional number (absent or null: None); a bad one is a problem and None."""
        if name not in self.data:
            return None
        if self.data.get(name) is None:
            self.data.pop(name)
            return None
        value = self.number(name, math.nan, low=low, strict=strict)
        if math.isnan(value):
            return None
        if high is not None and not value < high:
            self.problems.append(f"{self.key(name)}: must be < {high:g}, got {value!r}")
            return None
        return value

    def optional_integer(self, name: str, *, low: int) -> int | None:
        if name not in self.data or self.data.get(name) is None:
            self.data.pop(name, None)
            return None
        value = self.integer(name, -1, low=low)
        return None if value < low else value

    def choice(self, name: str, default: T, enum: Callable[[Any], T], want: str) -> T:
        def check(x: Any) -> T | None:
            try:
                return enum(x) if isinstance(x, str) else None
            except ValueError:
                return None

        return self.take(name, default, check, want)

    def string_map(self, name: str) -> dict[str, float]:
        """A table of symbol -> finite number."""
        t = self.table(name)
        out: dict[str, float] = {}
        for key in list(t.data):
            v = t.number(key, math.nan)
            if not math.isnan(v):
                out[key] = v
        t.done()
        return out

    def integer(self, name: str, default: int, *, low: int, high: int | None = None) -> int:
        def check(x: Any) -> int | None:
            ok = isinstance(x, int) and not isinstance(x, bool) and x >= low
            return x if ok and (high is None or x <= high) else None

        want = f"an integer >= {low}" + ("" if high is None else f" and <= {high}")
        return self.take(name, default, check, want)

    def boolean(self, name: str, default: bool) -> bool:
        return self.take(
            name, default, lambda x: x if isinstance(x, bool) else None, "true or false"
        )

    def string(self, name: str, default: str) -> str:
        return self.take(name, default, lambda x: x if isinstance(x, str) else None, "a string")

    def table(self, name: str) -> _Table:
        return _Table(self.data.pop(name, None), self.key(name), self.problems)

    def numbers(
        self, name: str, default: tuple[float, ...], *, low: float = -math.inf
    ) -> tuple[float, ...]:
        def check(x: Any) -> tuple[float, ...] | None:
            if not isinstance(x, list) or not x:
                return None
            ok = all(
                isinstance(v, int | float)
                and not isinstance(v, bool)
                and abs(v) < 1e300
                and math.isfinite(v)
                and v > low
                for v in x
            )
            return tuple(float(v) for v in x) if ok else None

        bound = "" if low == -math.inf else f" > {low:g}"
        return self.take(name, default, check, f"a non-empty list of finite numbers{bound}")

    def listen(self, name: str, default: Listen) -> Listen:
        def check(x: Any) -> Listen | None:
            if not isinstance(x, str) or ":" not in x:
                return None
            host, _, port = x.rpartition(":")
            host = host.strip("[]")
            if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                return None
            return Listen(host, int(port))

        return self.take(name, default, check, 'an address "host:port"')

    def done(self) -> None:
        for name in self.data:
            self.problems.append(f"{self.key(name)}: unknown key")


def _stop_params(t: _Table, base: StopParams) -> StopParams:
    def source(x: Any) -> PriceSource | None:
        try:
            return PriceSource(x) if isinstance(x, str) else None
        except ValueError:
            return None

    spread = base.max_spread_pct
    if "max_spread_pct" in t.data:
        spread = t.optional_number("max_spread_pct", low=0.0)
    trailing = t.number("trailing_pct", base.trailing_pct, low=0.0, strict=True)
    if trailing >= 100:
        t.problems.append(
            f"{t.key('trailing_pct')}: must be < 100 (a long's stop would be at or below 0 "
            f"and could never trigger), got {trailing!r}"
        )
        trailing = base.trailing_pct
    params = StopParams(
        activation_pct=t.number("activation_pct", base.activation_pct, low=0.0),
        trailing_pct=trailing,
        min_move_pct=t.number("min_move_pct", base.min_move_pct, low=0.0),
        confirm_quotes=t.integer("confirm_quotes", base.confirm_quotes, low=1),
        max_spread_pct=spread,
        min_trail_abs=t.number("min_trail_abs", base.min_trail_abs, low=0.0),
        price_source=t.take(
            "price_source", base.price_source, source, 'one of "exit", "mid", "last"'
        ),
    )
    return params


def _breaker(t: _Table) -> BreakerParams:
    d = BreakerParams()
    trips = t.data.get("max_trips_per_day")
    max_trips = None if trips is None else t.integer("max_trips_per_day", 0, low=1) or None
    kinds = default_kinds()
    kt = t.table("kinds")
    for name in list(kt.data):
        try:
            kind = FailureKind(name)
        except ValueError:
            continue
        if kind is FailureKind.LOSS_LIMIT:
            kt.data.pop(name)
            kt.problems.append(
                f"{kt.key(name)}: loss_limit always trips and latches; it cannot be configured"
            )
            continue
        k = kt.table(name)
        kinds[kind] = KindPolicy(
            weight=k.number("weight", kinds[kind].weight, low=0.0),
            trip=k.boolean("trip", kinds[kind].trip),
        )
        k.done()
    kt.done()
    params = BreakerParams(
        failure_threshold=t.number("failure_threshold", d.failure_threshold, low=0.0, strict=True),
        failure_window_s=t.number("failure_window_s", d.failure_window_s, low=0.0, strict=True),
        open_timeout_s=t.number("open_timeout_s", d.open_timeout_s, low=0.0, strict=True),
        half_open_max_tries=t.integer("half_open_max_tries", d.half_open_max_tries, low=1),
        backoff_multiplier=t.number("backoff_multiplier", d.backoff_multiplier, low=1.0),
        max_open_timeout_s=t.number(
            "max_open_timeout_s", d.max_open_timeout_s, low=0.0, strict=True
        ),
        max_trips_per_day=max_trips,
        kinds=kinds,
    )
    return params


def _gate(root: _Table) -> GateParams:
    lt = root.table("limits")
    values = {}
    for code in LIMIT_CODES:
        v = lt.optional_number(code.value, low=0.0)
        if v is not None and not math.isnan(v):
            values[code] = v
    max_age = lt.number("max_data_age_s", 60.0, low=0.0)
    lt.done()

    gt = root.table("groups")
    groups: dict[str, tuple[str, ...]] = {}
    for name in list(gt.data):
        symbols = gt.take(
            name,
            (),
            lambda x: (
                tuple(x)
                if isinstance(x, list) and all(isinstance(s, str) and s for s in x)
                else None
            ),
            "a list of symbols",
        )
        groups[name] = symbols
    gt.done()

    st = root.table("stress")
    d = StressParams()
    stress = StressParams(
        spot_shocks_pct=st.numbers("spot_shocks_pct", d.spot_shocks_pct, low=-100.0),
        vol_shocks_pts=st.numbers("vol_shocks_pts", d.vol_shocks_pts),
    )
    st.done()

    pt = root.table("pricing")
    rate = pt.number("rate", 0.0)
    yt = pt.table("dividend_yield")
    yields = {s: yt.number(s, 0.0) for s in list(yt.data)}
    yt.done()
    pt.done()

    beta = _beta(root, values)
    orders = _orders(root)
    ct = root.table("cooldown")
    cooldown = ct.optional_number("after_trigger_s", low=0.0, strict=True)
    ct.done()
    lo = root.table("loss")
    loss = LossParams(
        max_daily_loss=lo.optional_number("max_daily_loss", low=0.0, strict=True),
        max_drawdown_pct=lo.optional_number("max_drawdown_pct", low=0.0, strict=True, high=100.0),
        max_pnl_age_s=lo.number("max_pnl_age_s", 60.0, low=0.0, strict=True),
    )
    lo.done()
    ma = root.table("margin")
    margin = MarginParams(
        max_init_margin_pct=ma.optional_number("max_init_margin_pct", low=0.0, strict=True),
        min_excess_liquidity=ma.optional_number("min_excess_liquidity", low=0.0),
        whatif_timeout_s=ma.number("whatif_timeout_s", 2.0, low=0.0, strict=True),
    )
    ma.done()
    return GateParams(
        LimitParams(values, max_age),
        groups,
        stress,
        PricingParams(rate, yields),
        beta,
        orders,
        cooldown,
        loss,
        margin,
    )


def _beta(root: _Table, limits: Mapping[ReasonCode, float]) -> BetaParams:
    bt = root.table("beta")
    index = bt.string("index", "") or None
    default = None
    if "default" in bt.data:
        default = bt.optional_number("default", low=-math.inf)
    values = bt.string_map("values")
    bt.done()
    if index is not None and index in values:
        root.problems.append(
            f"beta.values.{index}: the index's beta is always 1; it may not be configured"
        )
        values.pop(index)
    if ReasonCode.MAX_BETA_WEIGHTED_DELTA in limits and index is None:
        root.problems.append("beta.index: required with limits.max_beta_weighted_delta")
    return BetaParams(index, default, values)


def _orders(root: _Table) -> OrderParams:
    ot = root.table("orders")
    d = OrderParams()
    count = ot.optional_integer("max_orders_per_window", low=1)
    window_given = "order_window_s" in ot.data
    window = ot.number("order_window_s", d.order_window_s, low=0.0, strict=True)
    if window_given and count is None:
        root.problems.append(
            "orders.order_window_s: a window without orders.max_orders_per_window means nothing"
        )
    orders = OrderParams(
        max_leg_contracts=ot.optional_number("max_leg_contracts", low=0.0),
        max_leg_shares=ot.optional_number("max_leg_shares", low=0.0),
        max_order_notional=ot.optional_number("max_order_notional", low=0.0),
        max_order_premium=ot.optional_number("max_order_premium", low=0.0),
        price_collar_pct=ot.optional_number("price_collar_pct", low=0.0),
        max_orders_per_window=count,
        order_window_s=window,
        duplicate_window_s=ot.optional_number("duplicate_window_s", low=0.0, strict=True),
        quote_wait_s=ot.number("quote_wait_s", d.quote_wait_s, low=0.0, strict=True),
    )
    ot.done()
    return orders


def parse(data: Mapping[str, Any]) -> Config:
    """Validate a parsed TOML document; raises ConfigError listing every problem."""
    problems: list[str] = []
    root = _Table(data, "", problems)

    it = root.table("ib")
    d = IbConfig()
    ib = IbConfig(
        host=it.string("host", d.host),
        port=it.integer("port", d.port, low=1, high=65535),
        client_id=it.integer("client_id", d.client_id, low=0),
        account=it.string("account", d.account),
        readonly=it.boolean("readonly", d.readonly),
        exit_orders=it.boolean("exit_orders", d.exit_orders),
        cancel_on_open=it.boolean("cancel_on_open", d.cancel_on_open),
        connect_timeout_s=it.number("connect_timeout_s", d.connect_timeout_s, low=0.0, strict=True),
        reconnect_min_s=it.number("reconnect_min_s", d.reconnect_min_s, low=0.0, strict=True),
        reconnect_max_s=it.number("reconnect_max_s", d.reconnect_max_s, low=0.0, strict=True),
        probe_interval_s=it.number("probe_interval_s", d.probe_interval_s, low=0.0, strict=True),
    )
    it.done()
    problems += _ib_contradictions(ib)

    at = root.table("api")
    da = ApiConfig()
    api = ApiConfig(
        at.listen("listen", da.listen),
        at.string("token_env", ""),
        at.string("token_file", da.token_file),
        at.take(
            "allowed_hosts",
            da.allowed_hosts,
            lambda x: (
                tuple(x)
                if isinstance(x, list) and all(isinstance(h, str) and h for h in x)
                else None
            ),
            "a list of host names",
        ),
        at.optional_number("heartbeat_timeout_s", low=0.0, strict=True),
        at.choice(
            "heartbeat_action", KillMode.HALT, KillMode, 'one of "halt", "cancel", "flatten"'
        ),
    )
    at.done()
    mt = root.table("metrics")
    metrics = MetricsConfig(
        mt.listen("listen", MetricsConfig().listen), mt.boolean("enabled", True)
    )
    mt.done()
    so = root.table("store")
    store = StoreConfig(so.string("path", StoreConfig().path))
    so.done()
    if not store.path.strip() or store.path.strip() == ":memory:" or store.path.startswith("file:"):
        problems.append(
            f"store.path: must name a file (the journal must survive a restart), got {store.path!r}"
        )
    ac = root.table("account")
    nlv = ac.optional_number("net_liquidation", low=0.0, strict=True)
    ac.done()

    tt = root.table("trailing_stop")
    symbols = tt.table("symbols")
    base = _stop_params(tt, StopParams())
    tt.done()
    overrides = {}
    for name in list(symbols.data):
        sym = symbols.table(name)
        overrides[name] = _stop_params(sym, base)
        sym.done()
    symbols.done()

    gate = _gate(root)
    sg = root.table("stop_guard")
    stop_guard = None
    if sg.data:
        count = sg.optional_integer("max_triggers", low=1)
        window = sg.optional_number("window_s", low=0.0, strict=True)
        for name, value in (("max_triggers", count), ("window_s", window)):
            if value is None and not any(p.startswith(f"stop_guard.{name}") for p in problems):
                problems.append(f"stop_guard.{name}: required in [stop_guard]")
        if count is not None and window is not None:
            stop_guard = StopGuardParams(count, window)
    sg.done()
    kt = root.table("kill")
    kill = KillConfig(kt.number("flatten_slippage_pct", KillConfig().flatten_slippage_pct, low=0.0))
    kt.done()
    rt = root.table("record")
    dr = RecordConfig()
    record = RecordConfig(
        rt.boolean("enabled", dr.enabled),
        rt.string("dir", dr.dir),
        rt.integer("retention_days", dr.retention_days, low=1),
    )
    rt.done()
    md = root.table("market_data")
    dm = MarketDataConfig()
    market_data = MarketDataConfig(
        md.number("idle_unsubscribe_s", dm.idle_unsubscribe_s, low=0.0, strict=True),
        md.integer("max_lines", dm.max_lines, low=1),
    )
    md.done()
    strategies = _strategies(root)
    bt = root.table("breaker")
    breaker = _breaker(bt)
    bt.done()
    root.done()
    if problems:
        raise ConfigError(problems)
    return Config(
        ib,
        api,
        metrics,
        store,
        nlv,
        base,
        overrides,
        gate,
        breaker,
        stop_guard,
        kill,
        record,
        market_data,
        strategies,
    )


def _strategies(root: _Table) -> dict[str, tuple[StrategyLegConfig, ...]]:
    st = root.table("strategies")
    out: dict[str, tuple[StrategyLegConfig, ...]] = {}
    for sid in list(st.data):
        t = st.table(sid)
        raw = t.data.pop("legs", None)
        where = f"strategies.{sid}.legs"
        t.done()
        if not isinstance(raw, list) or len(raw) < 2:
            st.problems.append(f"{where}: must be a list of at least two legs")
            continue
        legs: list[StrategyLegConfig] = []
        for i, leg in enumerate(raw):
            if not isinstance(leg, dict):
                st.problems.append(f"{where}[{i}]: must be a table")
                continue
            lt = _Table(dict(leg), f"{where}[{i}]", st.problems)
            ratio = lt.integer("ratio", 0, low=-(10**6))
            con_id = lt.optional_integer("con_id", low=1)
            contract = None
            if con_id is None:
                fields = {k: lt.data.pop(k) for k in list(lt.data) if k in _CONTRACT_KEYS}
                try:
                    contract = json_contract(fields)
                except ValueError as exc:
                    st.problems.append(f"{where}[{i}]: {exc}")
            lt.done()
            if ratio == 0:
                st.problems.append(f"{where}[{i}].ratio: a signed whole number, not 0")
            legs.append(StrategyLegConfig(ratio, con_id, contract))
        out[sid] = tuple(legs)
    st.done()
    return out


_CONTRACT_KEYS = frozenset({"symbol", "sec_type", "right", "strike", "expiry", "multiplier"})


def _ib_contradictions(ib: IbConfig) -> list[str]:
    out = []
    if ib.readonly and ib.exit_orders:
        out.append("ib.exit_orders: exit orders cannot be placed by a read-only IB session")
    if ib.readonly and ib.cancel_on_open:
        out.append("ib.cancel_on_open: a read-only IB session cannot cancel orders")
    return out


def runtime_problems(config: Config, environ: Mapping[str, str]) -> list[str]:
    """What a valid file cannot say alone: the environment it will run in.

    ``check-config`` and ``run`` both ask this, so one says ok exactly when
    the other starts.
    """
    out: list[str] = _ib_contradictions(config.ib)  # again: a Config may be built in code
    api = config.api
    token_env = api.token_env
    if token_env and not environ.get(token_env):
        out.append(f"api.token_env: the environment variable {token_env} is not set or empty")
    if not api.listen.loopback and not token_env and not api.token_file:
        out.append(
            f"api.listen: {api.listen} is not a loopback address; "
            "set api.token_env or api.token_file so that every write needs a bearer token"
        )
    return out


def token_file_path(api: ApiConfig) -> Path | None:
    """Where the API token file is (None: no token file)."""
    if not api.token_file:
        return None
    if api.token_file == "auto":
        from supervisor.api.token_file import default_token_file

        return default_token_file()
    return Path(api.token_file)


def load(path: str | Path) -> Config:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    return parse(data)
