"""Whether an `enter_trade` answer's key levels make a trade (pure).

The model states levels; the direction is what it says (`side` / `direction`: long/buy or
short/sell), long when it says none. A trade needs a positive, finite entry (the request's price
when the answer gives none) and stop-loss, and targets that are positive and finite: for a long the
stop below the entry and every target above it, for a short the reverse. Anything else is a bad
answer: never a direction inferred from where the stop happens to be, never a dropped target,
never a position without a stop."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from activities.exact import positive_decimal

LONG_WORDS = frozenset({"long", "buy"})
SHORT_WORDS = frozenset({"short", "sell"})


def stated_side(levels: dict[str, Any]) -> str | None:
    """ "long", "short", None when the answer states no side; ValueError for another word."""
    for name in ("side", "direction"):
        raw = levels.get(name)
        if raw is None:
            continue
        word = str(raw).strip().lower()
        if word in LONG_WORDS:
            return "long"
        if word in SHORT_WORDS:
            return "short"
        raise ValueError(f"{name} {str(raw)[:30]!r} is neither long nor short")
    return None


def incoherent_entry(levels: Any, reference_price: Any) -> str | None:
    """Why these key levels are not a trade, or None when they are one."""
    if not isinstance(levels, dict):
        return "no keyLevels (an entry needs at least a stop-loss)"
    try:
        side = stated_side(levels) or "long"
    except ValueError as exc:
        return str(exc)
    raw_entry = levels.get("entry")
    entry = positive_decimal(raw_entry) if raw_entry is not None else positive_decimal(reference_price)
    if entry is None:
        return f"entry {str(raw_entry)[:30]!r} is not a positive finite price"
    stop = positive_decimal(levels.get("stopLoss"))
    if stop is None:
        return f"stopLoss {str(levels.get('stopLoss'))[:30]!r} is not a positive finite price (an entry needs a stop)"
    raw_targets = levels.get("takeProfit")
    raw_list = raw_targets if isinstance(raw_targets, list) else ([] if raw_targets is None else [raw_targets])
    targets: list[Decimal] = []
    for raw in raw_list:
        target = positive_decimal(raw)
        if target is None:
            return f"takeProfit {str(raw)[:30]!r} is not a positive finite price"
        targets.append(target)
    if side == "long":
        if stop >= entry:
            return f"a long's stopLoss {stop} is not below its entry {entry}"
        if targets and min(targets) <= entry:
            return f"a long's takeProfit {min(targets)} is not above its entry {entry}"
    else:
        if stop <= entry:
            return f"a short's stopLoss {stop} is not above its entry {entry}"
        if targets and max(targets) >= entry:
            return f"a short's takeProfit {max(targets)} is not below its entry {entry}"
    return None


def order_side(levels: dict[str, Any] | None) -> str:
    """The order intent's side: what the answer states, buy (long) when it states none."""
    try:
        return "sell" if stated_side(levels or {}) == "short" else "buy"
    except ValueError:
        return "buy"
