"""How a workflow words an activity that failed after its retries (the monitor's failed analysis,
the position's failed manage-position): the activity's own error type and message when it raised
one, else the failure as it reached the workflow."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

from workflows.common.activity_calls import failure_text, refusal


def activity_error(cause: BaseException | None) -> ActivityError:
    err = ActivityError(
        "Activity task failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker",
        activity_type="manage_position",
        activity_id="7",
        retry_state=None,
    )
    err.__cause__ = cause
    return err


def test_an_application_error_is_named_by_its_type_and_message():
    cause = ApplicationError("llm-proxy said 503", type="LlmProxyUnavailable")
    assert failure_text(activity_error(cause)) == "LlmProxyUnavailable: llm-proxy said 503"


def test_any_other_failure_is_its_own_text():
    timeout = TimeoutError("activity timeout", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[])
    assert failure_text(activity_error(timeout)) == "activity timeout"
    assert failure_text(activity_error(None)) == "Activity task failed"


def test_a_refusal_becomes_the_workflows_own_failure_in_the_activitys_words():
    cause = ApplicationError("signal 42 not found", type="SignalNotFound", non_retryable=True)
    failure = refusal(activity_error(cause), "SignalNotFound", "InvalidSignalId")
    assert failure is not None and failure.non_retryable
    assert (failure.type, failure.message) == ("SignalNotFound", "signal 42 not found")
    worded = refusal(activity_error(cause), "SignalNotFound", wording="{}: deleted while it was monitored")
    assert worded is not None and worded.message == "signal 42 not found: deleted while it was monitored"
    # A local activity's failure reaches the workflow as the ApplicationError itself.
    local = refusal(cause, "SignalNotFound")
    assert local is not None and local is not cause and local.message == "signal 42 not found"
    assert refusal(activity_error(cause), "PermanentDatabaseError") is None
    assert refusal(activity_error(TimeoutError("t", type=None, last_heartbeat_details=[])), "SignalNotFound") is None
