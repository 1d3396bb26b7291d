"""What both floors (bench/floor.py, bench/same_work_floor.py) do with a `candle_closed` payload
before any work: take it once by its open time, as the monitor does. Pure: runs in workflow code."""

from __future__ import annotations

from typing import Any


def new_close_time(seen: set[int], payload: Any) -> int | None:
    """The payload's open time `t` when it is a close not seen before (now marked seen), else None
    (a repeat, or a payload without an integer `t`)."""
    t = payload.get("t") if isinstance(payload, dict) else None
    if not isinstance(t, int) or t in seen:
        return None
    seen.add(t)
    return t
