"""The long position the pure position-manager tests start from: 10 bought at 100, the stop at 95,
targets at 105 and 110, the best price still the entry price."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any


def long_book() -> dict[str, Any]:
    """Its fields as Book and PositionState both name them (a fresh dict: the lists are mutable)."""
    return dict(
        entry_price=D(100),
        initial_quantity=D(10),
        quantity=D(10),
        stop_loss=D(95),
        take_profits=[D(105), D(110)],
        best_price=D(100),
    )
