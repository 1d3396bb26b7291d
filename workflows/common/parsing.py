"""Parsing what crosses into a workflow from outside: an Update's raw input as its request model
(refused with our own message, never a decoding error), and a workflow's one start input under its
one id. Shared by the monitor's and the position manager's handlers."""

from __future__ import annotations

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


def parse_start_of(
    model: type[Start], workflow_type: str, args: tuple[object, ...], workflow_id: str, id_for: Callable[[Start], str]
) -> Start:
    """A workflow's one `{"signal_id": "<uuid>"}` start input as `model`, under the id `id_for`
    gives it; else an ApplicationError (INVALID_START, WRONG_WORKFLOW_ID) that fails it."""
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
    if workflow_id != expected:
        # One workflow per signal, by construction: a mismatched id would run a second one.
        raise ApplicationError(
            f"workflow id {workflow_id!r} does not match its signal: it must be {expected!r}",
            type=names.WRONG_WORKFLOW_ID,
            non_retryable=True,
        )
    return started
