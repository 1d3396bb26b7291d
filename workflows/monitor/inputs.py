"""Typed inputs of the monitor's Updates and of its start, accepting what operators type today
(`--input 7`, `--input '{"limit": 7}'`, `--input '"exchange halted"'`, `--input '{"reason": "..."}'`,
reanalyze with no input) and refusing everything else with a message that says what is expected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from temporalio.exceptions import ApplicationError

from workflows.common import names, parsing
from workflows.monitor import steps
from workflows.monitor.models import MonitorState, SignalMonitorInput
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


def parse_start(
    args: tuple[object, ...], workflow_id: str, canonical_only: Callable[[], bool] | None = None
) -> SignalMonitorInput:
    """The start input, validated here rather than by the data converter, so that an input the
    monitor cannot use fails the workflow with this message instead of failing its task forever."""
    return parsing.parse_start_of(
        SignalMonitorInput,
        names.WORKFLOW_TYPE,
        args,
        workflow_id,
        lambda s: names.workflow_id_for(s.signal_id),
        canonical_only,
    )


# --- the Update validators' rules, over the monitor's state -----------------------------------


def _active(s: MonitorState) -> None:
    refusal = steps.not_active(s)
    if refusal:
        raise ApplicationError(refusal[1], type=refusal[0])


def check_abandon(s: MonitorState, raw: object) -> AbandonRequest:
    _active(s)
    request = parsing.parse(AbandonRequest, raw)
    if s.abandon_reason is not None:
        raise parsing.reject("an abandon is already in progress")
    return request


def check_reanalyze(s: MonitorState, raw: object) -> ReanalyzeRequest:
    _active(s)
    request = parsing.parse(ReanalyzeRequest, raw)
    refusal = steps.reanalyze_refusal(s)
    if refusal:
        raise parsing.reject(refusal)
    return request


def check_set_limit(s: MonitorState, raw: object) -> SetLimitRequest:
    _active(s)
    request = parsing.parse(SetLimitRequest, raw)
    refusal = steps.set_limit_refusal(s, request.limit)
    if refusal:
        raise parsing.reject(refusal)
    return request
