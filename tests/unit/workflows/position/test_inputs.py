"""The position manager's start input and Update inputs: what operators type is taken, anything
else refused with a message saying what is expected (pure: no Temporal)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from temporalio.exceptions import ApplicationError

from tests.helpers.contexts import position_context
from workflows.common import names, parsing
from workflows.position import inputs
from workflows.position.inputs import CloseRequest, StopLossRequest, TakeProfitRequest
from workflows.position.models import (
    PositionManagerInput,
    PositionState,
    PositionStatus,
)
from workflows.position.paper import Side

SIGNAL = str(uuid.uuid4())


def start(*args: object, workflow_id: str | None = None) -> PositionManagerInput:
    return inputs.parse_start(args, workflow_id or names.position_workflow_id_for(SIGNAL))


def test_a_usable_start_is_taken_and_its_id_normalised():
    started = start({"signal_id": SIGNAL.upper(), "entry_price": "100.5", "entry_candle_t": 60_000})
    assert started.signal_id == SIGNAL and started.entry_price == Decimal("100.5")
    carried = start({"signal_id": SIGNAL, "state": PositionState(signal_id=SIGNAL).model_dump(mode="json")})
    assert carried.state is not None and carried.state.signal_id == SIGNAL


@pytest.mark.parametrize(
    "args",
    [
        (),
        ({"signal_id": SIGNAL}, {"signal_id": SIGNAL}),
        (None,),
        ([1, 2],),
        ({"signal_id": 123},),
        ({"signal_id": "not-a-uuid"},),
        ({"signal_id": SIGNAL, "entry_price": "NaN"},),
        ({"signal_id": SIGNAL, "entry_price": "-1"},),
        ({"signal_id": SIGNAL, "surprise": True},),
        ({"signal_id": SIGNAL, "state": {"signal_id": str(uuid.uuid4())}},),
    ],
)
def test_an_unusable_start_is_refused_saying_what_is_expected(args):
    with pytest.raises(ApplicationError) as info:
        start(*args)
    assert info.value.type == names.INVALID_START and info.value.non_retryable
    assert names.POSITION_WORKFLOW_TYPE in info.value.message and "signal_id" in info.value.message


def test_a_start_under_another_signals_id_is_refused():
    with pytest.raises(ApplicationError) as info:
        start({"signal_id": SIGNAL}, workflow_id=names.position_workflow_id_for(str(uuid.uuid4())))
    assert info.value.type == names.WRONG_WORKFLOW_ID
    assert names.position_workflow_id_for(SIGNAL) in info.value.message


def test_update_inputs_take_what_operators_type():
    assert parsing.parse(CloseRequest, " desk closes it ").reason == "desk closes it"
    assert parsing.parse(CloseRequest, {"reason": "x"}).reason == "x"
    assert parsing.parse(StopLossRequest, 96.5).stop_loss == Decimal("96.5")
    assert parsing.parse(StopLossRequest, {"stop_loss": "97.5"}).stop_loss == Decimal("97.5")
    assert parsing.parse(TakeProfitRequest, ["110", 120]).take_profit == [Decimal(110), Decimal(120)]
    assert parsing.parse(TakeProfitRequest, 110).take_profit == [Decimal(110)]


@pytest.mark.parametrize(
    ("model", "raw"),
    [
        (CloseRequest, None),
        (CloseRequest, 42),
        (CloseRequest, "   "),
        (CloseRequest, {"reason": "x", "extra": 1}),
        (StopLossRequest, None),
        (StopLossRequest, "abc"),
        (StopLossRequest, -5),
        (StopLossRequest, "NaN"),
        (StopLossRequest, "Infinity"),
        (TakeProfitRequest, []),
        (TakeProfitRequest, ["x"]),
        (TakeProfitRequest, "Infinity"),
        (TakeProfitRequest, list(range(1, 12))),
    ],
)
def test_junk_update_inputs_are_refused(model, raw):
    with pytest.raises(ApplicationError) as info:
        parsing.parse(model, raw)
    assert info.value.type == names.INVALID_REQUEST and info.value.message


def test_a_carried_state_is_one_run_more_and_a_refused_start_gets_a_placeholder():
    carried = start({"signal_id": SIGNAL, "state": PositionState(signal_id=SIGNAL, runs=3).model_dump(mode="json")})
    assert inputs.initial_state(carried).runs == 4
    fresh = inputs.initial_state(start({"signal_id": SIGNAL}))
    assert (fresh.signal_id, fresh.runs, fresh.status) == (SIGNAL, 1, PositionStatus.OPENING)
    assert inputs.initial_state(None).signal_id == "-"


def opened(**kw) -> PositionState:
    return PositionState(signal_id=SIGNAL, context=position_context(signal_id=SIGNAL), status=PositionStatus.OPEN, **kw)


@pytest.mark.parametrize(
    ("state", "busy", "error_type", "says"),
    [
        (PositionState(signal_id=SIGNAL), {}, names.POSITION_NOT_OPEN, "position is opening, not open"),
        (opened(), {"ended": True}, names.POSITION_NOT_OPEN, "position is open, not open"),
        (opened(), {"closing": True}, names.INVALID_REQUEST, "a close is already in progress"),
        (opened(), {"continuing": True}, names.POSITION_BUSY, "continuing as new"),
    ],
)
def test_operator_requests_need_an_open_idle_position(state, busy, error_type, says):
    flags = {"ended": False, "closing": False, "continuing": False, **busy}
    with pytest.raises(ApplicationError) as info:
        inputs.require_open(state, **flags)
    assert info.value.type == error_type and says in info.value.message


def test_an_open_idle_position_takes_requests():
    inputs.require_open(opened(), ended=False, closing=False, continuing=False)


def test_a_new_stop_must_be_on_the_losing_side_of_the_last_price():
    assert inputs.check_stop_loss(96.5, "long", Decimal(100)).stop_loss == Decimal("96.5")
    assert inputs.check_stop_loss({"stop_loss": 104}, "short", Decimal(100)).stop_loss == Decimal(104)
    assert inputs.check_stop_loss(150, "long", None).stop_loss == Decimal(150)  # no price yet: any stop
    cases: list[tuple[object, Side, str]] = [
        (100, "long", "a long's stop must be below the last price 100, got 100"),
        (99, "short", "a short's stop must be above the last price 100, got 99"),
    ]
    for raw, side, says in cases:
        with pytest.raises(ApplicationError) as info:
            inputs.check_stop_loss(raw, side, Decimal(100))
        assert info.value.type == names.INVALID_REQUEST and info.value.message == says
    with pytest.raises(ApplicationError):
        inputs.check_stop_loss("abc", "long", Decimal(100))


def test_new_targets_must_be_on_the_winning_side_of_the_last_price():
    assert inputs.check_take_profit([110, 120], "long", Decimal(100)).take_profit == [
        Decimal(110),
        Decimal(120),
    ]
    assert inputs.check_take_profit(90, "short", Decimal(100)).take_profit == [Decimal(90)]
    cases: list[tuple[object, Side, Decimal | None, str]] = [
        ([110, 99], "long", Decimal(100), "a long's take-profit must be above the last price 100, got 99"),
        ([90, 101], "short", Decimal(100), "a short's take-profit must be below the last price 100, got 101"),
        ([0], "long", None, "a long's take-profit must be above the last price None, got 0"),
    ]
    for raw, side, market, says in cases:
        with pytest.raises(ApplicationError) as info:
            inputs.check_take_profit(raw, side, market)
        assert info.value.type == names.INVALID_REQUEST and info.value.message == says
