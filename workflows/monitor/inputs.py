"""Typed inputs of the monitor's Updates and of its start, accepting what operators type today
(`--input 7`, `--input '{"limit": 7}'`, `--input '"exchange halted"'`, `--input '{"reason": "..."}'`,
reanalyze with no input) and refusing everything else with a message that says what is expected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from temporalio.exceptions import ApplicationError

from workflows.common import names
from workflows.monitor import steps as state_ops
from workflows.monitor.models import CarriedState, SignalMonitorInput
from workflows.monitor.outcomes import MAX_REANALYSES_CEILING

ABANDON_REASON_MAX = 500
ABANDON_USAGE = 'abandon needs a reason: a non-empty string or {"reason": "..."}'
SET_LIMIT_USAGE = 'set_limit needs a whole number: 7 or {"limit": 7}'


class AbandonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str

    @model_validator(mode="before")
    @classmethod
    def _bare_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"reason": value}
        if not isinstance(value, dict) or not isinstance(value.get("reason"), str):
            raise ValueError(ABANDON_USAGE)
        return value

    @field_validator("reason")
    @classmethod
    def _bounded(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError(ABANDON_USAGE)
        if len(value) > ABANDON_REASON_MAX:
            raise ValueError(f"abandon reason is longer than {ABANDON_REASON_MAX} characters")
        return value


class SetLimitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, value: Any) -> Any:
        raw = value.get("limit") if isinstance(value, dict) else value
        # A string, a fraction or a bool where a count belongs is a mistake, not something to coerce.
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(SET_LIMIT_USAGE)
        if not 0 <= raw <= MAX_REANALYSES_CEILING:
            raise ValueError(f"limit must be between 0 and {MAX_REANALYSES_CEILING}")
        return {"limit": raw}


class ReanalyzeRequest(BaseModel):
    """No fields: `reanalyze` takes no input (`{}` or null are accepted too)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _nothing(cls, value: Any) -> Any:
        if value is not None and value != {}:
            raise ValueError("reanalyze takes no input")
        return {}


Request = TypeVar("Request", bound=BaseModel)


def reject(message: str) -> ApplicationError:
    return ApplicationError(message, type=names.INVALID_REQUEST)


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


def parse_start(args: tuple[object, ...], workflow_id: str) -> SignalMonitorInput:
    """The start input, validated here rather than by the data converter, so that an input the
    monitor cannot use fails the workflow with this message instead of failing its task forever."""
    return parse_start_of(
        SignalMonitorInput, names.WORKFLOW_TYPE, args, workflow_id, lambda s: names.workflow_id_for(s.signal_id)
    )


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


# --- the Update validators' rules, over the monitor's state -----------------------------------


def _active(s: CarriedState) -> None:
    refusal = state_ops.not_active(s)
    if refusal:
        raise ApplicationError(refusal[1], type=refusal[0])


def check_abandon(s: CarriedState, raw: object) -> AbandonRequest:
    _active(s)
    request = parse(AbandonRequest, raw)
    if s.abandon_reason is not None:
        raise reject("an abandon is already in progress")
    return request


def check_reanalyze(s: CarriedState, raw: object) -> ReanalyzeRequest:
    _active(s)
    request = parse(ReanalyzeRequest, raw)
    refusal = state_ops.reanalyze_refusal(s)
    if refusal:
        raise reject(refusal)
    return request


def check_set_limit(s: CarriedState, raw: object) -> SetLimitRequest:
    _active(s)
    request = parse(SetLimitRequest, raw)
    refusal = state_ops.set_limit_refusal(s, request.limit)
    if refusal:
        raise reject(refusal)
    return request
