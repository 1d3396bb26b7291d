"""Inputs, results and state of the position manager. Like the monitor's models, nothing secret
belongs here: all of it lands in workflow history. Amounts are exact decimals."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workflows.common.candles import Kline
from workflows.common.model_call import ModelCall
from workflows.common.models import CandleCounts, ProxyAnswer
from workflows.position.actions import ManageAction
from workflows.position.paper import Side
from workflows.position.risk import ExitKind, RiskSettings

ExchangeTarget = Annotated[
    Decimal | None, Field(description="the target that closes all that is left: a live account rests it (OCO)")
]


class PositionStatus(StrEnum):
    OPENING = "opening"
    OPEN = "open"
    CLOSED = "closed"
    NOT_OPENED = "not_opened"


CloseReason = Literal[
    "stop_loss", "trailing_stop", "max_loss", "take_profit", "close_action", "operator", "max_position_duration"
]
OrderKind = Literal["stop_loss", "trailing_stop", "max_loss", "take_profit", "reduce", "close"]


class PositionManagerInput(BaseModel):
    """`{"signal_id": "<uuid>"}` by hand. The monitor adds the deciding candle's close and open time;
    `state` is only set across continue-as-new."""

    model_config = ConfigDict(extra="forbid")

    signal_id: str
    entry_price: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    entry_candle_t: int | None = Field(default=None, ge=0)
    state: PositionState | None = None
    # `signal-monitor close` of a position whose workflow ended: take over the open position row,
    # never open one (nothing open: the run ends without an order).
    take_over_only: bool = False

    @field_validator("signal_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError(f"{value[:80]!r} is not a UUID") from None

    @model_validator(mode="after")
    def _own_state(self) -> PositionManagerInput:
        # A carried state is this signal's own: one crafted for another signal would act on its position.
        state = self.state
        if state is not None and (
            state.signal_id != self.signal_id
            or (state.context is not None and state.context.signal_id != self.signal_id)
        ):
            raise ValueError("state belongs to another signal")
        return self


class LoadPositionInput(BaseModel):
    signal_id: str


class ExistingPosition(BaseModel):
    """The signal's position row as the database has it when a position workflow starts: a run
    started over a position another run opened (after a terminate, a failure, an operator's close
    of an unmanaged position) takes it from here instead of opening another."""

    position_id: str
    status: str
    side: Side
    quantity: Decimal
    initial_quantity: Decimal
    entry_price: Decimal
    mark_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profits: list[Decimal] = Field(default_factory=list)
    realized_pnl: Decimal = Decimal(0)
    fees_paid: Decimal = Decimal(0)
    exit_price: Decimal | None = None
    close_reason: str | None = None
    opened_at: datetime | None = None
    last_managed_t: int | None = Field(default=None, description="open time of the last managed close")


class PositionContext(BaseModel):
    """The signal, its order intent and its trader's position settings, loaded once."""

    signal_id: str
    signal_status: str | None
    symbol: str
    interval: str = Field(description="the management interval: the trader's, else the signal's")
    trader_found: bool
    trader_id: str | None = None
    trader_name: str | None = None
    user_id: str | None = None
    strategy: Any = None
    side: Side = "long"
    stop_loss: Decimal | None = None
    take_profits: list[Decimal] = Field(default_factory=list)
    reference_price: Decimal | None = Field(default=None, description="entry reference when the input has none")
    decided_candle_t: int | None = Field(default=None, description="open time of the candle that decided enter")
    risk: RiskSettings = Field(default_factory=RiskSettings)
    paper_stake: Decimal = Decimal(1000)
    max_position_seconds: float = 7 * 24 * 3600.0
    max_consecutive_losses: int | None = None
    # The management price-move gate (percent; None: off): the model is not asked about a close
    # that moved less since the last one it was asked about; stop and target checks still run.
    management_min_move_pct: Decimal | None = None
    existing: ExistingPosition | None = None


class Fill(BaseModel):
    order_id: str
    kind: OrderKind | Literal["entry"]
    price: Decimal
    quantity: Decimal
    fee: Decimal
    realized_pnl: Decimal = Field(description="this fill's gross P&L minus its fee (the entry: minus its fee)")
    inserted: bool = Field(description="false when a retry found the order already filled")


class ReconcileInput(BaseModel):
    """A live position against its exchange; `key`: this reconcile's idempotency key (a stop put
    back is placed under it)."""

    key: str
    position_id: str
    signal_id: str


class Reconciled(BaseModel):
    fill: Fill | None = Field(default=None, description="the exit the exchange made (the resting stop filled)")
    ended: str | None = Field(default=None, description="why the position ended without an exit of ours")
    protected: bool = Field(default=False, description="a stop-loss rests on the exchange")


class OpenPositionInput(BaseModel):
    key: str
    signal_id: str
    trader_id: str | None
    user_id: str
    symbol: str
    side: Side
    reference_price: Decimal
    stake: Decimal
    stop_loss: Decimal | None
    take_profits: list[Decimal]
    exchange_target: ExchangeTarget = None


class OpenedPosition(BaseModel):
    position_id: str
    fill: Fill
    opened_at: datetime


class OrderInput(BaseModel):
    """A reduce or a close. `market` orders fill at the reference with slippage; stops and targets
    at the reference itself (the level, or the open of a candle that gapped through it)."""

    key: str
    signal_id: str
    position_id: str
    user_id: str
    symbol: str
    side: Side
    kind: OrderKind
    quantity: Decimal = Field(description="ignored by a close: everything left is closed")
    reference_price: Decimal
    market: bool
    close: bool
    close_reason: str | None = None


class ModifyInput(BaseModel):
    key: str
    position_id: str
    stop_loss: Decimal | None
    take_profits: list[Decimal]
    exchange_target: ExchangeTarget = None


class PreviousManagement(BaseModel):
    action: ManageAction
    confidence: float | None
    reasoning: str


class ManagePositionInput(BaseModel):
    context: PositionContext
    position_id: str
    entry_price: Decimal
    market_price: Decimal
    position_size: Decimal
    current_pnl: Decimal
    current_pnl_pct: Decimal
    current_sl: Decimal | None
    current_tp: list[Decimal]
    candle: Kline
    previous_decisions: list[PreviousManagement] = Field(default_factory=list)


class ManagementAnswer(ProxyAnswer):
    """llm-proxy's `manage-position` answer, validated (the action's details are checked later)."""

    action: ManageAction
    action_details: dict[str, Any] | None = None
    risk_assessment: dict[str, Any] | None = None


class RecordDecisionInput(BaseModel):
    position_id: str
    signal_id: str
    trader_id: str | None
    user_id: str | None
    candle_open_time: datetime
    timestamp: datetime
    current_pnl: Decimal
    current_pnl_pct: Decimal
    position_size: Decimal
    market_price: Decimal
    action: ManageAction
    confidence: float | None = None
    reasoning: str
    action_details: dict[str, Any] = Field(default_factory=dict)
    risk_assessment: dict[str, Any] | None = None
    raw_ai_response: str | None = None
    analysis_latency_ms: int | None = None
    tokens_used: int | None = None
    model_name: str | None = None
    model_call: ModelCall | None = None  # the `model` backend's audit of the call


class RecordedDecision(BaseModel):
    decision_id: str
    inserted: bool


class ManageAndRecordInput(BaseModel):
    """`manage_and_record_position`'s input: the manage-position request and what the candle's
    stop and target checks already took (for the row of a `hold`)."""

    request: ManagePositionInput
    risk_exits: list[ExitKind] = Field(default_factory=list)


class ManagedPosition(BaseModel):
    """The model's answer, and its row when the activity wrote it (a `hold` it could write)."""

    answer: ManagementAnswer
    recorded: RecordedDecision | None = None


class CloseSignalInput(BaseModel):
    signal_id: str
    trader_id: str | None
    reason: str
    realized_pnl: Decimal
    max_consecutive_losses: int | None
    status: Literal["closed", "failed"] = Field(
        default="closed", description="`failed`: the position could not be opened (no trader counting)"
    )


class ClosedSignal(BaseModel):
    signal_status: str | None
    consecutive_losses: int = 0
    trader_paused: bool = False


class ManagementRecord(BaseModel):
    candle_open_time: int
    action: ManageAction
    requested: ManageAction | None = None
    confidence: float | None = None
    reasoning: str
    held_reason: str | None = None
    risk_exits: list[ExitKind] = Field(default_factory=list)
    at: datetime


class PositionCounts(CandleCounts):
    processed: int = 0
    superseded: int = 0
    held_invalid: int = 0
    llm_failures: int = 0
    fills: int = 0


class PositionState(BaseModel):
    """The live state of the workflow and, whole, its continue-as-new payload."""

    signal_id: str
    context: PositionContext | None = None
    status: PositionStatus = PositionStatus.OPENING
    position_id: str | None = None
    entry_price: Decimal | None = None
    initial_quantity: Decimal = Decimal(0)
    quantity: Decimal = Decimal(0)
    stop_loss: Decimal | None = None
    take_profits: list[Decimal] = Field(default_factory=list)
    targets_hit: int = 0
    best_price: Decimal | None = None
    last_price: Decimal | None = None
    realized_pnl: Decimal = Decimal(0)
    fees_paid: Decimal = Decimal(0)
    opened_at: datetime | None = None
    deadline: datetime | None = None
    after_t: int | None = Field(default=None, description="closes opening at or before this are stale")
    last_taken_t: int | None = None
    recent_t: list[int] = Field(default_factory=list)
    queue: list[Kline] = Field(default_factory=list)
    decisions: list[ManagementRecord] = Field(default_factory=list)
    counts: PositionCounts = Field(default_factory=PositionCounts)
    # What the `model` backend's management calls cost so far (USD; llm-proxy's report none).
    model_cost_usd: Decimal | None = None
    # The close of the last candle the model was asked about (the gate's reference; else the entry).
    last_model_price: Decimal | None = None
    operator_changes: int = 0
    runs: int = 1
    close_reason: str | None = None
    exit_price: Decimal | None = None
    closed_at: datetime | None = None
    trader_paused: bool = False


class PositionResult(BaseModel):
    signal_id: str
    position_id: str | None
    status: PositionStatus
    reason: str
    side: Side | None = None
    entry_price: Decimal | None = None
    initial_quantity: Decimal = Decimal(0)
    exit_price: Decimal | None = None
    realized_pnl: Decimal = Decimal(0)
    fees_paid: Decimal = Decimal(0)
    decisions: int = 0
    counts: PositionCounts
    trader_paused: bool = False


PositionManagerInput.model_rebuild()


class PositionView(BaseModel):
    """The `state` query: the position, its P&L, the last decisions and the counts."""

    signal_id: str
    status: PositionStatus
    position_id: str | None
    symbol: str | None
    interval: str | None
    side: Side | None
    entry_price: Decimal | None
    initial_quantity: Decimal
    quantity: Decimal
    stop_loss: Decimal | None
    take_profits: list[Decimal]
    targets_hit: int
    last_price: Decimal | None
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees_paid: Decimal
    last_decisions: list[ManagementRecord]
    decisions: int
    counts: PositionCounts
    queued: int
    deadline: datetime | None
    close_reason: str | None
    exit_price: Decimal | None
    trader_paused: bool
    runs: int
