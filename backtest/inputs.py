"""What a backtest is given: a candle series, the signals to test and the trader's settings.

Parsing is pure (files in, models out); only `fetch_klines` talks to Binance (market/rest.py)."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from market import rest
from market.candle import Candle
from market.intervals import interval_ms

CSV_HEADER = ("open_time_ms", "open", "high", "low", "close", "volume")


class InputError(ValueError):
    """Input the backtest cannot use; the message says which file/row and why."""


def _dec(value: object, where: str) -> Decimal:
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InputError(f"{where}: not a number: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise InputError(f"{where}: not a finite non-negative number: {value!r}")
    return d


def _candle(row: Sequence[object], interval: str, where: str) -> Candle:
    if len(row) < 6:
        raise InputError(f"{where}: expected open_time_ms, open, high, low, close, volume; got {len(row)} fields")
    try:
        t = int(str(row[0]).strip())
    except ValueError:
        raise InputError(f"{where}: open_time_ms is not an integer: {row[0]!r}") from None
    o, h, l, c, v = (_dec(x, where) for x in row[1:6])
    if not (l <= min(o, c) and h >= max(o, c)):
        raise InputError(f"{where}: high/low do not contain open/close")
    return Candle(t=t, T=t + interval_ms(interval) - 1, o=o, h=h, l=l, c=c, v=v)


def check_series(candles: list[Candle], interval: str, source: str) -> list[Candle]:
    if not candles:
        raise InputError(f"{source}: no candles")
    step = interval_ms(interval)
    for prev, cur in itertools.pairwise(candles):
        if cur.t <= prev.t:
            raise InputError(f"{source}: open times not increasing at {cur.t}")
    for c in candles:
        if c.t % step:
            raise InputError(f"{source}: open time {c.t} is not on a {interval} boundary")
    return candles


def _json_rows(text: str, source: str) -> Any:
    """The decoded JSON list when the text is one (it starts with `[`), else None (a CSV)."""
    stripped = text.lstrip()
    if not stripped.startswith("["):
        return None
    try:
        return json.loads(stripped)
    except ValueError as exc:
        raise InputError(f"{source}: not JSON: {exc}") from None


def parse_candles(text: str, interval: str, source: str) -> list[Candle]:
    """A CSV with the header `open_time_ms,open,high,low,close,volume`, or a JSON list of
    `[open_time_ms, open, high, low, close, volume, ...]` rows (Binance's klines answer fits)."""
    rows = _json_rows(text, source)
    if rows is not None:
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise InputError(f"{source}: expected a JSON list of [open_time_ms, open, high, low, close, volume] rows")
        candles = [_candle(r, interval, f"{source} row {n}") for n, r in enumerate(rows, 1)]
    else:
        reader = csv.reader(io.StringIO(text))
        header = tuple(h.strip() for h in next(reader, []))
        if header[:6] != CSV_HEADER:
            raise InputError(f"{source}: the CSV header must be {','.join(CSV_HEADER)} (got {','.join(header)!r})")
        candles = [_candle(r, interval, f"{source} line {n}") for n, r in enumerate(reader, 2) if r]
    return check_series(candles, interval, source)


def load_candles(path: Path, interval: str) -> list[Candle]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    return parse_candles(text, interval, str(path))


async def fetch_klines(
    client: httpx.AsyncClient, symbol: str, interval: str, start: datetime, end: datetime
) -> list[Candle]:
    """Closed candles opening in [start, end) from Binance REST (a `KlinesError` when it cannot)."""
    stop = int(end.timestamp() * 1000)
    fetched = await rest.fetch_candles(client, symbol, interval, int(start.timestamp() * 1000), stop - 1)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    closed = [c for c in fetched if c.T < now_ms]  # never the still-open candle
    return check_series(closed, interval, "Binance klines")


# --- signals ---------------------------------------------------------------------------------


class SignalSpec(BaseModel):
    """One signal to test: when it was raised (ms) and at what price (None: the close before it)."""

    model_config = ConfigDict(frozen=True)

    time_ms: int
    price: Decimal | None = None


def _time_ms(value: object, where: str) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{where}: not a time (ms since epoch or ISO 8601): {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


TIME_KEYS = ("time", "signal_time", "timestamp", "time_ms")
PRICE_KEYS = ("price", "price_at_signal")


def _signal_from(row: dict[str, Any], symbol: str, interval: str, where: str) -> SignalSpec | None:
    # A `signals` table export carries symbol/interval: rows of another market are not this test's.
    if row.get("symbol") not in (None, "", symbol) or row.get("interval") not in (None, "", interval):
        return None
    key = next((k for k in TIME_KEYS if row.get(k) not in (None, "")), None)
    if key is None:
        raise InputError(f"{where}: no signal time (one of {', '.join(TIME_KEYS)})")
    pkey = next((k for k in PRICE_KEYS if row.get(k) not in (None, "")), None)
    return SignalSpec(time_ms=_time_ms(row[key], where), price=_dec(row[pkey], where) if pkey is not None else None)


def parse_signals(text: str, symbol: str, interval: str, source: str) -> list[SignalSpec]:
    """Signal times and prices: a CSV with a header (`time`/`timestamp`/`signal_time`, optional
    `price`/`price_at_signal`, optional `symbol`/`interval`), a JSON list of such objects, or a
    `signals` table export in either form (rows of other symbols/intervals are left out)."""
    rows = _json_rows(text, source)
    if rows is not None:
        if not all(isinstance(r, dict) for r in rows):
            raise InputError(f"{source}: expected a JSON list of objects with a signal time")
        found = [_signal_from(r, symbol, interval, f"{source} item {n}") for n, r in enumerate(rows, 1)]
    else:
        reader = csv.DictReader(io.StringIO(text))
        found = [_signal_from(dict(r), symbol, interval, f"{source} line {n}") for n, r in enumerate(reader, 2)]
    signals = sorted({s.time_ms: s for s in found if s is not None}.values(), key=lambda s: s.time_ms)
    if not signals:
        raise InputError(f"{source}: no signals for {symbol} {interval}")
    return signals


def load_signals(path: Path, symbol: str, interval: str) -> list[SignalSpec]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    return parse_signals(text, symbol, interval, str(path))


def every_n(candles: Sequence[Candle], n: int) -> list[SignalSpec]:
    """A signal at the close of every n-th candle (the 1st, the (n+1)-th, ...), at its close price;
    never at the last candle, which leaves nothing to monitor."""
    if n < 1:
        raise InputError("--every must be at least 1")
    signals = [SignalSpec(time_ms=c.T + 1, price=c.c) for c in list(candles)[:-1][::n]]
    if not signals:
        raise InputError(f"--every {n}: the series has no candle to raise a signal at (it needs at least 2 candles)")
    return signals


# --- trader settings -------------------------------------------------------------------------


class TraderSettings(BaseModel):
    """The trader's columns a backtest sets (migration 002's monitoring settings, and the position
    settings of the paper execution). Unknown keys are refused: a typo must not pass silently."""

    model_config = ConfigDict(extra="forbid")

    max_reanalyses: int = Field(5, ge=0, le=1000)
    min_confidence_to_enter: float = Field(70.0, ge=0, le=100)
    max_monitoring_duration: timedelta = timedelta(hours=24)
    strategy: dict[str, Any] = Field(default_factory=lambda: {"instructions": "backtest", "modelTier": "fast"})
    # Position settings (migration 006's trader columns) and the paper execution's costs.
    paper_stake: Decimal = Field(Decimal(1000), gt=0, description="quote currency per trade")
    max_position_duration: timedelta = timedelta(days=7)
    use_trailing_stop: bool = False
    trailing_stop_distance: Decimal | None = Field(None, gt=0, lt=100, description="percent")
    partial_take_profit_levels: list[Decimal] = Field(default_factory=list, max_length=10)
    max_loss_per_position: Decimal | None = Field(None, gt=0, le=100, description="percent of entry")
    fee_rate: Decimal = Field(Decimal("0.001"), ge=0, le=Decimal("0.1"), description="per fill (0.001 = 0.1 %)")
    slippage: Decimal = Field(
        Decimal("0.0005"), ge=0, le=Decimal("0.1"), description="market orders, fraction of the price (0.05 %)"
    )

    @field_validator("max_monitoring_duration", "max_position_duration", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        # JSON files give durations as seconds (or ISO 8601, which pydantic parses).
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timedelta(seconds=value)
        return value


def load_settings(path: Path | None, overrides: dict[str, Any]) -> TraderSettings:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read trader settings {path}: {exc}") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: trader settings must be a JSON object")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TraderSettings.model_validate(data)
    except ValueError as exc:
        raise InputError(f"trader settings: {exc}") from None
