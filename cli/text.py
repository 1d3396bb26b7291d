"""How numbers and candles read in every command a trader uses (`list`, `status`, `history`,
`positions`, `chart`, the dev console): `plain` and `candle_span` (shared with the workflows'
Current Details, workflows/common/display.py), P&L with its sign, and how to run the command again."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import PlainSerializer

from workflows.common.candles import interval_length_ms
from workflows.common.display import candle_span, plain
from workflows.common.timefmt import datetime_to_ms
from workflows.monitor.models import MonitorCounts

# Prices and amounts in JSON as a trader writes them (`43167.79311`, not `43167.79311000` or `-0E-8`).
Amount = Annotated[Decimal, PlainSerializer(plain, return_type=str, when_used="json")]


def signed(value: Decimal | float | int | None, none: str = "-") -> str:
    """An amount of profit or loss: `+3.2`, `-1.05`, `0`."""
    text = plain(value, none)
    return text if text in (none, "0") or text.startswith("-") else "+" + text


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


def closes_text(c: MonitorCounts) -> str:
    """A monitor's candle counts in words a newcomer reads without alarm: closes that are not
    analysed are expected, and each kind that is set aside says why."""
    aside = [
        (n, what)
        for n, what in (
            (c.stale, "stale (closed no later than the signal or the last analysed candle: already seen, normal)"),
            (c.duplicate, "duplicate (the same close sent again, normal with several bridges)"),
            (c.skipped, "skipped (a newer close came during an analysis; only the newest is analysed)"),
            (c.open, "still open"),
            (c.foreign, "for another symbol or interval"),
            (c.future, "from the future"),
            (c.malformed, "malformed"),
            (c.oversized, "oversized"),
        )
        if n
    ]
    text = f"candle closes received {c.received}, " + (
        "none set aside" if not aside else "set aside: " + ", ".join(f"{n} {what}" for n, what in aside)
    )
    return text + (f"; failed analyses {c.failed_analyses}" if c.failed_analyses else "")


__all__ = ["Amount", "candle_ending", "candle_span", "closes_text", "command_name", "plain", "signed"]
