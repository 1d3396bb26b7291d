"""What one decision by the `model` backend cost and came from (issue 21): carried on the answer
from the activity to the row that records it. Never a secret: the history holds it."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel


class ModelCall(BaseModel):
    model_requested: str
    model_served: str | None = None
    prompt_version: str
    prompt_sha256: str
    prompt_chars: int
    tokens_in: int | None = None
    tokens_out: int | None = None
    tokens_cached: int | None = None
    cost_usd: Decimal | None = None
    cost_source: str | None = None  # provider | price_table; None: unknown
    latency_ms: int
    attempts: int  # HTTP calls in this activity attempt: 2 after the one re-ask
    abstained: bool = False
    abstain_reason: str | None = None
    cached: bool = False  # the backtest's answer cache served it: no call, no cost
