"""Operator commands: status, list, cancel, abandon, reanalyze, set-limit, with their output and
exit codes (0 done, 1 not found / refused, 2 usage). Most run in-process through the same parser
and code as `signal-monitor`; the console script itself runs in a subprocess for the wiring."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import uuid
from pathlib import Path

from cli.operator import run_argv
from fakes.llm_proxy import Answer, Fault
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import eventually, insert_signal, kline, signal_status
from workflows.monitor.models import MonitorView
from workflows.monitor.workflow import SignalMonitorWorkflow

SCRIPT = str(Path(sys.executable).parent / "signal-monitor")


async def cli(client, *argv: str | int) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run_argv([str(a) for a in argv], client, out, err)
    return code, out.getvalue(), err.getvalue()


def field(out: str, name: str) -> str:
    """The value of one `name   value` line of `status`."""
    for line in out.splitlines():
        key, _, value = line.partition("  ")
        if key == name:
            return value.strip()
    raise AssertionError(f"no {name!r} line in:\n{out}")


async def idle_after(handle, analysed: int, failed: int = 0) -> MonitorView:
    state = await handle.query(SignalMonitorWorkflow.state)
    assert state.counts.analysed == analysed and state.counts.failed_analyses == failed, state
    assert not state.analysing
    return state


async def test_status_list_set_limit_abandon(client, database_url, db):
    row = await insert_signal(db, symbol="SOLUSDT", interval="1h", max_reanalyses=5)
    async with monitor_stack(client, database_url) as m:
        handle = await m.start(row.signal_id)
        await eventually(lambda: idle_after(handle, 1))

        code, out, err = await cli(client, "status", row.signal_id)
        assert code == 0, err
        assert row.workflow_id in out and "Running" in out
        assert field(out, "monitor") == "monitoring" and field(out, "signal") == "SOLUSDT 1h"
        assert field(out, "trader") == row.trader_id
        assert field(out, "analyses") == "1 (reanalyses 0/5)"
        assert "#0 continue (wait 55) on the signal's own price at " in out
        code, out, _ = await cli(client, "status", row.workflow_id, "--json")  # the workflow id works too
        doc = json.loads(out)
        assert code == 0 and doc["state"]["analyses"] == 1 and doc["search_attributes"]["SignalSymbol"] == "SOLUSDT"

        async def listed():
            code, out, _ = await cli(client, "list", "--trader", row.trader_id, "--symbol", "solusdt", "--running")
            assert code == 0 and row.workflow_id in out and "monitoring" in out and "1 monitor(s)" in out
            return out

        table = await eventually(listed)
        assert table.splitlines()[0].split()[:3] == ["WORKFLOW", "ID", "EXECUTION"]
        code, out, _ = await cli(client, "list", "--trader", row.trader_id, "--status", "expired")
        assert code == 0 and "no monitors match" in out
        assert (await cli(client, "list", "--symbol", "BTC' OR 1=1"))[0] == 2

        code, out, err = await cli(client, "set-limit", row.signal_id, 8)
        assert code == 0, err
        assert "reanalysis limit now 8 (0 done); status monitoring" in out
        code, _, err = await cli(client, "set-limit", row.signal_id, 5000)
        assert code == 1 and "limit must be between 0 and 1000" in err
        assert (await cli(client, "set-limit", row.signal_id, "many"))[0] == 2

        code, _, err = await cli(client, "reanalyze", row.signal_id)
        assert code == 1 and "nothing to reanalyse" in err

        assert (await cli(client, "abandon", row.signal_id))[0] == 2  # --reason is required
        code, out, err = await cli(client, "abandon", row.signal_id, "--reason", "exchange halted")
        assert code == 0, err
        assert out.strip() == f"{row.workflow_id}: expired: abandoned by operator: exchange halted"
        assert await signal_status(db, row.signal_id) == "expired"

        code, _, err = await cli(client, "abandon", row.signal_id, "--reason", "again")
        assert code == 1 and "has already ended (Completed, monitor status expired)" in err
        code, out, err = await cli(client, "status", row.signal_id)
        assert code == 0, err
        assert field(out, "execution") == "Completed"
        assert field(out, "result") == "expired: abandoned by operator: exchange halted"


async def test_reanalyze_after_a_failed_analysis_then_cancel(client, database_url, db):
    row = await insert_signal(db)
    async with monitor_stack(client, database_url) as m:
        # A non-retryable 400 fails the first analysis; the operator asks for it again.
        m.proxy.script(row.signal_id, Fault.status(400), Answer.wait(66))
        handle = await m.start(row.signal_id)
        await eventually(lambda: idle_after(handle, 0, failed=1))
        code, out, err = await cli(client, "status", row.signal_id)
        assert code == 0 and "failed analyses:" in out and "LlmProxyRequestRejected" in out

        code, out, err = await cli(client, "reanalyze", row.signal_id)
        assert code == 0, err
        assert "reanalysed; status monitoring; last decision #0 continue (wait 66)" in out

        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        await eventually(lambda: idle_after(handle, 2, failed=1))
        code, out, err = await cli(client, "cancel", row.signal_id)
        assert code == 0, err
        assert out.strip() == f"{row.workflow_id}: cancelled (signal status: cancelled)"
        assert await signal_status(db, row.signal_id) == "cancelled"

        code, _, err = await cli(client, "cancel", row.signal_id)
        assert code == 1 and "already ended" in err
        code, out, _ = await cli(client, "status", row.signal_id)
        assert code == 0 and field(out, "execution") == "Canceled"
        assert field(out, "monitor") == "cancelled" and field(out, "result") == "cancelled"
        for command in (["reanalyze"], ["set-limit", "3"]):
            code, _, err = await cli(client, command[0], row.signal_id, *command[1:])
            assert code == 1 and "has already ended" in err


async def test_not_found_usage_and_the_console_script(client, database_url, db, temporal_address):
    unknown = str(uuid.uuid4())
    for command in (["status"], ["cancel"], ["reanalyze"], ["set-limit", "2"], ["abandon", "--reason", "x"]):
        code, _, err = await cli(client, command[0], unknown, *command[1:])
        assert code == 1 and f"workflow signal-{unknown} not found" in err, (command, err)
    for bad in (
        ["status", "not-a-uuid"],
        ["status"],
        ["cancel", "signal-123"],
        ["list", "--limit", "0"],
        ["frobnicate"],
    ):
        assert (await cli(client, *bad))[0] == 2, bad

    row = await insert_signal(db, symbol="XRPUSDT")
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_address, "TEMPORAL_NAMESPACE": "default"}

    async def script(*argv: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            SCRIPT, *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None  # communicate() waited for the exit
        return proc.returncode, out.decode(), err.decode()

    async with monitor_stack(client, database_url) as m:
        handle = await m.start(row.signal_id)
        await eventually(lambda: idle_after(handle, 1))
        (code, out, err), (code_nf, _, err_nf), (code_usage, _, _) = await asyncio.gather(
            script("status", row.signal_id), script("status", unknown), script("set-limit", row.signal_id, "x")
        )
        assert code == 0, err
        assert "XRPUSDT 15m" in out and "monitoring" in out
        assert code_nf == 1 and "not found" in err_nf
        assert code_usage == 2
        code, out, err = await script("cancel", row.workflow_id)
        assert code == 0, err
        assert "cancelled" in out


async def test_the_same_actions_with_the_stock_temporal_cli(client, database_url, db, temporal_address):
    """What docs/operating.md shows for operators without `signal-monitor`: the names are the interface."""
    from tests.helpers.servers import binary

    row = await insert_signal(db, symbol="DOGEUSDT", max_reanalyses=5)
    wid = row.workflow_id

    async def temporal(*argv: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            binary("temporal"),
            *argv,
            "--address",
            temporal_address,
            "--namespace",
            "default",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None  # communicate() waited for the exit
        return proc.returncode, out.decode()

    async with monitor_stack(client, database_url) as m:
        handle = await m.start(row.signal_id)
        await eventually(lambda: idle_after(handle, 1))
        code, out = await temporal("workflow", "query", "-w", wid, "--name", "state", "-o", "json")
        assert code == 0 and '"status": "monitoring"' in out, out
        code, out = await temporal("workflow", "update", "execute", "-w", wid, "--name", "set_limit", "--input", "7")
        assert code == 0 and "max_reanalyses:7" in out, out
        code, out = await temporal("workflow", "update", "execute", "-w", wid, "--name", "reanalyze")
        assert code != 0 and "nothing to reanalyse" in out, out

        async def listed():
            code, out = await temporal(
                "workflow",
                "list",
                "--query",
                f"SignalSymbol = 'DOGEUSDT' AND TraderId = '{row.trader_id}' AND MonitorStatus = 'monitoring'",
            )
            assert code == 0 and wid in out, out

        await eventually(listed)
        code, out = await temporal(
            "workflow", "update", "execute", "-w", wid, "--name", "abandon", "--input", '{"reason": "halted"}'
        )
        assert code == 0 and "abandoned by operator: halted" in out, out
    assert await signal_status(db, row.signal_id) == "expired"
