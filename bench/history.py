"""Reading timings and costs out of workflow histories: the server's own clock, the same way for
the monitor and the floor.

`ActivityTaskStarted` carries the time the worker picked the task up (the server writes the event
when the attempt ends, stamped with its start): that is "the analysis started"."""

from __future__ import annotations

import json
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench.data import gather_limited

SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
STARTED = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
CONTINUED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
MARKER = EventType.EVENT_TYPE_MARKER_RECORDED
LOCAL_ACTIVITY_MARKER = "core_local_activity"


def ts(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


async def events(client: Client, workflow_id: str, run_id: str | None = None) -> list[HistoryEvent]:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return list(history.events)


async def runs(client: Client, workflow_id: str, first_run_id: str) -> list[list[HistoryEvent]]:
    """Every run of a workflow that continued-as-new, oldest first."""
    out: list[list[HistoryEvent]] = []
    run_id: str | None = first_run_id
    while run_id:
        evs = await events(client, workflow_id, run_id)
        out.append(evs)
        last = evs[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.event_type == CONTINUED
            else None
        )
    return out


def local_activity_type(event: HistoryEvent) -> str | None:
    """The activity type a local activity's marker records (None for any other event)."""
    if event.event_type != MARKER:
        return None
    attrs = event.marker_recorded_event_attributes
    if attrs.marker_name != LOCAL_ACTIVITY_MARKER or "data" not in attrs.details:
        return None
    try:
        return json.loads(attrs.details["data"].payloads[0].data).get("activity_type")
    except (ValueError, IndexError, AttributeError):
        return None


def size(evs: list[HistoryEvent]) -> int:
    return sum(e.ByteSize() for e in evs)


@dataclass
class CandleTiming:
    signaled_at: float  # server time of the WorkflowExecutionSignaled event
    started_at: float  # the per-candle activity (analysis / no-op) started
    # The candle's row is written: the activity that writes it completed (the monitor's
    # analyze_and_record_signal; a local activity's marker where the workflow wrote the row).
    stored_at: float


def candle_timings(evs: list[HistoryEvent], start_activity: str, end_activity: str) -> list[CandleTiming]:
    """One entry per `candle_closed` signal that led to an activity: the first `start_activity`
    scheduled after the signal, and the first `end_activity` completed after that (a regular
    activity's completion, or a local activity's marker)."""
    started = {e.activity_task_started_event_attributes.scheduled_event_id: e for e in evs if e.event_type == STARTED}
    completed = {
        e.activity_task_completed_event_attributes.scheduled_event_id: e for e in evs if e.event_type == COMPLETED
    }
    out: list[CandleTiming] = []
    pending_signal: HistoryEvent | None = None
    waiting_end: tuple[HistoryEvent, HistoryEvent] | None = None
    for e in evs:
        if e.event_type == SIGNALED and e.workflow_execution_signaled_event_attributes.signal_name == "candle_closed":
            if pending_signal is None and waiting_end is None:
                pending_signal = e
        elif e.event_type == SCHEDULED:
            name = e.activity_task_scheduled_event_attributes.activity_type.name
            if pending_signal is not None and name == start_activity and e.event_id in started:
                waiting_end = (pending_signal, started[e.event_id])
                pending_signal = None
            if waiting_end is not None and name == end_activity and e.event_id in completed:
                sig, start = waiting_end
                out.append(CandleTiming(ts(sig), ts(start), ts(completed[e.event_id])))
                waiting_end = None
        elif waiting_end is not None and local_activity_type(e) == end_activity:
            sig, start = waiting_end
            out.append(CandleTiming(ts(sig), ts(start), ts(e)))
            waiting_end = None
    return out


async def timings_of(
    client: Client, workflow_ids: list[str], start_activity: str, end_activity: str
) -> dict[str, list[CandleTiming]]:
    async def one(w: str) -> tuple[str, list[CandleTiming]]:
        return w, candle_timings(await events(client, w), start_activity, end_activity)

    return dict(await gather_limited((one(w) for w in workflow_ids), 16))
