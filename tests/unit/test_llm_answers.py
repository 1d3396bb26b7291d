"""Both llm-proxy operations' answers through one envelope and one validation (pure)."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.llm_proxy import BAD_ANSWER, parse_answer
from activities.position_advisor import parse_manage_answer


def envelope(**data: object) -> dict:
    meta = {"tokensUsed": 321, "modelName": "m-1", "rawAiResponse": {"x": 1}}
    return {"success": True, "data": {"confidence": 70, "reasoning": " because ", "metadata": meta, **data}}


def test_both_operations_read_the_same_parts():
    analysis = parse_answer(envelope(decision="Enter", keyLevels={"entry": 10, "stopLoss": 9}), 12)
    managed = parse_manage_answer(envelope(action="HOLD ", actionDetails={"a": 1}), 34)
    for answer in (analysis, managed):
        assert (answer.confidence, answer.reasoning, answer.tokens_used, answer.model_name) == (
            70.0,
            "because",
            321,
            "m-1",
        )
        assert answer.raw_ai_response == '{"x": 1}'
    assert analysis.decision == "enter_trade" and analysis.latency_ms == 12
    assert managed.action == "hold" and managed.action_details == {"a": 1} and managed.latency_ms == 34


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ([], "body is not a JSON object"),
        ({"success": False, "error": {"message": "boom"}}, "success is not true (boom)"),
        ({"success": True}, "missing data"),
        (envelope(confidence=101), "is not a number from 0 to 100"),
        (envelope(confidence=True), "is not a number from 0 to 100"),
        (envelope(reasoning="  "), "empty reasoning"),
    ],
)
def test_a_bad_answer_is_refused_the_same_way_by_both(body, why):
    for parse, extra in ((parse_answer, {"decision": "wait"}), (parse_manage_answer, {"action": "hold"})):
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            body = {**body, "data": {**extra, **body["data"]}}
        with pytest.raises(ApplicationError) as info:
            parse(body, 1)
        assert info.value.type == BAD_ANSWER and why in info.value.message


def test_each_checks_its_own_field():
    with pytest.raises(ApplicationError, match="unknown decision"):
        parse_answer(envelope(decision="buy-everything"), 1)
    with pytest.raises(ApplicationError, match="unknown action"):
        parse_manage_answer(envelope(action="double_down"), 1)
