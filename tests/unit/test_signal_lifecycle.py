"""Where a signal is, for `list`, `status` and `positions` (cli/lifecycle.py, cli/positions.py). Pure."""

from __future__ import annotations

from decimal import Decimal as D

from cli.lifecycle import PositionFacts, SignalFacts, monitor_statuses_for
from cli.operator import lifecycle_text, listed_status
from cli.positions import position_columns


def _position(**kw) -> PositionFacts:
    values: dict = dict(
        position_id="paper-s",
        status="open",
        mode="paper",
        side="short",
        entry_price=D("100.00000000"),
        size=D("10"),
        open_size=D("4"),
        stop_loss=D("105"),
        take_profits=[D("90")],
        exit_price=None,
        close_reason=None,
        realized_pnl=D("29.4"),
        fees_paid=D("0.6"),
        last_price=D("97"),
        opened_at=None,
        closed_at=None,
    )
    values.update(kw)
    return PositionFacts(**values)


def test_a_later_status_is_looked_for_under_the_monitor_status_it_left():
    assert monitor_statuses_for("closed") == ("in_position",)
    assert monitor_statuses_for("failed") == ("failed", "in_position")
    assert monitor_statuses_for("monitoring") == ("monitoring",)


def test_the_row_wins_over_the_frozen_attribute():
    facts = {"s": SignalFacts(signal_id="s", status="closed", monitor_reason=None)}
    assert listed_status(facts, "s", "in_position") == "closed"
    assert listed_status(None, "s", "in_position") == "in_position" and listed_status({}, "x", None) == "-"
    closed = SignalFacts(
        signal_id="s",
        status="closed",
        monitor_reason=None,
        position=_position(status="closed", open_size=D(0), exit_price=D("96.5"), realized_pnl=D("-0E-8")),
    )
    assert lifecycle_text(closed, "in_position") == "closed (position closed: exit 96.5, realized P&L 0)"
    assert "no database" in lifecycle_text(None, "in_position")


def test_positions_columns_open_then_closed():
    # A short of 4 still open from 100, last close 97: +12 unrealized.
    assert position_columns(_position()) == (
        "short",
        "100",
        "4/10",
        "105",
        "90",
        "+12 unrealized (last 97)",
        "-",
        "-",
    )
    closed = _position(status="closed", open_size=D(0), exit_price=D("96.50000000"), close_reason="take_profit")
    assert position_columns(closed)[2] == "10" and position_columns(closed)[5:] == (
        "+29.4 realized",
        "96.5",
        "take_profit",
    )
    assert position_columns(None) == ("-",) * 8
