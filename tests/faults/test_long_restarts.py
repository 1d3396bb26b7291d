"""Long fault cases, restarts of the servers the product stands on (tests/faults/test_restarts.py
has the fast versions):

- the Temporal dev server stopped and started again on its database file and port, first while
  six monitors wait (20 s down), then while their analyses are in flight (10 s down), then
  SIGKILLed while their analyses are in flight (5 s down); two
  `signal-monitor worker` processes ride them all out;
- PostgreSQL crashed (`pg_ctl stop -m immediate`) while six analyses are inside `record_analysis`
  (held on their signals' row locks), 20 s down; then crashed again at a random moment of a burst
  of closes, 10 s down.

Each case ends with the three checks of tests/helpers/fault_checks.py."""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from fakes.llm_proxy import Answer, FakeLlmProxy, always
from tests.helpers import restarts as rs
from tests.helpers.fault_checks import Figures, assert_three_checks
from tests.helpers.monitor import TEST_KEY
from tests.helpers.processes import worker_process
from tests.helpers.support import eventually, insert_signal, kline
from workflows.monitor.workflow import SignalMonitorWorkflow

# Minutes each: left out of the default run; `pytest -m long tests/faults` or `python -m bench.faults`.
pytestmark = pytest.mark.long

MONITORS = 6


async def _three_checks(client, db, case: str, rows, sent: dict[str, set[int]]) -> Figures:
    """The three checks of tests/helpers/fault_checks.py on every row's closes sent (120 s to settle)."""
    expected = [await rs.expectation(client, row.signal_id, sent[row.signal_id]) for row in rows]
    return await assert_three_checks(client, db, case, expected, timeout=120)


async def test_temporal_restarted_while_monitors_wait_and_while_analyses_run(database_url, db):
    workdir = Path(tempfile.mkdtemp(prefix="signal-monitor-fault-temporal-"))
    temporal = rs.OwnTemporal(workdir)
    rows = [await insert_signal(db, interval="1m", max_reanalyses=1000) for _ in range(MONITORS)]
    sent: dict[str, set[int]] = {row.signal_id: set() for row in rows}
    try:
        client = await temporal.start()
        async with FakeLlmProxy(api_key=TEST_KEY, default=always(Answer.wait(55)), answer_delay=1.5) as proxy:
            env = rs.worker_env(temporal.address, database_url, proxy)
            queue = env["SIGNAL_MONITOR_TASK_QUEUE"]
            async with worker_process(env) as a, worker_process(env) as b:
                await rs.start_settled(client, rows, queue)

                async def send(n: int) -> None:
                    for row in rows:
                        k = kline(row, n)
                        await client.get_workflow_handle(row.workflow_id).signal(SignalMonitorWorkflow.candle_closed, k)
                        sent[row.signal_id].add(k["t"])

                # 1. Monitors waiting: Temporal away for 20 s.
                await temporal.stop()
                await asyncio.sleep(20)
                client = await temporal.start()
                await send(1)
                await rs.all_settled(client, rows, 2, timeout=120, interval=0.5)

                async def away_mid_analysis(close: int, down: float, kill: bool) -> Client:
                    """Close `close` sent; once every monitor is inside its llm-proxy call, the
                    server stopped (or SIGKILLed) for `down` s; back, every monitor settles."""
                    before = len(proxy.requests)
                    await send(close)
                    await eventually(lambda: _true(len(proxy.requests) >= before + MONITORS), timeout=30)
                    await (temporal.kill() if kill else temporal.stop())
                    await asyncio.sleep(down)
                    client = await temporal.start()
                    await rs.all_settled(client, rows, close + 1, timeout=120, interval=0.5)
                    return client

                # 2. Every monitor inside its llm-proxy call: Temporal away for 10 s.
                client = await away_mid_analysis(2, 10, kill=False)
                # 3. Every monitor inside its llm-proxy call again: the server SIGKILLed, 5 s down.
                client = await away_mid_analysis(3, 5, kill=True)
                await send(4)
                await rs.all_settled(client, rows, 5, timeout=120, interval=0.5)
                assert a.proc.returncode is None and b.proc.returncode is None, a.output()[-2000:] + b.output()[-2000:]
                fig = await _three_checks(
                    client,
                    db,
                    f"temporal: dev server restarted on its database file 3x ({MONITORS} monitors; "
                    "waiting, mid-analysis, SIGKILLed mid-analysis)",
                    rows,
                    sent,
                )
                calls = len(proxy.requests)
    finally:
        await temporal.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    assert fig.closes_in == 4 * MONITORS and fig.analyses_stored == 5 * MONITORS
    print(f"\n{fig.summary()}; llm-proxy calls {calls} (analyses cut by the restart are asked again)")


async def test_postgres_crashed_inside_record_analysis_and_during_a_burst(client, temporal_address):
    pg = rs.OwnPostgres()
    rng = random.Random(4)
    try:
        url = await pg.start()
        db = await asyncpg.connect(url)
        try:
            rows = [await insert_signal(db, interval="1m", max_reanalyses=1000) for _ in range(MONITORS)]
        finally:
            await db.close()
        sent: dict[str, set[int]] = {row.signal_id: set() for row in rows}
        async with FakeLlmProxy(api_key=TEST_KEY, default=always(Answer.wait(55)), answer_delay=0.3) as proxy:
            env = rs.worker_env(temporal_address, url, proxy)
            queue = env["SIGNAL_MONITOR_TASK_QUEUE"]
            async with worker_process(env) as worker:
                handles = await rs.start_settled(client, rows, queue)

                async def send(n: int) -> None:
                    for row, handle in zip(rows, handles, strict=False):
                        k = kline(row, n)
                        await handle.signal(SignalMonitorWorkflow.candle_closed, k)
                        sent[row.signal_id].add(k["t"])

                # 1. Every monitor inside record_analysis (its signal's row held), then the crash.
                blocker = await asyncpg.connect(url)
                tx = blocker.transaction()
                await tx.start()
                await blocker.execute(
                    "SELECT 1 FROM signals WHERE id = ANY($1::uuid[]) FOR UPDATE",
                    [uuid.UUID(row.signal_id) for row in rows],
                )
                await send(1)

                async def all_writing() -> None:
                    # record_analysis is a local activity (never listed as pending): every analysis
                    # is done and every write waits on its signal's row lock.
                    for handle in handles:
                        desc = await handle.describe()
                        pending = [p.activity_type.name for p in desc.raw_description.pending_activities]
                        assert pending == [], pending
                    waiting = await blocker.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    )
                    assert waiting >= 1, waiting

                await eventually(all_writing, timeout=60)
                await pg.crash()
                blocker.terminate()
                await asyncio.sleep(20)
                await pg.restart()
                await rs.all_settled(client, rows, 2, timeout=120, interval=0.5)
                # 2. A burst of closes; the crash lands wherever it lands.
                crash_at = rng.uniform(1.0, 4.0)

                async def crash_later() -> None:
                    await asyncio.sleep(crash_at)
                    await pg.crash()
                    await asyncio.sleep(10)
                    await pg.restart()

                crasher = asyncio.create_task(crash_later())
                for n in range(2, 12):
                    await send(n)
                    await asyncio.sleep(0.6)
                await crasher
                await rs.all_settled(client, rows, 3, timeout=120, interval=0.5)
                assert worker.proc.returncode is None, worker.output()[-3000:]
                db = await asyncpg.connect(url)
                try:
                    fig = await _three_checks(
                        client,
                        db,
                        f"postgres: crashed inside record_analysis ({MONITORS} monitors, 20 s down), "
                        "then during a burst (10 s down)",
                        rows,
                        sent,
                    )
                finally:
                    await db.close()
                first_writes = [(await rs.activity_attempts(h, "record_analysis"))[1] for h in handles]
                for handle in handles:
                    await handle.terminate("fault case over")
    finally:
        pg.close()
    # The writes the first crash cut were retried after it, once each.
    assert all(a >= 2 for a in first_writes), first_writes
    assert fig.closes_in == MONITORS * 11
    print(f"\n{fig.summary()}; attempts of the writes cut by the first crash {first_writes}")


async def _true(condition: bool) -> None:
    assert condition
