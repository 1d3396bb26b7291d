"""The fake llm-proxy's `manage-position` operation (see the contract): scriptable answers per
signal (`FakeLlmProxy.script_position`) and a deterministic default policy for the dev stack.
Faults are the same `Fault.*` steps as for `analyze-signal`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .names import FAKE_MODEL_NAME, REASONING_PREFIX

MANAGE_OPERATION = "manage-position"
MANAGE_REQUIRED = ("positionId", "signalId", "symbol")
HOLDS_BEFORE_CLOSE = 2


@dataclass(frozen=True)
class ManageAnswer:
    """A well-formed `manage-position` answer (HTTP 200). `details` is sent as `actionDetails`."""

    action: str
    confidence: Any = 70
    reasoning: str | None = None
    details: Mapping[str, Any] | None = None
    tokens_used: int = 900
    delay: float = 0.0

    def with_delay(self, seconds: float) -> ManageAnswer:
        return dataclasses.replace(self, delay=seconds)

    @staticmethod
    def hold(confidence: Any = 65, **kw: Any) -> ManageAnswer:
        return ManageAnswer("hold", confidence, **kw)

    @staticmethod
    def close(confidence: Any = 75, **kw: Any) -> ManageAnswer:
        return ManageAnswer("close", confidence, **kw)

    @staticmethod
    def adjust_sl(new_stop_loss: Any, confidence: Any = 70, **kw: Any) -> ManageAnswer:
        return ManageAnswer("adjust_sl", confidence, details={"newStopLoss": new_stop_loss}, **kw)

    @staticmethod
    def adjust_tp(new_take_profit: Any, confidence: Any = 70, **kw: Any) -> ManageAnswer:
        return ManageAnswer("adjust_tp", confidence, details={"newTakeProfit": new_take_profit}, **kw)

    @staticmethod
    def reduce(amount: Any, confidence: Any = 70, **kw: Any) -> ManageAnswer:
        return ManageAnswer("reduce", confidence, details={"reduceAmount": amount}, **kw)


def manage_policy(params: dict[str, Any]) -> ManageAnswer:
    """Deterministic default: hold for the first two managed closes, then close the position."""
    previous = params.get("previousDecisions")
    n = len(previous) if isinstance(previous, list) else 0
    price = params.get("marketPrice")
    if n < HOLDS_BEFORE_CLOSE:
        return ManageAnswer.hold(
            reasoning=f"{REASONING_PREFIX}managed close {n + 1}: holding at {price}. Deterministic stand-in."
        )
    return ManageAnswer.close(
        reasoning=f"{REASONING_PREFIX}managed close {n + 1}: taking the result at {price}. Deterministic stand-in."
    )


def manage_envelope(ans: ManageAnswer, params: Mapping[str, Any], latency_ms: int) -> dict[str, Any]:
    reasoning = ans.reasoning if ans.reasoning is not None else f"{REASONING_PREFIX}scripted {ans.action}"
    details = dict(ans.details or {})
    raw = json.dumps({"action": ans.action, "confidence": ans.confidence, "reasoning": reasoning, "details": details})
    return {
        "success": True,
        "data": {
            "positionId": params.get("positionId"),
            "action": ans.action,
            "confidence": ans.confidence,
            "reasoning": reasoning,
            "actionDetails": details,
            "riskAssessment": {"marketRisk": "medium", "positionRisk": "low"},
            "metadata": {"tokensUsed": ans.tokens_used, "modelName": FAKE_MODEL_NAME, "rawAiResponse": raw},
        },
        "usage": {"total_tokens": ans.tokens_used},
    }
