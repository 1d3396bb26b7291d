"""What a monitor's close event says about its signal, for runs that ended without marking it.

A monitor marks its own signal whenever it ends through its code (decision, limit, duration,
failures, an operator's cancel). Temporal can also end it around that code: an operator's
`terminate`, the history size or count limit, a workflow failure, an execution timeout, a
cancellation that never ran the clean-up, the old run of a reset. This module turns such a close
event into the status and `monitor_reason` the signal row should get. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent

REASON_MAX = 500
# A workflow that fails because an activity failed wraps the activity's error in this message.
_WRAPPERS = ("Activity task failed", "Child Workflow execution failed")


@dataclass(frozen=True)
class SignalEnd:
    status: str  # `failed`, or `cancelled` for a cancellation
    reason: str


def failure_text(failure: Failure) -> str:
    """The innermost useful message of a failure chain, with its application error type."""
    chain = []
    current: Failure | None = failure
    while current is not None:
        chain.append(current)
        current = current.cause if current.HasField("cause") else None
    useful = [f for f in chain if f.message and f.message not in _WRAPPERS] or chain
    last = useful[-1]
    kind = last.application_failure_info.type if last.HasField("application_failure_info") else ""
    message = last.message or "no message"
    return f"{kind}: {message}" if kind else message


def signal_end(event: HistoryEvent) -> SignalEnd | None:
    """The signal's end for a close event that did not mark it; None for ends that did (or that
    leave the signal to a following run: completed, continued as new)."""
    if event.HasField("workflow_execution_terminated_event_attributes"):
        attrs = event.workflow_execution_terminated_event_attributes
        return _end("failed", "monitor workflow terminated", attrs.reason or "no reason given")
    if event.HasField("workflow_execution_failed_event_attributes"):
        return _end(
            "failed", "monitor workflow failed", failure_text(event.workflow_execution_failed_event_attributes.failure)
        )
    if event.HasField("workflow_execution_timed_out_event_attributes"):
        return _end("failed", "monitor workflow timed out", "its execution or run timeout passed")
    if event.HasField("workflow_execution_canceled_event_attributes"):
        return _end("cancelled", "monitor workflow cancelled", "the signal was not marked by the monitor")
    return None


def _end(status: str, what: str, detail: str) -> SignalEnd:
    detail = " ".join(detail.split())  # one line: it is shown in tables and logs
    return SignalEnd(status, f"{what}: {detail}"[:REASON_MAX])
