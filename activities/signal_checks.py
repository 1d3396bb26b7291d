"""What a signal row and its trader's settings must hold for a monitor to use them.

Pure checks, no database: `load_signal` reads the raw values (times as epoch seconds, so an
`'infinity'` timestamp or a 9000-year interval never reaches a Python datetime) and asks here.
Each problem is a plain sentence without any secret; the activity turns it into the
non-retryable `InvalidSignalData` error, so bad data ends the signal `failed` at once instead of
retrying without limit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from workflows.monitor.outcomes import MAX_REANALYSES_CEILING

# MAX_REANALYSES_CEILING is the `set_limit` Update's: a limit above it is a typo or an attack, not a plan.
# A signal is monitored for at most this long (a month of 1m candles is already 43,200 closes).
MAX_MONITORING_SECONDS = 30 * 24 * 3600.0
# A signal stamped later than now plus this is from a wrong clock or forged: refused.
FUTURE_TOLERANCE_SECONDS = 300.0
# Nothing older than this is a real signal time (and far older ones overflow Python's datetime).
EARLIEST_SIGNAL_EPOCH = 946_684_800.0  # 2000-01-01T00:00:00Z
# The strategy and indicator JSON travel in every analysis' input (workflow history): bounded.
MAX_JSON_BYTES = 64 * 1024


@dataclass(frozen=True)
class RawSignal:
    """The values of one signal row (and its trader's settings) exactly as PostgreSQL gave them."""

    symbol: str | None
    signal_epoch: float | None
    price: float | None
    change_percent: float | None
    volume: float | None
    indicator_bytes: int | None
    trader_found: bool
    strategy_bytes: int | None = None
    max_reanalyses: int | None = None
    min_confidence_to_enter: float | None = None
    max_monitoring_seconds: float | None = None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def problems(raw: RawSignal, now_epoch: float) -> list[str]:
    """Every reason the row cannot be monitored; empty when it can."""
    found: list[str] = []
    symbol = raw.symbol or ""
    if not symbol.strip().isascii():
        # `.upper()` would turn look-alikes such as U+017F into ASCII (btcuſdt -> BTCUSDT).
        found.append(f"symbol {symbol!r} is not ASCII")
    t = raw.signal_epoch
    if t is None:
        found.append("signal timestamp is NULL")
    elif not math.isfinite(t):
        found.append(f"signal timestamp is {'infinity' if t > 0 else '-infinity'}")
    elif t < EARLIEST_SIGNAL_EPOCH:
        found.append("signal timestamp is before 2000-01-01")
    elif t > now_epoch + FUTURE_TOLERANCE_SECONDS:
        found.append(
            f"signal timestamp is {_span(t - now_epoch)} in the future "
            f"(more than {FUTURE_TOLERANCE_SECONDS:.0f} s ahead of now)"
        )
    for name, value, may_be_negative in (
        ("price_at_signal", raw.price, False),
        ("change_percent_at_signal", raw.change_percent, True),
        ("volume_at_signal", raw.volume, False),
    ):
        if value is None:
            continue
        if not math.isfinite(value):
            found.append(f"{name} is not a finite number ({value})")
        elif value < 0 and not may_be_negative:
            found.append(f"{name} is negative ({value})")
    if raw.indicator_bytes is not None and raw.indicator_bytes > MAX_JSON_BYTES:
        found.append(f"indicator_data is {raw.indicator_bytes} bytes, more than {MAX_JSON_BYTES}")
    if raw.trader_found:
        found.extend(_trader_problems(raw))
    return found


def _trader_problems(raw: RawSignal) -> list[str]:
    found: list[str] = []
    if raw.strategy_bytes is not None and raw.strategy_bytes > MAX_JSON_BYTES:
        found.append(f"trader strategy is {raw.strategy_bytes} bytes, more than {MAX_JSON_BYTES}")
    limit = raw.max_reanalyses
    if limit is None:
        found.append("trader max_reanalyses is NULL")
    elif not 0 <= limit <= MAX_REANALYSES_CEILING:
        found.append(f"trader max_reanalyses {limit} is outside 0..{MAX_REANALYSES_CEILING}")
    confidence = raw.min_confidence_to_enter
    if confidence is None:
        found.append("trader min_confidence_to_enter is NULL")
    elif not (_finite(confidence) and 0 <= confidence <= 100):
        found.append(f"trader min_confidence_to_enter {confidence} is outside 0..100")
    duration = raw.max_monitoring_seconds
    if duration is None:
        found.append("trader max_monitoring_duration is NULL")
    elif not (_finite(duration) and 0 < duration <= MAX_MONITORING_SECONDS):
        shown = _span(duration) if _finite(duration) else str(duration)
        found.append(f"trader max_monitoring_duration {shown} is outside (0, {_span(MAX_MONITORING_SECONDS)}]")
    return found


def _span(seconds: float) -> str:
    if abs(seconds) >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if abs(seconds) >= 2 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds:.0f} s"
