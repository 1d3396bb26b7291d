"""The three checks every fault case ends with, shared by the fault cases (tests/faults/):

1. every close that should have been analysed was analysed exactly once (the replayed input
   compared with `signal_analyses`);
2. no workflow is stuck (each monitor is waiting for a candle, or ended with a reason);
3. no signal is left in a status that disagrees with its workflow.

`check_monitors` returns the figures (closes in, analyses stored, duplicates, lost, stuck) so the
bench's FAULTS.md table and the tests' assertions come from the same code."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError

from tests.helpers.processes import as_json, temporal_cli
from tests.helpers.support import eventually, implausible_klines
from workflows.common.candle_gate import MAX_CANDLE_PAYLOAD_BYTES
from workflows.monitor.models import TERMINAL_SIGNAL_STATUSES
from workflows.monitor.workflow import SignalMonitorWorkflow

# Set to a file: every checked case appends its figures there (bench/faults collects them).
RECORD_ENV = "SIGNAL_MONITOR_FAULTS_RECORD"


@dataclass
class Expectation:
    """What one monitor was fed. `closes` are candle open times (ms) replayed to it while it was
    meant to be listening; `superseded_allowed` is how many of them the product's own counters
    say were superseded by a newer close (the monitor only wants the newest candle), so a close
    missing for that reason is not lost -- as long as a newer close was analysed."""

    signal_id: str
    closes: set[int] = field(default_factory=set)
    superseded_allowed: int = 0
    # The monitor's first analysis (no candle) is expected unless its start was refused.
    initial: bool = True


@dataclass
class Figures:
    case: str
    closes_in: int = 0
    analyses_stored: int = 0
    duplicates: int = 0
    lost: int = 0
    stuck: int = 0
    superseded: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.lost or self.stuck or self.problems)

    def add(self, other: Figures) -> None:
        for name in ("closes_in", "analyses_stored", "duplicates", "lost", "stuck", "superseded"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems.extend(other.problems)

    def summary(self) -> str:
        return (
            f"{self.case}: closes in {self.closes_in}, analyses stored {self.analyses_stored}, "
            f"duplicates {self.duplicates}, lost {self.lost}, stuck {self.stuck}, superseded {self.superseded}"
            + (f"; problems: {self.problems}" if self.problems else "")
        )


def _ms(value) -> int:
    return int(value.timestamp() * 1000)


async def _analyses_figures(db: asyncpg.Connection, exp: Expectation, fig: Figures) -> int:
    rows = await db.fetch(
        "SELECT analysis_number, candle_open_time FROM signal_analyses WHERE signal_id = $1 ORDER BY analysis_number",
        uuid.UUID(exp.signal_id),
    )
    fig.analyses_stored += len(rows)
    numbers = [r["analysis_number"] for r in rows]
    if numbers != list(range(len(numbers))):
        fig.problems.append(f"{exp.signal_id}: analysis numbers not contiguous: {numbers}")
    times = [_ms(r["candle_open_time"]) for r in rows if r["candle_open_time"] is not None]
    initial = sum(1 for r in rows if r["candle_open_time"] is None)
    counted = Counter(times)
    fig.duplicates += sum(n - 1 for n in counted.values() if n > 1) + max(0, initial - 1)
    if exp.initial and rows and initial == 0:
        fig.problems.append(f"{exp.signal_id}: no first analysis")
    invented = sorted(set(times) - exp.closes)
    if invented:
        fig.problems.append(f"{exp.signal_id}: analysed candles never replayed to it: {invented}")
    fig.closes_in += len(exp.closes)
    missing = sorted(exp.closes - set(times))
    newest = max(times, default=None)
    # A missing close with a newer analysed one was superseded; one with none newer is lost.
    superseded = [t for t in missing if newest is not None and t < newest]
    lost = [t for t in missing if newest is None or t > newest]
    fig.superseded += len(superseded)
    fig.lost += len(lost) + max(0, len(superseded) - exp.superseded_allowed)
    if lost or len(superseded) > exp.superseded_allowed:
        fig.problems.append(f"{exp.signal_id}: lost {lost}, superseded {superseded} (allowed {exp.superseded_allowed})")
    return len(rows)


async def _workflow_figures(
    client: Client, db: asyncpg.Connection, exp: Expectation, stored: int, fig: Figures
) -> None:
    handle = client.get_workflow_handle_for(SignalMonitorWorkflow.run, f"signal-{exp.signal_id}")
    try:
        desc = await handle.describe()
    except RPCError as exc:
        fig.stuck += 1
        fig.problems.append(f"{exp.signal_id}: no workflow ({exc})")
        return
    db_status = await db.fetchval("SELECT status FROM signals WHERE id = $1", uuid.UUID(exp.signal_id))
    if desc.status == WorkflowExecutionStatus.RUNNING:
        state = await handle.query(SignalMonitorWorkflow.state)
        if state.analysing or state.pending_candle is not None or desc.raw_description.pending_activities:
            fig.stuck += 1
            fig.problems.append(f"{exp.signal_id}: running but not waiting for a candle: {state.status}")
        if state.analyses != stored:
            fig.problems.append(f"{exp.signal_id}: workflow counts {state.analyses} analyses, table has {stored}")
        in_progress = db_status is not None and db_status not in TERMINAL_SIGNAL_STATUSES
        if not in_progress or (state.analyses and db_status != state.status):
            fig.problems.append(f"{exp.signal_id}: running monitor ({state.status}) but signal is {db_status}")
    elif desc.status == WorkflowExecutionStatus.COMPLETED:
        result = await handle.result()
        if not result.reason:
            fig.stuck += 1
            fig.problems.append(f"{exp.signal_id}: ended without a reason")
        if db_status is not None and db_status != result.status:
            fig.problems.append(f"{exp.signal_id}: monitor ended {result.status} but signal is {db_status}")
        if result.analyses != stored:
            fig.problems.append(f"{exp.signal_id}: monitor counts {result.analyses} analyses, table has {stored}")
    elif desc.status == WorkflowExecutionStatus.CANCELED:
        if db_status is not None and db_status not in ("cancelled", *TERMINAL_SIGNAL_STATUSES):
            fig.problems.append(f"{exp.signal_id}: monitor cancelled but signal is {db_status}")
    elif desc.status == WorkflowExecutionStatus.FAILED:
        try:
            await handle.result()
        except WorkflowFailureError as err:
            reason = str(err.cause or err)
        else:
            reason = ""
        if not reason:
            fig.stuck += 1
            fig.problems.append(f"{exp.signal_id}: failed without a reason")
        if db_status is not None and db_status not in TERMINAL_SIGNAL_STATUSES:
            # The intake's reconciliation marks it within a sweep (intake/reconcile).
            fig.problems.append(f"{exp.signal_id}: monitor failed but signal is {db_status}")
    else:
        # Terminated or timed out: ended around the monitor's code. Not stuck once the signal row
        # says so (intake/reconcile); a row still in progress is exactly the stuck case.
        reason = await db.fetchval("SELECT monitor_reason FROM signals WHERE id = $1", uuid.UUID(exp.signal_id))
        if db_status is None or db_status not in TERMINAL_SIGNAL_STATUSES or not reason:
            fig.stuck += 1
            fig.problems.append(
                f"{exp.signal_id}: workflow {desc.status.name if desc.status is not None else 'with no status'} but signal is {db_status}"
            )


async def measure(client: Client, db: asyncpg.Connection, case: str, expected: Iterable[Expectation]) -> Figures:
    fig = Figures(case)
    for exp in expected:
        stored = await _analyses_figures(db, exp, fig)
        await _workflow_figures(client, db, exp, stored, fig)
    return fig


async def assert_three_checks(
    client: Client,
    db: asyncpg.Connection,
    case: str,
    expected: Iterable[Expectation] | Mapping[str, Iterable[int]],
    *,
    timeout: float = 60.0,
) -> Figures:
    """Polls (workers, bridges and retries are asynchronous) until the three checks hold, then
    records and returns the figures; fails with the last figures after `timeout`."""
    if isinstance(expected, Mapping):
        expected = [Expectation(signal_id, set(times)) for signal_id, times in expected.items()]
    expected = list(expected)
    last: list[Figures] = []

    async def holds() -> Figures:
        fig = await measure(client, db, case, expected)
        last[:] = [fig]
        assert fig.ok, fig.summary()
        return fig

    try:
        fig = await eventually(holds, timeout=timeout, interval=0.5)
    except AssertionError:
        if last:
            record(last[0])
        raise
    record(fig)
    return fig


def record(fig: Figures) -> None:
    path = os.environ.get(RECORD_ENV)
    if not path:
        return
    # The test that checked (pytest's own variable), so a case that never got here can be named.
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    entry = asdict(fig) | {"ok": fig.ok, "at": time.time(), "test": test}
    with Path(path).open("a") as out:
        out.write(json.dumps(entry) + "\n")


def kline_floor(ts: datetime) -> int:
    """Closes after this open time are the monitor's: a candle that closed before the signal was
    raised (T <= signal time) was seen by the first analysis."""
    return int(ts.timestamp() * 1000) - 59_999


def closes_between(times: Iterable[int], after_ms: int, until_ms: int | None = None) -> set[int]:
    """Open times of the closes in a window: after the signal's own candle, before an end."""
    return {t for t in times if t > after_ms and (until_ms is None or t <= until_ms)}


# --- no monitor wedged, no permanent error retried -------------------------------------------------

# Error types no retry can fix: one attempt each (their policies or `non_retryable` say so).
# Programming and data errors (a ValidationError, an OverflowError...) belong here too: a retry
# of the same input gives the same error.
PERMANENT_ERROR_TYPES = frozenset(
    {
        "InvalidSignalData",
        "PermanentDatabaseError",
        "SignalNotFound",
        "InvalidSignalId",
        "LlmProxyAuthError",
        "LlmProxyRequestRejected",
        "ValidationError",
        "TypeError",
        "ValueError",
        "KeyError",
        "AttributeError",
        "OverflowError",
        "DataError",
        "UnicodeEncodeError",
        "LocalProtocolError",
    }
)
# Workflow task failures the server itself causes in normal operation (a signal arriving while
# a task completes, a sticky queue reset): not a failing workflow task.
_BENIGN_TASK_FAILURES = frozenset(
    {
        "WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND",
        "WORKFLOW_TASK_FAILED_CAUSE_RESET_STICKY_TASK_QUEUE",
        "WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW",
        "WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND",
        "WORKFLOW_TASK_FAILED_CAUSE_FAILOVER_CLOSE_COMMAND",
    }
)


def _failure_type(failure) -> str:
    if failure.HasField("application_failure_info"):
        return failure.application_failure_info.type
    return ""


async def wedge_problems(client: Client, workflow_ids: Iterable[str]) -> list[str]:
    """What is wrong with these monitors, over every run of each: a running one whose workflow
    task is failing (describe's pending task on a retry, or WorkflowTaskFailed events in its
    history), or an activity that was attempted again after a permanent error."""
    from temporalio.api.enums.v1 import WorkflowTaskFailedCause

    found: list[str] = []
    for wid in dict.fromkeys(workflow_ids):
        runs = [wf async for wf in client.list_workflows(f"WorkflowId = '{wid}'")]
        if not runs:
            found.append(f"{wid}: no run found")
        for run in runs:
            handle = client.get_workflow_handle(wid, run_id=run.run_id)
            desc = await handle.describe()
            raw = desc.raw_description
            where = f"{wid} (run {run.run_id[-8:]})"
            if desc.status == WorkflowExecutionStatus.RUNNING:
                if raw.HasField("pending_workflow_task") and raw.pending_workflow_task.attempt > 1:
                    found.append(f"{where}: workflow task on attempt {raw.pending_workflow_task.attempt}")
                for activity in raw.pending_activities:
                    kind = _failure_type(activity.last_failure)
                    if activity.attempt > 1 and kind in PERMANENT_ERROR_TYPES:
                        found.append(
                            f"{where}: {activity.activity_type.name} on attempt {activity.attempt} after {kind}"
                        )
            async for event in handle.fetch_history_events():
                if event.HasField("workflow_task_failed_event_attributes"):
                    cause = WorkflowTaskFailedCause.Name(event.workflow_task_failed_event_attributes.cause)
                    if cause not in _BENIGN_TASK_FAILURES:
                        message = event.workflow_task_failed_event_attributes.failure.message[:200]
                        found.append(f"{where}: workflow task failed ({cause}): {message}")
                elif event.HasField("activity_task_started_event_attributes"):
                    started = event.activity_task_started_event_attributes
                    kind = _failure_type(started.last_failure)
                    if started.attempt > 1 and kind in PERMANENT_ERROR_TYPES:
                        found.append(f"{where}: an activity was attempted {started.attempt} times after {kind}")
    return found


async def assert_no_wedged_monitors(client: Client, workflow_ids: Iterable[str]) -> None:
    problems = await wedge_problems(client, workflow_ids)
    assert not problems, "\n".join(problems)


# --- hostile input for a long-lived workflow (tests/faults/test_hostile_workflow.py for the
# monitor, tests/positions/test_hostile.py for the position manager) -----------------------------

MINUTE = 60_000
Cli = Callable[..., Awaitable[subprocess.CompletedProcess]]  # `temporal workflow ARGS --workflow-id ID`


def workflow_cli(env: dict[str, str], workflow_id: str) -> Cli:
    """The stock `temporal workflow ARGS --workflow-id ID`, as an operator reaches one workflow."""

    async def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return await temporal_cli(env, "workflow", *args, "--workflow-id", workflow_id, check=check)

    return cli


async def workflow_events(client: Client, workflow_id: str, *, every_run: bool = False) -> list[str]:
    """The attribute kind (`workflow_task_failed_event_attributes`...) of every event of the
    workflow's latest run, or with `every_run` of all its runs (the test server suggests
    continue-as-new at 60 events)."""
    handle = client.get_workflow_handle(workflow_id)
    if not every_run:
        return [e.WhichOneof("attributes") or "" for e in (await handle.fetch_history()).events]
    latest = (await handle.describe()).run_id
    run_ids = [latest] + [r.run_id async for r in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    found: list[str] = []
    for run_id in dict.fromkeys(run_ids):
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        found += [e.WhichOneof("attributes") or "" for e in history.events]
    return found


def assert_no_task_failed(events: list[str]) -> None:
    assert "workflow_task_failed_event_attributes" not in events, "a workflow task failed"


async def send_hostile_input(
    cli: Cli, send_close: Callable[[dict], Awaitable[None]], good: dict, refused_updates: Iterable[list[str]]
) -> int:
    """`send_hostile_closes`, then one valid close carrying a large extra field through the SDK
    (`send_close`: the workflow's `candle_closed`), then `assert_refused_updates`. Returns the count
    `assert_hostile_counts` wants."""
    malformed = await send_hostile_closes(cli, good)
    await send_close({**good, "junk": "x" * (2 * MAX_CANDLE_PAYLOAD_BYTES)})
    await assert_refused_updates(cli, refused_updates)
    return malformed


async def send_hostile_closes(cli: Cli, good: dict) -> int:
    """`candle_closed` as an operator's CLI can send it wrong: no input, two inputs, each
    implausible kline, and two one-minute closes from the future (year 2100, a week ahead). Returns how many
    implausible klines were sent (`send_hostile_input` then sends one oversized close through the SDK)."""
    year_2100 = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)
    week_ahead = (int(datetime.now(UTC).timestamp() * 1000) + int(6.9 * 86_400_000)) // MINUTE * MINUTE
    malformed = implausible_klines(good, MINUTE)
    await cli("signal", "--name", "candle_closed")  # no input (the UI's empty "Send Signal")
    await cli("signal", "--name", "candle_closed", "--input", as_json(good), "--input", as_json(good))
    for payload in malformed:
        await cli("signal", "--name", "candle_closed", "--input", as_json(payload))
    for open_ms in (year_2100, week_ahead):
        future = {**good, "t": open_ms, "T": open_ms + MINUTE - 1}
        await cli("signal", "--name", "candle_closed", "--input", as_json(future))
    return len(malformed)


async def assert_refused_updates(cli: Cli, updates: Iterable[list[str]]) -> None:
    """Each `update execute ARGS` is refused; a query with junk arguments still answers."""
    for args in updates:
        refused = await cli("update", "execute", *args, check=False)
        assert refused.returncode != 0, (args, refused.stdout)
    answered = await cli("query", "--name", "state", "--input", "1", "--input", '"x"')
    assert '"signal_id"' in answered.stdout


async def assert_hostile_counts(idle: Awaitable[Any], malformed: int) -> None:
    """What `send_hostile_closes` and one oversized close leave in the counts of the workflow's
    state, once `idle` (its state query, checked idle) answers."""
    counts = (await idle).counts
    assert (counts.malformed, counts.future, counts.oversized) == (2 + malformed, 2, 1), counts
    assert counts.received == 2 + malformed + 2 + 1 and counts.stale == 0 and counts.duplicate == 0
