"""The checks load_signal applies to a signal row and its trader's settings (no database)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from activities import signal_checks as checks

NOW = 1_764_068_400.0  # 2025-11-25 11:00 UTC

GOOD = checks.RawSignal(
    symbol="BTCUSDT",
    signal_epoch=NOW - 60,
    price=43250.12,
    change_percent=-2.5,
    volume=1234.5,
    indicator_bytes=12,
    trader_found=True,
    strategy_bytes=60,
    max_reanalyses=5,
    min_confidence_to_enter=70.0,
    max_monitoring_seconds=24 * 3600.0,
)


def problems(**changes) -> list[str]:
    return checks.problems(dataclasses.replace(GOOD, **changes), NOW)


def test_a_good_row_has_no_problem():
    assert problems() == []
    # Bounds themselves are allowed.
    assert problems(max_reanalyses=0) == problems(max_reanalyses=1000) == []
    assert problems(min_confidence_to_enter=0.0) == problems(min_confidence_to_enter=100.0) == []
    assert problems(max_monitoring_seconds=checks.MAX_MONITORING_SECONDS) == []
    assert problems(signal_epoch=NOW + checks.FUTURE_TOLERANCE_SECONDS) == []
    assert problems(price=None, volume=None, change_percent=None, indicator_bytes=None) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"signal_epoch": None}, "signal timestamp is NULL"),
        ({"signal_epoch": math.inf}, "signal timestamp is infinity"),
        ({"signal_epoch": -math.inf}, "signal timestamp is -infinity"),
        ({"signal_epoch": NOW + 366 * 86400}, "signal timestamp is 366 days in the future"),
        ({"signal_epoch": NOW + checks.FUTURE_TOLERANCE_SECONDS + 1}, "in the future"),
        ({"signal_epoch": -62135596800.0}, "before 2000-01-01"),
        ({"max_monitoring_seconds": 9000 * 365.25 * 86400}, "max_monitoring_duration 3287250 days is outside"),
        ({"max_monitoring_seconds": 0.0}, "max_monitoring_duration 0 s is outside"),
        ({"max_monitoring_seconds": -3600.0}, "max_monitoring_duration -3600 s is outside"),
        ({"max_monitoring_seconds": math.inf}, "max_monitoring_duration inf is outside"),
        ({"max_monitoring_seconds": None}, "max_monitoring_duration is NULL"),
        ({"max_reanalyses": 10**9}, "max_reanalyses 1000000000 is outside 0..1000"),
        ({"max_reanalyses": -1}, "max_reanalyses -1 is outside"),
        ({"min_confidence_to_enter": 150.0}, "min_confidence_to_enter 150.0 is outside 0..100"),
        ({"min_confidence_to_enter": -1.0}, "min_confidence_to_enter -1.0 is outside"),
        ({"min_confidence_to_enter": math.nan}, "min_confidence_to_enter nan is outside"),
        ({"price": math.nan}, "price_at_signal is not a finite number (nan)"),
        ({"price": math.inf}, "price_at_signal is not a finite number (inf)"),
        ({"price": -1.0}, "price_at_signal is negative"),
        ({"volume": -math.inf}, "volume_at_signal is not a finite number"),
        ({"change_percent": math.nan}, "change_percent_at_signal is not a finite number"),
        ({"strategy_bytes": 3_000_000}, "trader strategy is 3000000 bytes, more than 65536"),
        ({"indicator_bytes": 65537}, "indicator_data is 65537 bytes"),
        ({"symbol": "btcu\u017fdt"}, "symbol 'btcuſdt' is not ASCII"),
    ],
)
def test_each_bad_value_is_named(changes, expected):
    found = problems(**changes)
    assert len(found) == 1 and expected in found[0], found


def test_a_negative_change_is_a_real_change():
    assert problems(change_percent=-99.0) == []


def test_trader_settings_are_not_checked_without_a_trader():
    # The workflow itself ends a signal whose trader is missing, with that reason.
    assert (
        problems(
            trader_found=False,
            max_reanalyses=None,
            min_confidence_to_enter=None,
            max_monitoring_seconds=None,
            strategy_bytes=None,
        )
        == []
    )


def test_several_problems_are_all_reported():
    found = problems(signal_epoch=None, price=math.nan, max_reanalyses=5000)
    assert len(found) == 3


def test_the_ceiling_is_the_one_set_limit_uses():
    from workflows.monitor import inputs

    assert checks.MAX_REANALYSES_CEILING == inputs.MAX_REANALYSES_CEILING
