"""Paper fills against the candle series: what a trade entered by the monitor would have done.

This is the backtest's stand-in for `PositionManagerWorkflow`'s paper backend until that workflow
runs here: the trade is derived from the order intent the monitor recorded (its stop-loss and
first take-profit) and the candles after the entry. The rules are the paper backend's:

- entry at the deciding candle's close (the signal's price for an entry at analysis #0), plus
  `slippage` (a fraction, paid against the trade);
- a stop-loss or take-profit fills at its level when the candle's low/high reaches it, at the
  candle's open when the candle opens beyond it (a gap); when one candle reaches both, the stop;
- after `max_position_duration` the position is closed at the open of the candle in progress;
- a fee of `fee_rate` of the notional on each fill; size = stake / entry price.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from workers.backtest.inputs import Candle

Side = Literal["buy", "sell"]
# stop_loss | take_profit | duration | end_of_data | stopped (the call cap), and from the position
# manager also close (its model's close action), trailing_stop, max_loss.
ExitReason = str
Q8 = Decimal("0.00000001")


class EntryOrder(BaseModel):
    """What the monitor decided: the order intent, with the price and time it is filled at."""

    signal_time_ms: int
    fill_time_ms: int  # the deciding candle's close (or the signal's time for analysis #0)
    reference_price: Decimal
    side: Side = "buy"
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None


class Trade(BaseModel):
    signal_time_ms: int
    side: Side
    entry_time_ms: int
    entry_price: Decimal
    quantity: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    exit_time_ms: int
    exit_price: Decimal
    exit_reason: ExitReason
    fees: Decimal
    pnl: Decimal


def _exit_on(
    c: Candle, side: Side, sl: Decimal | None, tp: Decimal | None
) -> tuple[Decimal, Literal["stop_loss", "take_profit"]] | None:
    if side == "buy":
        if sl is not None and c.o <= sl:
            return c.o, "stop_loss"
        if tp is not None and c.o >= tp:
            return c.o, "take_profit"
        if sl is not None and c.l <= sl:
            return sl, "stop_loss"
        if tp is not None and c.h >= tp:
            return tp, "take_profit"
        return None
    if sl is not None and c.o >= sl:
        return c.o, "stop_loss"
    if tp is not None and c.o <= tp:
        return c.o, "take_profit"
    if sl is not None and c.h >= sl:
        return sl, "stop_loss"
    if tp is not None and c.l <= tp:
        return tp, "take_profit"
    return None


def simulate(
    order: EntryOrder,
    candles: Sequence[Candle],
    *,
    stake: Decimal,
    fee_rate: Decimal,
    slippage: Decimal,
    max_duration: timedelta,
    horizon_reason: Literal["end_of_data", "stopped"] = "end_of_data",
) -> Trade | None:
    """The trade, or None when no candle closes after the entry (nothing to fill against)."""
    sign = 1 if order.side == "buy" else -1
    entry = (order.reference_price * (1 + sign * slippage)).quantize(Q8)
    qty = (stake / entry).quantize(Q8)
    deadline = order.fill_time_ms + int(max_duration.total_seconds() * 1000)
    after = [c for c in candles if c.t >= order.fill_time_ms]
    if not after:
        return None
    exit_price, exit_time = after[-1].c, after[-1].T + 1
    reason: str = horizon_reason
    for c in after:
        if c.t >= deadline:
            exit_price, reason, exit_time = c.o, "duration", deadline
            break
        hit = _exit_on(c, order.side, order.stop_loss, order.take_profit)
        if hit is not None:
            exit_price, reason = hit
            exit_time = c.T + 1
            break
    fees = (fee_rate * qty * (entry + exit_price)).quantize(Q8)
    pnl = (sign * qty * (exit_price - entry) - fees).quantize(Q8)
    return Trade(
        signal_time_ms=order.signal_time_ms,
        side=order.side,
        entry_time_ms=order.fill_time_ms,
        entry_price=entry,
        quantity=qty,
        stop_loss=order.stop_loss,
        take_profit=order.take_profit,
        exit_time_ms=exit_time,
        exit_price=exit_price,
        exit_reason=reason,
        fees=fees,
        pnl=pnl,
    )


def would_have_won(
    side: Side, stop_loss: Decimal | None, take_profit: Decimal | None, candles: Sequence[Candle]
) -> bool | None:
    """For a signal that was not entered: did the price reach the would-be take-profit before the
    stop-loss in these candles (the rest of its monitoring window)? A candle reaching both counts
    as the stop, like a fill. None when the levels are unknown."""
    if stop_loss is None or take_profit is None:
        return None
    for c in candles:
        hit = _exit_on(c, side, stop_loss, take_profit)
        if hit is not None:
            return hit[1] == "take_profit"
    return False
