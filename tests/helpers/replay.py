"""Reading recorded workflow histories (tests/histories/) for the replay tests of both workflows:
which patch markers a history holds, which event kinds, how it ran an activity, and how many
closes it was sent that opened in the future; and replaying one."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.common.candles import INTERVAL_MS

HISTORIES_DIR = Path(__file__).resolve().parents[1] / "histories"


def patch_markers(path: Path) -> set[str]:
    found = set()
    for e in json.loads(path.read_text())["events"]:
        marker = e.get("markerRecordedEventAttributes")
        if marker and marker["markerName"] == "core_patch":
            found.add(payload(marker["details"]["patch-data"])["id"])
    return found


def event_kinds(path: Path) -> set[str]:
    return {e["eventType"].removeprefix("EVENT_TYPE_") for e in json.loads(path.read_text())["events"]}


def record_kinds(path: Path, activity: str = "record_analysis") -> set[str]:
    """How the history ran `activity`: as a regular activity, a local activity, or both."""
    found = set()
    for e in json.loads(path.read_text())["events"]:
        scheduled = e.get("activityTaskScheduledEventAttributes")
        if scheduled and scheduled["activityType"]["name"] == activity:
            found.add("activity")
        marker = e.get("markerRecordedEventAttributes")
        if marker and marker["markerName"] == "core_local_activity":
            data = payload(marker["details"]["data"])
            if data.get("activity_type") == activity:
                found.add("local")
    return found


def future_closes(path: Path) -> int:
    found = 0
    for e in json.loads(path.read_text())["events"]:
        signaled = e.get("workflowExecutionSignaledEventAttributes")
        payloads = (signaled or {}).get("input", {}).get("payloads", [])
        if len(payloads) != 1:
            continue
        k = json.loads(base64.b64decode(payloads[0]["data"]))
        if not isinstance(k, dict) or not isinstance(k.get("t"), int) or k.get("i") not in INTERVAL_MS:
            continue
        now_ms = datetime.fromisoformat(e["eventTime"].replace("Z", "+00:00")).timestamp() * 1000
        found += k["t"] > now_ms + (INTERVAL_MS[k["i"]] or 0)
    return found


def payload(payloads: dict) -> Any:
    """The first payload of a history's `payloads` block, decoded from its JSON."""
    return json.loads(base64.b64decode(payloads["payloads"][0]["data"]))


def started_attributes(text: str) -> dict:
    """The attributes of a history's start event (its `input`, when it has one, is a payloads block)."""
    return json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]


def completed_results(paths: Iterable[Path]) -> list[Any]:
    """The decoded results of the histories that completed."""
    return [
        payload(e["workflowExecutionCompletedEventAttributes"]["result"])
        for p in paths
        for e in json.loads(p.read_text())["events"]
        if "workflowExecutionCompletedEventAttributes" in e
    ]


async def replay(workflow_class: type, history: WorkflowHistory) -> None:
    """Replays `history` with `workflow_class` and the workers' data converter; raises
    `NondeterminismError` where the code would issue other commands than the history recorded."""
    replayer = Replayer(workflows=[workflow_class], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
