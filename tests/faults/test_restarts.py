"""Fault suite, restarts (fast versions; bench/faults runs longer ones):

- the Temporal dev server stopped and started again on its database file and port while monitors
  wait for candles (workers are `signal-monitor worker` processes that ride it out); closes sent
  afterwards are analysed once each;
- PostgreSQL crashed (`pg_ctl stop -m immediate`) while an analysis's `record_analysis` is writing
  (held on the signal's row lock, so the crash lands inside its transaction) and started again:
  the analysis is stored exactly once when it is back.

Each case ends with the three checks of tests/helpers/fault_checks.py."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg

from fakes.llm_proxy import Answer, FakeLlmProxy, always
from tests.helpers.fault_checks import assert_three_checks
from tests.helpers.monitor import TEST_KEY, monitor_stack
from tests.helpers.processes import worker_process
from tests.helpers.restarts import (
    OwnPostgres,
    OwnTemporal,
    activity_attempts,
    all_settled,
    expectation,
    settled,
    start_settled,
    worker_env,
)
from tests.helpers.support import connected, eventually, insert_signal, kline
from workflows.monitor.workflow import SignalMonitorWorkflow


async def test_temporal_restarted_on_its_database_while_monitors_wait(database_url, db):
    workdir = Path(tempfile.mkdtemp(prefix="signal-monitor-fault-temporal-"))
    temporal = OwnTemporal(workdir)
    rows = [await insert_signal(db, interval="1m", max_reanalyses=50) for _ in range(3)]
    try:
        client = await temporal.start()
        async with FakeLlmProxy(api_key=TEST_KEY, default=always(Answer.wait(55))) as proxy:
            env = worker_env(temporal.address, database_url, proxy)
            async with worker_process(env) as worker:
                await start_settled(client, rows, env["SIGNAL_MONITOR_TASK_QUEUE"], timeout=30)
                await temporal.stop()
                await asyncio.sleep(3)
                assert worker.proc.returncode is None, "the worker gave up while Temporal was away:\n" + worker.output()
                client = await temporal.start()
                sent: dict[str, list[int]] = {row.signal_id: [] for row in rows}
                for n in (1, 2):
                    for row in rows:
                        k = kline(row, n)
                        await client.get_workflow_handle(row.workflow_id).signal(SignalMonitorWorkflow.candle_closed, k)
                        sent[row.signal_id].append(k["t"])
                    await all_settled(client, rows, 1 + n, timeout=60)
                expected = [await expectation(client, row.signal_id, set(sent[row.signal_id])) for row in rows]
                fig = await assert_three_checks(
                    client,
                    db,
                    "temporal: dev server stopped and restarted on its database file while monitors wait",
                    expected,
                )
                assert worker.proc.returncode is None
    finally:
        await temporal.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    assert fig.closes_in == 6 and fig.analyses_stored == 9


async def test_postgres_crashed_during_record_analysis_is_stored_once_when_back(client):
    pg = OwnPostgres()
    try:
        url = await pg.start()
        async with connected(url) as db:
            row = await insert_signal(db, interval="1m", max_reanalyses=50)
        async with monitor_stack(client, url) as m:
            m.proxy.default = always(Answer.wait(55))
            handle = await m.start(row.signal_id)
            await eventually(lambda: settled(client, row.signal_id, 1), timeout=30)
            # Hold the signal's row: record_analysis takes it FOR UPDATE inside its transaction.
            blocker = await asyncpg.connect(url)
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT 1 FROM signals WHERE id = $1 FOR UPDATE", uuid.UUID(row.signal_id))
            k = kline(row, 1)
            await handle.signal(SignalMonitorWorkflow.candle_closed, k)

            async def writing() -> None:
                desc = await handle.describe()
                pending = [a.activity_type.name for a in desc.raw_description.pending_activities]
                # record_analysis is a local activity (not listed as pending): the analysis is done
                # and the write waits on the row lock.
                assert pending == [], pending
                # Any backend waiting on a lock: only the blocked write can be (its query text may
                # still read as the pool's reset of the connection's previous use).
                waiting = await blocker.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
                assert waiting >= 1

            await eventually(writing, timeout=30)
            await pg.crash()
            blocker.terminate()
            await asyncio.sleep(2)
            await pg.restart()
            db = await asyncpg.connect(url)
            try:
                await eventually(lambda: settled(client, row.signal_id, 2), timeout=60)
                fig = await assert_three_checks(
                    client,
                    db,
                    "postgres: crashed during record_analysis, restarted",
                    [await expectation(client, row.signal_id, {k["t"]})],
                )
                # The retry wrote the row after the crash; no second write of the same analysis.
                assert (
                    await db.fetchval(
                        "SELECT count(*) FROM signal_analyses WHERE signal_id = $1", uuid.UUID(row.signal_id)
                    )
                    == 2
                )
                assert (
                    await db.fetchval("SELECT status FROM signals WHERE id = $1", uuid.UUID(row.signal_id))
                    == "monitoring"
                )
            finally:
                await db.close()
            attempts = await activity_attempts(handle, "record_analysis")
            await handle.terminate("test over")
    finally:
        pg.close()
    assert fig.analyses_stored == 2 and fig.closes_in == 1
    # The write cut by the crash failed and was retried: the crash did land inside it.
    assert attempts[-1] >= 2, attempts
