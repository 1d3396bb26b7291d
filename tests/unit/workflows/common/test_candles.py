import pytest
from pydantic import ValidationError

from workflows.common.candles import Kline, candle_open_containing, interval_length_ms

T0 = 1764068400000  # 2025-11-25 11:00 UTC


def k(**over) -> dict:
    base = {"t": T0, "T": T0 + 60_000 - 1, "s": "BTCUSDT", "i": "1m", "o": "1", "h": "2", "l": "0.5", "c": "1.5"}
    return {**base, "v": "10", "x": True, **over}


def test_a_real_kline_passes():
    assert Kline.model_validate(k()).c == "1.5"


@pytest.mark.parametrize(
    "over",
    [
        {"t": 300_000_000_000_000, "T": 300_000_000_059_999},  # past year 9999
        {"c": "1e400"},  # finite as a decimal, infinite as the float sent to llm-proxy
        {"c": "0.1000000000000000055511151231257827"},  # not exact as a float
        {"v": "1e400"},
        {"c": "NaN"},
        {"c": "-1"},
        {"t": T0 + 60_000, "T": T0},  # t > T
        {"T": T0 + 120_000 - 1},  # two minutes long for a 1m candle
        {"s": "btcuſdt"},  # U+017F upper-cases to S
    ],
)
def test_klines_that_could_not_be_real_are_refused(over):
    with pytest.raises(ValidationError):
        Kline.model_validate(k(**over))


def test_month_candles_have_their_calendar_length():
    feb = 1769904000000  # 2026-02-01 00:00 UTC
    assert interval_length_ms("1M", feb) == 28 * 86_400_000
    Kline.model_validate(k(i="1M", t=feb, T=feb + 28 * 86_400_000 - 1))
    with pytest.raises(ValidationError):
        Kline.model_validate(k(i="1M", t=feb, T=feb + 30 * 86_400_000 - 1))


def test_candle_open_containing():
    assert candle_open_containing("15m", T0 + 7 * 60_000) == T0
    assert candle_open_containing("1M", T0) == 1761955200000  # 2025-11-01
    monday = 1763942400000  # 2025-11-24 00:00 UTC, a Monday
    assert candle_open_containing("1w", T0) == monday
    assert candle_open_containing("7m", T0) is None
