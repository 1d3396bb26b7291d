"""Fault suite, hostile inputs on the database, environment and operator side (issue 11 cases 8-12
and the "also seen" rows): bad signal and trader rows end the signal `failed` at once with the
reason; a monitor Temporal ends around its code (terminate, failure, timeout, cancel without the
clean-up) has its signal row corrected by the intake's sweep, while a reset's running successor is
left alone; a key with a trailing newline is refused at start-up and, planted past that check,
reaches no history, query, CLI output or log; the CLI is quiet on a closed pipe, refuses
non-positive timeouts, fails on a monitor that does not answer, and touches only a monitor
started for its own signal. Every case ends with the three checks; the last test asserts that no
monitor of the module has a failing workflow task and no activity retried a permanent error.

Each test has its own database: the intake sweeps (and reconciles) everything it can see."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from cli.operator import run_argv
from fakes.llm_proxy import Answer
from tests.helpers.fault_checks import Expectation, assert_no_wedged_monitors, assert_three_checks, wedge_problems
from tests.helpers.monitor import TEST_KEY, failed_analyses, monitor_stack
from tests.helpers.processes import BIN, command_env, run_command, signal_monitor
from tests.helpers.support import SignalRow, eventually, insert_signal, kline, running_intake, signal_status
from workflows.monitor.models import MonitorResult, SignalMonitorInput
from workflows.monitor.workflow import SignalMonitorWorkflow

# Every monitor this module ran: the last test looks at all of them.
SEEN: list[str] = []
SCRIPT = str(BIN / "signal-monitor")
SWEEP = 0.5  # the intake's sweep period here: reconciliation is bounded by it (plus visibility lag)


async def _row(db: asyncpg.Connection, signal_id: str) -> tuple[str | None, str | None]:
    row = await db.fetchrow("SELECT status, monitor_reason FROM signals WHERE id = $1::uuid", signal_id)
    return (row["status"], row["monitor_reason"]) if row else (None, None)


async def _ends(handle) -> MonitorResult | WorkflowFailureError:
    """The monitor's end, whichever way it ends (a result, or the workflow's failure)."""
    try:
        return await asyncio.wait_for(handle.result(), 30)
    except WorkflowFailureError as err:
        return err


async def _intake_mark(db, signal_id: str, mark: str) -> None:
    assert await db.fetchval("SELECT monitor_intake FROM signals WHERE id = $1::uuid", signal_id) == mark


async def _marked(db, signal_id: str, status: str, fragment: str) -> str:
    got, reason = await _row(db, signal_id)
    assert got == status and reason and fragment in reason, (signal_id, got, reason)
    return reason


# --- cases 8, 9 and the "also seen" rows: bad data in the signal and trader rows ------------------

BAD_ROWS: dict[str, tuple[dict[str, Any], str | None, str]] = {
    # name: (insert_signal arguments, SQL applied after the insert (or None), expected reason)
    "NULL timestamp": ({}, 'UPDATE signals SET "timestamp" = NULL WHERE id = $1', "signal timestamp is NULL"),
    "infinity timestamp": ({}, "UPDATE signals SET \"timestamp\" = 'infinity' WHERE id = $1", "is infinity"),
    "-infinity timestamp": ({}, "UPDATE signals SET \"timestamp\" = '-infinity' WHERE id = $1", "is -infinity"),
    "year 200000 timestamp": ({}, "UPDATE signals SET \"timestamp\" = '200000-01-01+00' WHERE id = $1", "future"),
    "infinite duration": (
        {},
        "UPDATE traders SET max_monitoring_duration = 'infinity' WHERE id = (SELECT trader_id FROM signals WHERE id = $1)",
        "max_monitoring_duration inf is outside",
    ),
    "NaN price": ({}, "UPDATE signals SET price_at_signal = 'NaN' WHERE id = $1", "price_at_signal is not a finite"),
    "Infinity price": ({}, "UPDATE signals SET volume_at_signal = 'Infinity' WHERE id = $1", "volume_at_signal"),
    # These are bad from their INSERT on, so the intake itself starts their monitors
    # (monitor_intake = 'started'): the stuck case of item 8 unless the monitor ends them.
    "3 MB strategy": ({"strategy": {"instructions": "x" * 3_000_000}}, None, "trader strategy is 3000"),
    "9000 years duration": ({"max_monitoring_duration": timedelta(days=9000 * 365)}, None, "max_monitoring_duration"),
    "a year in the future": ({"timestamp": datetime.now(UTC) + timedelta(days=365)}, None, "in the future"),
    "max_reanalyses 10^9": ({"max_reanalyses": 10**9}, None, "max_reanalyses 1000000000 is outside 0..1000"),
    "symbol btcuſdt": ({"symbol": "btcu\u017fdt"}, None, "is not ASCII"),
}


async def test_bad_signal_and_trader_rows_fail_the_signal_at_once(client, own_db):
    url, db = own_db
    rows: dict[str, SignalRow] = {}
    for name, (kwargs, _sql, _why) in BAD_ROWS.items():
        # Rows changed after their INSERT are hidden from the intake until then (auto_analyze off).
        rows[name] = await insert_signal(db, interval="1m", auto_analyze=_sql is None, **kwargs)
    async with monitor_stack(client, url) as m, running_intake(client, m.settings, sweep_every=SWEEP):
        for name, (_kwargs, sql, _why) in BAD_ROWS.items():
            if sql is not None:
                await db.execute(sql, uuid.UUID(rows[name].signal_id))
                await m.start(rows[name].signal_id)
        for name, (_kwargs, sql, why) in BAD_ROWS.items():
            row = rows[name]
            SEEN.append(row.workflow_id)
            # Bounded: the monitor ends it, or (a failed workflow) the next sweep does.
            await eventually(partial(_marked, db, row.signal_id, "failed", why), timeout=30)
            ended = await _ends(client.get_workflow_handle_for(SignalMonitorWorkflow.run, row.workflow_id))
            if sql is None:
                await eventually(partial(_intake_mark, db, row.signal_id, "started"), timeout=10)
            if isinstance(ended, MonitorResult):
                assert ended.status == "failed" and why in ended.reason, (name, ended)
        fig = await assert_three_checks(
            client,
            db,
            "hostile rows: NULL/infinite/future/year-200000 timestamps, NaN/Infinity prices, 3 MB strategy, "
            "9000-year and infinite durations, max_reanalyses 10^9, non-ASCII symbol",
            [Expectation(r.signal_id, set(), initial=False) for r in rows.values()],
        )
        assert not [r for r in m.proxy.requests if r.signal_id in {x.signal_id for x in rows.values()}]
    assert fig.analyses_stored == 0


# --- case 11: monitors ended around their code ------------------------------------------------------


@workflow.defn(name="SignalMonitorWorkflow")
class _OtherCode:
    """Stands in for a monitor whose code ends without marking its signal (older code, a reset
    to a point before the clean-up, a bug): fails, or waits and takes a cancel as is."""

    @workflow.run
    async def run(self, input: dict) -> None:
        mode = input.get("mode")
        if mode == "fail":
            raise ApplicationError("the monitor hit a bug", type="Bug", non_retryable=True)
        if mode == "crash":  # not an ApplicationError: the workflow task fails, again and again
            raise RuntimeError("workflow code crashed")
        if mode == "retry-permanent":
            await workflow.execute_activity(
                _permanent_but_retried,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=3),
            )
        await workflow.wait_condition(lambda: False)


@activity.defn
async def _permanent_but_retried() -> None:
    raise ApplicationError("bad row", type="InvalidSignalData")  # retryable by mistake


async def _idle(handle, analysed: int) -> None:
    state = await handle.query(SignalMonitorWorkflow.state)
    assert state.counts.analysed == analysed and not state.analysing, state.counts


async def test_rows_of_monitors_ended_around_their_code_are_corrected(client, own_db):
    url, db = own_db
    names = ("terminated", "timed out", "reset", "failed", "cancelled")
    # Only the terminated one is the intake's (auto-analysed, `started`); the intake would cancel a
    # `started` monitor whose trader has auto-analysis off (leaving, docs/rollout.md).
    rows = {n: await insert_signal(db, interval="1m", max_reanalyses=10, auto_analyze=n == "terminated") for n in names}
    # The intake had started the terminated one (`started`): it must not stay `new`/`monitoring`.
    await db.execute("UPDATE signals SET monitor_intake = 'started' WHERE id = $1::uuid", rows["terminated"].signal_id)
    SEEN.extend(r.workflow_id for r in rows.values())
    foreign = await insert_signal(db, interval="1m", auto_analyze=False)
    async with monitor_stack(client, url) as m, running_intake(client, m.settings, sweep_every=SWEEP):
        terminated = await m.start(rows["terminated"].signal_id)
        await m.start(rows["reset"].signal_id)
        # Not bound to a run: after the reset, the successor is the one that counts.
        reset = client.get_workflow_handle_for(SignalMonitorWorkflow.run, rows["reset"].workflow_id)
        timed = await client.start_workflow(
            SignalMonitorWorkflow.run,
            SignalMonitorInput(signal_id=rows["timed out"].signal_id),
            id=rows["timed out"].workflow_id,
            task_queue=m.task_queue,
            execution_timeout=timedelta(seconds=6),
        )
        m.started.append(timed)
        await asyncio.gather(*(eventually(partial(_idle, h, 1), timeout=30) for h in (terminated, reset)))
        await terminated.terminate(reason="operator: monitor looked wedged")

        # A reset ends the current run (Terminated) and runs a successor: that one is the monitor.
        completed = [
            e.event_id
            async for e in reset.fetch_history_events()
            if e.HasField("workflow_task_completed_event_attributes")
        ]
        first_task_done = completed[0]
        desc = await reset.describe()
        await client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=reset.id, run_id=desc.run_id),
                reason="operator reset",
                workflow_task_finish_event_id=first_task_done,
                request_id=str(uuid.uuid4()),
            )
        )

        # Other code on this task queue's name: a failure and a cancel that never mark the signal.
        async with Worker(
            client,
            task_queue=m.task_queue + "-other",
            workflows=[_OtherCode],
            activities=[_permanent_but_retried],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            for name, mode in (("failed", "fail"), ("cancelled", "wait")):
                await client.start_workflow(
                    "SignalMonitorWorkflow",
                    {"signal_id": rows[name].signal_id, "mode": mode},
                    id=rows[name].workflow_id,
                    task_queue=m.task_queue + "-other",
                )
            # signal-<C> started by hand for signal B, failed: neither C's nor B's row is touched.
            await client.start_workflow(
                "SignalMonitorWorkflow",
                {"signal_id": rows["failed"].signal_id, "mode": "fail"},
                id=foreign.workflow_id,
                task_queue=m.task_queue + "-other",
            )
            other = m.settings.model_copy(update={"task_queue": m.task_queue + "-other"})
            async with running_intake(client, other, sweep_every=SWEEP):
                await client.get_workflow_handle(rows["cancelled"].workflow_id).cancel()
                await eventually(lambda: _marked(db, rows["failed"].signal_id, "failed", "Bug: the monitor hit"), 30)
                await eventually(lambda: _marked(db, rows["cancelled"].signal_id, "cancelled", "cancelled"), 30)
                foreign_end = await _ends(client.get_workflow_handle(foreign.workflow_id))
                assert isinstance(foreign_end, WorkflowFailureError)
                await asyncio.sleep(4 * SWEEP)  # sweeps that saw it failed
                assert await _row(db, foreign.signal_id) == ("new", None)

        await eventually(
            lambda: _marked(db, rows["terminated"].signal_id, "failed", "terminated: operator: monitor looked wedged"),
            timeout=30,
        )
        await eventually(lambda: _marked(db, rows["timed out"].signal_id, "failed", "monitor workflow timed out"), 30)
        # Sweeps have seen the reset's terminated run: its running successor keeps the signal.
        await eventually(lambda: _idle(reset, 1), timeout=30)
        close = kline(rows["reset"], 1)  # the successor goes on monitoring: this close is analysed
        await reset.signal(SignalMonitorWorkflow.candle_closed, close)
        await eventually(lambda: _idle(reset, 2), timeout=30)
        await asyncio.sleep(4 * SWEEP)
        assert await signal_status(db, rows["reset"].signal_id) == "monitoring"
        assert (await reset.describe()).status == WorkflowExecutionStatus.RUNNING
        fig = await assert_three_checks(
            client,
            db,
            "ended around the monitor: terminated, timed out, failed, cancelled without clean-up, reset",
            [
                Expectation(
                    r.signal_id,
                    {close["t"]} if n == "reset" else set(),
                    initial=n in ("terminated", "timed out", "reset"),
                )
                for n, r in rows.items()
            ],
        )
        await reset.cancel()
        await eventually(lambda: _marked(db, rows["reset"].signal_id, "cancelled", "cancelled by operator"), 30)
    assert fig.duplicates == 0 and fig.analyses_stored in (3, 4)  # the timed-out one may end first


async def test_the_wedge_check_catches_a_failing_task_and_a_retried_permanent_error(client):
    """The last test's check can fail: a workflow task failing in a loop, and an activity
    attempted three times after InvalidSignalData, are both reported."""
    queue = f"tq-wedge-{uuid.uuid4().hex[:8]}"
    ids = {mode: f"signal-{uuid.uuid4()}" for mode in ("crash", "retry-permanent")}
    async with Worker(
        client,
        task_queue=queue,
        workflows=[_OtherCode],
        activities=[_permanent_but_retried],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        for mode, wid in ids.items():
            await client.start_workflow(
                "SignalMonitorWorkflow",
                {"signal_id": wid.removeprefix("signal-"), "mode": mode},
                id=wid,
                task_queue=queue,
            )

        async def both_caught() -> list[str]:
            found = await wedge_problems(client, ids.values())
            assert any(ids["crash"] in p and "workflow task failed" in p for p in found), found
            assert any(ids["retry-permanent"] in p and "attempted 3 times after InvalidSignalData" in p for p in found)
            return found

        await eventually(both_caught, timeout=30)
    for wid in ids.values():
        with contextlib.suppress(RPCError):  # the retried one failed after its attempts
            await client.get_workflow_handle(wid).terminate(reason="test over")


# --- case 10: a key with a trailing newline ---------------------------------------------------------


async def test_a_key_with_a_newline_is_refused_and_never_shown(client, own_db, temporal_address, caplog):
    url, db = own_db
    key = "sk-llm-" + uuid.uuid4().hex
    # At start-up: the worker refuses it (usage error) without printing it; so does any command
    # given a Temporal API key with a stray space.
    env = command_env(temporal_address, DATABASE_URL=url, LLM_PROXY_URL="http://127.0.0.1:9/", LLM_PROXY_KEY=key + "\n")
    refused = await run_command("signal-monitor", env, "worker", check=False)
    assert refused.returncode == 2 and "LLM_PROXY_KEY contains whitespace or control characters" in refused.stderr
    spaced = command_env(temporal_address, TEMPORAL_API_KEY=key + " ")
    status = await signal_monitor(spaced, "status", str(uuid.uuid4()), check=False)
    assert status.returncode == 2 and "Temporal API key" in status.stderr
    shown = refused.stdout + refused.stderr + status.stdout + status.stderr

    # Planted past that check (a worker built in-process with it): the llm-proxy request cannot be
    # sent, the analysis fails at once (no retry helps), and the error is everywhere redacted.
    row = await insert_signal(db, interval="1m", max_reanalyses=10, auto_analyze=False)
    SEEN.append(row.workflow_id)
    async with monitor_stack(client, url, llm_proxy_key=TEST_KEY + "\n") as m:
        handle = await m.start(row.signal_id)

        state = await eventually(lambda: failed_analyses(handle, 1), timeout=30)
        assert "LlmProxyRequestRejected" in state.failures[0].error and "***" in state.failures[0].error
        code, out, err = await _cli(client, "status", row.signal_id)
        assert code == 0 and "failed analyses" in out
        history = (await handle.fetch_history()).to_json()
        await handle.cancel()
        await eventually(lambda: _marked(db, row.signal_id, "cancelled", "cancelled"), 30)
        await assert_three_checks(
            client,
            db,
            "key with a trailing newline: refused at start-up; planted, redacted everywhere",
            [Expectation(row.signal_id, set())],
        )
    everything = {
        "start-up output": shown,
        "history": history,
        "state query": state.model_dump_json(),
        "CLI output": out + err,
        # Ours: the fake llm-proxy's own server (aiohttp) may log what it was sent, as llm-proxy may.
        "logs": "\n".join(logging.Formatter().format(r) for r in caplog.records if not r.name.startswith("aiohttp")),
    }
    assert "Illegal header value" in history or "could not be sent" in history
    for where, text in everything.items():
        for secret in (key, TEST_KEY):
            for form in (secret, secret[-12:], json.dumps(secret)[1:-1], repr(secret.encode())[2:-1]):
                if form in text:
                    pytest.fail(f"a form of the key appears in the {where}")  # never print it


# --- case 12: the CLI -------------------------------------------------------------------------------


async def _cli(client, *argv: str) -> tuple[int, str, str]:
    import io

    out, err = io.StringIO(), io.StringIO()
    code = await run_argv([str(a) for a in argv], client, out, err)
    return code, out.getvalue(), err.getvalue()


async def test_cli_pipes_timeouts_unanswered_queries_and_foreign_monitors(client, own_db, temporal_address):
    url, db = own_db
    row = await insert_signal(db, interval="1m", max_reanalyses=10, auto_analyze=False)
    other = await insert_signal(db, interval="1m", max_reanalyses=10, auto_analyze=False)
    SEEN.append(row.workflow_id)
    env = command_env(temporal_address, DATABASE_URL=url)
    nobody = f"tq-nobody-{uuid.uuid4().hex[:8]}"  # a task queue no worker polls
    async with monitor_stack(client, url) as m:
        m.proxy.script(row.signal_id, Answer.wait(55))
        handle = await m.start(row.signal_id)
        await eventually(lambda: _idle(handle, 1), timeout=30)
        # A reader that leaves early: quiet, and the command's own exit code.
        for reader in ("head -1", "true", "head -c 10"):
            for args in (f"status {row.signal_id}", f"list --trader {row.trader_id}", f"status {row.signal_id} --json"):
                script = f'{SCRIPT} {args} | {reader} >/dev/null; echo "exit=${{PIPESTATUS[0]}}"'
                proc = await asyncio.create_subprocess_exec(
                    "bash", "-c", script, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                out_b, err_b = await proc.communicate()
                said = err_b.decode()
                assert out_b.decode().strip() == "exit=0", (script, out_b, said)
                assert "Broken pipe" not in said and "Traceback" not in said and "error" not in said, (script, said)
        # Timeouts must be positive and finite (cancel --wait may be 0: do not wait).
        for argv in (
            ["abandon", row.signal_id, "--reason", "x", "--timeout", "-5"],
            ["reanalyze", row.signal_id, "--timeout", "0"],
            ["set-limit", row.signal_id, "7", "--timeout", "nan"],
            ["status", row.signal_id, "--timeout", "inf"],
            ["cancel", row.signal_id, "--wait", "-1"],
        ):
            code, _out, err = await _cli(client, *argv)
            assert code == 2, (argv, err)  # argparse's own usage error
        assert await signal_status(db, row.signal_id) == "monitoring"

        # A monitor nobody answers for (its task queue has no worker): status is not a success.
        stuck_id = str(uuid.uuid4())
        stuck = await client.start_workflow(
            "SignalMonitorWorkflow", {"signal_id": stuck_id}, id=f"signal-{stuck_id}", task_queue=nobody
        )
        code, out, err = await _cli(client, "status", stuck_id, "--timeout", "2")
        assert code == 1 and "Running" in out and "did not answer its state query" in err, (out, err)

        # signal-<C> started by hand for signal B: the CLI refuses to act on it; B is untouched.
        foreign_id = str(uuid.uuid4())
        foreign = await client.start_workflow(
            "SignalMonitorWorkflow", {"signal_id": other.signal_id}, id=f"signal-{foreign_id}", task_queue=nobody
        )
        for argv in (["cancel", foreign_id], ["abandon", foreign_id, "--reason", "x"], ["set-limit", foreign_id, "3"]):
            code, _out, err = await _cli(client, *argv)
            assert code == 1 and "is not this signal's monitor" in err and other.signal_id in err, err
        assert (await foreign.describe()).status == WorkflowExecutionStatus.RUNNING
        assert not [
            e
            async for e in foreign.fetch_history_events()
            if e.HasField("workflow_execution_cancel_requested_event_attributes")
        ]
        assert await signal_status(db, other.signal_id) == "new"
        for h in (stuck, foreign):
            await h.terminate("test over")
        code, out, err = await _cli(client, "cancel", row.signal_id)
        assert code == 0 and "cancelled" in out, err
        await assert_three_checks(
            client,
            db,
            "CLI: closed pipes, bad timeouts, unanswered query, foreign monitor",
            [Expectation(row.signal_id, set())],
        )


# --- after every case ---------------------------------------------------------------------------------


async def test_no_monitor_has_a_failing_workflow_task_or_retried_a_permanent_error(client):
    assert SEEN, "run with the cases above"
    await assert_no_wedged_monitors(client, SEEN)


def test_the_bad_rows_cover_the_issue():
    assert len(BAD_ROWS) == 12 and all(why for _k, _s, why in BAD_ROWS.values())
    assert math.isfinite(SWEEP)
