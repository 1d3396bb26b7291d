from datetime import UTC, datetime, timedelta

from workflows.monitor import outcomes
from workflows.monitor.decisions import explain_decision, monitor_decision
from workflows.monitor.models import SignalContext


def test_decision_table():
    assert monitor_decision("enter_trade", 78, 95) == "continue"
    assert monitor_decision("enter_trade", 95, 95) == "enter"
    assert monitor_decision("bad_setup", 99, 95) == "abandon"
    assert monitor_decision("wait", 99, 95) == "continue"


def test_explain_decision_says_why():
    assert explain_decision("enter_trade", 78, 95, "continue") == "enter_trade 78 < min 95 -> continue"
    assert explain_decision("enter_trade", 96.5, 95, "enter") == "enter_trade 96.5 >= min 95 -> enter"
    assert explain_decision("wait", 55, 70, "continue") == "wait 55 -> continue"


def test_after_analysis():
    assert outcomes.after_analysis("enter", 2, 5) == ("in_position", "entered at analysis #2")
    assert outcomes.after_analysis("abandon", 1, 5) == ("expired", "abandoned by the model at analysis #1")
    assert outcomes.after_analysis("continue", 5, 5) == ("expired", "reanalysis limit reached (5)")
    assert outcomes.after_analysis("continue", 4, 5) == ("monitoring", None)


def test_ends_and_what_is_stored():
    end = outcomes.deadline_passed(before_start=False)
    assert end == ("expired", "max_monitoring_duration passed with no decision")
    assert outcomes.as_stored(end, "expired") == ("expired", end.reason)
    assert outcomes.as_stored(end, None) == ("expired", end.reason)
    assert outcomes.as_stored(end, "in_position") == ("in_position", "signal was already in_position")
    assert outcomes.abandoned_by_operator("halt") == ("expired", "abandoned by operator: halt")
    assert outcomes.too_many_failures(5, "x" * 300).reason == "5 consecutive analyses failed: " + "x" * 200
    assert outcomes.cancelled() == ("cancelled", "cancelled by operator")
    assert outcomes.invalid("NULL timestamp") == ("failed", "NULL timestamp")


def test_recorded_end():
    wanted = outcomes.after_analysis("enter", 1, 5)
    assert outcomes.recorded_end("in_position", wanted, None) == ("in_position", "entered at analysis #1")
    assert outcomes.recorded_end("failed", wanted, "trader deleted") == ("failed", "trader deleted")
    assert outcomes.recorded_end("cancelled", outcomes.after_analysis("continue", 1, 5), None) == (
        "cancelled",
        "signal is cancelled",
    )


def test_context_problems():
    base = dict(signal_id="s", status="new", signal_time=datetime.now(UTC), trader_found=True, trader_id="t")
    assert outcomes.context_problem(SignalContext(symbol="BTCUSDT", interval="1m", **base)) is None
    assert outcomes.context_problem(SignalContext(symbol="BTCUSDT", interval="7m", **base)) == "unknown interval '7m'"
    assert "invalid symbol" in (outcomes.context_problem(SignalContext(symbol="BTC/USDT", interval="1m", **base)) or "")
    orphan = SignalContext(symbol="BTCUSDT", interval="1m", **{**base, "trader_found": False})
    assert outcomes.context_problem(orphan) == "trader t not found"


def test_a_deadline_outside_datetime_is_a_problem_not_an_exception():
    base = dict(signal_id="s", status="new", symbol="BTCUSDT", interval="1m", trader_found=True)
    ok = SignalContext(signal_time=datetime(2026, 1, 1, tzinfo=UTC), **base)
    assert outcomes.deadline_of(ok) == datetime(2026, 1, 2, tzinfo=UTC)
    for seconds in (9000 * 365 * 86400.0, float("inf"), float("nan"), 0.0, -5.0):
        bad = SignalContext(signal_time=datetime(2026, 1, 1, tzinfo=UTC), max_monitoring_seconds=seconds, **base)
        assert outcomes.deadline_of(bad) is None
        assert "max_monitoring_duration" in (outcomes.context_problem(bad) or "")


def test_status_words_never_raise():
    from workflows.monitor.models import MonitorStatus

    assert MonitorStatus.of("closed", MonitorStatus.FAILED) is MonitorStatus.CLOSED
    assert MonitorStatus.of("no-such-status", MonitorStatus.MONITORING) is MonitorStatus.MONITORING


def test_the_platforms_initial_analysis_is_looked_for_with_doubling_waits_until_the_grace():
    signal_time = datetime(2026, 11, 25, 12, tzinfo=UTC)
    c = SignalContext(
        signal_id="s", status="new", symbol="BTCUSDT", interval="1m", signal_time=signal_time,
        trader_found=True, platform_grace_seconds=120,
    )  # fmt: skip
    grace_end = outcomes.platform_grace_end(c)
    assert grace_end == signal_time + timedelta(seconds=120)
    assert [outcomes.platform_wait(grace_end, signal_time, n) for n in range(4)] == [10.0, 20.0, 40.0, 80.0]
    assert outcomes.platform_wait(grace_end, signal_time, 4) == 120.0  # never past the grace
    assert outcomes.platform_wait(grace_end, grace_end - timedelta(seconds=3), 0) == 3.0
    assert outcomes.platform_wait(grace_end, grace_end, 0) is None
    assert outcomes.platform_wait(grace_end, grace_end + timedelta(seconds=1), 0) is None
