"""From llm-proxy's words to the monitor's decision (the contract's decision table)."""

from __future__ import annotations

from workflows.monitor.models import MonitorDecision, ProxyDecision

# Older callers spoke these; they are the obvious synonyms. Anything else is a bad answer.
PROXY_SYNONYMS: dict[str, ProxyDecision] = {
    "enter_trade": "enter_trade",
    "enter": "enter_trade",
    "bad_setup": "bad_setup",
    "abandon": "bad_setup",
    "reject": "bad_setup",
    "wait": "wait",
    "continue": "wait",
    "continue_monitoring": "wait",
}


def normalise_proxy_decision(raw: object) -> ProxyDecision | None:
    if not isinstance(raw, str):
        return None
    return PROXY_SYNONYMS.get(raw.strip().lower())


def monitor_decision(decision: ProxyDecision, confidence: float, min_confidence_to_enter: float) -> MonitorDecision:
    if decision == "enter_trade":
        return "enter" if confidence >= min_confidence_to_enter else "continue"
    if decision == "bad_setup":
        return "abandon"
    return "continue"


def explain_decision(
    decision: ProxyDecision, confidence: float, min_confidence_to_enter: float, mapped: MonitorDecision
) -> str:
    """Why llm-proxy's answer became the monitor's decision, for people: `enter_trade 78 < min 95 -> continue`."""
    if decision == "enter_trade":
        sign = ">=" if confidence >= min_confidence_to_enter else "<"
        return f"enter_trade {confidence:g} {sign} min {min_confidence_to_enter:g} -> {mapped}"
    return f"{decision} {confidence:g} -> {mapped}"
