"""What a model must answer, per operation: a strict JSON schema (sent as `response_format`) and
the checks in code that no schema can express. `parse_*` returns the answer or the list of what is
wrong with it (for the one re-ask, then an abstention): never an exception, never a guess."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from workflows.monitor.decisions import normalise_proxy_decision
from workflows.monitor.models import ProxyDecision
from workflows.position.actions import MANAGE_ACTIONS, ManageAction, validate_action

MIN_REWARD_TO_RISK = 1.2
MAX_ENTRY_ATR = 3.0  # the entry within this many ATR of the last close

_NUM_OR_NULL = {"type": ["number", "null"]}
_NUMS = {"type": "array", "items": {"type": "number"}}
_TEXT = {"type": "string"}


def _object(props: dict[str, Any]) -> dict[str, Any]:
    # Strict mode: every property required, nothing else allowed, optional values nullable.
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


ANALYSIS_SCHEMA = _object(
    {
        "decision": {"type": "string", "enum": ["enter_trade", "wait", "bad_setup"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 100},
        "reasoning": _TEXT,
        "keyLevels": _object(
            {
                "side": {"type": ["string", "null"], "enum": ["long", "short", None]},
                "entry": _NUM_OR_NULL,
                "stopLoss": _NUM_OR_NULL,
                "takeProfit": _NUMS,
                "support": _NUMS,
                "resistance": _NUMS,
            }
        ),
        "tradePlan": _object({"setup": _TEXT, "execution": _TEXT, "invalidation": _TEXT, "riskReward": _NUM_OR_NULL}),
    }
)

MANAGEMENT_SCHEMA = _object(
    {
        "action": {"type": "string", "enum": list(MANAGE_ACTIONS)},
        "confidence": {"type": "number", "minimum": 0, "maximum": 100},
        "reasoning": _TEXT,
        "actionDetails": _object({"newStopLoss": _NUM_OR_NULL, "newTakeProfit": _NUMS, "reduceAmount": _NUM_OR_NULL}),
        "riskAssessment": _object({"marketRisk": _TEXT, "positionRisk": _TEXT}),
    }
)


@dataclass
class Checked:
    """A usable answer's fields, or `errors` (then nothing else is meaningful)."""

    errors: list[str] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return not self.errors


def decode(text: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """One JSON object, exactly: a code fence, prose around it or a cut-off answer is an error
    (a model that cannot follow the format is not trusted with the levels either)."""
    if text is None or not text.strip():
        return None, "the answer is empty"
    stripped = text.strip()
    if stripped.startswith("```"):
        return None, "the answer is wrapped in a code fence; send the JSON object alone"
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(stripped) - 1
        return None, ("the JSON is truncated" if cut else f"not valid JSON ({exc.msg} at {exc.pos})")
    if not isinstance(value, dict):
        return None, "the answer is not a JSON object"
    return value, None


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _shape(value: Any, schema: dict[str, Any], where: str, errors: list[str]) -> None:
    """The subset of JSON Schema the two schemas above use, checked by hand: a server's structured
    mode may not enforce it (json_object), and none checks `enum` on every provider."""
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    ok = {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "number": _is_num(value),
        "null": value is None,
    }
    if not any(ok.get(k, False) for k in kinds):
        errors.append(f"{where} must be {' or '.join(kinds)}")
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where} must be one of {[e for e in schema['enum'] if e is not None]}")
    if _is_num(value) and (
        ("minimum" in schema and value < schema["minimum"]) or ("maximum" in schema and value > schema["maximum"])
    ):
        errors.append(f"{where} must be from {schema['minimum']} to {schema['maximum']}")
    if isinstance(value, dict) and "properties" in schema:
        for name in schema["properties"]:
            if name not in value:
                errors.append(f"{where}.{name} is missing")
            else:
                _shape(value[name], schema["properties"][name], f"{where}.{name}", errors)
        extra = sorted(set(value) - set(schema["properties"]))
        if extra:
            errors.append(f"{where} has unexpected keys {extra[:5]}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value[:20]):
            _shape(item, schema["items"], f"{where}[{i}]", errors)


def check_levels(levels: dict[str, Any], last_close: float, atr: float | None) -> list[str]:
    """An enter_trade's plan: side, stop < entry < targets (mirror for a short), entry near the
    last close, a minimum reward-to-risk."""
    errors: list[str] = []
    side, raw_entry, raw_stop, raw_targets = (levels.get(k) for k in ("side", "entry", "stopLoss", "takeProfit"))
    if side not in ("long", "short"):
        return ["enter_trade needs keyLevels.side long or short"]
    if not _is_num(raw_entry) or not _is_num(raw_stop) or not isinstance(raw_targets, list) or not raw_targets:
        return ["enter_trade needs keyLevels.entry, keyLevels.stopLoss and at least one takeProfit"]
    entry, stop, targets = float(raw_entry or 0), float(raw_stop or 0), [float(t) for t in raw_targets]
    if side == "long" and not (stop < entry and all(t > entry for t in targets)):
        errors.append(f"a long needs stopLoss < entry < every takeProfit (got {stop}, {entry}, {targets})")
    if side == "short" and not (stop > entry and all(t < entry for t in targets)):
        errors.append(f"a short needs stopLoss > entry > every takeProfit (got {stop}, {entry}, {targets})")
    if atr and abs(entry - last_close) > MAX_ENTRY_ATR * atr:
        errors.append(f"entry {entry} is more than {MAX_ENTRY_ATR:g} ATR ({atr:.6g}) from the last close {last_close}")
    risk = abs(entry - stop)
    if not errors and risk > 0:
        reward = abs(targets[0] - entry)
        if reward / risk < MIN_REWARD_TO_RISK:
            errors.append(f"reward-to-risk {reward / risk:.2f} to the first target is under {MIN_REWARD_TO_RISK}")
    return errors


def _decoded(text: str | None, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The answer as one JSON object of the schema's shape, else None and why (at most 8 reasons)."""
    value, error = decode(text)
    if value is None:
        return None, [error or "unusable"]
    errors: list[str] = []
    _shape(value, schema, "answer", errors)
    if errors:
        return None, errors[:8]
    return value, []


@dataclass
class CheckedAnalysis(Checked):
    decision: ProxyDecision = "wait"


def parse_analysis(text: str | None, last_close: float, atr: float | None) -> CheckedAnalysis:
    value, errors = _decoded(text, ANALYSIS_SCHEMA)
    if value is None:
        return CheckedAnalysis(errors=errors)
    decision = normalise_proxy_decision(value["decision"])
    if decision is None:
        return CheckedAnalysis(errors=[f"unknown decision {value['decision']!r}"])
    if not value["reasoning"].strip():
        return CheckedAnalysis(errors=["reasoning is empty"])
    if decision == "enter_trade":
        errors = check_levels(value["keyLevels"], last_close, atr)
        if errors:
            return CheckedAnalysis(errors=errors)
    return CheckedAnalysis(body=value, decision=decision)


@dataclass
class CheckedManagement(Checked):
    action: ManageAction = "hold"


def parse_management(text: str | None, side: str, market: Decimal, open_quantity: Decimal) -> CheckedManagement:
    value, errors = _decoded(text, MANAGEMENT_SCHEMA)
    if value is None:
        return CheckedManagement(errors=errors)
    if not value["reasoning"].strip():
        return CheckedManagement(errors=["reasoning is empty"])
    action: ManageAction = value["action"]
    details = {k: v for k, v in value["actionDetails"].items() if v not in (None, [])}
    checked = validate_action(action, details, "short" if side == "short" else "long", market, open_quantity)
    if checked.held_reason:
        return CheckedManagement(errors=[checked.held_reason])
    value["actionDetails"] = details
    return CheckedManagement(body=value, action=action)
