"""The position manager's start input and Update inputs: what operators type is taken, anything
else refused with a message saying what is expected (pure: no Temporal)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from temporalio.exceptions import ApplicationError

from workflows import inputs, names
from workflows.position_models import (
    CloseRequest,
    PositionManagerInput,
    PositionState,
    StopLossRequest,
    TakeProfitRequest,
)

SIGNAL = str(uuid.uuid4())


def start(*args: object, workflow_id: str | None = None) -> PositionManagerInput:
    return inputs.parse_start_of(
        PositionManagerInput,
        names.POSITION_WORKFLOW_TYPE,
        args,
        workflow_id or names.position_workflow_id_for(SIGNAL),
        lambda started: names.position_workflow_id_for(started.signal_id),
    )


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
    assert inputs.parse(CloseRequest, " desk closes it ").reason == "desk closes it"
    assert inputs.parse(CloseRequest, {"reason": "x"}).reason == "x"
    assert inputs.parse(StopLossRequest, 96.5).stop_loss == Decimal("96.5")
    assert inputs.parse(StopLossRequest, {"stop_loss": "97.5"}).stop_loss == Decimal("97.5")
    assert inputs.parse(TakeProfitRequest, ["110", 120]).take_profit == [Decimal(110), Decimal(120)]
    assert inputs.parse(TakeProfitRequest, 110).take_profit == [Decimal(110)]


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
        inputs.parse(model, raw)
    assert info.value.type == names.INVALID_REQUEST and info.value.message
