"""Validation of a `manage-position` answer: an action whose details are missing or impossible is
held with the reason recorded, never executed at a nonsense price (the contract)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel

from workflows.position.paper import Side, price, quantity

ManageAction = Literal["hold", "adjust_sl", "adjust_tp", "reduce", "close"]
MANAGE_ACTIONS: tuple[ManageAction, ...] = ("hold", "adjust_sl", "adjust_tp", "reduce", "close")


class ValidatedAction(BaseModel):
    action: ManageAction
    requested: ManageAction
    held_reason: str | None = None
    new_stop_loss: Decimal | None = None
    new_take_profits: list[Decimal] | None = None
    reduce_quantity: Decimal | None = None
    # Why the action taken is not the one requested although nothing was held (a reduce that closes all).
    note: str | None = None


# The least a remaining position may be worth (quote currency): Binance's minimum order value on its
# USDT pairs (MIN_NOTIONAL 5). A remainder worth less could not be sold on its own.
MIN_REMAINDER_NOTIONAL = Decimal(5)


def leaves_dust(action: ValidatedAction, open_quantity: Decimal, market: Decimal) -> bool:
    """A reduce whose remainder is worth less than the symbol's minimum order."""
    if action.action != "reduce" or action.reduce_quantity is None:
        return False
    return (open_quantity - action.reduce_quantity) * market < MIN_REMAINDER_NOTIONAL


def closing_the_rest(action: ValidatedAction, open_quantity: Decimal, market: Decimal) -> ValidatedAction:
    """The reduce as a close of the whole position, saying why."""
    rest = open_quantity - (action.reduce_quantity or Decimal(0))
    note = (
        f"reduce of {action.reduce_quantity} would leave {rest:f} (worth {rest * market:f} at {market}), below the minimum "
        f"order value {MIN_REMAINDER_NOTIONAL}: closed whole"
    )
    return ValidatedAction(action="close", requested=action.requested, note=note)


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _hold(requested: ManageAction, why: str) -> ValidatedAction:
    return ValidatedAction(action="hold", requested=requested, held_reason=f"{requested} not executed: {why}")


def validate_action(
    requested: ManageAction, details: dict[str, Any] | None, side: Side, market: Decimal, open_quantity: Decimal
) -> ValidatedAction:
    details = details or {}
    if requested in ("hold", "close"):
        return ValidatedAction(action=requested, requested=requested)
    if requested == "adjust_sl":
        stop = _decimal(details.get("newStopLoss"))
        if stop is None or stop <= 0:
            return _hold(requested, f"newStopLoss {str(details.get('newStopLoss'))[:40]!r} is not a positive price")
        if side == "long" and stop >= market:
            return _hold(requested, f"a long's new stop {stop} is at or above the market price {market}")
        if side == "short" and stop <= market:
            return _hold(requested, f"a short's new stop {stop} is at or below the market price {market}")
        return ValidatedAction(action=requested, requested=requested, new_stop_loss=price(stop))
    if requested == "adjust_tp":
        raw = details.get("newTakeProfit")
        raw_list = raw if isinstance(raw, list) else [raw]
        targets = [_decimal(v) for v in raw_list]
        if not raw_list or any(t is None or t <= 0 for t in targets):
            return _hold(requested, f"newTakeProfit {str(raw)[:60]!r} is not a list of positive prices")
        good = [t for t in targets if t is not None]
        if side == "long" and any(t <= market for t in good):
            return _hold(requested, f"a long's take-profit {min(good)} is at or below the market price {market}")
        if side == "short" and any(t >= market for t in good):
            return _hold(requested, f"a short's take-profit {max(good)} is at or above the market price {market}")
        ordered = sorted({price(t) for t in good}, reverse=side == "short")
        return ValidatedAction(action=requested, requested=requested, new_take_profits=ordered)
    # reduce
    fraction = _decimal(details.get("reduceAmount"))
    if fraction is None or not Decimal(0) < fraction < Decimal(1):
        return _hold(requested, f"reduceAmount {str(details.get('reduceAmount'))[:40]!r} is not between 0 and 1")
    qty = quantity(open_quantity * fraction)
    if qty <= 0 or qty >= open_quantity:
        return _hold(requested, f"reducing {fraction} of {open_quantity} leaves nothing to close or nothing open")
    return ValidatedAction(action=requested, requested=requested, reduce_quantity=qty)
