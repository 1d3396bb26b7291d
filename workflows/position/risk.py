"""Deterministic risk checks at one candle close, before the model is asked anything.

Order within a candle (its path is unknown, so the cautious reading wins):
1. the stop: the tightest of the stop-loss, the trailing stop (from the best price of the candles
   *before* this one) and the `max_loss_per_position` level; reached -> everything left is closed.
   When one candle reaches both a stop and a target, the stop is assumed first.
2. the take-profit targets, nearest first. Target k (0-based) closes the position down to
   `partial_take_profit_levels[k]` percent of the initial size taken in total ([25, 50, 75]: 25 %
   at the first target, 25 % more at the second, ...); the last target, and any target beyond the
   listed levels, closes what is left. No levels: the first target closes everything.
3. the best price is moved to this candle's high (long) / low (short) for the next trailing stop.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.position.paper import HUNDRED, Bar, Side, quantity, stop_fill_price, target_fill_price

ExitKind = Literal["stop_loss", "trailing_stop", "max_loss", "take_profit"]


class RiskSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    use_trailing_stop: bool = False
    trailing_stop_distance: Decimal | None = Field(default=None, gt=0, lt=100, description="percent")
    partial_take_profit_levels: list[Decimal] = Field(default_factory=list, description="cumulative percents")
    max_loss_per_position: Decimal | None = Field(default=None, gt=0, le=100, description="percent of entry")


class Book(BaseModel):
    """What the checks need of a position."""

    side: Side
    entry_price: Decimal
    initial_quantity: Decimal
    quantity: Decimal
    stop_loss: Decimal | None
    take_profits: list[Decimal]
    targets_hit: int = 0
    best_price: Decimal


class Exit(BaseModel):
    kind: ExitKind
    price: Decimal
    quantity: Decimal
    target_index: int | None = None


class RiskOutcome(BaseModel):
    exits: list[Exit]
    closes_position: bool
    targets_hit: int
    best_price: Decimal


def trailing_level(book: Book, settings: RiskSettings) -> Decimal | None:
    if not settings.use_trailing_stop or settings.trailing_stop_distance is None:
        return None
    d = settings.trailing_stop_distance
    if book.side == "long":
        return book.best_price * (HUNDRED - d) / HUNDRED
    return book.best_price * (HUNDRED + d) / HUNDRED


def max_loss_level(book: Book, settings: RiskSettings) -> Decimal | None:
    m = settings.max_loss_per_position
    if m is None:
        return None
    if book.side == "long":
        return book.entry_price * (HUNDRED - m) / HUNDRED
    return book.entry_price * (HUNDRED + m) / HUNDRED


def effective_stop(book: Book, settings: RiskSettings) -> tuple[ExitKind, Decimal] | None:
    """The tightest stop; on a tie the explicit stop-loss names it."""
    candidates: list[tuple[ExitKind, Decimal]] = []
    if book.stop_loss is not None:
        candidates.append(("stop_loss", book.stop_loss))
    trailing = trailing_level(book, settings)
    if trailing is not None:
        candidates.append(("trailing_stop", trailing))
    worst = max_loss_level(book, settings)
    if worst is not None:
        candidates.append(("max_loss", worst))
    if not candidates:
        return None
    tight = max if book.side == "long" else min
    level = tight(c[1] for c in candidates)
    return next(c for c in candidates if c[1] == level)


def target_quantity(book: Book, settings: RiskSettings, index: int, remaining: Decimal) -> Decimal:
    levels = settings.partial_take_profit_levels
    last = index >= len(book.take_profits) - 1 or index >= len(levels)
    if last:
        return remaining
    closed_so_far = book.initial_quantity - remaining
    wanted = quantity(book.initial_quantity * levels[index] / HUNDRED)
    return min(remaining, max(Decimal(0), wanted - closed_so_far))


def check(book: Book, settings: RiskSettings, bar: Bar) -> RiskOutcome:
    best = max(book.best_price, bar.high) if book.side == "long" else min(book.best_price, bar.low)
    stop = effective_stop(book, settings)
    if stop is not None and book.quantity > 0:
        kind, level = stop
        filled = stop_fill_price(book.side, level, bar)
        if filled is not None:
            exit = Exit(kind=kind, price=filled, quantity=book.quantity)
            return RiskOutcome(exits=[exit], closes_position=True, targets_hit=book.targets_hit, best_price=best)
    exits: list[Exit] = []
    remaining = book.quantity
    hit = book.targets_hit
    while hit < len(book.take_profits) and remaining > 0:
        filled = target_fill_price(book.side, book.take_profits[hit], bar)
        if filled is None:
            break
        qty = target_quantity(book, settings, hit, remaining)
        if qty > 0:
            exits.append(Exit(kind="take_profit", price=filled, quantity=qty, target_index=hit))
            remaining -= qty
        hit += 1
    return RiskOutcome(exits=exits, closes_position=remaining <= 0, targets_hit=hit, best_price=best)


def usable_levels(
    side: Side, entry: Decimal, stop_loss: Decimal | None, take_profits: list[Decimal]
) -> tuple[Decimal | None, list[Decimal]]:
    """Levels on the wrong side of the entry are dropped (a long's stop above its entry would
    close it at once; a target below it would 'take profit' at a loss). Targets nearest first."""
    if stop_loss is not None and (stop_loss <= 0 or (stop_loss >= entry if side == "long" else stop_loss <= entry)):
        stop_loss = None
    good = [t for t in take_profits if t > 0 and (t > entry if side == "long" else t < entry)]
    return stop_loss, sorted(set(good), reverse=side == "short")
