"""Position manager under restarts: the Temporal dev server restarted on its database file while a
position is open (the worker is a `signal-monitor worker` process riding it out), and PostgreSQL
crashed while a decision row is being written, and a worker SIGKILLed in the middle of an order (its
retry on another worker places it once). Each close is processed once, each order placed once."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import pytest

from fakes.llm_proxy import FakeLlmProxy, ManageAnswer
from tests.helpers.blocking import in_open_transaction
from tests.helpers.monitor import TEST_KEY, monitor_stack
from tests.helpers.positions import (
    candle,
    entered_signal,
    hold_decision_key,
    position_rows,
    result_of,
    start_position,
    view,
)
from tests.helpers.processes import worker_process
from tests.helpers.restarts import OwnPostgres, OwnTemporal, worker_env
from tests.helpers.support import connected, eventually, local_write_waits
from workflows.position.workflow import PositionManagerWorkflow


async def _processed(handle, n):
    state = await view(handle)
    assert state.decisions == n and state.queued == 0, state


async def test_temporal_restarted_while_a_position_is_open(database_url, db):
    workdir = Path(tempfile.mkdtemp(prefix="signal-monitor-fault-temporal-"))
    temporal = OwnTemporal(workdir)
    row = await entered_signal(db, take_profits=[150])
    try:
        client = await temporal.start()
        async with FakeLlmProxy(api_key=TEST_KEY) as proxy:
            proxy.script_position(row.signal_id, ManageAnswer.hold(), ManageAnswer.hold(), ManageAnswer.close())
            env = worker_env(temporal.address, database_url, proxy)
            async with worker_process(env) as worker:
                handle = await start_position(client, row, env["SIGNAL_MONITOR_TASK_QUEUE"], entry_price=D(100))
                await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 101, 99, 100))
                await eventually(lambda: _processed(handle, 1), timeout=30)
                await temporal.stop()
                await asyncio.sleep(3)
                assert worker.proc.returncode is None, worker.output()
                client = await temporal.start()
                handle = client.get_workflow_handle_for(PositionManagerWorkflow.run, handle.id)
                for n in (2, 3):
                    await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, n, 100, 101, 99, 100))
                    await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, n, 100, 101, 99, 100))
                    if n == 2:
                        await eventually(lambda: _processed(handle, 2), timeout=30)
                try:
                    result = await asyncio.wait_for(client.get_workflow_handle(handle.id).result(), 60)
                except TimeoutError:
                    raise AssertionError(f"{await view(handle)}\n{worker.output()[-3000:]}") from None
    finally:
        await temporal.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    assert result["reason"].startswith("close_action"), result
    rows = await position_rows(db, row.signal_id)
    assert [d["action"] for d in rows["decisions"]] == ["hold", "hold", "close"]
    assert [o["metadata"]["kind"] for o in rows["orders"]] == ["entry", "close"]
    assert rows["positions"][0]["status"] == "closed"


async def test_postgres_crashed_while_a_decision_is_written(client):
    pg = OwnPostgres()
    try:
        url = await pg.start()
        async with connected(url) as db:
            row = await entered_signal(db, take_profits=[150])
        async with monitor_stack(client, url) as m:
            m.proxy.script_position(row.signal_id, ManageAnswer.hold(), ManageAnswer.close())
            handle = await start_position(client, row, m.task_queue, entry_price=D(100))
            await eventually(lambda: _processed(handle, 0), timeout=30)
            blocker = await asyncpg.connect(url)
            k = candle(row, 1, 100, 101, 99, 100)
            await hold_decision_key(blocker, row, k)
            await handle.signal(PositionManagerWorkflow.candle_closed, k)
            await eventually(lambda: local_write_waits(handle, blocker), timeout=30)
            await asyncio.sleep(0.5)
            await pg.crash()
            blocker.terminate()
            await asyncio.sleep(2)
            await pg.restart()
            await eventually(lambda: _processed(handle, 1), timeout=60)
            await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 2, 100, 101, 99, 100))
            result = await result_of(handle)
            db = await asyncpg.connect(url)
            try:
                rows = await position_rows(db, row.signal_id)
                count = await db.fetchval(
                    "SELECT count(*) FROM position_management_decisions WHERE position_id = $1",
                    f"paper-{row.signal_id}",
                )
            finally:
                await db.close()
    finally:
        pg.close()
    assert result.reason.startswith("close_action")
    assert count == 2 and [d["action"] for d in rows["decisions"]] == ["hold", "close"]
    assert [o["metadata"]["kind"] for o in rows["orders"]] == ["entry", "close"]


@pytest.mark.slow  # ~20-30 s (tests/README: `pytest -m "not slow"` for a quick loop)
async def test_worker_killed_during_an_order_places_it_exactly_once(client, temporal_address, database_url, db):
    """The worker is SIGKILLed while `close_position` is inside its transaction (held on the order's
    own key by an uncommitted row of ours); a second worker's retry places the order once."""
    row = await entered_signal(db, take_profits=[150])
    async with FakeLlmProxy(api_key=TEST_KEY) as proxy:
        proxy.script_position(row.signal_id, ManageAnswer.close())
        env = worker_env(temporal_address, database_url, proxy)
        queue = env["SIGNAL_MONITOR_TASK_QUEUE"]
        k = candle(row, 1, 100, 101, 99, 100)
        blocker = await asyncpg.connect(database_url)
        try:
            async with worker_process(env) as first:
                handle = await start_position(client, row, queue, entry_price=D(100))
                await eventually(lambda: _processed(handle, 0), timeout=30)
                tx = await in_open_transaction(
                    blocker,
                    "INSERT INTO orders (id, signal_id, user_id, symbol, side, type, status, quantity) "
                    "VALUES ($1, $2, $3, 'BTCUSDT', 'sell', 'market', 'pending', 0)",
                    f"paper-{row.signal_id}:{k['t']}:close",
                    row.signal_id,
                    uuid.UUID(row.user_id),
                )
                await handle.signal(PositionManagerWorkflow.candle_closed, k)

                async def ordering() -> None:
                    desc = await handle.describe()
                    pending = [a.activity_type.name for a in desc.raw_description.pending_activities]
                    assert pending == ["close_position"], pending
                    waiting = await db.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%INSERT INTO orders%'"
                    )
                    assert waiting >= 1

                await eventually(ordering, timeout=30)
                first.kill()
                await first.proc.wait()
            await tx.rollback()
            async with worker_process(env):
                # The lost attempt is retried after its start-to-close timeout (30 s).
                result = await asyncio.wait_for(handle.result(), 90)
        finally:
            await blocker.close()
    assert result.reason.startswith("close_action"), result
    rows = await position_rows(db, row.signal_id)
    assert [o["metadata"]["kind"] for o in rows["orders"]] == ["entry", "close"]
    assert rows["positions"][0]["status"] == "closed" and rows["positions"][0]["contracts"] == 0
    assert [d["action"] for d in rows["decisions"]] == ["close"]
