"""How numbers and candles read in every command a trader uses (`list`, `status`, `history`,
`positions`, `chart`, the dev console). Pure.

A candle is always named by both ends, `2026-12-01 22:21–22:22 UTC` (it opens at 22:21 and closes
at 22:22): "the candle 22:21" alone meant its open time in one place and its close time in another."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

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


def command_name(argv0: str | None = None, cwd: Path | None = None) -> str:
    """How to run `signal-monitor` again from here, as a user can paste it: the bare name when the
    shell finds this very script on PATH (an activated venv, a pip install), else the path of the
    script that is running (`.venv/bin/signal-monitor`), relative to this directory when inside it."""
    script = Path(argv0 if argv0 is not None else sys.argv[0])
    if script.name != "signal-monitor":
        # `python -m cli.main`, tests: the console script next to the running interpreter.
        script = Path(sys.executable).parent / "signal-monitor"
    found = shutil.which("signal-monitor")
    with contextlib.suppress(OSError):
        if found and Path(found).resolve() == script.resolve():
            return "signal-monitor"
    full = script if script.is_absolute() else Path.cwd() / script
    here = cwd or Path.cwd()
    try:
        if not full.resolve().is_relative_to(here.resolve()):
            return str(full)
        relative = os.path.relpath(full, here)
        return relative if os.sep in relative else f".{os.sep}{relative}"
    except (OSError, ValueError):
        return str(full)
