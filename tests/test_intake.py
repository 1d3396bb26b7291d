"""`signal-monitor intake`: a new `signals` row becomes a running monitor (live through
LISTEN/NOTIFY, or swept when the notification was missed); ineligible signals are left alone with
a reason; starting twice changes nothing; losing PostgreSQL loses no signal.

Each test has its own database: an intake sweeps every undecided signal it can see, and must not
start monitors for the signals other test modules insert into the session's database."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from fakes import free_port
from intake.service import APPLICATION_NAME, CHANNEL
from intake.starting import start_monitor
from runtime.config import Settings
from tests.helpers.monitor import make_settings, monitor_stack
from tests.helpers.servers import binary
from tests.helpers.support import eventually, insert_signal, running_intake, signal_status


def idle_settings(url: str) -> Settings:
    """Settings for an intake whose monitors nobody runs: the test looks only at what was started."""
    return make_settings(url, "http://127.0.0.1:9/unused", f"tq-intake-{uuid.uuid4().hex[:8]}")


async def marker(db: asyncpg.Connection, signal_id: str) -> str | None:
    return await db.fetchval("SELECT monitor_intake FROM signals WHERE id = $1::uuid", signal_id)


async def describe_or_none(client: Client, signal_id: str):
    try:
        return await client.get_workflow_handle(f"signal-{signal_id}").describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def runs_of(client: Client, signal_id: str) -> list[str]:
    return [wf.run_id async for wf in client.list_workflows(f"WorkflowId = 'signal-{signal_id}'")]


async def test_live_signal_becomes_a_running_monitor(client, own_db):
    url, db = own_db
    async with monitor_stack(client, url) as m, running_intake(client, m.settings):
        # Upper-case tier from old rows counts: the comparison is case-insensitive.
        row = await insert_signal(db, tier="ELITE", symbol="ETHUSDT", interval="5m")

        async def analysed():
            assert await signal_status(db, row.signal_id) == "monitoring"

        await eventually(analysed, timeout=30)
        assert await marker(db, row.signal_id) == "started"
        desc = await client.get_workflow_handle(row.workflow_id).describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
        assert desc.task_queue == m.task_queue
        assert "ETHUSDT 5m" in (await desc.static_summary() or "")
        assert len(m.proxy.requests_for(row.signal_id)) == 1


async def test_signals_inserted_while_down_or_unnotified_are_swept(client, own_db):
    url, db = own_db
    settings = idle_settings(url)
    while_down = await insert_signal(db)  # nobody listening: its notification is lost
    async with running_intake(client, settings, sweep_every=0.5):

        async def started(signal_id):
            assert await marker(db, signal_id) == "started"
            assert await describe_or_none(client, signal_id) is not None

        await eventually(lambda: started(while_down.signal_id))
        # A notification lost while the intake runs (here: the trigger is off) is found by the
        # periodic sweep, not only by the one at start.
        await db.execute("ALTER TABLE signals DISABLE TRIGGER signal_monitor_new_signal_notify")
        try:
            unnotified = await insert_signal(db)
        finally:
            await db.execute("ALTER TABLE signals ENABLE TRIGGER signal_monitor_new_signal_notify")
        await eventually(lambda: started(unnotified.signal_id), timeout=20)
    desc = await client.get_workflow_handle(unnotified.workflow_id).describe()
    assert desc.task_queue == settings.task_queue


async def test_ineligible_signals_are_left_alone_with_a_reason(client, own_db, caplog):
    url, db = own_db
    caplog.set_level(logging.INFO, logger="signal_monitor.intake")
    async with running_intake(client, idle_settings(url)):
        free = await insert_signal(db, tier="free")
        pro = await insert_signal(db, tier="Pro")
        manual = await insert_signal(db, auto_analyze=False)
        orphan = await insert_signal(db, with_trader=False)
        eligible = await insert_signal(db, tier="Elite")  # notifications are handled in order

        async def eligible_started():
            assert await marker(db, eligible.signal_id) == "started"

        await eventually(eligible_started)
    expected = {
        free.signal_id: "on the free tier, not elite",
        pro.signal_id: "on the pro tier, not elite",
        manual.signal_id: "auto_analyze_signals off",
        orphan.signal_id: "not found",
    }
    for signal_id, why in expected.items():
        mark = await marker(db, signal_id)
        assert mark is not None and mark.startswith("ineligible: ") and why in mark, (signal_id, mark)
        assert await describe_or_none(client, signal_id) is None
        assert await signal_status(db, signal_id) == "new"  # left alone
        logged = [r.getMessage() for r in caplog.records if signal_id in r.getMessage()]
        assert any("left alone" in line and why in line for line in logged), logged


async def test_starting_twice_changes_nothing(client, own_db):
    url, db = own_db
    settings = idle_settings(url)
    # Already started by an operator (`signal-monitor start`) before the intake saw it.
    running = await insert_signal(db)
    first = await start_monitor(client, running.signal_id, settings.task_queue)
    # A monitor that already ended (terminated here) while the signal still says `new`.
    ended = await insert_signal(db)
    gone = await start_monitor(client, ended.signal_id, settings.task_queue)
    await gone.handle.terminate("test: an ended monitor")
    async with running_intake(client, settings):

        async def both_decided():
            assert await marker(db, running.signal_id) == "started"
            assert await marker(db, ended.signal_id) == "already_ended"

        await eventually(both_decided)
        # Duplicate notifications (a replayed NOTIFY, two intakes) start nothing either.
        for _ in range(2):
            for row in (running, ended):
                await db.execute("SELECT pg_notify($1, $2)", CHANNEL, row.signal_id)
        sentinel = await insert_signal(db)
        await eventually(lambda: _started(db, sentinel.signal_id))

    async def one_run_each():
        assert await runs_of(client, running.signal_id) == [first.handle.result_run_id]
        assert len(await runs_of(client, ended.signal_id)) == 1

    await eventually(one_run_each)
    desc = await client.get_workflow_handle(ended.workflow_id).describe()
    assert desc.status == WorkflowExecutionStatus.TERMINATED


async def _started(db, signal_id):
    assert await marker(db, signal_id) == "started"


async def test_reconnects_after_losing_postgresql_and_misses_nothing(client, own_db):
    url, db = own_db
    settings = idle_settings(url)
    async with running_intake(client, settings):

        async def listener_pid() -> int:
            pid = await db.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
                APPLICATION_NAME,
            )
            assert pid is not None
            return pid

        old_pid = await eventually(listener_pid)
        assert await db.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        # Inserted at once, while the intake is backing off before it reconnects: nobody hears it.
        lost = await insert_signal(db)

        async def reconnected() -> int:
            pid = await listener_pid()
            assert pid != old_pid
            return pid

        await eventually(reconnected, timeout=30)
        await eventually(lambda: _started(db, lost.signal_id), timeout=30)
        # And it listens again: a live insert after the reconnection is started too.
        live = await insert_signal(db)
        await eventually(lambda: _started(db, live.signal_id))
    for row in (lost, live):
        assert await describe_or_none(client, row.signal_id) is not None


async def _temporal_server(port: int, db_file: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        binary("temporal"),
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--db-filename",
        str(db_file),
        "--log-level",
        "error",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def up() -> None:
        try:
            await Client.connect(f"127.0.0.1:{port}")
        except RuntimeError as exc:
            raise AssertionError(str(exc)) from None

    await eventually(up, timeout=60, interval=0.3)
    return proc


async def test_keeps_going_after_losing_temporal(own_db, monkeypatch, tmp_path, caplog):
    """Its own Temporal server, killed and restarted on the same port and state file: the signal
    that could not be started meanwhile is started once Temporal is back."""
    url, db = own_db
    port = free_port()
    db_file = tmp_path / "temporal.db"
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{port}")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    server = await _temporal_server(port, db_file)
    try:
        settings = idle_settings(url)
        async with running_intake(None, settings, sweep_every=1.0):  # the intake connects by itself
            before = await insert_signal(db)
            await eventually(lambda: _started(db, before.signal_id))
            server.kill()
            await server.wait()
            during = await insert_signal(db)

            def start_failed():
                assert any(
                    during.signal_id in r.getMessage() and "could not start its monitor" in r.getMessage()
                    for r in caplog.records
                )

            await eventually(_sync(start_failed), timeout=60)
            assert await marker(db, during.signal_id) is None  # not marked: a later sweep retries it
            server = await _temporal_server(port, db_file)
            await eventually(lambda: _started(db, during.signal_id), timeout=60)
        own = await Client.connect(f"127.0.0.1:{port}")
        for row in (before, during):
            assert await describe_or_none(own, row.signal_id) is not None
    finally:
        if server.returncode is None:
            server.terminate()
            await server.wait()


def _sync(check):
    async def run():
        check()

    return run
