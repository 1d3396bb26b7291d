"""Binance's kline intervals and their lengths. Pure: the standard library only."""

from __future__ import annotations

# Binance spot kline intervals. `1M` (calendar month) has no fixed length.
INTERVAL_MS: dict[str, int | None] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": None,
}
# The intervals a monitor, the backtest and the fake exchange follow: those of a fixed length.
FIXED_INTERVALS: tuple[str, ...] = tuple(name for name, ms in INTERVAL_MS.items() if ms is not None)


class UnknownInterval(ValueError):
    """Not an interval of a fixed length: a word Binance does not know, or `1M`."""


def is_valid_interval(interval: str) -> bool:
    """One of Binance's intervals (`1M` included)."""
    return interval in INTERVAL_MS


def interval_ms(interval: str) -> int:
    """The length of an `interval` candle in ms; `UnknownInterval` for anything without a fixed
    length. No default: a guessed length would misplace every candle."""
    ms = INTERVAL_MS.get(interval)
    if ms is None:
        raise UnknownInterval(f"interval {interval!r} is not supported (one of {', '.join(FIXED_INTERVALS)})")
    return ms
