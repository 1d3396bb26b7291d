"""The product as operators run it: `signal-monitor worker` processes configured by environment
variables, workflows started, signalled and cancelled with the stock `temporal` CLI, and a worker
killed (SIGKILL) in the middle of an analysis and replaced by another."""

from __future__ import annotations

import uuid

from temporalio.client import WorkflowExecutionStatus

from fakes.llm_proxy import Answer, FakeLlmProxy
from tests.helpers.monitor import TEST_KEY
from tests.helpers.processes import as_json, command_env, signal_monitor, temporal_cli, worker_process
from tests.helpers.support import SignalRow, analyses, eventually, insert_signal, kline, signal_status
from workflows.monitor.models import MonitorView
from workflows.monitor.workflow import SignalMonitorWorkflow


async def _worker_env(temporal_address: str, database_url: str, proxy: FakeLlmProxy) -> dict[str, str]:
    return command_env(
        temporal_address,
        DATABASE_URL=database_url,
        LLM_PROXY_URL=proxy.url,
        LLM_PROXY_KEY=TEST_KEY,
        SIGNAL_MONITOR_TASK_QUEUE=f"tq-{uuid.uuid4().hex[:10]}",
    )


async def _start_by_cli(env: dict[str, str], row: SignalRow) -> None:
    """`temporal workflow start` of the monitor, as an operator types it, on the worker's queue."""
    await temporal_cli(
        env,
        "workflow",
        "start",
        "--type",
        "SignalMonitorWorkflow",
        "--task-queue",
        env["SIGNAL_MONITOR_TASK_QUEUE"],
        "--workflow-id",
        row.workflow_id,
        "--input",
        as_json({"signal_id": row.signal_id}),
    )


async def test_stock_temporal_cli_start_signal_three_times_then_cancel(client, temporal_address, database_url, db):
    row = await insert_signal(db, interval="15m")
    async with FakeLlmProxy(api_key=TEST_KEY) as proxy:
        proxy.script(row.signal_id, Answer.wait(55), Answer.wait(60))
        env = await _worker_env(temporal_address, database_url, proxy)
        async with worker_process(env) as worker:
            await _start_by_cli(env, row)
            handle = client.get_workflow_handle_for(SignalMonitorWorkflow.run, row.workflow_id)

            async def state(analysed: int) -> MonitorView:
                s = await handle.query(SignalMonitorWorkflow.state)
                assert s.counts.analysed == analysed and not s.analysing, s
                return s

            await eventually(lambda: state(1), timeout=30)
            candle = as_json(kline(row, 1))
            for _ in range(3):
                await temporal_cli(
                    env,
                    "workflow",
                    "signal",
                    "--workflow-id",
                    row.workflow_id,
                    "--name",
                    "candle_closed",
                    "--input",
                    candle,
                )
            s = await eventually(lambda: state(2), timeout=30)
            await eventually(lambda: _received(handle, 3), timeout=10)
            s = await handle.query(SignalMonitorWorkflow.state)
            assert s.counts.duplicate == 2, s.counts

            await temporal_cli(env, "workflow", "cancel", "--workflow-id", row.workflow_id)
            desc = await eventually(lambda: _status(handle, WorkflowExecutionStatus.CANCELED), timeout=30)
            assert desc.status == WorkflowExecutionStatus.CANCELED
        rows = await analyses(db, row.signal_id)
        assert [r["candle_open_time"] is None for r in rows] == [True, False]
        assert len(rows) == 2  # the candle signalled three times is analysed once
        assert await signal_status(db, row.signal_id) == "cancelled"
        # The worker was configured with the key; neither its log nor the history shows it.
        assert TEST_KEY not in worker.output()
        history = await handle.fetch_history()
        assert TEST_KEY not in history.to_json()
        assert all(r.authorized for r in proxy.requests_for(row.signal_id))


async def _received(handle, n: int) -> None:
    s = await handle.query(SignalMonitorWorkflow.state)
    assert s.counts.received >= n, s.counts


async def _status(handle, status: WorkflowExecutionStatus):
    desc = await handle.describe()
    assert desc.status == status, desc.status
    return desc


async def test_worker_killed_mid_analysis_is_replaced_and_nothing_is_written_twice(
    client, temporal_address, database_url, db
):
    row = await insert_signal(db, interval="15m", max_reanalyses=1)
    async with FakeLlmProxy(api_key=TEST_KEY) as proxy:
        # The first call hangs far beyond the kill; the retry (on the new worker) answers.
        proxy.script(row.signal_id, Answer.delay(120, Answer.wait(50)), Answer.wait(57), Answer.enter(88))
        env = await _worker_env(temporal_address, database_url, proxy)
        async with worker_process(env) as first:
            await _start_by_cli(env, row)
            await proxy.wait_for_requests(1, timeout=30, signal_id=row.signal_id)
            first.kill()
            await first.proc.wait()
        handle = client.get_workflow_handle_for(SignalMonitorWorkflow.run, row.workflow_id)
        # Nothing was recorded by the dead worker.
        assert await analyses(db, row.signal_id) == []
        async with worker_process(env):
            # The heartbeat timeout (10 s) gives the attempt up; the new worker retries it.
            await eventually(lambda: _analysed(handle, 1), timeout=60)
            await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
            result = await handle.result()
        assert result.status == "in_position", result
        rows = await analyses(db, row.signal_id)
        assert [r["analysis_number"] for r in rows] == [0, 1]
        assert [float(r["confidence"]) for r in rows] == [57, 88]
        assert await signal_status(db, row.signal_id) == "in_position"
        assert (
            await db.fetchval("SELECT count(*) FROM order_intents WHERE signal_id = $1", uuid.UUID(row.signal_id)) == 1
        )
        assert len(proxy.requests_for(row.signal_id)) == 3


async def _analysed(handle, n: int) -> None:
    s = await handle.query(SignalMonitorWorkflow.state)
    assert s.counts.analysed == n and not s.analysing, s


async def test_signal_monitor_start_is_idempotent_and_refuses_a_bad_id(client, temporal_address, database_url, db):
    row = await insert_signal(db, symbol="ETHUSDT", interval="1h")
    async with FakeLlmProxy(api_key=TEST_KEY) as proxy:
        env = await _worker_env(temporal_address, database_url, proxy)
        first = await signal_monitor(env, "start", row.signal_id)
        second = await signal_monitor(env, "start", row.workflow_id)
        bad = await signal_monitor(env, "start", "not-a-uuid", check=False)
    assert first.stdout.strip() == f"{row.workflow_id}: started"
    assert second.stdout.strip() == f"{row.workflow_id}: already running"
    assert bad.returncode == 2 and "not-a-uuid" not in bad.stdout and bad.stderr.startswith("error:"), bad
    desc = await client.get_workflow_handle(row.workflow_id).describe()
    assert desc.task_queue == env["SIGNAL_MONITOR_TASK_QUEUE"]
    assert await desc.static_summary() == f"ETHUSDT 1h · trader trader {row.trader_id[:8]}"
    await client.get_workflow_handle(row.workflow_id).terminate("test done")


async def test_unreachable_temporal_or_postgres_is_a_clear_error_without_secrets():
    env = command_env(
        "127.0.0.1:1",
        DATABASE_URL="postgresql://monitor:db-secret-pw@127.0.0.1:1/platform",
        LLM_PROXY_URL="http://127.0.0.1:1/functions/v1/llm-proxy",
        LLM_PROXY_KEY=TEST_KEY,
    )
    worker = await signal_monitor(env, "worker", check=False)
    migrate = await signal_monitor(env, "migrate", check=False)
    missing = await signal_monitor(command_env("127.0.0.1:1"), "worker", check=False)
    assert worker.returncode == 1 and "error: cannot connect to Temporal at 127.0.0.1:1" in worker.stderr, worker
    assert migrate.returncode == 1 and "error: cannot use PostgreSQL" in migrate.stderr, migrate
    assert missing.returncode == 2 and "DATABASE_URL is not set" in missing.stderr, missing
    for result in (worker, migrate, missing):
        assert "Traceback" not in result.stderr
        assert "db-secret-pw" not in result.stdout + result.stderr and TEST_KEY not in result.stdout + result.stderr
