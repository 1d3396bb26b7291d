"""`signal-monitor add-signal SYMBOL INTERVAL`: a signal inserted the way the platform's screener
inserts one (status `new`, the candle's close as its price and its close time as its time), for a
trader of the operator's or a new one with an elite owner. The intake then starts its monitor,
exactly as for the platform's own signals: this command never starts a workflow itself."""

from __future__ import annotations

import argparse
import asyncio
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TextIO

import asyncpg
from pydantic import BaseModel, Field

from cli.text import candle_ending, command_name
from market.candle import Candle
from market.intervals import FIXED_INTERVALS
from market.rest import latest_closed, rest_client
from runtime import platform_rows
from workflows.common.names import workflow_id_for

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
DEFAULT_STRATEGY = "Enter on a confirmed breakout with rising volume; stop below the last swing low."


class UsageError(ValueError):
    pass


class NewSignal(BaseModel):
    symbol: str
    interval: str
    price: float | None = Field(default=None, gt=0)
    trader_id: str | None = None
    new_trader_name: str | None = None
    strategy: str | None = None
    max_reanalyses: int | None = Field(default=None, ge=0, le=1000)
    min_confidence: float | None = Field(default=None, ge=0, le=100)


def parse_new_signal(args: argparse.Namespace) -> NewSignal:
    """The command's arguments: everything checkable without a server, as usage errors."""
    symbol = args.symbol.strip().upper()
    if not SYMBOL_RE.match(symbol):
        raise UsageError(f"{symbol!r} is not a Binance symbol (letters and digits, e.g. ETHUSDT)")
    if args.interval not in FIXED_INTERVALS:
        raise UsageError(
            f"{args.interval!r} is not a kline interval the monitor follows ({', '.join(FIXED_INTERVALS)})"
        )
    trader = args.trader
    if trader and args.new_trader:
        raise UsageError("--trader and --new-trader exclude each other")
    if trader:
        try:
            trader = str(uuid.UUID(trader))
        except ValueError:
            raise UsageError(f"--trader {trader!r} is not a trader uuid") from None
    if args.price is not None and not args.price > 0:
        raise UsageError("--price must be positive")
    if args.max_reanalyses is not None and not 0 <= args.max_reanalyses <= 1000:
        raise UsageError("--max-reanalyses must be between 0 and 1000")
    if args.min_confidence is not None and not 0 <= args.min_confidence <= 100:
        raise UsageError("--min-confidence must be between 0 and 100")
    return NewSignal(
        symbol=symbol,
        interval=args.interval,
        price=args.price,
        trader_id=trader,
        new_trader_name=args.new_trader,
        strategy=args.strategy,
        max_reanalyses=args.max_reanalyses,
        min_confidence=args.min_confidence,
    )


class AddedSignal(BaseModel):
    signal_id: str
    trader_id: str
    user_id: str | None
    trader_created: bool
    price: float
    at: datetime
    price_source: str

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.signal_id)


def _exact(value: float | None) -> Decimal | None:
    """As written (2305.01): asyncpg would store a float's whole binary expansion in a numeric."""
    return None if value is None else Decimal(repr(value))


async def _columns(conn: asyncpg.Connection, table: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1",
        table,
    )
    return {r["column_name"] for r in rows}


async def _create_owner(conn: asyncpg.Connection, name: str) -> uuid.UUID:
    """An elite owner in whichever of the platform's two tier places this database has."""
    user_id = uuid.uuid4()
    profile = await _columns(conn, "user_profiles")
    values: dict[str, object] = {"id": user_id}
    if "email" in profile:
        values["email"] = f"{user_id.hex[:12]}@signal-monitor.local"
    if "display_name" in profile:
        values["display_name"] = name
    if "subscription_tier" in profile:
        values["subscription_tier"] = "elite"
    cols = ", ".join(values)
    marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await conn.execute(f"INSERT INTO user_profiles ({cols}) VALUES ({marks})", *values.values())
    if await _columns(conn, "user_subscriptions"):
        await conn.execute(
            "INSERT INTO user_subscriptions (user_id, tier, status) VALUES ($1, 'elite', 'active')", user_id
        )
    return user_id


async def insert_signal(database_url: str, spec: NewSignal, candle: Candle | None) -> AddedSignal:
    if spec.price is not None:
        price, at, source = spec.price, datetime.now(UTC), "--price"
        change, volume = None, None
    elif candle is not None:
        # As floats, written as they print (`_exact`): the row keeps what an operator sees.
        price = float(candle.c)
        at = datetime.fromtimestamp((candle.T + 1) / 1000, tz=UTC)
        source = "close of the latest closed candle"
        change = round(float((candle.c - candle.o) / candle.o * 100), 4) if candle.o else None
        volume = float(candle.v)
    else:
        raise ValueError("a price or a candle is needed")
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        async with conn.transaction():
            created = spec.trader_id is None
            if spec.trader_id is not None:
                trader_id = uuid.UUID(spec.trader_id)
                user_id = await conn.fetchval("SELECT user_id FROM traders WHERE id = $1", trader_id)
                if user_id is None and not await conn.fetchval("SELECT 1 FROM traders WHERE id = $1", trader_id):
                    raise LookupError(f"no trader {trader_id}")
            else:
                name = spec.new_trader_name or f"{spec.symbol} {spec.interval} trader"
                user_id = await _create_owner(conn, name)
                trader_id = uuid.uuid4()
                strategy = {"instructions": spec.strategy or DEFAULT_STRATEGY, "modelTier": "fast"}
                await platform_rows.insert_trader(conn, trader_id, user_id, name, spec.interval, strategy)
            if spec.strategy is not None and not created:
                await conn.execute(
                    """UPDATE traders SET strategy = coalesce(strategy, '{}'::jsonb) || jsonb_build_object(
                       'instructions', $2::text), updated_at = now() WHERE id = $1""",
                    trader_id,
                    spec.strategy,
                )
            if spec.max_reanalyses is not None:
                await conn.execute(
                    "UPDATE traders SET max_reanalyses = $2 WHERE id = $1", trader_id, spec.max_reanalyses
                )
            if spec.min_confidence is not None:
                await conn.execute(
                    "UPDATE traders SET min_confidence_to_enter = $2 WHERE id = $1", trader_id, spec.min_confidence
                )
            signal_id = uuid.uuid4()
            has_user = "user_id" in await _columns(conn, "signals")
            await platform_rows.insert_signal(
                conn,
                signal_id,
                trader_id,
                spec.symbol,
                spec.interval,
                at,
                _exact(price),
                _exact(change),
                _exact(volume),
                {},
            )
            if has_user and user_id is not None:
                await conn.execute("UPDATE signals SET user_id = $2 WHERE id = $1", signal_id, user_id)
    finally:
        await conn.close()
    return AddedSignal(
        signal_id=str(signal_id),
        trader_id=str(trader_id),
        user_id=str(user_id) if user_id else None,
        trader_created=created,
        price=price,
        at=at,
        price_source=source,
    )


async def wait_for_intake(database_url: str, signal_id: str, timeout: float) -> str | None:
    """The intake's decision on the signal (`started`, `ineligible: ...`), or None in time."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            decided = await conn.fetchval("SELECT monitor_intake FROM signals WHERE id = $1", uuid.UUID(signal_id))
            if decided:
                return decided
            await asyncio.sleep(0.5)
        return None
    finally:
        await conn.close()


async def add_signal(
    spec: NewSignal, database_url: str, rest_url: str, ui_url: str, wait: float, out: TextIO
) -> AddedSignal:
    candle = None
    if spec.price is None:
        async with rest_client(rest_url) as http:
            candle = await latest_closed(http, spec.symbol, spec.interval)
    added = await insert_signal(database_url, spec, candle)
    who = "new trader" if added.trader_created else "trader"
    command = command_name()  # what runs here: not on PATH without an activated venv
    print(f"signal {added.signal_id}", file=out)
    print(
        f"  {spec.symbol} {spec.interval} at {added.price:g} ({added.price_source}, {rest_url if candle else 'given'}), "
        f"time {added.at.strftime('%Y-%m-%d %H:%M:%S UTC')}"
        + (f" (the close of {candle_ending(added.at, spec.interval)})" if candle else ""),
        file=out,
    )
    print(f"  {who} {added.trader_id}" + (" (elite owner, auto-analyse)" if added.trader_created else ""), file=out)
    print(f"  Temporal UI: {ui_url.rstrip('/')}/namespaces/default/workflows/{added.workflow_id}", file=out)
    if wait > 0:
        decided = await wait_for_intake(database_url, added.signal_id, wait)
        if decided is None:
            print(f"  the intake has not picked it up within {wait:.0f} s (is `{command} intake` running?)", file=out)
        elif decided == "started":
            print(f"  monitor started by the intake: workflow {added.workflow_id}", file=out)
        else:
            print(f"  the intake did not start a monitor: {decided}", file=out)
    print(
        f"  follow it: {command} history {added.signal_id}   (chart: {command} chart {added.signal_id})",
        file=out,
    )
    return added
