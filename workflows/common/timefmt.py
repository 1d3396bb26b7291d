"""The one place times are turned into text for people: activity summaries, Current Details,
operator commands, the dev console. Epoch milliseconds outside datetime's range give a marker
instead of an exception (a bad candle must never fail a workflow task)."""

from __future__ import annotations

from datetime import UTC, datetime

# datetime's range, in ms since the epoch (0001-01-01 .. 9999-12-31T23:59:59.999).
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999


def ms_to_datetime(ms: int) -> datetime | None:
    if not MIN_MS <= ms <= MAX_MS:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def utc_text(value: int | datetime | None, *, none: str = "signal", seconds: bool = False) -> str:
    """`2026-11-25 11:15 UTC` (or with seconds); `none` for None; ms since the epoch or a datetime."""
    if value is None:
        return none
    when = ms_to_datetime(value) if isinstance(value, int) else value
    if when is None:
        return f"out-of-range time {value}"
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def iso_text(value: int | datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z` (`2026-11-25T11:15:00Z`), for results and queries; None stays None."""
    if value is None:
        return None
    when = ms_to_datetime(value) if isinstance(value, int) else value
    if when is None:
        return None
    text = when.astimezone(UTC).isoformat(timespec="milliseconds" if when.microsecond else "seconds")
    return text.replace("+00:00", "Z")
