"""The `model` backend's indicators (talipp) against references computed independently: Wilder's
RSI on the series StockCharts publishes for it, and EMA / ATR / Bollinger / MACD written out here
from their textbook definitions."""

from __future__ import annotations

import itertools
import statistics

import pytest

from model_backend.indicators import Bar, atr, snapshot

# StockCharts' RSI worked example (closes), whose published RSI(14) ends ..., 37.30, 33.09, 37.79.
WILDER = [44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61, 46.28, 46.28,
          46.00, 46.03, 46.41, 46.22, 45.64, 46.21, 46.25, 45.71, 46.45, 45.78, 45.35, 44.03, 44.18, 44.22, 44.57,
          43.42, 42.66, 43.13]  # fmt: skip


def _bars(closes: list[float]) -> list[Bar]:
    out, prev = [], closes[0]
    for i, c in enumerate(closes):
        high, low = max(prev, c) + 0.1 + (i % 3) * 0.05, min(prev, c) - 0.1
        out.append(Bar(t=i * 60_000, o=prev, h=high, l=low, c=c, v=10 + i % 7))
        prev = c
    return out


def _ema(values: list[float], period: int) -> list[float]:
    seed = sum(values[:period]) / period
    out, alpha = [seed], 2 / (period + 1)
    for v in values[period:]:
        out.append(out[-1] + alpha * (v - out[-1]))
    return out


def _wilder_rsi(closes: list[float], period: int = 14) -> float:
    changes = [b - a for a, b in itertools.pairwise(closes)]
    gain = sum(max(c, 0) for c in changes[:period]) / period
    loss = sum(max(-c, 0) for c in changes[:period]) / period
    for c in changes[period:]:
        gain = (gain * (period - 1) + max(c, 0)) / period
        loss = (loss * (period - 1) + max(-c, 0)) / period
    return 100 - 100 / (1 + gain / loss)


def _wilder_atr(bars: list[Bar], period: int = 14) -> float:
    trs = [bars[0].h - bars[0].l] + [
        max(b.h - b.l, abs(b.h - a.c), abs(b.l - a.c)) for a, b in itertools.pairwise(bars)
    ]
    value = sum(trs[:period]) / period
    for tr in trs[period:]:
        value = (value * (period - 1) + tr) / period
    return value


def test_rsi_matches_the_published_wilder_example_and_the_definition():
    ind = snapshot(_bars(WILDER))
    assert ind["rsi14"] == pytest.approx(37.79, abs=0.01)  # StockCharts' last published value
    assert ind["rsi14"] == pytest.approx(round(_wilder_rsi(WILDER), 1))
    assert snapshot(_bars(WILDER[:-1]))["rsi14"] == pytest.approx(33.09, abs=0.05)


def test_ema_atr_bollinger_macd_volume_swing_against_the_definitions():
    closes = [100 + (i % 9) * 0.7 - (i % 4) * 0.3 + i * 0.05 for i in range(120)]
    bars = _bars(closes)
    ind = snapshot(bars, price_digits=6)
    assert ind["ema20"] == pytest.approx(_ema(closes, 20)[-1], abs=1e-6)
    assert ind["ema50"] == pytest.approx(_ema(closes, 50)[-1], abs=1e-6)
    assert ind["ema200"] is None  # 120 candles are too few: never a made-up number
    assert atr(bars) == pytest.approx(_wilder_atr(bars), rel=1e-9)
    window = closes[-20:]
    mid = sum(window) / 20
    assert ind["bollinger20_2"]["middle"] == pytest.approx(mid, abs=1e-6)
    assert ind["bollinger20_2"]["upper"] == pytest.approx(mid + 2 * statistics.pstdev(window), abs=1e-6)
    fast, slow = _ema(closes, 12), _ema(closes, 26)
    macd_line = [f - s for f, s in zip(fast[14:], slow, strict=True)]  # aligned on the slow EMA's first value
    signal = _ema(macd_line, 9)
    assert ind["macd"]["macd"] == pytest.approx(macd_line[-1], abs=1e-6)
    assert ind["macd"]["signal"] == pytest.approx(signal[-1], abs=1e-6)
    volumes = [b.v for b in bars]
    assert ind["volume_vs_avg20"] == pytest.approx(round(volumes[-1] / (sum(volumes[-21:-1]) / 20), 2))
    assert ind["swing_high20"] == pytest.approx(max(b.h for b in bars[-20:]), abs=1e-6)
    assert ind["swing_low20"] == pytest.approx(min(b.l for b in bars[-20:]), abs=1e-6)
