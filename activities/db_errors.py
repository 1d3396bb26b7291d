"""PostgreSQL errors no retry can fix become the non-retryable `PermanentDatabaseError` (the
branches' agreed type): a constraint or data error, a missing table or column, a permission."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg
from temporalio.exceptions import ApplicationError

PERMANENT_DATABASE_ERROR = "PermanentDatabaseError"
_PERMANENT = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
    asyncpg.UndefinedTableError,
    asyncpg.UndefinedColumnError,
    asyncpg.InsufficientPrivilegeError,
)


@contextlib.contextmanager
def permanent_errors(what: str) -> Iterator[None]:
    try:
        yield
    except _PERMANENT as exc:
        raise ApplicationError(
            f"{what}: {type(exc).__name__}: {str(exc)[:300]}", type=PERMANENT_DATABASE_ERROR, non_retryable=True
        ) from None
