"""Helpers shared by the core tests: rows for the platform's tables, Binance klines, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar, cast

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.workflow import UpdateMethodMultiParam

from intake.service import run_intake
from market.intervals import interval_ms
from runtime.config import Settings
from runtime.platform_rows import insert_signal as insert_platform_signal
from runtime.platform_rows import insert_trader

T = TypeVar("T")
P = ParamSpec("P")


def async_update(update: UpdateMethodMultiParam[P, Coroutine[Any, Any, T]]) -> UpdateMethodMultiParam[P, T]:
    """The same typed Update reference, for an `async def` handler: temporalio (1.35) types
    `@workflow.update(name=...)` on one as returning the coroutine, so `execute_update` would
    seem to return a coroutine too; the client returns the handler's result, decoded as `T`."""
    return cast("UpdateMethodMultiParam[P, T]", update)


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll until `check` returns without AssertionError (visibility and workers are asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)


@dataclass
class SignalRow:
    signal_id: str
    trader_id: str
    user_id: str
    symbol: str
    interval: str
    timestamp: datetime

    @property
    def workflow_id(self) -> str:
        return f"signal-{self.signal_id}"


DEFAULT_SIGNAL_AGE = timedelta(hours=2)


async def insert_signal(
    db: asyncpg.Connection,
    *,
    symbol: str = "BTCUSDT",
    interval: str = "15m",
    timestamp: datetime | None = None,
    max_reanalyses: int | None = None,
    min_confidence_to_enter: float | None = None,
    max_monitoring_duration: timedelta | None = None,
    tier: str = "elite",
    auto_analyze: bool = True,
    strategy: dict | None = None,
    with_trader: bool = True,
    price: float = 43250.12,
) -> SignalRow:
    """A trader and a signal filled only with the platform's columns (plus optional settings)."""
    user_id, trader_id, signal_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # Two hours ago by default: the closes tests send after it (kline(row, n)) are then in the past,
    # as real ones are; the monitor refuses a close opening later than now + one interval.
    timestamp = timestamp or datetime.now(UTC) - DEFAULT_SIGNAL_AGE
    await db.execute("INSERT INTO user_profiles (id, subscription_tier) VALUES ($1, $2)", user_id, tier)
    if with_trader:
        strategy = strategy or {"instructions": "buy breakouts", "modelTier": "fast"}
        await insert_trader(db, trader_id, user_id, f"trader {str(trader_id)[:8]}", interval, strategy, auto_analyze)
        settings = {
            "max_reanalyses": max_reanalyses,
            "min_confidence_to_enter": min_confidence_to_enter,
            "max_monitoring_duration": max_monitoring_duration,
        }
        for column, value in settings.items():
            if value is not None:
                await db.execute(f"UPDATE traders SET {column} = $2 WHERE id = $1", trader_id, value)
    await insert_platform_signal(
        db, signal_id, trader_id, symbol, interval, timestamp, price, Decimal("2.5"), Decimal("1234.5"), {"rsi": 61}
    )
    return SignalRow(str(signal_id), str(trader_id), str(user_id), symbol, interval, timestamp)


def kline(
    row: SignalRow,
    n: int,
    *,
    closed: bool = True,
    symbol: str | None = None,
    interval: str | None = None,
    close: str = "43300.50",
) -> dict[str, Any]:
    """The n-th candle (1, 2, ...) after the one in progress at the signal's time, as Binance's `k`."""
    step = interval_ms(interval or row.interval)
    signal_ms = int(row.timestamp.timestamp() * 1000)
    t = (signal_ms // step) * step + (n - 1) * step
    return {
        "t": t,
        "T": t + step - 1,
        "s": symbol or row.symbol,
        "i": interval or row.interval,
        "f": 100,
        "L": 200,
        "o": "43250.00",
        "c": close,
        "h": "43400.00",
        "l": "43100.00",
        "v": "12.5",
        "n": 101,
        "x": closed,
        "q": "540000.1",
        "V": "6.1",
        "Q": "263000.2",
        "B": "0",
    }


async def analyses(db: asyncpg.Connection, signal_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM signal_analyses WHERE signal_id = $1 ORDER BY analysis_number", uuid.UUID(signal_id)
    )


async def signal_status(db: asyncpg.Connection, signal_id: str) -> str | None:
    return await db.fetchval("SELECT status FROM signals WHERE id = $1", uuid.UUID(signal_id))


async def status_is(db: asyncpg.Connection, signal_id: str, expected: str) -> None:
    """For `eventually`: the signal's row is in the `expected` status."""
    assert await signal_status(db, signal_id) == expected


def implausible_klines(good: dict, interval_ms: int = 60_000) -> list[dict]:
    """Variants of a good kline that no exchange could send (issue 11): every receiver of
    `candle_closed` counts each as malformed."""
    far = 300_000_000_000_000
    return [
        {**good, "t": far, "T": far + interval_ms - 1},  # past year 9999
        {**good, "t": 1e30},  # not even an integer
        {**good, "c": "1e400"},  # infinite as the number sent to llm-proxy
        {**good, "t": good["T"] + 1},  # t > T
        {**good, "T": good["T"] + interval_ms},  # a candle two intervals long
        {**good, "s": "btcu\u017fdt"},  # U+017F upper-cases to BTCUSDT
    ]


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own to `url` for the block."""
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def running_service(
    what: str,
    run: Callable[[asyncio.Event, asyncio.Event], Coroutine[Any, Any, object]],
    ready_within: float = 30,
    stop_within: float = 15,
) -> AsyncIterator[None]:
    """`run(stop, ready)` as a task in this process for the block: it must set `ready` within
    `ready_within` s (if it ends first, its own error is raised); on the way out `stop` is set
    and the task must end within `stop_within` s, without an error."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(stop, ready))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=ready_within, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
    assert waiter in done, f"{what} not ready within {ready_within:.0f} s"
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, stop_within)
    assert task.done() and task.exception() is None


NO_SWEEP = 3600.0  # only the intake's sweep at (re)connection runs


def running_intake(
    client: Client | None, settings: Settings, sweep_every: float = NO_SWEEP
) -> contextlib.AbstractAsyncContextManager[None]:
    """The intake in this process for the block, ready (listening, first sweep done) when it starts."""
    return running_service(
        "intake",
        lambda stop, ready: run_intake(settings, client=client, stop=stop, ready=ready, sweep_every=sweep_every),
    )


async def settled_events(handle: WorkflowHandle[Any, Any], quiet: float = 1.0, timeout: float = 60.0) -> list[Any]:
    """The workflow's history once nothing is pending and it has not grown for `quiet` seconds: on
    a busy machine a workflow task's completion (and the marker it writes) can land well after the
    state query already shows the work done."""

    async def still() -> list[Any]:
        first = (await handle.fetch_history()).events
        pending = (await handle.describe()).raw_description
        assert not pending.HasField("pending_workflow_task") and not pending.pending_activities, "work pending"
        await asyncio.sleep(quiet)
        again = (await handle.fetch_history()).events
        assert len(again) == len(first), "history still growing"
        return list(again)

    return await eventually(still, timeout=timeout, interval=0.2)


def heartbeat_tasks(events: list[Any]) -> int:
    """Workflow tasks the SDK completed only to keep a long local activity alive (a task completed
    straight into the next one, no command between): each adds 3 events that a quick write does not."""
    completed, scheduled = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    return sum(1 for a, b in itertools.pairwise(events) if a.event_type == completed and b.event_type == scheduled)


# Sessions waiting on a lock `blocker`'s transaction holds. Not every lock waiter of the server:
# parallel tests share one PostgreSQL, and another test's waiter must not count as ours.
BLOCKED_BY = "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))"


async def local_write_waits(handle: WorkflowHandle[Any, Any], blocker: asyncpg.Connection) -> None:
    """The workflow's local write is waiting on `blocker`'s lock: a local activity shows no pending
    activity, so what is seen is the llm-proxy step done and a write waiting on `blocker`."""
    desc = await handle.describe()
    assert not desc.raw_description.pending_activities
    assert await blocker.fetchval(BLOCKED_BY, blocker.get_server_pid()) >= 1


async def completed_activities(handle: WorkflowHandle[Any, Any]) -> int:
    events = (await handle.fetch_history()).events
    return sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED for e in events)


async def left_to_the_workflow(handle: WorkflowHandle[Any, Any], blocker: asyncpg.Connection, before: int) -> None:
    """The decision activity gave its write up (it has completed: the row it needs is held by
    `blocker`) and the workflow's own local write now waits on `blocker`. `before`: the activities
    completed before the close was sent (no pending activity alone does not say the activity ran)."""
    assert await completed_activities(handle) > before
    await local_write_waits(handle, blocker)


async def is_cancelled(handle: WorkflowHandle[Any, Any]) -> None:
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
