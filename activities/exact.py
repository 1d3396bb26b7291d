"""Numbers on their way into `numeric` columns, without passing through a binary float.

asyncpg encodes a Python float into `numeric` through `Decimal(float)`, which writes the float's
binary value (`43250.12` became `43250.1200000000026193447411060333251953125`). A float parsed
from JSON text keeps its shortest decimal form in `repr`, so going through `str` gives back the
decimal that was received; strings (Binance's prices) are taken as they are."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any


def to_decimal(value: Any) -> Decimal | None:
    """The exact decimal of a JSON number or numeric string; None for anything else
    (bool, NaN, infinities, text that is not a number)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            return None
        return parsed if parsed.is_finite() else None
    return None


def positive_decimal(value: Any) -> Decimal | None:
    parsed = to_decimal(value)
    return parsed if parsed is not None and parsed > 0 else None
