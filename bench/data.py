"""Signals in PostgreSQL, monitors and floors started, candle closes built: the bench's fixtures."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from temporalio.client import Client

from bench.floor import FLOOR_WORKFLOW
from intake.starting import start_monitor
from market.intervals import interval_ms
from workflows.common.names import CANDLE_CLOSED_SIGNAL, workflow_id_for

INTERVAL = "1m"
STEP = interval_ms(INTERVAL)
# Every signal is raised two days before now, so the n-th close after it (n up to 2,880: the full
# run's 1,000-close chain and every burst fit) opens in the past: monitors count a close opening
# later than now + one interval as `future` and never analyse it.
SIGNAL_TIME = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


async def new_trader(conn: asyncpg.Connection) -> str:
    """One elite trader that never stops monitoring on its own during a bench (1,000 reanalyses:
    the highest limit load_signal accepts, enough for the full run's 1,000-close chain)."""
    user_id, trader_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute("INSERT INTO user_profiles (id, subscription_tier) VALUES ($1, 'elite')", user_id)
    await conn.execute(
        """INSERT INTO traders (id, user_id, name, enabled, filter, strategy, auto_analyze_signals,
                                max_reanalyses, max_monitoring_duration)
           VALUES ($1, $2, 'bench trader', true, $3::jsonb, $4::jsonb, true, 1000, interval '30 days')""",
        trader_id,
        user_id,
        json.dumps({"interval": INTERVAL}),
        json.dumps({"instructions": "benchmark", "modelTier": "fast"}),
    )
    return str(trader_id)


async def new_signals(conn: asyncpg.Connection, trader_id: str, n: int, symbol: str) -> list[str]:
    ids = [uuid.uuid4() for _ in range(n)]
    await conn.copy_records_to_table(
        "signals",
        columns=[
            "id",
            "trader_id",
            "symbol",
            "interval",
            "timestamp",
            "price_at_signal",
            "change_percent_at_signal",
            "volume_at_signal",
            "indicator_data",
            "status",
        ],
        records=[
            (i, uuid.UUID(trader_id), symbol, INTERVAL, SIGNAL_TIME, 43250.12, 2.5, 1234.5, '{"rsi": 61}', "new")
            for i in ids
        ],
    )
    return [str(i) for i in ids]


async def gather_limited(coros: Iterable, limit: int) -> list:
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def start_monitors(client: Client, signal_ids: list[str], task_queue: str) -> list[str]:
    await gather_limited((start_monitor(client, s, task_queue) for s in signal_ids), 32)
    return [workflow_id_for(s) for s in signal_ids]


async def start_floors(client: Client, n: int, task_queue: str) -> list[str]:
    ids = [f"floor-{uuid.uuid4()}" for _ in range(n)]
    await gather_limited((client.start_workflow(FLOOR_WORKFLOW, id=i, task_queue=task_queue) for i in ids), 32)
    return ids


async def wait_idle(client: Client, workflow_ids: list[str], timeout: float, what: str = "workflows") -> None:
    """Until no workflow of `workflow_ids` has a workflow task or an activity pending: a burst
    measured right after starting N workflows would otherwise share the server with their first
    workflow tasks (the floors' starts, the monitors' last task after their initial analysis)."""
    deadline = time.monotonic() + timeout
    waiting = list(workflow_ids)

    async def busy(wf: str) -> bool:
        desc = (await client.get_workflow_handle(wf).describe()).raw_description
        return desc.HasField("pending_workflow_task") or bool(desc.pending_activities)

    while waiting:
        flags = await gather_limited((busy(wf) for wf in waiting), 32)
        waiting = [wf for wf, b in zip(waiting, flags, strict=True) if b]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {len(waiting)} of {len(workflow_ids)} still busy after {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def wait_analyses(
    conn: asyncpg.Connection,
    signal_ids: list[str],
    count_each: int,
    timeout: float,
    what: str = "analyses",
    poll: float = 0.05,
) -> float:
    """Until every signal has `count_each` stored analyses; returns the monotonic time it saw it."""
    ids = [uuid.UUID(s) for s in signal_ids]
    want = len(ids) * count_each
    deadline = time.monotonic() + timeout
    while True:
        got = await conn.fetchval("SELECT count(*) FROM signal_analyses WHERE signal_id = ANY($1::uuid[])", ids)
        if got >= want:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {got} of {want} stored after {timeout:.0f}s")
        await asyncio.sleep(poll)


def kline(n: int, symbol: str) -> dict[str, Any]:
    """The n-th closed 1m candle (1, 2, ...) after the one in progress at SIGNAL_TIME, as Binance's `k`."""
    signal_ms = int(SIGNAL_TIME.timestamp() * 1000)
    t = (signal_ms // STEP) * STEP + (n - 1) * STEP
    return {
        "t": t,
        "T": t + STEP - 1,
        "s": symbol,
        "i": INTERVAL,
        "f": 100,
        "L": 200,
        "o": "43250.00",
        "c": "43300.50",
        "h": "43400.00",
        "l": "43100.00",
        "v": "12.5",
        "n": 101,
        "x": True,
        "q": "540000.1",
        "V": "6.1",
        "Q": "263000.2",
        "B": "0",
    }


async def send_closes(client: Client, workflow_ids: list[str], k: dict, concurrency: int = 32) -> None:
    """One close to many workflows, as a bridge fans it out: bounded concurrent signal RPCs."""
    # By name, as the bridge sends it: one signal for every kind fanned out to (monitors, positions, floors).
    await gather_limited(
        (client.get_workflow_handle(w).signal(CANDLE_CLOSED_SIGNAL, k) for w in workflow_ids), concurrency
    )


def symbol_for(label: str) -> str:
    # A symbol per measurement keeps their monitors apart in the database and in visibility.
    return ("B" + label.upper() + uuid.uuid4().hex[:4].upper())[:12] + "USDT"
