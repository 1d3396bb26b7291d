"""Retry policies and timeouts of the monitor's and the position manager's activities (the error type names are in `names`)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio.common import RetryPolicy

from workflows.common import names

ANALYSIS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
    non_retryable_error_types=names.LLM_NON_RETRYABLE,
)


def analysis_retry(initial_seconds: float | None) -> RetryPolicy:
    """ANALYSIS_RETRY, with the worker's first interval when it set one (tests set a short one)."""
    if initial_seconds is None:
        return ANALYSIS_RETRY
    return dataclasses.replace(ANALYSIS_RETRY, initial_interval=timedelta(seconds=initial_seconds))


ANALYSIS_START_TO_CLOSE = timedelta(seconds=90)
ANALYSIS_SCHEDULE_TO_CLOSE = timedelta(minutes=15)
ANALYSIS_HEARTBEAT = timedelta(seconds=10)

# No attempt limit: a transient database outage is waited out; permanent errors are non-retryable.
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=names.DB_NON_RETRYABLE,
)
DB_TIMEOUT = timedelta(seconds=30)
# A local record_analysis retries in the worker while its backoff is under this (DB_RETRY's longest
# is 30 s); a longer one would become a durable timer in the history.
LOCAL_RETRY_THRESHOLD = timedelta(minutes=1)

# Starting the position manager: bounded, since a start that keeps failing is logged, not fatal.
START_POSITION_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10)

# The position's database and execution-backend activities: the same, plus the backend's own
# permanent refusals (a position that is gone or has nothing open).
POSITION_DB_RETRY = dataclasses.replace(DB_RETRY, non_retryable_error_types=names.POSITION_DB_NON_RETRYABLE)
