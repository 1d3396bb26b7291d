"""Helpers for the `model` backend's tests: a candle series, its fetch, inputs for the activities."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from model_backend.indicators import Bar
from tests.helpers.contexts import position_context, signal_context
from workflows.common.candles import Kline
from workflows.monitor.models import AnalyzeSignalInput, PreviousDecision, SignalContext
from workflows.position.models import ManagePositionInput, PreviousManagement

STEP = 60_000
T0 = 1_764_600_000_000 // STEP * STEP  # 2025-12-01, a whole minute


def series(n: int = 300, start: float = 100.0) -> list[tuple[Bar, int]]:
    """A rising, wavy 1m series: (bar, close time)."""
    out, prev = [], start
    for i in range(n):
        c = start + i * 0.05 + 2 * math.sin(i / 7)
        out.append(
            (Bar(T0 + i * STEP, prev, max(prev, c) + 0.3, min(prev, c) - 0.3, c, 10 + i % 5), T0 + i * STEP + STEP - 1)
        )
        prev = c
    return out


def kline_of(bar: Bar, symbol: str = "BTCUSDT") -> Kline:
    return Kline.model_validate(
        {"t": bar.t, "T": bar.t + STEP - 1, "s": symbol, "i": "1m", "o": f"{bar.o:.6f}", "h": f"{bar.h:.6f}",
         "l": f"{bar.l:.6f}", "c": f"{bar.c:.6f}", "v": f"{bar.v:.3f}", "x": True}
    )  # fmt: skip


def context(signal_bar: Bar) -> SignalContext:
    return signal_context(
        signal_id="00000000-0000-0000-0000-000000000001",
        status="monitoring",
        signal_time=datetime.fromtimestamp((signal_bar.t + STEP - 1) / 1000, UTC),
        price=signal_bar.c,
        change_percent=2.5,
        volume=1234.5,
        indicator_data={"rsi": 61},
        strategy={"instructions": "buy breakouts above the 20-candle high"},
    )


def analysis_input(
    bars: list[tuple[Bar, int]], signal_at: int, number: int, at: int | None = None
) -> AnalyzeSignalInput:
    ctx = context(bars[signal_at][0])
    previous = [
        PreviousDecision(decision="wait", confidence=55 + i, reasoning=f"reason {i}", candleOpenTime=bars[signal_at + i][0].t if i else None)
        for i in range(number)
    ]  # fmt: skip
    candle = kline_of(bars[at][0]) if at is not None else None
    return AnalyzeSignalInput(
        context=ctx, analysis_number=number, max_reanalyses=5, candle=candle, previous_decisions=previous
    )


def manage_input(bars: list[tuple[Bar, int]], at: int, previous: int = 0, side: Any = "long") -> ManagePositionInput:
    bar = bars[at][0]
    ctx = position_context(
        signal_id="00000000-0000-0000-0000-000000000002", side=side, decided_candle_t=bars[at - 5][0].t
    )
    market = Decimal(f"{bar.c:.6f}")
    return ManagePositionInput(
        context=ctx,
        position_id="paper-x",
        entry_price=market - 1,
        market_price=market,
        position_size=Decimal("2"),
        current_pnl=Decimal("2"),
        current_pnl_pct=Decimal("1"),
        current_sl=market - 3,
        current_tp=[market + 3],
        candle=kline_of(bar),
        previous_decisions=[PreviousManagement(action="hold", confidence=65, reasoning="r") for _ in range(previous)],
    )


def market_series(start_ms: int, n: int, level: float = 100.0) -> list[Bar]:
    """n 1m candles from `start_ms`: a steady rise (the rule's long), then flat small candles from
    bar n - 10 on (no stop or target is touched while the rule manages the position)."""
    out, prev = [], level
    for i in range(n):
        c = level + i * 0.1 if i < n - 10 else level + (n - 11) * 0.1 + (0.02 if i % 2 else -0.02)
        out.append(Bar(start_ms + i * STEP, prev, max(prev, c) + 0.05, min(prev, c) - 0.05, c, 10 + i % 3))
        prev = c
    return out


def seed_binance(fake: Any, symbol: str, bars: list[Bar]) -> None:
    """The exchange's closed-candle history (what REST klines serves), from `bars`."""
    from fakes.binance.exchange import LiveCandle
    from fakes.binance.recorded import Snapshot

    for b in bars:
        snap = Snapshot(
            o=f"{b.o:.4f}", h=f"{b.h:.4f}", l=f"{b.l:.4f}", c=f"{b.c:.4f}", v=f"{b.v:.3f}",
            q="0", V="0", Q="0", n=5, trades_seen=True,
        )  # fmt: skip
        fake.market.close(LiveCandle(symbol, "1m", b.t, b.t + STEP - 1, snap))


def k_of(bar: Bar, symbol: str) -> dict[str, Any]:
    """The close of `bar` as the bridge would signal it (Binance's `k`)."""
    return {"t": bar.t, "T": bar.t + STEP - 1, "s": symbol, "i": "1m", "o": f"{bar.o:.4f}", "h": f"{bar.h:.4f}",
            "l": f"{bar.l:.4f}", "c": f"{bar.c:.4f}", "v": f"{bar.v:.3f}", "x": True}  # fmt: skip
