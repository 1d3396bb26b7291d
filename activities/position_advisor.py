"""The `manage_position` activity: one llm-proxy `manage-position` call per attempt, with the same
error types, retry rules, heartbeats, pacing and key redaction as `analyze_signal` (one
implementation: `LlmProxy.call`)."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.llm_proxy import BAD_ANSWER, LlmProxy
from workflows import names
from workflows.position_actions import MANAGE_ACTIONS
from workflows.position_models import ManagementAnswer, ManagePositionInput


def build_manage_body(input: ManagePositionInput) -> dict[str, Any]:
    ctx, k = input.context, input.candle
    return {
        "operation": "manage-position",
        "params": {
            "positionId": input.position_id,
            "signalId": ctx.signal_id,
            "traderId": ctx.trader_id,
            "userId": ctx.user_id,
            "symbol": ctx.symbol,
            "side": ctx.side,
            "entryPrice": float(input.entry_price),
            "marketPrice": float(input.market_price),
            "positionSize": float(input.position_size),
            "currentPnl": float(input.current_pnl),
            "currentPnlPct": float(input.current_pnl_pct),
            "currentSL": float(input.current_sl) if input.current_sl is not None else None,
            "currentTP": [float(t) for t in input.current_tp],
            "timestamp": k.close_time().astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "interval": ctx.interval,
            "candle": {
                "openTime": k.t,
                "closeTime": k.T,
                "open": k.o,
                "high": k.h,
                "low": k.l,
                "close": k.c,
                "volume": k.v,
            },
            "strategy": ctx.strategy if ctx.strategy is not None else {},
            "previousDecisions": [d.model_dump() for d in input.previous_decisions[-5:]],
        },
    }


def parse_manage_answer(body: Any, latency_ms: int) -> ManagementAnswer:
    def bad(why: str) -> ApplicationError:
        return ApplicationError(f"llm-proxy gave a bad manage-position answer: {why}", type=BAD_ANSWER)

    if not isinstance(body, dict) or body.get("success") is not True:
        raise bad("success is not true")
    data = body.get("data")
    if not isinstance(data, dict):
        raise bad("missing data")
    action = data.get("action")
    if not isinstance(action, str) or action.strip().lower() not in MANAGE_ACTIONS:
        raise bad(f"unknown action {str(action)[:50]!r}")
    confidence = data.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 100:
        raise bad(f"confidence {str(confidence)[:50]!r} is not a number from 0 to 100")
    reasoning = data.get("reasoning")
    if not isinstance(reasoning, str) or not reasoning.strip():
        raise bad("empty reasoning")
    meta = data.get("metadata")
    metadata: dict[str, Any] = meta if isinstance(meta, dict) else {}
    tokens = metadata.get("tokensUsed")
    raw = metadata.get("rawAiResponse")
    details, risk = data.get("actionDetails"), data.get("riskAssessment")
    return ManagementAnswer(
        action=action.strip().lower(),  # checked against MANAGE_ACTIONS above
        confidence=float(confidence),
        reasoning=reasoning.strip(),
        action_details=details if isinstance(details, dict) else None,
        risk_assessment=risk if isinstance(risk, dict) else None,
        raw_ai_response=raw if isinstance(raw, str) else (json.dumps(raw) if raw is not None else None),
        latency_ms=latency_ms,
        tokens_used=tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
        model_name=metadata.get("modelName") if isinstance(metadata.get("modelName"), str) else None,
    )


class PositionAdvisor(LlmProxy):
    """Shares the worker's httpx client, key, pacer and HTTP handling (`LlmProxy.call`) with
    `analyze_signal`; only the operation's body and answer are its own."""

    @activity.defn(name=names.MANAGE_POSITION_ACTIVITY)
    async def manage_position(self, input: ManagePositionInput) -> ManagementAnswer:
        correlation = f"{input.context.signal_id}:position:{input.candle.t}"
        body, latency_ms = await self.call(build_manage_body(input), correlation)
        answer = self.parsed(parse_manage_answer, body, latency_ms)
        activity.logger.info(
            "position of signal %s candle %s: %s %.0f (%d ms)",
            input.context.signal_id, input.candle.t, answer.action, answer.confidence, latency_ms,
        )  # fmt: skip
        return answer
