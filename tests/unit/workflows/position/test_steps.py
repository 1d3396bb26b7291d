"""The position manager's operations on its state model: the entry order, fills, levels, the
records of decisions and the result (pure: no Temporal, no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from tests.helpers.books import long_book
from tests.helpers.contexts import position_context
from workflows.common.candles import INTERVAL_MS, Kline
from workflows.position import steps
from workflows.position.actions import ValidatedAction, validate_action
from workflows.position.inputs import StopLossRequest, TakeProfitRequest
from workflows.position.models import (
    Fill,
    ManageAndRecordInput,
    ManagementAnswer,
    ModifyInput,
    OpenedPosition,
    OrderInput,
    PositionContext,
    PositionManagerInput,
    PositionState,
    PositionStatus,
)
from workflows.position.paper import Bar
from workflows.position.risk import Exit, RiskOutcome

SIGNAL = str(uuid.uuid4())
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
T0 = 1_764_072_000_000  # 2025-11-25 12:00 UTC


def ctx(**kw) -> PositionContext:
    values: dict = dict(
        signal_id=SIGNAL,
        trader_id="t1",
        user_id="u1",
        side="long",
        stop_loss=D(95),
        take_profits=[D(110), D(105), D(90)],
        reference_price=D(100),
        decided_candle_t=T0,
        max_position_seconds=3600,
        max_consecutive_losses=3,
    )
    values.update(kw)
    return position_context(**values)


def k(t: int = T0 + 60_000, c: str = "102") -> Kline:
    return Kline(t=t, T=t + (INTERVAL_MS["1m"] or 60_000) - 1, s="BTCUSDT", i="1m", o=c, h=c, l=c, c=c, v="1", x=True)


def open_state(**kw) -> PositionState:
    values: dict = dict(
        signal_id=SIGNAL,
        context=ctx(),
        status=PositionStatus.OPEN,
        position_id="p1",
        **long_book(),
        last_price=D(101),
        realized_pnl=D("-0.5"),
        fees_paid=D("0.5"),
    )
    values.update(kw)
    return PositionState(**values)


def start(**kw) -> PositionManagerInput:
    return PositionManagerInput(signal_id=SIGNAL, **kw)


def answer(**kw) -> ManagementAnswer:
    values: dict = dict(action="hold", confidence=70.0, reasoning="steady", latency_ms=12, model_name="m")
    values.update(kw)
    return ManagementAnswer(**values)


# --- opening -----------------------------------------------------------------------------------


def test_a_position_that_cannot_be_opened_says_why():
    assert steps.open_request(start(), ctx(trader_found=False)) == "trader t1 not found"
    assert steps.open_request(start(), ctx(user_id=None)) == "trader t1 not found"
    assert steps.open_request(start(), ctx(symbol="BTC/USDT")) == "invalid symbol 'BTC/USDT'"
    assert steps.open_request(start(), ctx(interval="7m")) == "unknown management interval '7m'"
    assert steps.open_request(start(), ctx(reference_price=None)) == (
        "no entry price: neither the deciding close, the order intent nor the signal has one"
    )


def test_the_entry_order_is_keyed_by_the_deciding_candle_and_drops_unusable_levels():
    request = steps.open_request(start(entry_price=D("100.5"), entry_candle_t=T0 + 60_000), ctx())
    assert not isinstance(request, str)
    assert request.key == f"{SIGNAL}:{T0 + 60_000}:open"
    assert request.reference_price == D("100.5")  # the monitor's deciding close wins over the signal's price
    assert request.take_profits == [D(105), D(110)]  # 90 is below a long's entry: dropped; nearest first
    assert request.stop_loss == D(95)
    assert steps.open_summary(request) == "open long BTCUSDT at 100.5 (paper)"
    by_hand = steps.open_request(start(), ctx(decided_candle_t=None))
    assert not isinstance(by_hand, str) and by_hand.key == f"{SIGNAL}:signal:open"
    assert steps.entry_candle_t(start(), ctx()) == T0
    assert steps.entry_candle_t(start(entry_candle_t=5), ctx()) == 5


def test_an_opened_position_takes_its_fill_levels_and_deadline():
    s = PositionState(signal_id=SIGNAL, context=ctx())
    request = steps.open_request(start(), ctx())
    assert not isinstance(request, str)
    fill = Fill(
        order_id="o", kind="entry", price=D("100.1"), quantity=D(9), fee=D("0.9"), realized_pnl=D("-0.9"), inserted=True
    )
    steps.opened(s, ctx(), request, OpenedPosition(position_id="p9", fill=fill, opened_at=NOW), T0, NOW)
    assert (s.status, s.position_id, s.entry_price, s.quantity, s.initial_quantity) == (
        PositionStatus.OPEN,
        "p9",
        D("100.1"),
        D(9),
        D(9),
    )
    assert (s.fees_paid, s.realized_pnl, s.best_price, s.last_price) == (D("0.9"), D("-0.9"), D("100.1"), D("100.1"))
    assert (s.stop_loss, s.take_profits, s.after_t, s.counts.fills) == (D(95), [D(105), D(110)], T0, 1)
    assert s.opened_at == NOW and s.deadline == NOW + timedelta(hours=1)


def test_an_unopened_signal_is_failed_with_a_bounded_reason():
    closed = steps.unopened_signal(ctx(), "x" * 600)
    assert closed.status == "failed" and closed.realized_pnl == 0 and closed.max_consecutive_losses is None
    assert closed.reason.startswith("position could not be opened: x") and len(closed.reason) == 500


# --- the book, risk and P&L ----------------------------------------------------------------------


def test_the_book_and_pnl_follow_the_state():
    s = open_state(targets_hit=1, best_price=None)
    b = steps.book(s, "long")
    assert (b.entry_price, b.quantity, b.targets_hit, b.best_price) == (D(100), D(10), 1, D(100))
    assert steps.open_targets(s) == [D(110)]
    assert steps.pnl(s, "long", D(103)) == D("29.5")  # -0.5 realized + 3 x 10
    assert steps.pnl(s, "short", D(103)) == D("-30.5")
    assert steps.pnl(open_state(entry_price=None), "long", D(103)) == D("-0.5")


def test_risk_checks_move_the_book_on_and_name_the_exit_that_closed_it():
    s = open_state()
    stop = Exit(kind="stop_loss", price=D(95), quantity=D(10))
    closed = RiskOutcome(exits=[stop], closes_position=True, targets_hit=0, best_price=D(101))
    bar = Bar(open=D(99), high=D(101), low=D(94), close=D(96))
    assert steps.risk_checked(s, closed, bar) == ["stop_loss"]
    assert (s.targets_hit, s.best_price, s.last_price) == (0, D(101), D(96))
    assert steps.risk_end(closed, k(T0)) == (
        "stop_loss",
        "stop_loss reached at 95 on candle 2025-11-25 12:00–12:01 UTC",
    )
    partial = RiskOutcome(
        exits=[Exit(kind="take_profit", price=D(105), quantity=D(5), target_index=0)],
        closes_position=False,
        targets_hit=1,
        best_price=D(106),
    )
    assert steps.risk_end(partial, k()) is None
    assert steps.risk_end(RiskOutcome(exits=[], closes_position=True, targets_hit=0, best_price=D(1)), k()) is None


# --- orders and levels -------------------------------------------------------------------------


def test_exit_orders_fill_at_their_level_under_a_key_per_target():
    s = open_state()
    target = Exit(kind="take_profit", price=D(105), quantity=D(5), target_index=1)
    order = steps.exit_order(ctx(), s, k(), target, closing=False)
    assert order.key == f"{SIGNAL}:{T0 + 60_000}:take_profit1"
    assert (order.kind, order.quantity, order.reference_price, order.market, order.close) == (
        "take_profit",
        D(5),
        D(105),
        False,
        False,
    )
    assert order.close_reason is None  # only a close carries its reason
    assert steps.order_summary(order) == "take_profit: reduce 5 at 105"
    last = steps.exit_order(ctx(), s, k(), Exit(kind="stop_loss", price=D(95), quantity=D(10)), closing=True)
    assert last.key == f"{SIGNAL}:{T0 + 60_000}:stop_loss" and last.close_reason == "stop_loss"
    assert steps.order_summary(last) == "stop_loss: close all at 95"


def test_a_model_action_becomes_its_one_step():
    s, c, candle = open_state(targets_hit=1), ctx(), k(c="102")
    key = f"{SIGNAL}:{T0 + 60_000}"
    sl = steps.action_step(
        c, s, candle, ValidatedAction(action="adjust_sl", requested="adjust_sl", new_stop_loss=D(99))
    )
    assert sl == ModifyInput(key=f"{key}:adjust_sl", position_id="p1", stop_loss=D(99), take_profits=[D(110)])
    tp = steps.action_step(
        c, s, candle, ValidatedAction(action="adjust_tp", requested="adjust_tp", new_take_profits=[D(120)])
    )
    assert tp == ModifyInput(key=f"{key}:adjust_tp", position_id="p1", stop_loss=D(95), take_profits=[D(120)])
    reduce = steps.action_step(c, s, candle, ValidatedAction(action="reduce", requested="reduce", reduce_quantity=D(3)))
    assert isinstance(reduce, OrderInput)
    assert (reduce.key, reduce.kind, reduce.quantity, reduce.reference_price, reduce.market, reduce.close) == (
        f"{key}:reduce",
        "reduce",
        D(3),
        D(102),
        True,
        False,
    )
    close = steps.action_step(c, s, candle, ValidatedAction(action="close", requested="close"))
    assert isinstance(close, OrderInput) and close.close and close.close_reason == "close_action"
    assert steps.order_summary(close) == "close: close all at market 102"
    assert steps.action_step(c, s, candle, ValidatedAction(action="hold", requested="reduce", held_reason="no")) is None


def test_a_close_at_market_by_an_operator_or_the_duration():
    s = open_state()
    order, why = steps.market_close(ctx(), s, "operator", "operator2", "exchange halted")
    assert (order.key, order.reference_price, order.close_reason) == (
        f"{SIGNAL}:operator2:close",
        D(101),
        "operator: exchange halted",
    )
    assert why == "closed by operator: exchange halted"
    order, why = steps.market_close(ctx(), open_state(last_price=None), "max_position_duration", "duration", "passed")
    assert (order.key, order.reference_price, order.close_reason, why) == (
        f"{SIGNAL}:duration:close",
        D(100),
        "max_position_duration",
        "passed",
    )


def _filled_at_market(s: PositionState, key: str, kind, quantity: D, price: D, fee: D, pnl: D, close: bool) -> None:
    """A market order of `kind` asked for and filled whole at `price`."""
    request = steps.order_request(
        ctx(), s, key, kind, quantity, price, market=True, close=close, reason="x" if close else None
    )
    fill = Fill(order_id="o", kind=kind, price=price, quantity=quantity, fee=fee, realized_pnl=pnl, inserted=True)
    steps.filled(s, request, fill)


def test_fills_move_quantity_pnl_and_fees():
    s = open_state()
    _filled_at_market(s, "k1", "reduce", D(4), D(102), fee=D("0.4"), pnl=D("7.6"), close=False)
    assert (s.quantity, s.realized_pnl, s.fees_paid, s.counts.fills, s.exit_price) == (
        D(6),
        D("7.1"),
        D("0.9"),
        1,
        None,
    )
    _filled_at_market(s, "k2", "close", s.quantity, D(103), fee=D("0.6"), pnl=D("17.4"), close=True)
    assert (s.quantity, s.realized_pnl, s.fees_paid, s.counts.fills, s.exit_price) == (
        D(0),
        D("24.5"),
        D("1.5"),
        2,
        D(103),
    )


def test_new_levels_count_the_targets_afresh():
    s = open_state(targets_hit=1)
    request = steps.modify_request(s, "k", D(97), [D(120), D(130)])
    assert steps.modify_summary(request) == "set stop 97 · targets 120, 130"
    assert steps.modify_summary(steps.modify_request(s, "k", None, [])) == "set stop None · targets none"
    steps.modified(s, request)
    assert (s.stop_loss, s.take_profits, s.targets_hit) == (D(97), [D(120), D(130)], 0)


def test_an_operators_levels_keep_the_other_side_and_are_ordered_nearest_first():
    s = open_state(targets_hit=1, operator_changes=3)
    stop = steps.operator_change(s, "long", StopLossRequest(stop_loss=D(98)), applied=2)
    assert stop == ModifyInput(
        key=f"{SIGNAL}:operator3-2:adjust_sl", position_id="p1", stop_loss=D(98), take_profits=[D(110)]
    )
    long_tp = steps.operator_change(s, "long", TakeProfitRequest(take_profit=[D(130), D(120), D(130)]), applied=0)
    assert long_tp.key == f"{SIGNAL}:operator3-0:adjust_tp"
    assert (long_tp.stop_loss, long_tp.take_profits) == (D(95), [D(120), D(130)])
    short_tp = steps.operator_change(s, "short", TakeProfitRequest(take_profit=[D(80), D(90)]), applied=0)
    assert short_tp.take_profits == [D(90), D(80)]


# --- decisions ---------------------------------------------------------------------------------


def test_the_model_is_asked_with_the_position_and_the_last_decisions():
    s = open_state(targets_hit=1)
    for i in range(7):
        steps.recorded(s, steps.Decision(k(T0 + i * 60_000), "hold", f"r{i}"), NOW)
    request = steps.manage_request(ctx(), s, k(c="103"))
    assert (request.market_price, request.entry_price, request.position_size) == (D(103), D(100), D(10))
    assert (request.current_pnl, request.current_pnl_pct) == (D("29.5"), D(3))
    assert (request.current_sl, request.current_tp) == (D(95), [D(110)])
    assert [d.reasoning for d in request.previous_decisions] == ["r2", "r3", "r4", "r5", "r6"]


def test_a_held_action_is_recorded_with_what_was_asked_and_why():
    s = open_state()
    held = ValidatedAction(action="hold", requested="adjust_sl", held_reason="adjust_sl not executed: above market")
    ans = answer(action="adjust_sl", action_details={"newStopLoss": 200}, reasoning="tighten")
    d = steps.model_decision(k(), ans, held, ["take_profit"])
    assert d.action == "hold" and d.reasoning == "adjust_sl not executed: above market. Model: tighten"
    row = steps.record_request(ctx(), s, d)
    assert row.action_details == {
        "newStopLoss": 200,
        "requested": "adjust_sl",
        "heldReason": "adjust_sl not executed: above market",
        "riskExits": ["take_profit"],
    }
    assert (row.confidence, row.analysis_latency_ms, row.model_name, row.market_price) == (70.0, 12, "m", D(102))
    assert row.candle_open_time == k().open_time() and row.timestamp == k().close_time()
    assert steps.record_summary(d) == "record decision · candle 2025-11-25 12:01–12:02 UTC · hold"
    taken = steps.model_decision(k(), answer(reasoning="fine"), ValidatedAction(action="hold", requested="hold"), [])
    assert taken.reasoning == "fine"
    plain = steps.record_request(ctx(), s, steps.Decision(k(), "hold", "superseded"))
    assert plain.action_details == {} and plain.confidence is None and plain.raw_ai_response is None


def test_recorded_decisions_are_bounded_and_count_the_candle():
    s = open_state()
    for i in range(steps.DECISIONS_KEPT + 3):
        steps.recorded(s, steps.Decision(k(T0 + i * 60_000), "hold", "x" * 900, risk_exits=["trailing_stop"]), NOW)
    assert len(s.decisions) == steps.DECISIONS_KEPT and s.counts.processed == steps.DECISIONS_KEPT + 3
    last = s.decisions[-1]
    assert last.candle_open_time == T0 + (steps.DECISIONS_KEPT + 2) * 60_000
    assert len(last.reasoning) == steps.REASONING_KEPT and last.risk_exits == ["trailing_stop"] and last.at == NOW


# --- the end -----------------------------------------------------------------------------------


def test_the_end_closes_the_signal_with_the_pnl_and_reports_it():
    s = open_state(realized_pnl=D("12.5"), exit_price=D(104))
    steps.closing(s, "take_profit", NOW)
    assert (s.status, s.close_reason, s.closed_at) == (PositionStatus.CLOSED, "take_profit", NOW)
    closed = steps.closed_signal(ctx(), s, "take_profit", "y" * 600)
    assert closed.status == "closed" and closed.realized_pnl == D("12.5") and closed.max_consecutive_losses == 3
    assert closed.reason.startswith("position closed: take_profit: y") and len(closed.reason) == 500
    result = steps.result_of(s, "take_profit: done")
    assert (result.status, result.reason, result.side, result.exit_price, result.realized_pnl) == (
        PositionStatus.CLOSED,
        "take_profit: done",
        "long",
        D(104),
        D("12.5"),
    )
    bare = steps.result_of(PositionState(signal_id=SIGNAL, status=PositionStatus.NOT_OPENED), "nothing to manage")
    assert bare.side is None and bare.position_id is None and bare.decisions == 0


def test_a_hold_row_from_the_manage_request_is_the_row_the_workflow_writes():
    """`manage_and_record_position` writes a hold's row from the request alone: it must be the row
    `record_request` builds from the state at that candle (held actions included); any other
    action has no row there (its orders come first)."""
    s, market = open_state(), k(c="101.5")
    request = ManageAndRecordInput(request=steps.manage_request(ctx(), s, market), risk_exits=["take_profit"])
    for ans in (
        answer(),
        answer(action="adjust_sl", action_details={"newStopLoss": 200}, reasoning="tighten"),  # above market: held
        answer(action="reduce", action_details={"reduceAmount": 0}),  # nothing to reduce: held
    ):
        action = validate_action(ans.action, ans.action_details, "long", D("101.5"), s.quantity)
        assert action.action == "hold"
        expected = steps.record_request(ctx(), s, steps.model_decision(market, ans, action, ["take_profit"]))
        assert steps.hold_row(request, ans) == expected
    assert steps.hold_row(request, answer(action="close")) is None
    assert steps.hold_row(request, answer(action="adjust_sl", action_details={"newStopLoss": 99})) is None
