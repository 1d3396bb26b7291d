"""The `manage_position` activity: one llm-proxy `manage-position` call per attempt, with the same
error types, retry rules, heartbeats, pacing and key redaction as `analyze_signal` (one
implementation: `LlmProxy.call`)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.answer_hygiene import AnswerHygiene
from activities.llm_proxy import BAD_ANSWER, LlmProxy, answer_levels, answer_parts, envelope_data, with_notes
from activities.raw_answers import position_correlation
from workflows.common import names
from workflows.position.actions import MANAGE_ACTIONS
from workflows.position.models import ManagementAnswer, ManagePositionInput


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


def parse_manage_answer(body: Any, latency_ms: int, clean: AnswerHygiene | None = None) -> ManagementAnswer:
    clean = clean if clean is not None else AnswerHygiene()

    def bad(why: str) -> ApplicationError:
        return ApplicationError(f"llm-proxy gave a bad manage-position answer: {why}", type=BAD_ANSWER)

    data = envelope_data(body, bad)
    action = data.get("action")
    if not isinstance(action, str) or action.strip().lower() not in MANAGE_ACTIONS:
        raise bad(f"unknown action {str(action)[:50]!r}")
    parts = answer_parts(body, data, bad, clean)
    details = answer_levels(data, "actionDetails", bad, clean)
    return ManagementAnswer(
        action=action.strip().lower(),  # checked against MANAGE_ACTIONS above
        action_details=details,
        risk_assessment=clean.obj(data.get("riskAssessment"), "riskAssessment"),
        latency_ms=latency_ms,
        **with_notes(parts, clean),
    )


class PositionAdvisor(LlmProxy):
    """Shares the worker's httpx client, key, pacer and HTTP handling (`LlmProxy.call`) with
    `analyze_signal`; only the operation's body and answer are its own."""

    @activity.defn(name=names.MANAGE_POSITION_ACTIVITY)
    async def manage_position(self, input: ManagePositionInput) -> ManagementAnswer:
        correlation = position_correlation(input.context.signal_id, input.candle.t)
        answer = await self.ask(build_manage_body(input), correlation, parse_manage_answer)
        activity.logger.info(
            "position of signal %s candle %s: %s %.0f (%d ms)",
            input.context.signal_id, input.candle.t, answer.action, answer.confidence, answer.latency_ms,
        )  # fmt: skip
        return answer
