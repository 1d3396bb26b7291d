"""Calling activities by name from workflow code, for both workflows' stubs: the database and
llm-proxy call shapes (queues, timeouts, retries), and an activity's failure read as the
workflow's own. Only callable from workflow code (the failure helpers are pure)."""

from __future__ import annotations

import functools
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.common import names, policies

Answer = TypeVar("Answer", bound=BaseModel)
Result = TypeVar("Result")


def cause_of(err: ActivityError | ApplicationError, *types: str) -> ApplicationError | None:
    """The activity's ApplicationError if it is one of `types` (any type when none is given). A
    local activity's failure reaches the workflow as the ApplicationError itself, not wrapped in
    an ActivityError."""
    cause = err if isinstance(err, ApplicationError) else err.cause
    if isinstance(cause, ApplicationError) and (not types or cause.type in types):
        return cause
    return None


def refusal(err: ActivityError | ApplicationError, *types: str, wording: str = "{}") -> ApplicationError | None:
    """The activity's refusal (one of `types`) as the workflow's own non-retryable failure, in the
    activity's words (`wording` around its message), not "Activity task failed"; else None."""
    cause = cause_of(err, *types)
    if cause is None:
        return None
    return ApplicationError(wording.format(cause.message), type=cause.type, non_retryable=True)


def failure_text(err: ActivityError) -> str:
    """What an activity that failed after its retries says: `Type: message` of its
    ApplicationError, else the failure itself."""
    cause = cause_of(err)
    return f"{cause.type}: {cause.message}" if cause else str(err.cause or err)


async def db_call(
    activity: str,
    arg: BaseModel,
    result_type: type[Result],
    summary: str,
    retry: RetryPolicy = policies.DB_RETRY,
    local: bool = False,
) -> Result:
    """A database (or other short, idempotent) activity on the workflow's own task queue, with the
    database timeout and `retry`. `local`: run by the worker holding the workflow task, with the
    same timeout and retries; backoffs stay under the local retry threshold, so a database outage
    is waited out inside the task (heartbeated by the SDK) rather than with timers in the history.
    Its failure then reaches the workflow as the ApplicationError itself."""
    run = (
        functools.partial(workflow.execute_local_activity, local_retry_threshold=policies.LOCAL_RETRY_THRESHOLD)
        if local
        else workflow.execute_activity
    )
    return await run(
        activity,
        arg,
        result_type=result_type,
        start_to_close_timeout=policies.DB_TIMEOUT,
        retry_policy=retry,
        summary=summary,
    )


async def llm_call(
    activity: str,
    arg: BaseModel,
    result_type: type[Answer],
    summary: str,
    retry: RetryPolicy = policies.ANALYSIS_RETRY,
) -> Answer:
    """An llm-proxy activity: on its own task queue (the llm-proxy caps bind llm-proxy calls
    only), with the analyses' timeouts and retry rules."""
    return await workflow.execute_activity(
        activity,
        arg,
        result_type=result_type,
        task_queue=names.llm_task_queue_for(workflow.info().task_queue),
        start_to_close_timeout=policies.ANALYSIS_START_TO_CLOSE,
        schedule_to_close_timeout=policies.ANALYSIS_SCHEDULE_TO_CLOSE,
        heartbeat_timeout=policies.ANALYSIS_HEARTBEAT,
        retry_policy=retry,
        summary=summary,
    )
