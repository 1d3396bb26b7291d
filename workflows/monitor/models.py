"""Inputs, results and state of the signal monitor: everything that crosses the workflow/activity
boundary or is shown to operators. No secret ever belongs in these: they land in workflow history,
which every Temporal UI user can read."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictStr, computed_field

from workflows.common.candles import Kline
from workflows.common.models import CandleCounts, ProxyAnswer
from workflows.common.timefmt import iso_text

ProxyDecision = Literal["enter_trade", "bad_setup", "wait"]
MonitorDecision = Literal["enter", "continue", "abandon"]
# Signal statuses the monitor writes; `cancelled` and `failed` are its additions.
EndStatus = Literal["in_position", "expired", "cancelled", "failed"]
TERMINAL_SIGNAL_STATUSES = frozenset({"in_position", "expired", "cancelled", "failed", "closed", "rejected"})


class MonitorStatus(StrEnum):
    """The monitor's own status (the `MonitorStatus` search attribute); the last four are ends."""

    STARTING = "starting"
    ANALYZING = "analyzing"
    MONITORING = "monitoring"
    IN_POSITION = "in_position"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"
    # The platform's own ends, reported as found when the monitor starts for an ended signal.
    CLOSED = "closed"
    REJECTED = "rejected"

    @classmethod
    def of(cls, text: str, default: MonitorStatus) -> MonitorStatus:
        """The status named `text`; `default` for a word the monitor does not know (never raises)."""
        return cls._value2member_map_.get(text, default)  # type: ignore[return-value]


class SignalMonitorInput(BaseModel):
    """`{"signal_id": "<uuid>"}` when started by hand; `carried` only across continue-as-new."""

    signal_id: StrictStr = Field(min_length=1, max_length=100)
    carried: MonitorState | None = None


# --- activities -------------------------------------------------------------------------------


class LoadSignalInput(BaseModel):
    signal_id: str


class SignalContext(BaseModel):
    """The signal and its trader's monitoring settings, loaded once per monitor."""

    signal_id: str
    status: str | None
    symbol: str
    interval: str
    signal_time: datetime
    price: float | None = None
    change_percent: float | None = None
    volume: float | None = None
    indicator_data: Any | None = None
    trader_found: bool
    trader_id: str | None = None
    trader_name: str | None = None
    user_id: str | None = None
    strategy: Any = None
    max_reanalyses: int = 5
    min_confidence_to_enter: float = 70.0
    max_monitoring_seconds: float = 24 * 3600.0
    # The price-move gate (percent; None: off). A close that moved less since the last analysed
    # close is counted `gated`, not analysed, and uses no reanalysis.
    min_price_move_pct: float | None = None
    # Who runs analysis #0: the platform (its trigger 028 posts one for this signal, whose row is
    # taken as #0) or the monitor. Defaults keep payloads recorded before these fields valid.
    initial_analysis: Literal["monitor", "platform"] = "monitor"
    # How long after the signal's time the platform's analysis is waited for before the monitor
    # runs #0 itself (pg_net failed, no vault secret...).
    platform_grace_seconds: float = 120.0
    # The worker's first retry interval for `analyze_signal` (SIGNAL_MONITOR_ANALYSIS_RETRY_INITIAL_SECONDS);
    # None: the workflow's own (policies.ANALYSIS_RETRY). Replay does not compare retry policies.
    analysis_retry_initial_seconds: float | None = Field(default=None, gt=0, le=60)


class PreviousDecision(BaseModel):
    decision: ProxyDecision
    confidence: float
    reasoning: str
    candleOpenTime: int | None = None


class AnalyzeSignalInput(BaseModel):
    context: SignalContext
    analysis_number: int = Field(description="0 for the first analysis, then 1, 2, ...")
    max_reanalyses: int
    candle: Kline | None = None
    previous_decisions: list[PreviousDecision] = Field(default_factory=list)


class Analysis(ProxyAnswer):
    """llm-proxy's answer, validated and in the proxy's vocabulary."""

    decision: ProxyDecision
    key_levels: dict[str, Any] | None = None
    trade_plan: dict[str, Any] | None = None
    technical_indicators: dict[str, Any] | None = None
    # The `signal_analyses` row it came from, when it is one the platform stored (trigger 028's
    # initial analysis): recording takes that row over instead of inserting another.
    row_id: str | None = None


class FindPlatformAnalysisInput(BaseModel):
    signal_id: str


class RecordAnalysisInput(BaseModel):
    signal_id: str
    trader_id: str | None
    user_id: str | None
    symbol: str
    analysis_number: int
    candle_open_time: datetime | None
    analysis: Analysis
    monitor_decision: MonitorDecision
    new_status: Literal["monitoring", "in_position", "expired"]
    reason: str | None = None


class RecordedAnalysis(BaseModel):
    analysis_id: str
    inserted: bool = Field(description="false when a retry found the row already written")
    taken_over: bool = Field(
        default=False, description="the row llm-proxy (or the platform) had stored was given this analysis' number"
    )
    signal_status: str | None
    order_intent_id: str | None = None
    signal_reason: str | None = Field(
        default=None, description="why the signal ended, when it ended otherwise than this analysis decided"
    )


class AnalyzedSignal(BaseModel):
    """`analyze_and_record_signal`'s result: the answer, and its row when the activity could write
    it (else the workflow writes it with `record_analysis`, the answer already in its history)."""

    analysis: Analysis
    monitor_decision: MonitorDecision
    recorded: RecordedAnalysis | None = None


class FinishSignalInput(BaseModel):
    signal_id: str
    status: EndStatus
    reason: str


class FinishedSignal(BaseModel):
    signal_status: str | None = Field(
        description="the status actually stored: an earlier end (e.g. in_position) is never overwritten"
    )


class StartPositionInput(BaseModel):
    """What the monitor's `start_position_manager` activity starts `position-<id>` with after an enter."""

    signal_id: str
    task_queue: str
    entry_price: Decimal | None = None
    entry_candle_t: int | None = None


class StartedPosition(BaseModel):
    workflow_id: str
    started: bool


# --- workflow state, results, operator messages ------------------------------------------------


class MonitorCounts(CandleCounts):
    analysed: int = 0
    skipped: int = 0
    failed_analyses: int = 0


class AnalysisRecord(BaseModel):
    analysis_number: int
    candle_open_time: int | None
    proxy_decision: ProxyDecision
    decision: MonitorDecision
    confidence: float
    reasoning: str
    analysis_id: str | None = None
    at: datetime
    # Why `decision` follows from `proxy_decision` (e.g. "enter_trade 78 < min 95 -> continue").
    mapped: str | None = None
    price: str | None = Field(default=None, description="the candle's close, or the signal's price for #0")
    # What the `model` backend's call cost (USD), when it says; None from llm-proxy.
    cost_usd: Decimal | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def candle_open_time_iso(self) -> str | None:
        return iso_text(self.candle_open_time)


class FailedAnalysis(BaseModel):
    candle_open_time: int | None
    error: str
    at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def candle_open_time_iso(self) -> str | None:
        return iso_text(self.candle_open_time)


class MonitorState(BaseModel):
    """The workflow's live state, and what a run hands to the next across continue-as-new (the
    server de-duplicates nothing across runs, so the de-duplication state must travel here).
    Fields marked `exclude` live only within one run. `context`, `deadline` and `max_reanalyses`
    are None only until the signal is loaded (a carried state always has them)."""

    context: SignalContext | None = None
    status: MonitorStatus = MonitorStatus.STARTING
    deadline: datetime | None = None
    max_reanalyses: int | None = None
    initial_done: bool = False
    last_taken_t: int | None = None
    recent_t: list[int] = Field(default_factory=list)
    pending: Kline | None = None
    retry_candle: Kline | None = None
    retry_initial: bool = False
    consecutive_failures: int = 0
    counts: MonitorCounts = Field(default_factory=MonitorCounts)
    history: list[AnalysisRecord] = Field(default_factory=list)
    failures: list[FailedAnalysis] = Field(default_factory=list)
    skipped_t: list[int] = Field(default_factory=list)
    runs: int = 1

    # This run only.
    early: list[Kline] = Field(default_factory=list, exclude=True, description="closes sent before the load")
    analysing: bool = Field(default=False, exclude=True)
    force_reanalysis: bool = Field(default=False, exclude=True)
    abandon_reason: str | None = Field(default=None, exclude=True)
    limit_changed: bool = Field(default=False, exclude=True)
    result: MonitorResult | None = Field(default=None, exclude=True)
    order_intent_id: str | None = Field(default=None, exclude=True)

    @property
    def reanalyses(self) -> int:
        return max(0, len(self.history) - 1)

    @property
    def last_decision(self) -> AnalysisRecord | None:
        return self.history[-1] if self.history else None


class MonitorView(BaseModel):
    """The `state` query."""

    signal_id: str
    status: str
    symbol: str | None = None
    interval: str | None = None
    trader_id: str | None = None
    analyses: int
    reanalyses: int
    max_reanalyses: int | None = None
    counts: MonitorCounts
    last_decision: AnalysisRecord | None = None
    history: list[AnalysisRecord]
    failures: list[FailedAnalysis]
    skipped_candles: list[int]
    pending_candle: int | None = None
    analysing: bool
    consecutive_failures: int
    deadline: datetime | None = None
    end_reason: str | None = None
    runs: int = 1

    @computed_field  # type: ignore[prop-decorator]
    @property
    def deadline_iso(self) -> str | None:
        return iso_text(self.deadline)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pending_candle_iso(self) -> str | None:
        return iso_text(self.pending_candle)


class MonitorResult(BaseModel):
    signal_id: str
    status: str = Field(description="in_position, expired, cancelled or failed; or the platform's own end status")
    reason: str
    analyses: int
    reanalyses: int
    last_decision: AnalysisRecord | None = None
    order_intent_id: str | None = None
    counts: MonitorCounts
    ended_at: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ended_at_iso(self) -> str | None:
        return iso_text(self.ended_at)


MonitorState.model_rebuild()
SignalMonitorInput.model_rebuild()
