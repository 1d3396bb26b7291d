"""Pure operations on the monitor's state model: what loading, an analysis, a failure or an
operator's request does to it, the activity inputs built from it, and its result. No Temporal: the
workflow passes `workflow.now()` in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Literal, NamedTuple

from workflows.common import names
from workflows.common.candles import Kline
from workflows.common.display import candle_span
from workflows.common.models import PREVIOUS_DECISIONS_SENT, REASONING_KEPT
from workflows.monitor import outcomes
from workflows.monitor.decisions import explain_decision, monitor_decision
from workflows.monitor.models import (
    TERMINAL_SIGNAL_STATUSES,
    Analysis,
    AnalysisRecord,
    AnalyzeSignalInput,
    FailedAnalysis,
    MonitorDecision,
    MonitorResult,
    MonitorState,
    MonitorStatus,
    PreviousDecision,
    RecordAnalysisInput,
    RecordedAnalysis,
    SignalContext,
    StartPositionInput,
)
from workflows.monitor.outcomes import AnalysisOutcome, End

FAILURES_KEPT = 20


def loaded(s: MonitorState, ctx: SignalContext, now: datetime) -> End | AlreadyEnded | None:
    """The signal is loaded: kept with its limit and, if usable, its deadline. What ends the
    monitor at once: a signal that already ended (reported as it is, nothing written), one that
    cannot be monitored, a deadline already passed. Else the monitor is analysing."""
    s.context, s.max_reanalyses, deadline = ctx, ctx.max_reanalyses, outcomes.deadline_of(ctx)
    if ctx.status in TERMINAL_SIGNAL_STATUSES:
        return AlreadyEnded(ctx.status, f"signal was already {ctx.status}")
    problem = outcomes.context_problem(ctx)
    if problem or deadline is None:
        return outcomes.invalid(problem or "max_monitoring_duration is not usable")
    s.deadline = deadline
    if now >= deadline:
        return outcomes.deadline_passed(before_start=True)
    s.status = MonitorStatus.ANALYZING
    return None


def has_work(s: MonitorState) -> bool:
    """Something for the main loop to do (besides continue-as-new and the deadline)."""
    return s.pending is not None or s.force_reanalysis or s.abandon_reason is not None or s.limit_changed


class AlreadyEnded(NamedTuple):
    """Started for a signal that had ended: its stored status and why, reported as they are."""

    status: str
    reason: str


class Analyse(NamedTuple):
    """Run the analysis of `candle` (None: of the signal itself, analysis #0 again)."""

    candle: Kline | None


# "wait": back to waiting (a forced reanalysis found nothing to analyse); "continue": nothing to
# do now, continue as new if that is suggested.
NextStep = End | Analyse | Literal["wait", "continue"]


def next_step(s: MonitorState, continue_as_new_first: Callable[[], bool]) -> NextStep:
    """What the main loop does once woken, in priority order: an operator's abandon, a lowered
    limit that is now reached, a forced reanalysis (the newest close without an analysis, else the
    signal itself if its first failed), the waiting close unless continue-as-new comes first
    (`continue_as_new_first`: the workflow's check, asked only when a close waits). Clears the
    flags it acts on."""
    if s.abandon_reason is not None:
        return outcomes.abandoned_by_operator(s.abandon_reason)
    if s.limit_changed:
        s.limit_changed = False
        if limit_reached(s):
            return outcomes.limit_lowered()
    if s.force_reanalysis:
        s.force_reanalysis = False
        candle = s.pending or s.retry_candle
        s.pending = None
        return Analyse(candle) if candle is not None or s.retry_initial else "wait"
    if s.pending is not None and not continue_as_new_first():
        candle, s.pending = s.pending, None
        return Analyse(candle)
    return "continue"


def analysis_request(
    s: MonitorState, ctx: SignalContext, number: int, limit: int, candle: Kline | None
) -> AnalyzeSignalInput:
    return AnalyzeSignalInput(
        context=ctx,
        analysis_number=number,
        max_reanalyses=limit,
        candle=candle,
        previous_decisions=[
            PreviousDecision(
                decision=d.proxy_decision,
                confidence=d.confidence,
                reasoning=d.reasoning,
                candleOpenTime=d.candle_open_time,
            )
            for d in s.history[-PREVIOUS_DECISIONS_SENT:]
        ],
    )


def analysed(
    s: MonitorState,
    ctx: SignalContext,
    number: int,
    candle: Kline | None,
    analysis: Analysis,
    decision: MonitorDecision,
    recorded: RecordedAnalysis,
    now: datetime,
) -> None:
    """An analysis is recorded: it supersedes any earlier failed one (only the newest candle matters)."""
    s.analysing = False
    s.consecutive_failures = 0
    s.counts.analysed += 1
    s.retry_initial = False
    if s.retry_candle is not None and (candle is None or s.retry_candle.t <= candle.t):
        s.retry_candle = None
    s.history.append(
        AnalysisRecord(
            analysis_number=number,
            candle_open_time=candle.t if candle else None,
            proxy_decision=analysis.decision,
            decision=decision,
            confidence=analysis.confidence,
            reasoning=analysis.reasoning[:REASONING_KEPT],
            analysis_id=recorded.analysis_id,
            at=now,
            mapped=explain_decision(analysis.decision, analysis.confidence, ctx.min_confidence_to_enter, decision),
            price=candle.c if candle else (str(ctx.price) if ctx.price is not None else None),
            cost_usd=analysis.model_call.cost_usd if analysis.model_call else None,
        )
    )
    s.order_intent_id = recorded.order_intent_id or s.order_intent_id


def analysis_failed(s: MonitorState, candle: Kline | None, message: str, now: datetime) -> End | None:
    """An analysis failed after its retries: kept for `reanalyze` and for the next success to
    supersede. Too many in a row end the monitor."""
    s.consecutive_failures += 1
    s.counts.failed_analyses += 1
    s.failures.append(FailedAnalysis(candle_open_time=candle.t if candle else None, error=message[:300], at=now))
    del s.failures[:-FAILURES_KEPT]
    if candle is None:
        s.retry_initial = True
    else:
        s.retry_candle = candle
    if s.consecutive_failures >= outcomes.MAX_CONSECUTIVE_FAILURES:
        return outcomes.too_many_failures(s.consecutive_failures, message)
    return None


def analyses_done(s: MonitorState) -> int:
    """Analyses finished, recorded or failed: what a `reanalyze` waits to see grow."""
    return s.counts.analysed + s.counts.failed_analyses


def limit_reached(s: MonitorState) -> bool:
    last = s.last_decision
    return (
        last is not None
        and s.max_reanalyses is not None
        and last.decision == "continue"
        and s.reanalyses >= s.max_reanalyses
        and not s.analysing
    )


def not_active(s: MonitorState) -> tuple[str, str] | None:
    """(error type, message) when no operator request can be taken now."""
    if s.result is not None:
        return names.MONITOR_ENDED, f"monitor has ended ({s.result.status})"
    if s.context is None:
        return names.MONITOR_NOT_READY, "monitor is still loading its signal; try again"
    return None


def reanalyze_refusal(s: MonitorState) -> str | None:
    if s.analysing or s.force_reanalysis:
        return "an analysis is already running"
    if not (s.retry_initial or s.pending is not None or s.retry_candle is not None):
        latest = candle_span(s.last_taken_t, s.context.interval if s.context else None, none="the signal")
        return (
            f"nothing to reanalyse: the latest candle ({latest}) is already analysed and the database "
            "keeps one analysis per candle; the next close will be analysed"
        )
    if s.max_reanalyses is not None and s.reanalyses >= s.max_reanalyses and s.history:
        return "the reanalysis limit is reached"
    return None


def set_limit_refusal(s: MonitorState, limit: int) -> str | None:
    if limit < s.reanalyses:
        return f"limit {limit} is below the {s.reanalyses} reanalyses already done"
    return None


def result_of(signal_id: str, s: MonitorState, status: str, reason: str, now: datetime) -> MonitorResult:
    return MonitorResult(
        signal_id=signal_id,
        status=status,
        reason=reason,
        analyses=len(s.history),
        reanalyses=s.reanalyses,
        last_decision=s.last_decision,
        order_intent_id=s.order_intent_id,
        counts=s.counts,
        ended_at=now,
    )


def record_request(
    ctx: SignalContext,
    number: int,
    candle: Kline | None,
    analysis: Analysis,
    decision: MonitorDecision,
    outcome: AnalysisOutcome,
) -> RecordAnalysisInput:
    return RecordAnalysisInput(
        signal_id=ctx.signal_id,
        trader_id=ctx.trader_id,
        user_id=ctx.user_id,
        symbol=ctx.symbol,
        analysis_number=number,
        candle_open_time=candle.open_time() if candle else None,
        analysis=analysis,
        monitor_decision=decision,
        new_status=outcome.new_status,
        reason=outcome.reason,
    )


class Answered(NamedTuple):
    """What an analysis' answer means for the monitor, and the row that records it."""

    decision: MonitorDecision
    outcome: AnalysisOutcome
    record: RecordAnalysisInput


def answered(request: AnalyzeSignalInput, analysis: Analysis) -> Answered:
    """From the analysis request alone (its context, number and limit as they were when it was
    asked), so `analyze_and_record_signal` writes the very row the workflow would."""
    ctx, number = request.context, request.analysis_number
    decision = monitor_decision(analysis.decision, analysis.confidence, ctx.min_confidence_to_enter)
    outcome = outcomes.after_analysis(decision, number, request.max_reanalyses)
    return Answered(decision, outcome, record_request(ctx, number, request.candle, analysis, decision, outcome))


def position_start(signal_id: str, ctx: SignalContext, candle: Kline | None, task_queue: str) -> StartPositionInput:
    """What starts `position-<id>` after an enter: the deciding candle's close is the paper entry
    (the signal's own price for an enter at analysis #0)."""
    price = Decimal(candle.c) if candle is not None else (Decimal(str(ctx.price)) if ctx.price else None)
    return StartPositionInput(
        signal_id=signal_id,
        task_queue=task_queue,
        entry_price=price if price is not None and price > 0 else None,
        entry_candle_t=candle.t if candle is not None else None,
    )
