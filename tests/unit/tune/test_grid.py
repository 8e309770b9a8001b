"""The grid file: values, objective and constraints; every problem named by its key."""

from __future__ import annotations

import pytest

from supervisor.tune.grid import GridError, apply, parse_grid


def problems(data: dict[str, object]) -> list[str]:
    with pytest.raises(GridError) as exc:
        parse_grid(data)
    return exc.value.problems


def test_combinations_cover_the_product_in_order() -> None:
    g = parse_grid({"trailing_stop": {"activation_pct": [1, 2], "confirm_quotes": [1, 2, 3]}})
    combos = g.combinations()
    assert len(combos) == 6
    assert combos[0] == {"activation_pct": 1, "confirm_quotes": 1}
    assert combos[-1] == {"activation_pct": 2, "confirm_quotes": 3}
    assert g.horizon_s == 1800.0 and g.objective.name == "min_mean_giveback"


def test_a_single_value_is_a_one_value_list() -> None:
    g = parse_grid({"trailing_stop": {"price_source": "mid"}, "horizon_s": 60})
    assert g.values == {"price_source": ("mid",)} and g.horizon_s == 60.0


def test_bad_values_are_named_by_key_and_position() -> None:
    got = problems(
        {
            "objective": "max_profit",
            "horizon_s": 0,
            "max_whipsaws_per_100": -1,
            "colour": "red",
            "trailing_stop": {
                "trailing_pct": [1.0, 0, 1.0],
                "confirm_quotes": [1, 0.5],
                "price_source": ["bid"],
                "nonsense_pct": [1],
                "max_spread_pct": [],
            },
        }
    )
    text = "\n".join(got)
    assert "objective: must be one of min_mean_giveback" in text
    assert "horizon_s: must be a finite number > 0" in text
    assert "max_whipsaws_per_100: must be a finite number >= 0" in text
    assert "colour: unknown key" in text
    assert "trailing_stop.trailing_pct[1]: must be a finite number > 0" in text
    assert "trailing_stop.trailing_pct[2]: 1.0 is listed twice" in text
    assert "trailing_stop.confirm_quotes[1]: must be an integer >= 1" in text
    assert "trailing_stop.price_source[0]: must be one of" in text
    assert "trailing_stop.nonsense_pct: unknown key" in text
    assert "trailing_stop.max_spread_pct: must list at least one value" in text


def test_a_grid_needs_trailing_stop_values() -> None:
    assert problems({"objective": "min_mean_giveback"}) == [
        "trailing_stop: must be a table listing values of [trailing_stop] keys"
    ]


def test_apply_changes_the_base_key_and_symbol_tables_inherit_it() -> None:
    base = {
        "trailing_stop": {
            "trailing_pct": 1.0,
            "max_spread_pct": 1.0,
            "symbols": {"SPY": {"activation_pct": 4.0}, "QQQ": {"trailing_pct": 9.0}},
        }
    }
    cfg = apply(base, {"trailing_pct": 2.5, "max_spread_pct": "off"})
    assert cfg.stop_params("AAPL").trailing_pct == 2.5
    assert cfg.stop_params("AAPL").max_spread_pct is None
    assert cfg.stop_params("SPY").trailing_pct == 2.5  # inherited key by key
    assert cfg.stop_params("SPY").activation_pct == 4.0
    assert cfg.stop_params("QQQ").trailing_pct == 9.0  # the symbol's own value wins
    assert base["trailing_stop"]["trailing_pct"] == 1.0  # the base is not changed
