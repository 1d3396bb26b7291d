"""PostgreSQL errors no retry can fix, turned into one non-retryable ApplicationError type.

Without this, a NOT NULL or check violation inside a database activity was retried by Temporal
forever (the database retry policy has no attempt limit), so the monitor never ended. Connection
loss, server restarts, deadlocks and serialization failures are left alone: retrying those works."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import ParamSpec, TypeVar

import asyncpg
from temporalio.exceptions import ApplicationError

PERMANENT_DATABASE_ERROR = "PermanentDatabaseError"

# SQLSTATE classes: 22 data exception, 23 integrity constraint violation, 42 syntax error or access
# rule violation (undefined table/column, insufficient privilege), 44 WITH CHECK OPTION violation.
_PERMANENT_CLASSES = frozenset({"22", "23", "42", "44"})

P = ParamSpec("P")
R = TypeVar("R")


def is_permanent(exc: BaseException) -> bool:
    if not isinstance(exc, asyncpg.PostgresError):
        return False
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate[:2] in _PERMANENT_CLASSES


def permanent_error(exc: asyncpg.PostgresError) -> ApplicationError:
    """PostgreSQL's own message (it names the column or constraint; never the connection's
    password) with the SQLSTATE; not `detail`, which can quote a whole row."""
    message = getattr(exc, "message", None) or str(exc)
    return ApplicationError(
        f"{type(exc).__name__} ({exc.sqlstate}): {message}"[:500],
        type=PERMANENT_DATABASE_ERROR,
        non_retryable=True,
    )


def no_retry_on_permanent_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorates a database activity (under `@activity.defn`)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except asyncpg.PostgresError as exc:
            if is_permanent(exc):
                raise permanent_error(exc) from None
            raise

    return wrapper


@contextlib.contextmanager
def permanent_errors(what: str) -> Iterator[None]:
    """The same translation around one step of an activity, naming the step."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        if is_permanent(exc):
            error = permanent_error(exc)
            raise ApplicationError(f"{what}: {error.message}", type=error.type, non_retryable=True) from None
        raise
