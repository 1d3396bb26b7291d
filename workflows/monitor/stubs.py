"""The monitor's activities as typed calls by name (the SDK's stub pattern): the workflow never
imports `activities/` (httpx, asyncpg). Each stub carries its timeouts and retry policy.
Only callable from workflow code."""

from __future__ import annotations

from workflows.common import names, policies
from workflows.common.activity_calls import db_call, llm_call
from workflows.monitor.models import (
    Analysis,
    AnalyzedSignal,
    AnalyzeSignalInput,
    FindPlatformAnalysisInput,
    FinishedSignal,
    FinishSignalInput,
    LoadSignalInput,
    RecordAnalysisInput,
    RecordedAnalysis,
    SignalContext,
    StartedPosition,
    StartPositionInput,
)


async def load_signal(arg: LoadSignalInput) -> SignalContext:
    return await db_call(names.LOAD_SIGNAL, arg, SignalContext, "load signal and trader")


async def record_analysis(arg: RecordAnalysisInput, summary: str, local: bool) -> RecordedAnalysis:
    # Local: the same retries as the regular activity (backoffs of at most 30 s, under the local threshold).
    return await db_call(names.RECORD_ANALYSIS, arg, RecordedAnalysis, summary, local=local)


async def finish_signal(arg: FinishSignalInput) -> FinishedSignal:
    return await db_call(names.FINISH_SIGNAL, arg, FinishedSignal, f"mark signal {arg.status}")


async def analyze_signal(arg: AnalyzeSignalInput, summary: str) -> Analysis:
    retry = policies.analysis_retry(arg.context.analysis_retry_initial_seconds)
    return await llm_call(names.ANALYZE_SIGNAL, arg, Analysis, summary, retry)


async def analyze_and_record_signal(arg: AnalyzeSignalInput, summary: str) -> AnalyzedSignal:
    retry = policies.analysis_retry(arg.context.analysis_retry_initial_seconds)
    return await llm_call(names.ANALYZE_AND_RECORD_SIGNAL, arg, AnalyzedSignal, summary, retry)


async def find_platform_analysis(arg: FindPlatformAnalysisInput) -> Analysis | None:
    summary = "look for the platform's initial analysis"
    return await db_call(names.FIND_PLATFORM_ANALYSIS, arg, Analysis | None, summary)  # type: ignore[arg-type]


async def start_position_manager(arg: StartPositionInput) -> StartedPosition:
    summary = f"start {names.position_workflow_id_for(arg.signal_id)}"
    return await db_call(names.START_POSITION_ACTIVITY, arg, StartedPosition, summary, policies.START_POSITION_RETRY)
