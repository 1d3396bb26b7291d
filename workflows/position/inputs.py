"""The position manager's start input and the rules of its Update validators, over its state
model: what operators type is taken (`inputs.parse`), a request the position cannot take now is
refused saying why. Pure (no Temporal beyond its ApplicationError)."""

from __future__ import annotations

from decimal import Decimal

from temporalio.exceptions import ApplicationError

from workflows.common import names
from workflows.monitor import inputs
from workflows.position.models import (
    PositionManagerInput,
    PositionState,
    PositionStatus,
    StopLossRequest,
    TakeProfitRequest,
)
from workflows.position.paper import Side


def parse_start(args: tuple[object, ...], workflow_id: str) -> PositionManagerInput:
    """The start input under its one id, `position-<signal id>`; else the error that fails the workflow."""
    return inputs.parse_start_of(
        PositionManagerInput,
        names.POSITION_WORKFLOW_TYPE,
        args,
        workflow_id,
        lambda started: names.position_workflow_id_for(started.signal_id),
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
        raise inputs.reject("a close is already in progress")
    if continuing:
        raise ApplicationError("continuing as new; try again in a moment", type=names.POSITION_BUSY)


def check_stop_loss(raw: object, side: Side, market: Decimal | None) -> StopLossRequest:
    """A new stop must be on the losing side of the last price (else it would close at once)."""
    request = inputs.parse(StopLossRequest, raw)
    stop = request.stop_loss
    if market is not None and (stop >= market if side == "long" else stop <= market):
        where = "below" if side == "long" else "above"
        raise inputs.reject(f"a {side}'s stop must be {where} the last price {market}, got {stop}")
    return request


def check_take_profit(raw: object, side: Side, market: Decimal | None) -> TakeProfitRequest:
    """Every new target must be positive and on the winning side of the last price."""
    request = inputs.parse(TakeProfitRequest, raw)
    bad = [
        t
        for t in request.take_profit
        if t <= 0 or (market is not None and (t <= market if side == "long" else t >= market))
    ]
    if bad:
        where = "above" if side == "long" else "below"
        raise inputs.reject(f"a {side}'s take-profit must be {where} the last price {market}, got {bad[0]}")
    return request
