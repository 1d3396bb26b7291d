"""From a monitor's close event to its signal's status and reason (intake/monitor_ends)."""

from __future__ import annotations

from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.history.v1 import (
    HistoryEvent,
    WorkflowExecutionCanceledEventAttributes,
    WorkflowExecutionCompletedEventAttributes,
    WorkflowExecutionContinuedAsNewEventAttributes,
    WorkflowExecutionFailedEventAttributes,
    WorkflowExecutionTerminatedEventAttributes,
    WorkflowExecutionTimedOutEventAttributes,
)

from intake.monitor_ends import REASON_MAX, SignalEnd, failure_text, signal_end


def test_terminated_names_the_operator_or_server_reason():
    event = HistoryEvent(
        workflow_execution_terminated_event_attributes=WorkflowExecutionTerminatedEventAttributes(
            reason="Workflow history size exceeds limit.\n"
        )
    )
    assert signal_end(event) == SignalEnd("failed", "monitor workflow terminated: Workflow history size exceeds limit.")
    silent = HistoryEvent(workflow_execution_terminated_event_attributes=WorkflowExecutionTerminatedEventAttributes())
    assert signal_end(silent) == SignalEnd("failed", "monitor workflow terminated: no reason given")


def test_failed_gives_the_innermost_error_with_its_type():
    inner = Failure(
        message="signal 1 cannot be monitored: signal timestamp is NULL",
        application_failure_info=ApplicationFailureInfo(type="InvalidSignalData", non_retryable=True),
    )
    wrapped = Failure(message="Activity task failed", cause=inner)
    event = HistoryEvent(
        workflow_execution_failed_event_attributes=WorkflowExecutionFailedEventAttributes(failure=wrapped)
    )
    assert signal_end(event) == SignalEnd(
        "failed", "monitor workflow failed: InvalidSignalData: signal 1 cannot be monitored: signal timestamp is NULL"
    )
    assert failure_text(Failure(message="boom")) == "boom"
    assert failure_text(Failure()) == "no message"


def test_timed_out_and_cancelled():
    timed_out = HistoryEvent(workflow_execution_timed_out_event_attributes=WorkflowExecutionTimedOutEventAttributes())
    end = signal_end(timed_out)
    assert end is not None and end.status == "failed"
    assert end.reason.startswith("monitor workflow timed out")
    cancelled = HistoryEvent(workflow_execution_canceled_event_attributes=WorkflowExecutionCanceledEventAttributes())
    end = signal_end(cancelled)
    assert end is not None and end.status == "cancelled"


def test_ends_through_the_monitors_code_are_left_alone():
    done = HistoryEvent(workflow_execution_completed_event_attributes=WorkflowExecutionCompletedEventAttributes())
    carried = HistoryEvent(
        workflow_execution_continued_as_new_event_attributes=WorkflowExecutionContinuedAsNewEventAttributes()
    )
    assert signal_end(done) is None and signal_end(carried) is None


def test_a_long_reason_is_bounded():
    event = HistoryEvent(
        workflow_execution_terminated_event_attributes=WorkflowExecutionTerminatedEventAttributes(reason="x" * 5000)
    )
    end = signal_end(event)
    assert end is not None and len(end.reason) == REASON_MAX
