"""How a workflow words an activity that failed after its retries (the monitor's failed analysis,
the position's failed manage-position): the activity's own error type and message when it raised
one, else the failure as it reached the workflow."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

from workflows.activity_stubs import failure_text


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
