"""Positions nobody manages (issue 26, case 6): a position workflow terminated with the stock
`temporal` CLI leaves its position open; the intake's sweep reports it, `signal-monitor positions`
shows it `unmanaged`, and `signal-monitor close` takes it over and closes it (one close order, no
second entry). A start over a position row already closed ends without an order or a paid call and
closes the signal."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from pathlib import Path

from temporalio.client import Client

from fakes.llm_proxy import ManageAnswer
from intake.position_reconcile import PositionReconciler
from tests.helpers.monitor import RECORD_HISTORIES_ENV, monitor_stack
from tests.helpers.positions import (
    candle,
    entered_signal,
    position_rows,
    result_of,
    save_histories,
    start_position,
    view,
)
from tests.helpers.processes import as_json, command_env, signal_monitor, temporal_cli
from tests.helpers.support import eventually, running_intake, signal_status
from workflows.common import names
from workflows.position.models import PositionResult
from workflows.position.workflow import PositionManagerWorkflow


async def _keep_histories(client: Client, wid: str) -> None:
    """Every run, for tests/test_positions_replay.py, when SIGNAL_MONITOR_RECORD_HISTORIES is set."""
    if RECORD_HISTORIES_ENV in os.environ:
        await save_histories(client.get_workflow_handle(wid), Path(os.environ[RECORD_HISTORIES_ENV]) / "positions")


async def _managed(handle, decisions: int):
    state = await view(handle)
    assert state.status == "open" and state.decisions == decisions and state.queued == 0, state
    return state


async def test_a_terminated_position_is_reported_shown_unmanaged_and_closed_by_close(
    client: Client, database_url, db, temporal_address, caplog
):
    env = command_env(temporal_address)
    row = await entered_signal(db, stop_loss=90.0, take_profits=[150.0])
    wid = names.position_workflow_id_for(row.signal_id)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script_position(row.signal_id, ManageAnswer.hold(), ManageAnswer.hold())
        handle = await start_position(client, row, m.task_queue)
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 101, 99, 100))
        await eventually(lambda: _managed(handle, 1), timeout=30)
        await temporal_cli(env, "workflow", "terminate", "--workflow-id", wid, "--reason", "hostile test")
        assert await signal_status(db, row.signal_id) == "in_position"

        # The intake's own sweep reports it (once), naming the way out.
        caplog.set_level(logging.WARNING, logger="signal_monitor.reconcile")
        async with running_intake(client, m.settings, sweep_every=0.5):

            async def reported() -> None:
                said = [r.getMessage() for r in caplog.records if "nobody checks its stop" in r.getMessage()]
                assert len(said) == 1 and wid in said[0] and "terminated" in said[0], said

            await eventually(reported, timeout=30)
            await asyncio.sleep(1.5)  # more sweeps: still said once
            await reported()
        # A reconciler that already said it says nothing more; a fresh one (another intake) says it once.
        reconciler = PositionReconciler(m.task_queue)
        assert await reconciler.sweep(client, db) == [wid] and await reconciler.sweep(client, db) == []
        listing = await signal_monitor(env, "positions", "--symbol", row.symbol, "--limit", "500")
        (line,) = [ln for ln in listing.stdout.splitlines() if ln.startswith(wid)]
        assert " unmanaged " in line and "Terminated" in line, line

        closed = await signal_monitor(env, "close", row.signal_id, "--reason", "desk takes it over")
        assert closed.returncode == 0, closed.stderr
        assert "closed: operator: closed by operator: desk takes it over" in closed.stdout, closed.stdout
        result = await client.get_workflow_handle(wid, result_type=PositionResult).result()
        # Closing it again is refused: the position ended through its own code.
        again = await signal_monitor(env, "close", row.signal_id, "--reason", "twice", check=False)
        assert again.returncode == 1 and "already ended" in again.stderr, again.stderr
        await _keep_histories(client, wid)
    assert result.status == "closed" and result.reason.startswith("operator"), result
    rows = await position_rows(db, row.signal_id)
    assert [o["metadata"]["kind"] for o in rows["orders"]] == ["entry", "close"]
    assert len(rows["decisions"]) == 1 and len(m.proxy.requests_for(row.signal_id)) == 1
    assert await signal_status(db, row.signal_id) == "closed"
    status = await db.fetchval("SELECT status FROM positions WHERE signal_id = $1", uuid.UUID(row.signal_id))
    assert status == "closed"


async def test_a_start_over_a_closed_position_ends_without_action(client: Client, database_url, db, temporal_address):
    env = command_env(temporal_address)
    row = await entered_signal(db, stop_loss=90.0, take_profits=[150.0])
    wid = names.position_workflow_id_for(row.signal_id)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script_position(row.signal_id, ManageAnswer.close())
        handle = await start_position(client, row, m.task_queue)
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 101, 99, 100))
        first = await result_of(handle)
        assert first.status == "closed"
        # The close filled but the signal never heard of it (a run that died before close_signal).
        await db.execute("UPDATE signals SET status = 'in_position' WHERE id = $1", uuid.UUID(row.signal_id))
        calls = len(m.proxy.requests_for(row.signal_id))
        await temporal_cli(
            env,
            *("workflow", "start", "--type", names.POSITION_WORKFLOW_TYPE, "--task-queue", m.task_queue),
            *("--workflow-id", wid, "--input", as_json({"signal_id": row.signal_id})),
        )
        second = await asyncio.wait_for(client.get_workflow_handle(wid, result_type=PositionResult).result(), 30)
        await _keep_histories(client, wid)
    assert second.status == "closed" and "was already closed: nothing to manage" in second.reason, second
    assert second.realized_pnl == first.realized_pnl
    rows = await position_rows(db, row.signal_id)
    assert [o["metadata"]["kind"] for o in rows["orders"]] == ["entry", "close"]
    assert len(m.proxy.requests_for(row.signal_id)) == calls
    assert await signal_status(db, row.signal_id) == "closed"
