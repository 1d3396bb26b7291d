"""The `candle_closed` payload (Binance's kline object `k`) and where a candle of an interval starts
and ends (the interval table is market/intervals.py, pure like this module)."""

from __future__ import annotations

import calendar
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from market.intervals import INTERVAL_MS
from workflows.common.timefmt import MAX_MS, datetime_to_ms, ms_to_datetime


def interval_length_ms(interval: str, open_ms: int) -> int | None:
    """The length of the candle of `interval` opening at `open_ms`; `1M` is the calendar month it
    opens in. None for an unknown interval or an open time outside datetime's range."""
    if interval not in INTERVAL_MS:
        return None
    fixed = INTERVAL_MS[interval]
    if fixed is not None:
        return fixed
    start = ms_to_datetime(open_ms)
    if start is None:
        return None
    return calendar.monthrange(start.year, start.month)[1] * 86_400_000


def candle_open_containing(interval: str, ms: int) -> int | None:
    """Open time of the `interval` candle that contains `ms` (Binance aligns candles on the epoch,
    `1w` on Mondays, `1M` on the first of the month, all UTC)."""
    if interval not in INTERVAL_MS:
        return None
    fixed = INTERVAL_MS[interval]
    if fixed is None:
        when = ms_to_datetime(ms)
        if when is None:
            return None
        return datetime_to_ms(datetime(when.year, when.month, 1, tzinfo=UTC))
    offset = 4 * 86_400_000 if interval == "1w" else 0  # 1970-01-05 was a Monday
    return (ms - offset) // fixed * fixed + offset


def is_valid_symbol(symbol: str) -> bool:
    # Binance symbols are upper-case letters and digits (e.g. BTCUSDT, 1000SATSUSDT).
    return 2 <= len(symbol) <= 20 and symbol.isascii() and symbol.isalnum() and symbol.upper() == symbol


def _decimal_string(value: object) -> str:
    # Binance sends prices and volumes as strings; an operator may paste numbers.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("must be a decimal string")
    try:
        d = Decimal(str(value))
    except Exception as exc:  # decimal.InvalidOperation
        raise ValueError(f"not a decimal: {value!r}") from exc
    if not d.is_finite() or d < 0 or not math.isfinite(float(d)):
        raise ValueError(f"not a finite non-negative decimal: {value!r}")
    return str(value)


def _exact_as_float(value: str) -> str:
    # The close is sent to llm-proxy as a JSON number: it must survive the trip through a float.
    if Decimal(str(float(value))) != Decimal(value):
        raise ValueError(f"not exactly representable as a number: {value!r}")
    return value


class Kline(BaseModel):
    """Binance's kline object `k`, exactly as sent on the wire, so an operator can paste one
    into `temporal workflow signal --name candle_closed --input '{...}'`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    t: int = Field(description="open time, ms since epoch", ge=0, le=MAX_MS)
    T: int = Field(description="close time, ms since epoch", ge=0, le=MAX_MS)
    s: str = Field(description="symbol, upper case")
    i: str = Field(description="interval")
    o: str
    h: str
    l: str
    c: str
    v: str
    x: StrictBool = Field(description="is this kline closed?")
    n: int | None = None
    q: str | None = None
    V: str | None = None
    Q: str | None = None
    B: str | None = None
    f: int | None = None
    L: int | None = None

    @field_validator("t", "T", "n", "f", "L", mode="before")
    @classmethod
    def _strict_int(cls, value: object) -> object:
        # A string where a number belongs is a malformed candle, not something to coerce.
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("must be an integer")
        return value

    @field_validator("o", "h", "l", "c", "v", mode="before")
    @classmethod
    def _decimal(cls, value: object) -> str:
        return _decimal_string(value)

    @field_validator("c")
    @classmethod
    def _close_exact(cls, value: str) -> str:
        return _exact_as_float(value)

    @field_validator("s", "i", mode="before")
    @classmethod
    def _strict_str(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return value

    @field_validator("s")
    @classmethod
    def _ascii_symbol(cls, value: str) -> str:
        # Checked before any upper-casing: `btcuſdt` (U+017F) upper-cases to BTCUSDT.
        if not value.isascii():
            raise ValueError("symbol must be ASCII")
        return value

    @model_validator(mode="after")
    def _could_be_real(self) -> Self:
        if self.t > self.T:
            raise ValueError(f"open time {self.t} is after close time {self.T}")
        length = interval_length_ms(self.i, self.t)
        if length is not None and self.T - self.t + 1 != length:
            raise ValueError(f"T - t + 1 = {self.T - self.t + 1} ms is not the length of a {self.i} candle")
        return self

    def open_time(self) -> datetime:
        return datetime.fromtimestamp(self.t / 1000, tz=UTC)

    def close_time(self) -> datetime:
        return datetime.fromtimestamp(self.T / 1000, tz=UTC)
