"""The market as a model is shown it: the last N closed candles ending at the analysed close, as a
compact table oldest first, and a higher-timeframe summary built from the same candles.

Look-ahead is refused here, in one place: `closed_by` keeps only candles that closed at or before
the analysed close, whatever a source returned (a REST page may hold the candle still open, or,
in a backtest, the whole series)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from talipp.indicators import ATR, EMA, RSI
from talipp.ohlcv import OHLCV

from market.candle import Candle
from model_backend.indicators import Bar, last_rounded, volume_vs_avg20

# Higher timeframe: this many candles of the signal's interval make one summary bar.
HTF_FACTOR = 4


def bar_row(c: Candle) -> tuple[Bar, int]:
    """A candle as `closed_by` takes it: its bar and its close time (ms)."""
    return Bar(c.t, float(c.o), float(c.h), float(c.l), float(c.c), float(c.v)), c.T


def closed_by(bars: Sequence[tuple[Bar, int]], cutoff_ms: int, n: int) -> list[Bar]:
    """The last `n` bars whose close time (ms, the second item) is at or before `cutoff_ms`,
    oldest first, one per open time."""
    seen: dict[int, Bar] = {}
    for bar, close_ms in bars:
        if close_ms <= cutoff_ms:
            seen[bar.t] = bar
    return [seen[t] for t in sorted(seen)][-n:]


def price_digits(price: float) -> int:
    """Decimals that keep about six significant digits (the tick size is not known here)."""
    if price <= 0 or not math.isfinite(price):
        return 2
    return max(2, min(8, 5 - math.floor(math.log10(price))))


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def _volume(value: float) -> str:
    return f"{value:.4g}" if value < 1000 else f"{value:.0f}"


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M")


def candle_table(bars: Sequence[Bar], digits: int, masked: bool = False) -> str:
    """CSV, oldest first, `i` counting back to 0 at the analysed close (the cheapest layout in
    tokens among those measured, see docs/model-backend.md); `masked` drops the times."""
    head = "i,open,high,low,close,volume" if masked else "i,time,open,high,low,close,volume"
    lines = [head]
    last = len(bars) - 1
    for n, b in enumerate(bars):
        cells = [str(n - last)]
        if not masked:
            cells.append(_time(b.t))
        cells += [_num(b.o, digits), _num(b.h, digits), _num(b.l, digits), _num(b.c, digits), _volume(b.v)]
        lines.append(",".join(cells))
    return "\n".join(lines)


def aggregate(bars: Sequence[Bar], factor: int) -> list[Bar]:
    """Consecutive groups of `factor` bars as one, aligned so the last group ends at the last bar."""
    out: list[Bar] = []
    start = len(bars) % factor
    for i in range(start, len(bars), factor):
        group = bars[i : i + factor]
        out.append(
            Bar(
                t=group[0].t,
                o=group[0].o,
                h=max(b.h for b in group),
                l=min(b.l for b in group),
                c=group[-1].c,
                v=sum(b.v for b in group),
            )
        )
    return out


def higher_timeframe(bars: Sequence[Bar], digits: int) -> dict[str, Any]:
    """Trend, ATR, RSI and volume on bars of HTF_FACTOR candles each, from the same candles."""
    htf = aggregate(bars, HTF_FACTOR)
    if len(htf) < 2:
        return {"bars": len(htf)}
    # 100 candles make 25 summary bars: EMA 8 against EMA 21 fits them (20/50 would not).
    closes = [b.c for b in htf]
    ema_fast, ema_slow = _ema(8, closes, digits), _ema(21, closes, digits)
    trend = None
    if ema_fast is not None and ema_slow is not None:
        trend = "up" if ema_fast > ema_slow else "down" if ema_fast < ema_slow else "flat"
    first, last = htf[0].c, htf[-1].c
    return {
        "bars": len(htf),
        "candles_per_bar": HTF_FACTOR,
        "change_pct": round((last - first) / first * 100, 2) if first else None,
        "ema8_vs_ema21": trend,
        "rsi14": last_rounded(RSI(14, input_values=closes), 1),
        "atr14": last_rounded(ATR(14, input_values=[OHLCV(b.o, b.h, b.l, b.c, b.v) for b in htf]), digits + 2),
        "volume_vs_avg20": volume_vs_avg20([b.v for b in htf]),
        "last_closes": [round(b.c, digits) for b in htf[-5:]],
    }


def _ema(period: int, closes: list[float], digits: int) -> float | None:
    return last_rounded(EMA(period, input_values=closes), digits)
