"""Typed inputs of the position manager's Updates and of its start, and the rules of its Update
validators over its state model: what operators type is taken (`parsing.parse`), a request the position cannot take now is
refused saying why. Pure (no Temporal beyond its ApplicationError)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from temporalio.exceptions import ApplicationError

from workflows.common import names, parsing
from workflows.position.models import (
    PositionManagerInput,
    PositionState,
    PositionStatus,
)
from workflows.position.paper import Side


def _bare(field: str, value: Any) -> Any:
    # What operators type: `--input 96.5` as well as `--input '{"stop_loss": 96.5}'`.
    return value if isinstance(value, dict) else {field: value}


class CloseRequest(BaseModel):
    """`{"reason": "..."}` or the reason as a bare string."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="before")
    @classmethod
    def _bare_reason(cls, value: Any) -> Any:
        return _bare("reason", value)

    @field_validator("reason")
    @classmethod
    def _stripped(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("close needs a non-empty reason")
        return value.strip()


class StopLossRequest(BaseModel):
    """`{"stop_loss": 96.5}` or the bare price."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stop_loss: Decimal = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _bare_price(cls, value: Any) -> Any:
        return _bare("stop_loss", value)


class TakeProfitRequest(BaseModel):
    """`{"take_profit": [110, 120]}` or the bare list (or one bare price)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    take_profit: list[Decimal] = Field(min_length=1, max_length=10)

    @model_validator(mode="before")
    @classmethod
    def _bare_prices(cls, value: Any) -> Any:
        value = _bare("take_profit", value)
        if isinstance(value.get("take_profit"), (int, float, str)):
            value = {**value, "take_profit": [value["take_profit"]]}
        return value

    @field_validator("take_profit")
    @classmethod
    def _finite(cls, value: list[Decimal]) -> list[Decimal]:
        if not all(t.is_finite() for t in value):
            raise ValueError("take-profit levels must be finite numbers")
        return value


def parse_start(
    args: tuple[object, ...], workflow_id: str, canonical_only: Callable[[], bool] | None = None
) -> PositionManagerInput:
    """The start input under its one id, `position-<signal id>`; else the error that fails the workflow."""
    return parsing.parse_start_of(
        PositionManagerInput,
        names.POSITION_WORKFLOW_TYPE,
        args,
        workflow_id,
        lambda started: names.position_workflow_id_for(started.signal_id),
        canonical_only,
    )


def initial_state(started: PositionManagerInput | None) -> PositionState:
    """The state carried across continue-as-new (one run more), else a new one (`-` when the start
    was refused: that run fails before it touches anything)."""
    if started is None:
        return PositionState(signal_id="-")
    if started.state is None:
        return PositionState(signal_id=started.signal_id)
    started.state.runs += 1
    return started.state


def require_open(s: PositionState, *, ended: bool, closing: bool, continuing: bool) -> None:
    """Every operator request needs an open position, no close under way, no continue-as-new."""
    if ended or s.status != PositionStatus.OPEN:
        raise ApplicationError(f"position is {s.status}, not open", type=names.POSITION_NOT_OPEN)
    if closing:
        raise parsing.reject("a close is already in progress")
    if continuing:
        raise ApplicationError("continuing as new; try again in a moment", type=names.POSITION_BUSY)


def check_stop_loss(raw: object, side: Side, market: Decimal | None) -> StopLossRequest:
    """A new stop must be on the losing side of the last price (else it would close at once)."""
    request = parsing.parse(StopLossRequest, raw)
    stop = request.stop_loss
    if market is not None and (stop >= market if side == "long" else stop <= market):
        where = "below" if side == "long" else "above"
        raise parsing.reject(f"a {side}'s stop must be {where} the last price {market}, got {stop}")
    return request


def check_take_profit(raw: object, side: Side, market: Decimal | None) -> TakeProfitRequest:
    """Every new target must be positive and on the winning side of the last price."""
    request = parsing.parse(TakeProfitRequest, raw)
    bad = [
        t
        for t in request.take_profit
        if t <= 0 or (market is not None and (t <= market if side == "long" else t >= market))
    ]
    if bad:
        where = "above" if side == "long" else "below"
        raise parsing.reject(f"a {side}'s take-profit must be {where} the last price {market}, got {bad[0]}")
    return request
