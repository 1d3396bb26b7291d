"""A backtest's trade (as the position manager ran it) and the would-have-won test of a signal
that was not entered, on the paper backend's own fill rules (workflows/position/paper.py). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from market.candle import Candle
from workflows.position.paper import Bar, stop_fill_price, target_fill_price
from workflows.position.paper import Side as PaperSide

Side = Literal["buy", "sell"]


class Trade(BaseModel):
    signal_time_ms: int
    side: Side
    entry_time_ms: int
    entry_price: Decimal
    quantity: Decimal
    exit_time_ms: int
    exit_price: Decimal  # the closing fill's price (after partial take-profits: the last fill)
    # stop_loss | take_profit | trailing_stop | max_loss | close (the model's close action) |
    # duration (max_position_duration) | end_of_data | stopped (the call cap)
    exit_reason: str
    fees: Decimal
    pnl: Decimal  # realised, after every fill's fee


def would_have_won(
    side: Side, stop_loss: Decimal | None, take_profit: Decimal | None, candles: Sequence[Candle]
) -> bool | None:
    """For a signal that was not entered: did the price reach the would-be take-profit before the
    stop-loss in these candles (the rest of its monitoring window)? A candle reaching both counts
    as the stop, as the position manager's risk check does. None when the levels are unknown."""
    if stop_loss is None or take_profit is None:
        return None
    paper_side: PaperSide = "long" if side == "buy" else "short"
    for c in candles:
        bar = Bar(open=c.o, high=c.h, low=c.l, close=c.c)
        if stop_fill_price(paper_side, stop_loss, bar) is not None:
            return False
        if target_fill_price(paper_side, take_profit, bar) is not None:
            return True
    return False
