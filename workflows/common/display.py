"""Numbers and candles as people read them, the same in the Temporal UI's Current Details, the
commands and the dev console. Pure (deterministic: usable in workflow code).

A candle is named by both its ends, `2026-12-01 22:21–22:22 UTC` (it opens at 22:21 and closes at
22:22): "candle 22:21" alone meant its open time in one place and its close time in another."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from workflows.common.candles import interval_length_ms
from workflows.common.timefmt import datetime_to_ms, ms_to_datetime


def plain(value: Decimal | float | int | str | None, none: str = "-") -> str:
    """A price, size or amount as a trader writes it: plain digits, no exponent, no trailing
    zeros, and no negative zero (`-0E-8` reads `0`, `1.50000000` reads `1.5`)."""
    if value is None:
        return none
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not d.is_finite():
        return str(d)
    if d.is_zero():
        return "0"
    return format(d.normalize(), "f")


def candle_span(open_time: int | datetime | None, interval: str | None, none: str = "signal") -> str:
    """`2026-12-01 22:21–22:22 UTC`: the candle opening at `open_time`, by both its ends (one date
    when both fall on the same day). `none` when there is no candle (the signal's own price)."""
    if open_time is None:
        return none
    open_ms = open_time if isinstance(open_time, int) else datetime_to_ms(open_time)
    start = ms_to_datetime(open_ms)
    if start is None:
        return f"out-of-range time {open_time}"
    length = interval_length_ms(interval or "", open_ms)
    end = ms_to_datetime(open_ms + length) if length else None
    if end is None:
        return start.strftime("%Y-%m-%d %H:%M UTC") + " (open time)"
    if end.date() == start.date():
        return f"{start.strftime('%Y-%m-%d %H:%M')}–{end.strftime('%H:%M')} UTC"
    return f"{start.strftime('%Y-%m-%d %H:%M')}–{end.strftime('%Y-%m-%d %H:%M')} UTC"
