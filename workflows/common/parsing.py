"""Parsing what crosses into a workflow from outside: an Update's raw input as its request model
(refused with our own message, never a decoding error), and a workflow's one start input under its
one id. Shared by the monitor's and the position manager's handlers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from temporalio.exceptions import ApplicationError

from workflows.common import names

Request = TypeVar("Request", bound=BaseModel)


def reject(message: str) -> ApplicationError:
    # Non-retryable: the same request is refused again however often it is sent (an operator saw
    # `retryable: true` on a refusal and could read it as "try again"). A validator's refusal is not
    # in the history, and a failure's retryable flag is not compared on replay: no patch.
    return ApplicationError(message, type=names.INVALID_REQUEST, non_retryable=True)


def parse(model: type[Request], raw: object) -> Request:
    """An Update's raw input as its model, or a rejection carrying our own message (the handlers
    take the raw input so that a bad one is refused with this message, not a decoding error)."""
    if isinstance(raw, model):
        return raw
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = str(err["ctx"]["error"]) if "ctx" in err and "error" in err["ctx"] else err["msg"]
        raise reject(message) from None


Start = TypeVar("Start", bound=BaseModel)


def canonical_uuid(value: str) -> str | None:
    """The one spelling of a UUID (lowercase, dashed, no braces or `urn:uuid:`), None if it is none."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


def parse_start_of(
    model: type[Start],
    workflow_type: str,
    args: tuple[object, ...],
    workflow_id: str,
    id_for: Callable[[Start], str],
    canonical_only: Callable[[], bool] | None = None,
) -> Start:
    """A workflow's one `{"signal_id": "<uuid>"}` start input as `model`, under the id `id_for`
    gives it; else an ApplicationError (INVALID_START, WRONG_WORKFLOW_ID) that fails it.

    Any spelling of a UUID (case, braces, no dashes, `urn:uuid:`) is one signal: only its canonical
    spelling runs, so that `signal-<UPPER>` cannot run beside `signal-<lower>`. `canonical_only` is
    asked only when the id is spelled otherwise (the workflow's `workflow.patched`: histories that
    ran under another spelling before it replay unchanged)."""
    if len(args) != 1:
        raise ApplicationError(
            f'{workflow_type} takes one input, {{"signal_id": "<uuid>"}}; got {len(args)}',
            type=names.INVALID_START,
            non_retryable=True,
        )
    try:
        started = model.model_validate(args[0])
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors()[:3])
        raise ApplicationError(
            f'{workflow_type} input must be {{"signal_id": "<uuid>"}}: {problems}',
            type=names.INVALID_START,
            non_retryable=True,
        ) from None
    expected = id_for(started)
    signal_id = getattr(started, "signal_id", None)
    canonical = canonical_uuid(signal_id) if isinstance(signal_id, str) else None
    if canonical is not None and canonical != signal_id and canonical_only is not None and canonical_only():
        # One workflow per signal whatever the spelling: the one id is the canonical one's.
        one_id = id_for(started.model_copy(update={"signal_id": canonical}))
        raise ApplicationError(
            f"signal id {signal_id!r} is not spelled canonically: its one workflow is {one_id!r}",
            type=names.WRONG_WORKFLOW_ID,
            non_retryable=True,
        )
    if workflow_id != expected:
        # One workflow per signal, by construction: a mismatched id would run a second one.
        raise ApplicationError(
            f"workflow id {workflow_id!r} does not match its signal: it must be {expected!r}",
            type=names.WRONG_WORKFLOW_ID,
            non_retryable=True,
        )
    return started
