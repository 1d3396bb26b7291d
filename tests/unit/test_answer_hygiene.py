"""A model's answer kept as data (activities/answer_hygiene.py, through both parsers): what a
column cannot hold replaced, numbers out of range dropped, everything bounded, secrets masked, and
each change said in the kept reasoning (pure)."""

from __future__ import annotations

import json

import pytest
from temporalio.exceptions import ApplicationError

from activities.answer_hygiene import (
    MAX_LEVELS,
    MAX_OBJECT_BYTES,
    MAX_RAW_CHARS,
    MAX_REASONING_CHARS,
    AnswerHygiene,
    storable_int,
    storable_json,
    storable_text,
)
from activities.llm_proxy import BAD_ANSWER, check_identity, parse_answer
from activities.position_advisor import parse_manage_answer
from runtime.redaction import Redactor

KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"


def envelope(**data: object) -> dict:
    meta = {"tokensUsed": 3_000_000_000, "modelName": "m\x00", "rawAiResponse": "raw \x00 \ud800"}
    return {"success": True, "data": {"confidence": 70, "reasoning": "a\x00b", "metadata": meta, **data}}


def test_nul_surrogates_and_int_overflow_are_stored_safely_and_said():
    clean = AnswerHygiene()
    analysis = parse_answer(
        envelope(decision="wait", keyLevels={"entry": 1, "n\x00te": "x\x00", "e": float("nan")}), 5, clean
    )
    managed = parse_manage_answer(envelope(action="hold", actionDetails={"why": "\x00"}), 5)
    for answer in (analysis, managed):
        assert "\x00" not in answer.reasoning and answer.reasoning.startswith("a\ufffdb\n[signal-monitor: ")
        assert "tokensUsed 3000000000 out of range: dropped" in answer.reasoning
        assert answer.tokens_used is None and answer.model_name == "m\ufffd"
        assert answer.raw_ai_response == "raw \ufffd \ufffd"
        # Each is something PostgreSQL takes: UTF-8 encodable, no NUL.
        answer.model_dump_json().encode("utf-8")
    assert analysis.key_levels == {"entry": 1, "n\ufffdte": "x\ufffd", "e": None}
    assert managed.action_details == {"why": "\ufffd"}
    assert "non-finite number" in analysis.reasoning


def test_text_and_objects_are_bounded():
    huge = "r" * 3_000_000
    body = envelope(
        decision="enter_trade",
        reasoning=huge,
        technicalIndicators={"rsi": ["x" * 100] * 10_000},
        keyLevels={"entry": 10, "stopLoss": 9, "takeProfit": [11], "support": list(range(1000))},
    )
    body["data"]["metadata"]["rawAiResponse"] = huge
    analysis = parse_answer(body, 1)
    assert len(analysis.raw_ai_response or "") == MAX_RAW_CHARS
    assert analysis.reasoning.startswith("r" * MAX_REASONING_CHARS + "\n[signal-monitor: ")
    assert f"reasoning: cut from 3,000,000 to {MAX_REASONING_CHARS:,} characters" in analysis.reasoning
    assert analysis.key_levels is not None and analysis.key_levels["support"] == list(range(MAX_LEVELS))
    assert set(analysis.technical_indicators or {}) == {"trimmed"}
    assert len(analysis.model_dump_json()) < 60_000  # what one analysis adds to history


@pytest.mark.parametrize(
    ("parse", "extra", "why"),
    [
        (parse_answer, {"decision": "enter_trade", "keyLevels": {"takeProfit": [1.0] * 150_000}}, "150,000 levels"),
        (parse_manage_answer, {"action": "adjust_tp", "actionDetails": {"newTakeProfit": [2.0] * 21}}, "21 levels"),
        (parse_answer, {"decision": "wait", "keyLevels": {"entry": "9" * (MAX_OBJECT_BYTES + 1)}}, "bytes (at most"),
    ],
)
def test_too_many_targets_is_a_bad_answer(parse, extra, why):
    with pytest.raises(ApplicationError) as info:
        parse(envelope(**extra), 1)
    assert info.value.type == BAD_ANSWER and why in info.value.message


def test_a_secret_in_model_text_is_masked_before_it_is_kept():
    clean = AnswerHygiene(redact=Redactor([KEY]))
    body = envelope(decision="wait", reasoning=f"the key is {KEY.upper()[:20]}", tradePlan={"k": KEY[5:17]})
    analysis = parse_answer(body, 1, clean)
    assert KEY.upper()[:20] not in analysis.reasoning and "***" in analysis.reasoning
    assert analysis.trade_plan == {"k": "***"}
    assert "a secret masked" in analysis.reasoning


def test_an_answer_must_name_its_request():
    def bad(why: str) -> ApplicationError:
        return ApplicationError(why)

    analyze = {"operation": "analyze-signal", "params": {"signalId": "A"}}
    manage = {"operation": "manage-position", "params": {"signalId": "A", "positionId": "P"}}
    check_identity(analyze, {"data": {"signalId": "a"}}, bad)
    check_identity(manage, {"data": {"positionId": "P"}}, bad)
    for request, data in (
        (analyze, {"signalId": "B"}),
        (analyze, {}),
        (manage, {"positionId": "Q"}),
        (manage, {"signalId": "B", "positionId": "P"}),
        (manage, {"signalId": "A"}),
    ):
        with pytest.raises(ApplicationError):
            check_identity(request, {"data": data}, bad)


def test_the_database_guards():
    assert storable_text("a\x00\udfff") == "a\ufffd\ufffd" and storable_text(None) is None
    assert json.dumps(storable_json({"x": [float("inf"), "\x00"]})) == '{"x": [null, "\\ufffd"]}'
    assert storable_int(2**31) is None and storable_int(-(2**31)) == -(2**31) and storable_int(5) == 5


@pytest.mark.parametrize(
    ("levels", "why"),
    [
        ({"entry": 100, "stopLoss": 105, "takeProfit": [110]}, "a long's stopLoss 105 is not below its entry 100"),
        ({"entry": 100, "stopLoss": 95, "takeProfit": [110, 99]}, "a long's takeProfit 99 is not above"),
        ({"entry": 1e309, "stopLoss": 95}, "entry 'inf' is not a positive finite price"),
        ({"entry": 100, "stopLoss": "NaN"}, "stopLoss 'NaN' is not a positive finite price"),
        ({"entry": 100}, "an entry needs a stop"),
        ({"side": "short", "entry": 100, "stopLoss": 95}, "a short's stopLoss 95 is not above its entry 100"),
        ({"side": "sideways", "entry": 100, "stopLoss": 95}, "side 'sideways' is neither long nor short"),
        ({"entry": 100, "stopLoss": 95, "takeProfit": ["Infinity"]}, "takeProfit 'Infinity' is not a positive"),
        (None, "no keyLevels"),
    ],
)
def test_enter_levels_that_make_no_trade_are_a_bad_answer(levels, why):
    with pytest.raises(ApplicationError) as info:
        parse_answer(envelope(decision="enter_trade", keyLevels=levels), 1, reference_price=100.0)
    assert info.value.type == BAD_ANSWER and why in info.value.message


def test_coherent_levels_in_the_stated_direction_are_a_trade():
    from activities.trade_levels import order_side

    short = {"side": "SELL", "entry": 100, "stopLoss": 105, "takeProfit": [90, 80]}
    assert parse_answer(envelope(decision="enter_trade", keyLevels=short), 1).key_levels == short
    no_entry = {"stopLoss": 95, "takeProfit": [110]}
    assert parse_answer(envelope(decision="enter_trade", keyLevels=no_entry), 1, reference_price=100).key_levels
    # A wait's levels are not a trade and need not be one.
    assert parse_answer(envelope(decision="wait", keyLevels={"stopLoss": "NaN"}), 1).decision == "wait"
    assert (
        order_side(short) == "sell" and order_side({"entry": 1, "stopLoss": 2}) == "buy" and order_side(None) == "buy"
    )
