"""Replay: the current PositionManagerWorkflow must reproduce every position history recorded from
real test runs (tests/histories/positions/, `SIGNAL_MONITOR_RECORD_HISTORIES=tests/histories pytest
tests/positions/test_lifecycle.py tests/positions/test_durable.py tests/positions/test_live_orders.py`;
`unpatched_<patch>_*` were recorded
by the code before that patch, `patched_<patch>_*` after it)."""

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
    future_closes,
    patch_markers,
    payload,
    record_kinds,
    replay,
    started_attributes,
)
from workflows.common.names import (
    MANAGE_AND_RECORD_POSITION_ACTIVITY,
    MANAGE_POSITION_ACTIVITY,
    POSITION_WORKFLOW_TYPE,
    RECORD_POSITION_DECISION_ACTIVITY,
)
from workflows.common.patches import (
    LIVE_RECONCILE_PATCH,
    POSITION_DUST_REMAINDER_PATCH,
    POSITION_FUTURE_CANDLES_PATCH,
    POSITION_HOLD_RECORDED_BY_CALL_PATCH,
    POSITION_LOCAL_RECORD_PATCH,
    POSITION_PRICE_MOVE_GATE_PATCH,
    POSITION_REAL_STATE_PATCH,
)
from workflows.position.models import PositionResult
from workflows.position.workflow import PositionManagerWorkflow

HISTORIES = sorted((HISTORIES_DIR / "positions").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    # The workflow checks its id against its input (position-<signal id>): replay under the real id.
    text = path.read_text()
    signal_id = payload(started_attributes(text)["input"])["signal_id"]
    return WorkflowHistory.from_json(f"position-{signal_id}", text)


def test_histories_cover_the_ends_and_messages():
    events = [e for p in HISTORIES for e in json.loads(p.read_text())["events"]]
    kinds = {e["eventType"].removeprefix("EVENT_TYPE_") for e in events}
    assert {
        "WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_EXECUTION_UPDATE_COMPLETED",
    } <= kinds
    reasons = {r["reason"].split(":")[0] for r in completed_results(HISTORIES)}
    assert {"stop_loss", "take_profit", "trailing_stop", "close_action", "operator"} <= reasons


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_position_history_replays(path: Path):
    await replay(PositionManagerWorkflow, _history(path))


def test_the_future_candles_patch_is_guarded_from_both_sides():
    """Closes from the future taken without the marker (recorded before the patch: the old path
    running positions replay) and refused with it (the new path)."""
    with_marker = [p for p in HISTORIES if POSITION_FUTURE_CANDLES_PATCH in patch_markers(p)]
    assert with_marker, f"no position history takes the {POSITION_FUTURE_CANDLES_PATCH!r} path"
    assert any(future_closes(p) and p not in with_marker for p in HISTORIES)
    assert all(future_closes(p) for p in with_marker)


def test_the_local_record_patch_is_guarded_from_both_sides():
    """record_position_decision as a regular activity without the marker (recorded before the
    patch: running positions replay that way) and as a local activity with it."""

    def kinds(p: Path) -> set[str]:
        return record_kinds(p, RECORD_POSITION_DECISION_ACTIVITY)

    assert any(kinds(p) == {"activity"} and POSITION_LOCAL_RECORD_PATCH not in patch_markers(p) for p in HISTORIES)
    assert any(kinds(p) == {"local"} and POSITION_LOCAL_RECORD_PATCH in patch_markers(p) for p in HISTORIES)
    # Nothing recorded before the patch runs the local activity, nothing after it the regular one.
    for p in HISTORIES:
        assert kinds(p) != {"activity", "local"}, p.name
        if "local" in kinds(p):
            assert POSITION_LOCAL_RECORD_PATCH in patch_markers(p), p.name


def test_the_hold_recorded_by_the_call_patch_is_guarded_from_both_sides():
    """manage_position then the local record_position_decision without the marker (recorded before
    the patch); manage_and_record_position with it, the workflow's local write left for the actions
    and for a hold whose write was given up."""
    after = [p for p in HISTORIES if POSITION_HOLD_RECORDED_BY_CALL_PATCH in patch_markers(p)]
    before = [p for p in HISTORIES if p not in after]
    assert any(MANAGE_POSITION_ACTIVITY in _activity_types(p) for p in before)
    assert all(MANAGE_AND_RECORD_POSITION_ACTIVITY not in _activity_types(p) for p in before)
    assert after and all(MANAGE_POSITION_ACTIVITY not in _activity_types(p) for p in after)
    assert all(MANAGE_AND_RECORD_POSITION_ACTIVITY in _activity_types(p) for p in after)
    assert any(record_kinds(p, RECORD_POSITION_DECISION_ACTIVITY) == {"local"} for p in after)
    assert any(record_kinds(p, RECORD_POSITION_DECISION_ACTIVITY) == set() for p in after)


def test_the_price_move_gate_is_guarded_from_both_sides():
    """Histories recorded before the management gate (no marker: every close went to the model)
    replay as they were; the gate's marker only in a history whose trader set it."""
    with_marker = [p for p in HISTORIES if POSITION_PRICE_MOVE_GATE_PATCH in patch_markers(p)]
    assert with_marker, f"no position history takes the {POSITION_PRICE_MOVE_GATE_PATCH!r} path"
    assert all(_has_setting(p) for p in with_marker)
    assert any(not _has_setting(p) for p in HISTORIES if p not in with_marker)


def _has_setting(path: Path) -> bool:
    """Whether a loaded PositionContext in the history sets management_min_move_pct."""
    for e in json.loads(path.read_text())["events"]:
        done = e.get("activityTaskCompletedEventAttributes")
        result = (done or {}).get("result", {})
        if "data" in (result.get("payloads") or [{}])[0]:  # not a null result
            value = payload(result)
            if isinstance(value, dict) and value.get("management_min_move_pct"):
                return True
    return False


def test_the_dust_remainder_patch_is_guarded_from_both_sides():
    """A reduce leaving dust kept open without the marker (recorded before the patch: a reduce
    order, then the model's close a candle later) and closed whole with it."""
    before = [p for p in HISTORIES if p.name.startswith("unpatched_reduce_dust_")]
    after = [p for p in HISTORIES if p.name.startswith("patched_reduce_dust_")]
    assert before and after
    assert all(POSITION_DUST_REMAINDER_PATCH not in patch_markers(p) for p in before)
    assert all(POSITION_DUST_REMAINDER_PATCH in patch_markers(p) for p in after)
    assert all(POSITION_DUST_REMAINDER_PATCH not in patch_markers(p) for p in HISTORIES if p not in after)


def test_the_real_state_patch_is_guarded_from_both_sides():
    """A start over an existing position row opened again without the marker (recorded before the
    patch: the ghost) and took the row as it is with it (taken over, or found closed)."""
    before = [p for p in HISTORIES if p.name.startswith("unpatched_real_state_")]
    after = [p for p in HISTORIES if POSITION_REAL_STATE_PATCH in patch_markers(p)]
    assert before and all(POSITION_REAL_STATE_PATCH not in patch_markers(p) for p in before)
    assert len(after) >= 2 and all(p.name.startswith("patched_real_state_") for p in after)


def _activity_types(path: Path) -> set[str]:
    return {
        e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for e in json.loads(path.read_text())["events"]
        if "activityTaskScheduledEventAttributes" in e
    }


def test_the_live_reconcile_patch_is_guarded_from_both_sides():
    """Live positions (recorded after the patch) reconcile with the exchange at every close under
    the marker; paper positions, before and after it, never reach the check: no marker, no call."""
    live = [p for p in HISTORIES if LIVE_RECONCILE_PATCH in patch_markers(p)]
    assert len(live) >= 3 and all("reconcile_position" in _activity_types(p) for p in live)
    paper = [p for p in HISTORIES if p not in live]
    assert paper and all("reconcile_position" not in _activity_types(p) for p in paper)


@workflow.defn(name=POSITION_WORKFLOW_TYPE, sandboxed=False)
class UnpatchedChange(PositionManagerWorkflow):
    @workflow.init
    def __init__(self, *args: object) -> None:
        super().__init__(*args)

    @workflow.run
    async def run(self, *args: object) -> PositionResult:
        await workflow.sleep(1)
        return await super().run(*args)


async def test_an_unpatched_change_is_caught():
    path = next(p for p in HISTORIES if "partial_take_profit" in p.name)
    with pytest.raises(NondeterminismError):
        await replay(UnpatchedChange, _history(path))
