"""Indicators computed in code from the candles a model is shown (it is never asked to compute them).

talipp computes them: pure Python, no dependencies (no numpy/pandas in the worker), well kept, and
its formulas are the usual ones (Wilder's smoothing for RSI and ATR, EMA seeded with the SMA).
tests/unit/test_model_indicators.py checks them against values computed independently by hand."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from talipp.indicators import ATR, BB, EMA, MACD, RSI
from talipp.ohlcv import OHLCV


@dataclass(frozen=True)
class Bar:
    """One closed candle: open time (ms), OHLCV."""

    t: int
    o: float
    h: float
    l: float
    c: float
    v: float


def _last(values: Any) -> Any:
    return values[-1] if len(values) and values[-1] is not None else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def last_rounded(values: Any, digits: int) -> float | None:
    """An indicator's value at the last bar, rounded; None while the series is too short."""
    return _round(_last(values), digits)


def volume_vs_avg20(volumes: Sequence[float]) -> float | None:
    """The last volume against the average of the 20 before it."""
    window = volumes[-21:-1]
    average = sum(window) / len(window) if window else 0.0
    return round(volumes[-1] / average, 2) if average > 0 and volumes else None


def snapshot(bars: Sequence[Bar], price_digits: int = 2, swing_lookback: int = 20) -> dict[str, Any]:
    """The indicators at the last bar. A value the series is too short for is None (EMA 200 over
    100 candles, say): the prompt says "n/a", never a made-up number."""
    closes = [b.c for b in bars]
    ohlcv = [OHLCV(b.o, b.h, b.l, b.c, b.v) for b in bars]
    out: dict[str, Any] = {}
    for period in (20, 50, 200):
        out[f"ema{period}"] = _round(_last(EMA(period, input_values=closes)), price_digits)
    out["rsi14"] = _round(_last(RSI(14, input_values=closes)), 1)
    out["atr14"] = _round(_last(ATR(14, input_values=ohlcv)), price_digits + 2)
    macd = _last(MACD(12, 26, 9, input_values=closes))
    out["macd"] = None if macd is None or macd.signal is None else {
        "macd": round(macd.macd, price_digits + 2),
        "signal": round(macd.signal, price_digits + 2),
        "histogram": round(macd.histogram, price_digits + 2),
    }  # fmt: skip
    bb = _last(BB(20, 2, input_values=closes))
    out["bollinger20_2"] = None if bb is None else {
        "lower": round(bb.lb, price_digits), "middle": round(bb.cb, price_digits), "upper": round(bb.ub, price_digits)
    }  # fmt: skip
    out["volume_vs_avg20"] = volume_vs_avg20([b.v for b in bars])
    recent = bars[-swing_lookback:]
    out[f"swing_high{swing_lookback}"] = round(max(b.h for b in recent), price_digits) if recent else None
    out[f"swing_low{swing_lookback}"] = round(min(b.l for b in recent), price_digits) if recent else None
    return out


def atr(bars: Sequence[Bar], period: int = 14) -> float | None:
    """ATR at the last bar (the answer checks measure distances in it)."""
    return _last(ATR(period, input_values=[OHLCV(b.o, b.h, b.l, b.c, b.v) for b in bars]))
