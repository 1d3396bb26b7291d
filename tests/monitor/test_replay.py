"""Replay: the current SignalMonitorWorkflow code must reproduce every history recorded from real
runs (tests/histories/, exported from the test suite's own runs with
`SIGNAL_MONITOR_RECORD_HISTORIES=tests/histories pytest ...`). A change to the workflow that running
executions would replay differently must go behind `workflow.patched(...)` or this test fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.workflow import NondeterminismError

from tests.helpers.replay import (
    HISTORIES_DIR,
    completed_results,
    event_kinds,
    future_closes,
    patch_markers,
    payload,
    record_kinds,
    replay,
    started_attributes,
)
from workflows.common import patches
from workflows.common.names import ANALYZE_AND_RECORD_SIGNAL, ANALYZE_SIGNAL, WORKFLOW_TYPE
from workflows.monitor.models import MonitorResult
from workflows.monitor.workflow import SignalMonitorWorkflow

HISTORIES = sorted(HISTORIES_DIR.glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    """The history under its own workflow id (the monitor refuses to run under another than
    `signal-<its input's signal_id>`), as the server recorded it in the start event."""
    text = path.read_text()
    started = started_attributes(text)
    if "workflowId" not in started:
        # The time-skipping test server leaves it out: the monitor's id is `signal-<its input's id>`.
        return WorkflowHistory.from_json(f"signal-{payload(started['input'])['signal_id']}", text)
    return WorkflowHistory.from_json(started["workflowId"], text)


def test_histories_cover_every_end_and_message():
    events = [e for p in HISTORIES for e in json.loads(p.read_text())["events"]]
    kinds = {e["eventType"].removeprefix("EVENT_TYPE_") for e in events}
    assert {
        "WORKFLOW_EXECUTION_CANCELED",
        "WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_EXECUTION_UPDATE_COMPLETED",
        "WORKFLOW_EXECUTION_FAILED",
    } <= kinds
    results = completed_results(HISTORIES)
    assert {"in_position", "expired", "failed"} <= {r["status"] for r in results}
    updates = {
        e["workflowExecutionUpdateAcceptedEventAttributes"]["acceptedRequest"]["input"]["name"]
        for e in events
        if "workflowExecutionUpdateAcceptedEventAttributes" in e
    }
    assert {"abandon", "set_limit", "reanalyze"} <= updates


def test_every_patch_is_guarded_from_both_sides():
    """Each patch has a history recorded by the code before it (no marker, the old path: running
    executions replay that way) and one recorded after it (the marker, the new path)."""
    markers = {p.name: patch_markers(p) for p in HISTORIES}
    monitor_patches = (
        patches.CANCEL_DURING_ACTIVITY_PATCH,
        patches.CONTINUE_AS_NEW_FIRST_PATCH,
        patches.FUTURE_CANDLES_PATCH,
        patches.PLATFORM_INITIAL_ANALYSIS_PATCH,
        patches.START_POSITION_PATCH,
        patches.ONE_DEADLINE_TIMER_PATCH,
        patches.LOCAL_RECORD_PATCH,
        patches.PRICE_MOVE_GATE_PATCH,
        patches.CANONICAL_SIGNAL_ID_PATCH,
        patches.ANALYSIS_RECORDS_ITS_ROW_PATCH,
    )
    for patch in monitor_patches:
        assert any(patch in found for found in markers.values()), f"no history takes the {patch!r} path"
    before = {name for name in markers if name.startswith("unpatched_")}
    assert any("cancel_during_activity" in name and not markers[name] for name in before)
    assert any("continue_as_new" in name and not markers[name] for name in before)
    assert any("start_position_on_enter" in name and not markers[name] for name in before)
    # Recorded by the code before the patch for a signal the platform analyses (initial_analysis
    # "platform" in its loaded context): such a running monitor keeps analysing #0 itself.
    assert any("platform_initial_analysis" in name and not markers[name] for name in before)
    # Before canonical-signal-id, a start under another spelling of the id ran (analysis #0);
    # after it, such a start fails at once with the marker.
    assert any(
        "canonical_signal_id" in name and patches.CANONICAL_SIGNAL_ID_PATCH not in markers[name] for name in before
    )
    assert all(
        patches.CANONICAL_SIGNAL_ID_PATCH not in found or "canonical_signal_id" in name
        for name, found in markers.items()
    )
    # Before the future-candles patch, closes opening later than now + one interval were taken.
    assert any(future_closes(p) and patches.FUTURE_CANDLES_PATCH not in markers[p.name] for p in HISTORIES)
    # Before one-deadline-timer, each candle cancelled the run's timer and started another; after
    # it, one timer per run, and a history where it fires (the signal expires on it).
    kinds = {p.name: event_kinds(p) for p in HISTORIES}
    assert any("TIMER_CANCELED" in kinds[n] and patches.ONE_DEADLINE_TIMER_PATCH not in markers[n] for n in markers)
    assert any("TIMER_FIRED" in kinds[n] and patches.ONE_DEADLINE_TIMER_PATCH in markers[n] for n in markers)
    # Before record-analysis-local-activity, record_analysis was a regular activity; after it, a
    # local activity's marker.
    assert any(record_kinds(p) == {"activity"} and patches.LOCAL_RECORD_PATCH not in markers[p.name] for p in HISTORIES)
    assert any(record_kinds(p) == {"local"} and patches.LOCAL_RECORD_PATCH in markers[p.name] for p in HISTORIES)
    # Before analysis-activity-records-its-row, analyze_signal then the local record_analysis; after
    # it, analyze_and_record_signal, and the local write only where that one was given up.
    both = patches.ANALYSIS_RECORDS_ITS_ROW_PATCH

    def asked(p: Path) -> set[str]:
        return record_kinds(p, ANALYZE_SIGNAL) | {f"+{k}" for k in record_kinds(p, ANALYZE_AND_RECORD_SIGNAL)}

    assert any(asked(p) == {"activity"} and both not in markers[p.name] for p in HISTORIES)
    after = [p for p in HISTORIES if both in markers[p.name]]
    assert any(record_kinds(p) == set() for p in after), "no history where every row is written by the analysis"
    assert any(record_kinds(p) == {"local"} for p in after), "no history where a row is left to the workflow"
    for p in HISTORIES:
        assert asked(p) <= ({"+activity"} if both in markers[p.name] else {"activity"}), p.name


def _loaded_contexts(path: Path) -> list[dict]:
    """The SignalContext results of load_signal in the history (as JSON)."""
    found = []
    for e in json.loads(path.read_text())["events"]:
        done = e.get("activityTaskCompletedEventAttributes")
        result = (done or {}).get("result", {})
        if "data" in (result.get("payloads") or [{}])[0]:  # not a null result
            value = payload(result)
            if isinstance(value, dict) and "max_reanalyses" in value and "signal_time" in value:
                found.append(value)
    return found


def test_the_price_move_gate_is_guarded_from_both_sides():
    """Before the gate: contexts without `min_price_move_pct` (recorded before it existed), whose
    closes were all analysed, replay without the marker; after it: the marker where a close is gated."""
    markers = {p.name: patch_markers(p) for p in HISTORIES}
    with_marker = [p for p in HISTORIES if patches.PRICE_MOVE_GATE_PATCH in markers[p.name]]
    assert with_marker and all(any(c.get("min_price_move_pct") for c in _loaded_contexts(p)) for p in with_marker), (
        "the gate's marker only where the trader set the gate"
    )
    before = [p for p in HISTORIES if p not in with_marker and _loaded_contexts(p)]
    assert before and all(not c.get("min_price_move_pct") for p in before for c in _loaded_contexts(p))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path):
    await replay(SignalMonitorWorkflow, _history(path))


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class UnpatchedChange(SignalMonitorWorkflow):
    """What a careless edit looks like: one more timer before loading the signal, no patch."""

    @workflow.init
    def __init__(self, *args: object) -> None:
        super().__init__(*args)

    @workflow.run
    async def run(self, *args: object) -> MonitorResult:
        await workflow.sleep(1)
        return await super().run(*args)


async def test_an_unpatched_change_is_caught():
    path = next(p for p in HISTORIES if p.name.startswith("test_wait_wait_enter"))
    with pytest.raises(NondeterminismError):
        await replay(UnpatchedChange, _history(path))
