"""What operators see of a position: the `state` query, the Current Details and the search
attributes (pure: no Temporal server)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from tests.helpers.contexts import position_context
from workflows.common import search_attributes as sa
from workflows.position.models import ManagementRecord, PositionState, PositionStatus
from workflows.position.view import details_text, state_view

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
T0 = 1_764_072_000_000  # 2025-11-25 12:00 UTC


def state(**kw) -> PositionState:
    values: dict = dict(
        signal_id="s1",
        context=position_context(signal_id="s1", interval="5m", trader_id="t1", trader_name="Alice", side="short"),
        status=PositionStatus.OPEN,
        position_id="p1",
        entry_price=D(100),
        initial_quantity=D(10),
        quantity=D(4),
        stop_loss=D(105),
        take_profits=[D(95), D(90)],
        targets_hit=1,
        last_price=D(97),
        realized_pnl=D("29.4"),
        fees_paid=D("0.6"),
    )
    values.update(kw)
    return PositionState(**values)


def record(i: int) -> ManagementRecord:
    return ManagementRecord(candle_open_time=T0 + i * 300_000, action="hold", reasoning=f"r{i}", at=NOW)


def test_the_state_view_shows_open_targets_unrealized_pnl_and_the_last_decisions():
    s = state(decisions=[record(i) for i in range(7)])
    view = state_view(s)
    assert (view.symbol, view.interval, view.side, view.status) == ("BTCUSDT", "5m", "short", "open")
    assert view.take_profits == [D(90)] and view.targets_hit == 1
    assert view.unrealized_pnl == D(12)  # a short of 4 from 100, marked at 97
    assert [d.reasoning for d in view.last_decisions] == ["r2", "r3", "r4", "r5", "r6"]
    assert (view.queued, view.runs, view.realized_pnl) == (0, 1, D("29.4"))


def test_the_state_view_before_the_signal_is_loaded():
    view = state_view(PositionState(signal_id="s1"))
    assert (view.status, view.symbol, view.side, view.unrealized_pnl) == ("opening", None, None, D(0))
    assert details_text(PositionState(signal_id="s1")) is None


def test_the_details_say_size_levels_pnl_and_the_last_decision():
    text = details_text(state(decisions=[record(0), record(1)]), "cancelled by operator")
    assert text is not None
    assert text.split("\n\n") == [
        "**BTCUSDT 5m** · short · trader Alice",
        # A short of 4 still open from 100, the last close 97: (100 - 97) x 4.
        "status: open · unrealized P&L 12 at the last close 97 · realized 29.4 (fees 0.6)",
        "entry fill 100 · size 4 open of 10",
        "stop 105 · targets 90 · decisions 0",
        "last: hold on candle 2025-11-25 12:05–12:10 UTC",
        "cancelled by operator",
    ]
    bare = details_text(state(take_profits=[D(95)], stop_loss=None))
    assert bare is not None and "stop - · targets none" in bare and "last:" not in bare
    closed = state(status=PositionStatus.CLOSED, quantity=D(0), exit_price=D("96.50000000"))
    closed.close_reason, closed.realized_pnl = "take_profit", D("-0E-8")
    text = details_text(closed)
    assert text is not None
    assert "status: closed · exit fill 96.5 (take_profit) · realized P&L 0 after fees 0.6" in text


def test_position_search_attributes_are_upserted_only_when_changed():
    current = TypedSearchAttributes(
        [
            SearchAttributePair(sa.SIGNAL_SYMBOL, "BTCUSDT"),
            SearchAttributePair(sa.SIGNAL_INTERVAL, "5m"),
            SearchAttributePair(sa.TRADER_ID, "t1"),
            SearchAttributePair(sa.POSITION_STATUS, "opening"),
        ]
    )
    updates = sa.position_changed(current, "BTCUSDT", "5m", "t1", "open")
    assert [(u.key.name, u.value) for u in updates] == [("PositionStatus", "open")]
    assert sa.position_changed(current, "BTCUSDT", "5m", "t1", "opening") == []
    fresh = sa.position_changed(TypedSearchAttributes.empty, "BTCUSDT", "5m", "", "open")
    assert [u.key.name for u in fresh] == ["SignalSymbol", "SignalInterval", "TraderId", "PositionStatus"]
