"""How numbers and candles read in every command a trader uses (`list`, `status`, `history`,
`positions`, `chart`, the dev console). Pure.

A candle is always named by both ends, `2026-12-01 22:21–22:22 UTC` (it opens at 22:21 and closes
at 22:22): "the candle 22:21" alone meant its open time in one place and its close time in another."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from workflows.candles import interval_length_ms
from workflows.timefmt import datetime_to_ms, ms_to_datetime


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
    text = format(d.normalize(), "f")
    return text


def signed(value: Decimal | float | int | None, none: str = "-") -> str:
    """An amount of profit or loss: `+3.2`, `-1.05`, `0`."""
    text = plain(value, none)
    return text if text in (none, "0") or text.startswith("-") else "+" + text


def candle_span(open_time: int | datetime | None, interval: str | None, none: str = "signal") -> str:
    """`2026-12-01 22:21–22:22 UTC`: the candle opening at `open_time`, by both its ends (one date
    when both ends fall on the same day). `none` when there is no candle (the signal's own price)."""
    if open_time is None:
        return none
    open_ms = open_time if isinstance(open_time, int) else datetime_to_ms(open_time)
    start = ms_to_datetime(open_ms)
    if start is None:
        return f"out-of-range time {open_time}"
    length = interval_length_ms(interval or "", open_ms)
    end = ms_to_datetime(open_ms + length) if length else None
    if end is None:
        return start.strftime("%Y-%m-%d %H:%M UTC") + " (open)"
    if end.date() == start.date():
        return f"{start.strftime('%Y-%m-%d %H:%M')}–{end.strftime('%H:%M')} UTC"
    return f"{start.strftime('%Y-%m-%d %H:%M')}–{end.strftime('%Y-%m-%d %H:%M')} UTC"


def candle_ending(close_time: datetime, interval: str | None) -> str:
    """The candle that closes at `close_time` (a signal's time is its candle's close), both ends."""
    length = interval_length_ms(interval or "", datetime_to_ms(close_time) - 1)
    if not length:
        return "the candle closing " + close_time.strftime("%Y-%m-%d %H:%M UTC")
    return "candle " + candle_span(datetime_to_ms(close_time) - length, interval)
