"""Reading recorded workflow histories (tests/histories/) for the replay tests of both workflows:
which patch markers a history holds, which event kinds, how it ran an activity, and how many
closes it was sent that opened in the future."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path

from workflows.common.candles import INTERVAL_MS

HISTORIES_DIR = Path(__file__).resolve().parents[1] / "histories"


def patch_markers(path: Path) -> set[str]:
    found = set()
    for e in json.loads(path.read_text())["events"]:
        marker = e.get("markerRecordedEventAttributes")
        if marker and marker["markerName"] == "core_patch":
            data = marker["details"]["patch-data"]["payloads"][0]["data"]
            found.add(json.loads(base64.b64decode(data))["id"])
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
            data = json.loads(base64.b64decode(marker["details"]["data"]["payloads"][0]["data"]))
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
