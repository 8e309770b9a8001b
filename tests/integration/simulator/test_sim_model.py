"""The simulator's margin and account models, pure: by hand and as invariants."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.simulator import SimPosition
from supervisor.simulator.broker import Broker
from supervisor.simulator.client_messages import ContractSpec, LegSpec, PlaceOrderRequest
from supervisor.simulator.margin import Margin, position_margin
from supervisor.simulator.market import Instrument, Market

EXPIRY = "2031-06-20"
NOW = 1_900_000_000.0  # a fixed clock, years before EXPIRY


def market() -> Market:
    m = Market(clock=lambda: NOW)
    m.set_underlying("SPY", 100.0, vol=0.3, con_id=1)
    return m


def option(m: Market, right: str, strike: float) -> Instrument:
    inst = m.resolve(
        con_id=0, symbol="SPY", sec_type="OPT", expiry=EXPIRY, strike=strike, right=right
    )
    assert inst is not None
    return inst


def test_short_option_margin_by_hand() -> None:
    m = market()
    call_otm = option(m, "C", 115.0)  # 15 OTM: max(20 − 15, 10) = 10 a share
    put_itm = option(m, "P", 110.0)  # in the money: 20 a share
    put_far = option(m, "P", 60.0)  # 40 OTM: the 10 % floor
    for inst, base in ((call_otm, 10.0), (put_itm, 20.0), (put_far, 10.0)):
        req = (base + m.mark(inst)) * 100 * 3
        assert position_margin(inst, -3, m) == Margin(pytest.approx(req), pytest.approx(req))
        assert position_margin(inst, 3, m) == Margin(0.0, 0.0)  # long: paid in full
    stock = m.instruments[1]
    assert position_margin(stock, 10, m) == Margin(500.0, 250.0)
    assert position_margin(stock, -10, m) == Margin(500.0, 300.0)


def _req(
    order_id: int,
    inst: Instrument | None,
    action: str,
    qty: float,
    legs: tuple[LegSpec, ...] = (),
) -> PlaceOrderRequest:
    spec = ContractSpec(
        con_id=inst.con_id if inst else 0,
        symbol="SPY",
        sec_type=inst.sec_type if inst else "BAG",
        expiry=inst.wire_expiry if inst else "",
        strike=inst.strike if inst else None,
        right=inst.right or "" if inst else "",
        multiplier=inst.wire_multiplier if inst else "",
        exchange="SMART",
        primary_exchange="",
        currency="USD",
        local_symbol="",
        trading_class="",
    )
    return PlaceOrderRequest(
        order_id=order_id,
        contract=spec,
        action=action,
        qty=qty,
        order_type="MKT",
        lmt_price=None,
        aux_price=None,
        tif="DAY",
        account="",
        order_ref="",
        transmit=True,
        parent_id=0,
        legs=legs,
        what_if=False,
    )


#: (what, a price or slippage, a quantity, which instrument)
Op = tuple[str, float, int, int]
_ops = st.lists(
    st.tuples(
        st.sampled_from(["price", "slip", "trade", "combo", "hand"]),
        st.floats(-2.0, 2.0),
        st.integers(-5, 5),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(_ops)
def test_daily_pnl_is_the_nlv_change_whatever_happens(ops: list[Op]) -> None:
    """Hand-made positions are neutral; marks and fills move daily P&L and NLV alike."""
    m = market()
    insts = [m.instruments[1], option(m, "P", 95.0), option(m, "C", 105.0)]
    broker = Broker(m, account="DU1", cash=50_000.0, clock=lambda: NOW)
    broker.add_position(SimPosition(1, "SPY", "STK", 100, 90.0))
    nlv0 = broker.net_liquidation()
    ids = itertools.count(1)
    slip = 0.0
    for kind, x, qty, which in ops:
        inst = insts[which]
        if kind == "price":
            m.set_underlying("SPY", 100.0 + 20.0 * x, vol=0.3)
        elif kind == "slip":
            slip = x
        elif kind == "trade" and qty:
            o, err = broker.place(_req(next(ids), inst, "BUY" if qty > 0 else "SELL", abs(qty)), 1)
            assert err is None
            broker.fill(o, max(m.mark(inst) + slip, 0.01))
        elif kind == "combo" and qty:
            legs = (LegSpec(insts[1].con_id, 1, "BUY", ""), LegSpec(insts[2].con_id, 2, "SELL", ""))
            action = "BUY" if qty > 0 else "SELL"
            o, err = broker.place(_req(next(ids), None, action, abs(qty), legs), 1)
            assert err is None
            broker.fill(o, None)
        elif kind == "hand" and qty == 0:
            broker.remove_position(inst.con_id)
        elif kind == "hand":
            cost = m.mark(inst) * inst.multiplier * (1.0 + x / 10)
            broker.add_position(
                SimPosition(
                    inst.con_id,
                    "SPY",
                    inst.sec_type,
                    qty,
                    cost,
                    right=inst.right,
                    strike=inst.strike,
                    expiry=inst.expiry,
                )
            )
        pnl = broker.pnl()
        assert pnl.daily == pytest.approx(broker.net_liquidation() - nlv0, abs=1e-6)
        assert pnl.unrealized == pytest.approx(
            sum(broker.pnl_single(c).unrealized for c in broker.positions), abs=1e-6
        )
    broker.start_pnl_session()
    assert broker.pnl().daily == pytest.approx(0.0, abs=1e-6)


def test_set_net_liquidation_rebases_cash_only() -> None:
    m = market()
    broker = Broker(m, account="DU1", cash=10_000.0, clock=lambda: NOW)
    broker.add_position(SimPosition(1, "SPY", "STK", 100, 90.0))
    assert broker.net_liquidation() == pytest.approx(10_000.0)
    broker.set_net_liquidation(25_000.0)
    daily = broker.pnl().daily
    m.set_underlying("SPY", 101.0, vol=0.3)
    assert broker.net_liquidation() == pytest.approx(25_100.0)
    assert broker.pnl().daily == pytest.approx(daily + 100.0)
    values = broker.account_values()
    assert values[("NetLiquidation", "USD")] == "25100.00"
    assert values[("InitMarginReq", "USD")] == "5050.00"


def test_a_refusing_order_gives_in_after_its_attempts() -> None:
    m = market()
    broker = Broker(m, account="DU1", cash=0.0, clock=lambda: NOW)
    o, _ = broker.place(_req(1, m.instruments[1], "BUY", 1), 1)
    broker.refuse_cancel(o.perm_id, attempts=2)
    assert broker.cancel_all() == ([], [o])
    assert broker.cancel(o) is False
    assert broker.cancel_all() == ([o], []) and o.status == "Cancelled"
