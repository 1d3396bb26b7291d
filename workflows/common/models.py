"""What both workflows' llm-proxy calls share: the validated part of every answer, and how much of
past answers is kept in state and sent back with the next request. Like every model here, nothing
secret belongs in it: it lands in workflow history."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.common.model_call import ModelCall

# Characters of a model's reasoning kept in a workflow's state (and shown by its query).
REASONING_KEPT = 500
# Earlier decisions sent back to llm-proxy with each request, newest last.
PREVIOUS_DECISIONS_SENT = 5


class ProxyAnswer(BaseModel):
    """What every llm-proxy answer carries (an analysis, a position's management): validated
    confidence and reasoning, and the call's metadata."""

    confidence: float
    reasoning: str
    raw_ai_response: str | None = None
    latency_ms: int
    tokens_used: int | None = None
    model_name: str | None = None
    # The `model` backend's audit of the call (None from llm-proxy); optional, so histories
    # recorded before it decode as they were.
    model_call: ModelCall | None = None


class CandleCounts(BaseModel):
    """What every receiver of `candle_closed` counts (the monitor's and the position's candle gate,
    workflows/common/candle_gate.py): the closes received and why one was not taken."""

    received: int = 0
    duplicate: int = 0
    stale: int = 0
    foreign: int = 0
    open: int = 0
    malformed: int = 0
    # Payload larger than MAX_CANDLE_PAYLOAD_BYTES: never kept in state.
    oversized: int = 0
    # Opening later than now + one interval: never taken, never moves the de-duplication point.
    future: int = 0
    # Moved less than the trader's price-move setting since the last close the model was asked about.
    gated: int = 0
