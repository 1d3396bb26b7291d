"""market/intervals.py and market/candle.py: interval lengths (an unknown one is an error, never a
guess), a REST klines row as the stream's `k` and back, the Decimal candle. Pure: no I/O."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from market.candle import Candle, k_to_row, row_to_k
from market.intervals import FIXED_INTERVALS, UnknownInterval, interval_ms, is_valid_interval
from workflows.common.candles import Kline

# A real BTCUSDT 1m row as `GET /api/v3/klines` answers it.
ROW: list[Any] = [
    1732526400000,
    "98250.01000000",
    "98301.99000000",
    "98200.00000000",
    "98280.55000000",
    "12.34567000",
    1732526459999,
    "1213141.51617180",
    1877,
    "6.10000000",
    "599612.12345678",
    "0",
]


def test_every_fixed_interval_has_its_length_and_the_rest_is_an_error():
    assert (interval_ms("1s"), interval_ms("15m"), interval_ms("1w")) == (1_000, 900_000, 604_800_000)
    assert "1M" not in FIXED_INTERVALS and is_valid_interval("1M") and not is_valid_interval("7m")
    for word in ("1M", "7m", "", "1H"):
        with pytest.raises(UnknownInterval, match="one of 1s, 1m, 3m"):
            interval_ms(word)


def test_a_rest_row_is_the_streams_kline_and_back():
    k = row_to_k("BTCUSDT", "1m", ROW)
    assert (k["t"], k["T"], k["c"], k["n"], k["x"]) == (ROW[0], ROW[6], "98280.55000000", 1877, True)
    assert k_to_row(k) == ROW
    # What the bridge forwards is what a monitor accepts.
    assert Kline.model_validate(k).c == "98280.55000000"


def test_the_candle_is_exact_and_forwards_as_a_closed_kline():
    candle = Candle.from_row(ROW)
    assert (candle.t, candle.T, candle.c, candle.v) == (ROW[0], ROW[6], Decimal("98280.55"), Decimal("12.34567"))
    assert str(candle.c) == "98280.55000000"  # as written on the wire
    k = candle.kline("BTCUSDT", "1m", shift_ms=60_000)
    assert Kline.model_validate(k).t == ROW[0] + 60_000 and k["c"] == ROW[4] and k["x"] is True


@pytest.mark.parametrize(
    ("row", "why"),
    [
        (ROW[:6], "at least 7 fields"),
        ([*ROW[:2], "98000", *ROW[3:]], "high/low do not contain open/close"),  # high below the open
        ([*ROW[:4], "NaN", *ROW[5:]], "finite number"),
        ([*ROW[:5], "-1", *ROW[6:]], "greater than or equal to 0"),
        ([ROW[6], *ROW[1:6], ROW[0], *ROW[7:]], "before open time"),
    ],
)
def test_a_row_that_is_not_a_candle_is_refused(row, why):
    with pytest.raises(ValueError, match=why):
        Candle.from_row(row)
