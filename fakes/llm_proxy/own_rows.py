"""The own-row mode (`store_rows=`): like the production proxy, insert a `signal_analyses` row
for every well-formed answer before answering."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


async def store_row(pool: Any, params: Mapping[str, Any], body: bytes) -> None:
    """The production proxy's own insert (through PostgREST, with the service role): every
    value as the answer has it, a missing one as NULL. The caller logs a failure, never answers it."""
    data = json.loads(body).get("data") or {}
    found = data.get("metadata")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}

    def as_json(value: Any) -> str | None:
        return None if value is None else json.dumps(value)

    await pool.execute(
        """INSERT INTO signal_analyses (signal_id, trader_id, user_id, decision, confidence, reasoning,
               key_levels, trade_plan, technical_indicators, raw_ai_response, analysis_latency_ms,
               gemini_tokens_used, model_name)
           VALUES ($1::text::uuid, $2::text::uuid, $3::text::uuid, $4, $5::text::numeric, $6,
                   $7::text::jsonb, $8::text::jsonb, $9::text::jsonb, $10, $11, $12, $13)""",
        str(params.get("signalId")),
        None if params.get("traderId") is None else str(params["traderId"]),
        None if params.get("userId") is None else str(params["userId"]),
        data.get("decision"),
        None if data.get("confidence") is None else str(data["confidence"]),
        data.get("reasoning"),
        as_json(data.get("keyLevels")),
        as_json(data.get("tradePlan")),
        as_json(data.get("technicalIndicators")),
        meta.get("rawAiResponse") if isinstance(meta.get("rawAiResponse"), str) else None,
        meta.get("analysisLatencyMs") if isinstance(meta.get("analysisLatencyMs"), int) else None,
        meta.get("tokensUsed") if isinstance(meta.get("tokensUsed"), int) else None,
        meta.get("modelName") if isinstance(meta.get("modelName"), str) else None,
    )
