"""A decision and its row in one activity attempt, on the `-llm` queue: `analyze_and_record_signal`
(patch `analysis-activity-records-its-row`) and `manage_and_record_position` (patch
`position-manage-activity-records-a-hold`). Issue 27's same-work floor: one activation, one local
activity and one history marker fewer per candle than asking, then writing from the workflow.

Each is the decision backend's activity (llm-proxy's or the model's, whichever the worker runs)
followed by the store's write (the real one or shadow mode's), and the row is the one the workflow
would write: `workflows.monitor.steps.answered` and `workflows.position.steps.hold_row` build it
from the request alone. A position's answer is written here only when it is a `hold`: any other
action places or changes orders first, from the workflow.

The write is tried once, within `RECORD_WITHIN`: an attempt must not outlive its heartbeat timeout
once the answer is in (a timed-out attempt is retried, and a retry asks again). A write that fails
or is slow returns the answer without its row, and the workflow writes it with its local record
activity, which waits out the database with Temporal's retries and classifies its errors. Writes
are idempotent (keyed on the signal and analysis, the position and candle), so a write that
committed as it was given up is found by the workflow's, not doubled. A written answer comes back
without the fields only its row needs (`ROW_ONLY_*`); an unwritten one comes back whole, for the
workflow's write."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import activity

from activities import activity_metrics
from workflows.common import names
from workflows.monitor import steps as monitor_steps
from workflows.monitor.models import Analysis, AnalyzedSignal, AnalyzeSignalInput, RecordAnalysisInput, RecordedAnalysis
from workflows.position import steps as position_steps
from workflows.position.models import (
    ManageAndRecordInput,
    ManagedPosition,
    ManagementAnswer,
    ManagePositionInput,
    RecordDecisionInput,
    RecordedDecision,
)

# Well under the decision activities' 10 s heartbeat timeout, with the SDK's heartbeat throttling.
RECORD_WITHIN = 2.0

# Fields of an answer only its row needs (the workflows read the decision, confidence, reasoning,
# the action and the model's audit): left out of the result once the row is written, so the
# history does not carry each answer twice (about 1 KB per candle).
ROW_ONLY_ANALYSIS = ("raw_ai_response", "key_levels", "trade_plan", "technical_indicators")
ROW_ONLY_MANAGEMENT = ("raw_ai_response", "risk_assessment")

Row = TypeVar("Row")
Written = TypeVar("Written")


async def write_within(
    write: Callable[[Row], Awaitable[Written]], row: Row, within: float, what: str, whose: str
) -> Written | None:
    """`write(row)` once, or None (logged) when it fails or takes longer than `within` seconds."""
    started = time.monotonic()
    try:
        written = await asyncio.wait_for(write(row), within)
    except Exception as exc:  # any failure: the workflow's own record activity writes it
        activity.logger.warning(
            "%s: answer kept, row left to the workflow (%s: %s)", whose, type(exc).__name__, str(exc)[:200]
        )
        return None
    activity_metrics.record_latency(timedelta(seconds=time.monotonic() - started), what)
    return written


class DecisionRecorder:
    """The worker's decision backend (`analyze`, `manage`) and its stores' writes (`record_analysis`,
    `record_decision`), joined into the two activities."""

    def __init__(
        self,
        analyze: Callable[[AnalyzeSignalInput], Awaitable[Analysis]],
        record_analysis: Callable[[RecordAnalysisInput], Awaitable[RecordedAnalysis]],
        manage: Callable[[ManagePositionInput], Awaitable[ManagementAnswer]],
        record_decision: Callable[[RecordDecisionInput], Awaitable[RecordedDecision]],
        record_within: float = RECORD_WITHIN,
    ) -> None:
        self._analyze, self._record_analysis = analyze, record_analysis
        self._manage, self._record_decision = manage, record_decision
        self._record_within = record_within

    @activity.defn(name=names.ANALYZE_AND_RECORD_SIGNAL)
    async def analyze_and_record_signal(self, input: AnalyzeSignalInput) -> AnalyzedSignal:
        analysis = await self._analyze(input)
        decision, _, row = monitor_steps.answered(input, analysis)
        whose = f"signal {input.context.signal_id} analysis {input.analysis_number}"
        recorded = await write_within(self._record_analysis, row, self._record_within, "analysis", whose)
        if recorded is not None:
            # The row holds the whole answer; history keeps what the workflow reads.
            analysis = analysis.model_copy(update=dict.fromkeys(ROW_ONLY_ANALYSIS))
        return AnalyzedSignal(analysis=analysis, monitor_decision=decision, recorded=recorded)

    @activity.defn(name=names.MANAGE_AND_RECORD_POSITION_ACTIVITY)
    async def manage_and_record_position(self, input: ManageAndRecordInput) -> ManagedPosition:
        answer = await self._manage(input.request)
        row = position_steps.hold_row(input, answer)
        if row is None:
            return ManagedPosition(answer=answer)
        whose = f"position {input.request.position_id} candle {input.request.candle.t}"
        recorded = await write_within(self._record_decision, row, self._record_within, "management", whose)
        if recorded is not None:
            answer = answer.model_copy(update=dict.fromkeys(ROW_ONLY_MANAGEMENT))
        return ManagedPosition(answer=answer, recorded=recorded)
