from datetime import UTC, datetime, timedelta

from tests.helpers.contexts import signal_context
from workflows.common.candles import Kline
from workflows.monitor import outcomes, steps, view
from workflows.monitor.models import (
    Analysis,
    MonitorState,
    MonitorStatus,
    MonitorView,
    RecordedAnalysis,
    SignalContext,
)

NOW = datetime(2025, 11, 25, 12, tzinfo=UTC)
T0 = 1764068400000


def ctx(**kw) -> SignalContext:
    return signal_context(
        **{"signal_time": NOW, "price": 43250.12, "trader_id": "t", "min_confidence_to_enter": 95, **kw}
    )


def candle() -> Kline:
    return Kline.model_validate(
        {
            "t": T0,
            "T": T0 + 59_999,
            "s": "BTCUSDT",
            "i": "1m",
            "o": "1",
            "h": "1",
            "l": "1",
            "c": "43300.5",
            "v": "1",
            "x": True,
        }
    )


def answer(decision="enter_trade", confidence=78.0) -> Analysis:
    return Analysis(decision=decision, confidence=confidence, reasoning="Breakout " * 40, latency_ms=5)


def loaded() -> MonitorState:
    return MonitorState(context=ctx(), deadline=NOW, max_reanalyses=5)


def test_an_analysis_is_recorded_with_its_price_and_why():
    s = loaded()
    s.retry_initial, s.consecutive_failures = True, 2
    steps.analysed(
        s,
        ctx(),
        0,
        None,
        answer("wait", 55),
        "continue",
        RecordedAnalysis(analysis_id="a0", inserted=True, signal_status="monitoring"),
        NOW,
    )
    steps.analysed(
        s,
        ctx(),
        1,
        candle(),
        answer(),
        "continue",
        RecordedAnalysis(analysis_id="a1", inserted=True, signal_status="monitoring"),
        NOW,
    )
    first, last = s.history
    assert first.price == "43250.12" and last.price == "43300.5"
    assert last.mapped == "enter_trade 78 < min 95 -> continue"
    assert s.counts.analysed == 2 and s.consecutive_failures == 0 and not s.retry_initial
    assert s.reanalyses == 1 and s.last_decision is last
    text = view.details_text(s, ctx())
    assert "price 43300.5" in text and "enter_trade 78 < min 95 -> continue" in text and "> Breakout" in text
    assert "on candle 2025-11-25 11:00–11:01 UTC" in text  # the candle by both ends


def test_details_before_any_analysis_show_the_signal_price():
    assert "price 43250.12" in view.details_text(loaded(), ctx())


def test_failures_are_kept_bounded_and_remembered_for_reanalyze():
    s = loaded()
    for _ in range(30):
        steps.analysis_failed(s, candle(), "LlmProxyServerError: 502", NOW)
    assert len(s.failures) == steps.FAILURES_KEPT and s.consecutive_failures == 30
    assert s.retry_candle == candle() and steps.reanalyze_refusal(s) is None


def test_operator_refusals():
    s = MonitorState()
    assert (steps.not_active(s) or ("", ""))[0] == "MonitorNotReady"
    s = loaded()
    assert steps.not_active(s) is None
    assert "nothing to reanalyse" in (steps.reanalyze_refusal(s) or "")
    s.analysing = True
    assert steps.reanalyze_refusal(s) == "an analysis is already running"
    s.analysing = False
    for n in range(3):
        steps.analysed(
            s,
            ctx(),
            n,
            None,
            answer("wait"),
            "continue",
            RecordedAnalysis(analysis_id=str(n), inserted=True, signal_status="monitoring"),
            NOW,
        )
    assert steps.set_limit_refusal(s, 1) == "limit 1 is below the 2 reanalyses already done"
    assert steps.set_limit_refusal(s, 2) is None
    s.max_reanalyses = 2
    assert steps.limit_reached(s)


def test_state_view_and_result_carry_iso_times():
    s = loaded()
    s.pending = candle()
    shown = view.state_view("s", s)
    dumped = shown.model_dump(mode="json")
    assert dumped["pending_candle_iso"] == "2025-11-25T11:00:00Z" and dumped["deadline_iso"] == "2025-11-25T12:00:00Z"
    # Old payloads (no ISO fields) still parse, and the computed ones are ignored on input.
    assert MonitorView.model_validate(dumped).pending_candle == T0
    result = steps.result_of("s", s, "expired", "r", NOW).model_dump(mode="json")
    assert result["ended_at_iso"] == "2025-11-25T12:00:00Z"


def test_the_carry_leaves_out_what_lives_in_one_run():
    s = loaded()
    s.analysing, s.abandon_reason, s.order_intent_id = True, "x", "o"
    carried = s.model_dump(mode="json")
    assert not {"analysing", "abandon_reason", "order_intent_id", "result", "early"} & carried.keys()
    assert MonitorState.model_validate(carried).context == ctx()


def test_excerpt():
    assert view.excerpt("a\n b") == "a b"
    assert len(view.excerpt("x" * 500)) == 160


def never() -> bool:
    raise AssertionError("continue-as-new is asked about only when a close waits")


def test_the_main_loop_acts_on_an_abandon_first_then_a_lowered_limit():
    s = loaded()
    s.abandon_reason, s.limit_changed, s.force_reanalysis = "halted", True, True
    assert steps.next_step(s, never) == outcomes.End("expired", "abandoned by operator: halted")
    assert s.limit_changed and s.force_reanalysis  # untouched: the monitor ends
    s.abandon_reason = None
    s.force_reanalysis = False
    s.history.append(_continue_record())
    s.max_reanalyses = 0
    assert steps.next_step(s, never) == outcomes.limit_lowered()
    assert not s.limit_changed
    s.max_reanalyses, s.limit_changed = 5, True
    assert steps.next_step(s, never) == "continue"  # raised again: nothing to end, nothing to analyse
    assert not s.limit_changed


def _continue_record():
    s = loaded()
    steps.analysed(
        s, ctx(), 0, None, answer("wait"), "continue",
        RecordedAnalysis(analysis_id="a", inserted=True, signal_status="monitoring"), NOW,
    )  # fmt: skip
    return s.history[-1]


def test_a_forced_reanalysis_takes_the_newest_close_else_the_failed_one_else_the_signal():
    s = loaded()
    s.force_reanalysis, s.pending, s.retry_candle = True, candle(), None
    assert steps.next_step(s, never) == steps.Analyse(candle())
    assert (s.force_reanalysis, s.pending) == (False, None)
    s.force_reanalysis, s.retry_candle = True, candle()
    assert steps.next_step(s, never) == steps.Analyse(candle())
    s.force_reanalysis, s.retry_candle, s.retry_initial = True, None, True
    assert steps.next_step(s, never) == steps.Analyse(None)
    s.force_reanalysis, s.retry_initial = True, False
    assert steps.next_step(s, never) == "wait"  # nothing to analyse: back to waiting
    assert not s.force_reanalysis


def test_a_waiting_close_is_analysed_unless_continue_as_new_comes_first():
    s = loaded()
    s.pending = candle()
    assert steps.next_step(s, lambda: True) == "continue" and s.pending == candle()  # carried
    assert steps.next_step(s, lambda: False) == steps.Analyse(candle()) and s.pending is None
    assert steps.next_step(s, never) == "continue"


def test_loading_keeps_the_limit_and_deadline_or_says_why_the_monitor_ends():
    s = MonitorState()
    assert steps.loaded(s, ctx(), NOW - timedelta(minutes=1)) is None
    assert (s.context, s.max_reanalyses, s.status) == (ctx(), 5, MonitorStatus.ANALYZING)
    assert s.deadline == NOW + timedelta(hours=24)
    ended = MonitorState()
    assert steps.loaded(ended, ctx(status="in_position"), NOW) == steps.AlreadyEnded(
        "in_position", "signal was already in_position"
    )
    assert ended.context is not None and ended.deadline is None and ended.status != MonitorStatus.ANALYZING
    bad = MonitorState()
    assert steps.loaded(bad, ctx(trader_found=False), NOW) == outcomes.invalid("trader t not found")
    assert bad.deadline is None
    endless = MonitorState()
    end = steps.loaded(endless, ctx(max_monitoring_seconds=0), NOW)
    assert isinstance(end, outcomes.End) and end.status == "failed" and "not a usable time" in end.reason
    assert endless.deadline is None
    late = MonitorState()
    assert steps.loaded(late, ctx(), NOW + timedelta(hours=25)) == outcomes.deadline_passed(before_start=True)
    assert late.deadline == NOW + timedelta(hours=24)  # shown by the state query


def test_too_many_failures_in_a_row_end_the_monitor():
    s = loaded()
    for _ in range(outcomes.MAX_CONSECUTIVE_FAILURES - 1):
        assert steps.analysis_failed(s, None, "LlmProxyServerError: 502", NOW) is None
    assert steps.analysis_failed(s, None, "LlmProxyServerError: 502", NOW) == outcomes.too_many_failures(
        outcomes.MAX_CONSECUTIVE_FAILURES, "LlmProxyServerError: 502"
    )
    assert s.retry_initial and steps.analyses_done(s) == outcomes.MAX_CONSECUTIVE_FAILURES


def test_details_of_an_entered_monitor_point_at_its_position():
    s = loaded()
    s.status = MonitorStatus.IN_POSITION
    text = view.details_text(s, ctx())
    assert "entered: the position is managed by `position-s`" in text


def test_an_answer_means_the_same_decision_and_row_in_the_activity_as_in_the_workflow():
    """`answered` reads only the request (as it was when asked), so the analysis activity writes the
    row the workflow would: the trader's minimum confidence, the limit, the candle and the number."""
    s = loaded()
    request = steps.analysis_request(s, ctx(), 5, 5, candle())
    entered = steps.answered(request, answer("enter_trade", 96))
    assert entered.decision == "enter" and entered.outcome.new_status == "in_position"
    assert entered.record.candle_open_time == candle().open_time() and entered.record.analysis_number == 5
    assert entered.record.new_status == "in_position" and entered.record.reason == "entered at analysis #5"
    short = steps.answered(request, answer("enter_trade", 78))  # below min_confidence_to_enter 95
    assert short.decision == "continue" and short.outcome.new_status == "expired"  # at the limit (5 of 5)
    assert short.record.reason == "reanalysis limit reached (5)"
    early = steps.answered(steps.analysis_request(s, ctx(), 0, 5, None), answer("wait", 50))
    assert early.decision == "continue" and early.record.new_status == "monitoring"
    assert early.record.candle_open_time is None
    assert steps.answered(request, answer("bad_setup", 80)).record.new_status == "expired"
