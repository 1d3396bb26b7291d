"""The contexts the pure workflow tests build their states from: a found trader's BTCUSDT 1m signal,
as `load_signal` hands it to a monitor and `load_position` to its position. A test names
only the fields its case is about; what it names wins over these."""

from __future__ import annotations

from typing import Any

from workflows.monitor.models import SignalContext
from workflows.position.models import PositionContext

_SIGNAL: dict[str, Any] = dict(signal_id="s", status="new", symbol="BTCUSDT", interval="1m", trader_found=True)
_POSITION: dict[str, Any] = dict(
    signal_id="s", signal_status="in_position", symbol="BTCUSDT", interval="1m", trader_found=True
)


def signal_context(**fields: Any) -> SignalContext:
    """A new signal's context; `signal_time` has no default (every case places its own)."""
    return SignalContext(**{**_SIGNAL, **fields})


def position_context(**fields: Any) -> PositionContext:
    return PositionContext(**{**_POSITION, **fields})
