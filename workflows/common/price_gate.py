"""The price-move gate (trader settings `min_price_move_pct`, `management_min_move_pct`; issue 21):
a close whose price moved less than the setting since the last close the model was asked about is
not sent to the model. Pure: the workflows count it `gated` and go on."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def gated(min_move_pct: float | Decimal | None, reference: object, close: object) -> str | None:
    """Why this close is not worth a model call, or None (gate off, no reference, or it moved
    enough). A reference that is not a positive price never gates (the model is asked)."""
    if min_move_pct is None:
        return None
    ref, now = _decimal(reference), _decimal(close)
    threshold = _decimal(min_move_pct)
    if ref is None or now is None or threshold is None or ref <= 0 or threshold <= 0:
        return None
    moved = abs(now - ref) / ref * 100
    if moved >= threshold:
        return None
    return f"gated: price moved {moved:.3f}% (< {threshold}%) since {ref}: model not asked"
