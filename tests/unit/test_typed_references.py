"""The tests and the bench send signals, queries and Updates through typed method references
(`handle.signal(SignalMonitorWorkflow.candle_closed, k)`): each must resolve, as the client
resolves it, to the very name operators, the bridge and the `temporal` CLI use, and a query's or
an Update's result must decode into the model the string form asked for with `result_type=`.
mypy checks every call site; this checks what the references send."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from temporalio import workflow

from bench.floor import BareFloorWorkflow
from tests.helpers.support import async_update
from workflows.common import names
from workflows.monitor.models import MonitorResult, MonitorView
from workflows.monitor.workflow import SignalMonitorWorkflow
from workflows.position.models import PositionResult, PositionView
from workflows.position.workflow import PositionManagerWorkflow

SIGNALS: list[tuple[Callable[..., Any], str]] = [
    (SignalMonitorWorkflow.candle_closed, names.CANDLE_CLOSED_SIGNAL),
    (PositionManagerWorkflow.candle_closed, names.CANDLE_CLOSED_SIGNAL),
    (BareFloorWorkflow.candle_closed, names.CANDLE_CLOSED_SIGNAL),
]
QUERIES: list[tuple[Callable[..., Any], str, type]] = [
    (SignalMonitorWorkflow.state, names.STATE_QUERY, MonitorView),
    (PositionManagerWorkflow.state, names.STATE_QUERY, PositionView),
]
UPDATES: list[tuple[Callable[..., Any], str, type]] = [
    (SignalMonitorWorkflow.abandon, names.ABANDON_UPDATE, MonitorResult),
    (SignalMonitorWorkflow.reanalyze, names.REANALYZE_UPDATE, MonitorView),
    (SignalMonitorWorkflow.set_limit, names.SET_LIMIT_UPDATE, MonitorView),
    (PositionManagerWorkflow.close, names.CLOSE_UPDATE, PositionResult),
    (PositionManagerWorkflow.set_stop_loss, names.SET_STOP_LOSS_UPDATE, PositionView),
    (PositionManagerWorkflow.set_take_profit, names.SET_TAKE_PROFIT_UPDATE, PositionView),
]


@pytest.mark.parametrize(("ref", "name"), SIGNALS, ids=lambda v: getattr(v, "__qualname__", v))
def test_a_signal_reference_sends_the_operators_name(ref, name):
    assert workflow._SignalDefinition.must_name_from_fn_or_str(ref) == name


@pytest.mark.parametrize(("ref", "name", "result"), QUERIES, ids=lambda v: getattr(v, "__qualname__", v))
def test_a_query_reference_sends_the_operators_name_and_decodes_its_model(ref, name, result):
    defn = workflow._QueryDefinition.from_fn(ref)
    assert defn is not None and (defn.name, defn.ret_type) == (name, result)


@pytest.mark.parametrize(("ref", "name", "result"), UPDATES, ids=lambda v: getattr(v, "__qualname__", v))
def test_an_update_reference_sends_the_operators_name_and_decodes_its_model(ref, name, result):
    assert workflow._UpdateDefinition.get_name_and_result_type(ref) == (name, result)


def test_every_handler_of_the_workflows_is_covered():
    """A handler added to a workflow gets a row above (and so a typed reference in the tests)."""
    for cls in (SignalMonitorWorkflow, PositionManagerWorkflow):
        defn = workflow._Definition.must_from_class(cls)
        assert set(defn.signals) == {n for r, n in SIGNALS if r.__qualname__.startswith(cls.__name__ + ".")}
        assert set(defn.queries) == {n for r, n, _ in QUERIES if r.__qualname__.startswith(cls.__name__ + ".")}
        assert set(defn.updates) == {n for r, n, _ in UPDATES if r.__qualname__.startswith(cls.__name__ + ".")}


def test_async_update_is_the_same_reference():
    assert async_update(SignalMonitorWorkflow.abandon) is SignalMonitorWorkflow.abandon
    assert async_update(PositionManagerWorkflow.close) is PositionManagerWorkflow.close
