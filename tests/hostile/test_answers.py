"""Hostile llm-proxy answers (issue 26, cases 1, 2, 3 and 5): model text is data, answers belong to
their request, everything is bounded, and no secret is kept in any spelling. Driven through the
fake llm-proxy and, where the case needs raw bytes, a stand-in written on a bare asyncio server
(fakes/raw_llm_proxy.py)."""

from __future__ import annotations

import base64
import contextlib
import json
import resource
import uuid
from collections.abc import AsyncIterator
from functools import partial

from temporalio.client import Client

from fakes.llm_proxy import Answer, Fault, ManageAnswer
from fakes.raw_llm_proxy import RawLlmProxy, RawRequest, answer_json, gzip_bomb, http_response
from intake.starting import start_monitor
from tests.helpers.fault_checks import assert_three_checks
from tests.helpers.monitor import TEST_KEY, analysed, failed_analyses, make_settings, monitor_stack
from tests.helpers.positions import candle, entered_signal, position_rows, result_of, start_position, view
from tests.helpers.support import analyses, eventually, insert_signal, kline, signal_status
from workers.worker import running_worker
from workflows.monitor.workflow import SignalMonitorWorkflow
from workflows.position.workflow import PositionManagerWorkflow

NUL_TEXT = "support at 100\x00 holds"


async def _history_bytes(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(e.ByteSize() for e in history.events)


async def _history_text(client: Client, workflow_id: str) -> str:
    return (await client.get_workflow_handle(workflow_id).fetch_history()).to_json()


# Case 1: a NUL in the model's text, a token count past `integer`: stored as data, never an end.


async def test_nul_and_out_of_range_tokens_are_stored_safely_by_a_monitor(client, database_url, db):
    row = await insert_signal(db, interval="1m", max_reanalyses=10)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(
            row.signal_id,
            Answer.wait(55, reasoning=NUL_TEXT, tokens_used=3_000_000_000),
            Answer.wait(
                60, reasoning="\x00", trade_plan={"setup": "a\x00b"}, technical_indicators={"rsi\x00": "\ud800"}
            ),
        )
        handle = await m.start(row.signal_id)
        await eventually(lambda: analysed(handle, 1), timeout=30)
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2))
        state = await eventually(lambda: analysed(handle, 2), timeout=30)
        await assert_three_checks(
            client,
            db,
            "hostile answers: NUL in reasoning and objects, tokensUsed past integer",
            {row.signal_id: [kline(row, 2)["t"]]},
        )
    assert state.counts.failed_analyses == 0
    assert await signal_status(db, row.signal_id) == "monitoring"
    stored = await analyses(db, row.signal_id)
    assert len(stored) == 2
    first, second = stored
    assert first["reasoning"].startswith("support at 100\ufffd holds\n[signal-monitor: ")
    assert "tokensUsed 3000000000 out of range: dropped" in first["reasoning"]
    assert first["gemini_tokens_used"] is None
    assert json.loads(second["trade_plan"]) == {"setup": "a\ufffdb"}
    assert json.loads(second["technical_indicators"]) == {"rsi\ufffd": "\ufffd"}


async def test_nul_and_out_of_range_tokens_never_end_a_position(client, database_url, db):
    row = await entered_signal(db, stop_loss=90.0, take_profits=[150.0])
    async with monitor_stack(client, database_url) as m:
        m.proxy.script_position(
            row.signal_id,
            ManageAnswer.hold(reasoning=NUL_TEXT, tokens_used=3_000_000_000, details={"note": "\x00"}),
            ManageAnswer.close(reasoning="closing\x00 now", tokens_used=2**40),
        )
        handle = await start_position(client, row, m.task_queue)
        await eventually(lambda: _open(handle), timeout=60)
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 101, 99, 100))
        # Each close asked on its own: a close still waiting when the next arrives is superseded.
        await eventually(lambda: _decided(handle, 1), timeout=60)
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 2, 100, 101, 99, 100))
        result = await result_of(handle, timeout=120)
    assert result.status == "closed", result
    rows = await position_rows(db, row.signal_id)
    assert [d["action"] for d in rows["decisions"]] == ["hold", "close"]
    assert all(d["tokens_used"] is None and "\x00" not in d["reasoning"] for d in rows["decisions"])
    assert rows["decisions"][0]["action_details"] == {"note": "\ufffd"}
    assert [o["metadata"]["kind"] for o in rows["orders"]] == ["entry", "close"]
    assert await signal_status(db, row.signal_id) == "closed"


async def _open(handle):
    state = await view(handle)
    assert state.status == "open", state
    return state


async def _decided(handle, n: int) -> None:
    state = await view(handle)
    assert state.decisions == n, state


# Case 3: an answer taken for the wrong signal.


@contextlib.asynccontextmanager
async def _worker_on(client: Client, database_url: str, url: str) -> AsyncIterator[str]:
    settings = make_settings(database_url, url, f"tq-{uuid.uuid4().hex[:10]}", llm_max_concurrent=1)
    async with running_worker(client, settings):
        yield settings.task_queue


async def test_a_second_response_on_a_kept_alive_connection_is_never_an_answer(client, database_url, db):
    """The stand-in answers the first signal `wait` and writes, behind it on the same connection, a
    complete `enter_trade 97` answer; later it answers a request on a reused connection with a
    stale `enter_trade 97` for the first signal before the real `wait`. Neither is ever taken."""
    first = await insert_signal(db, interval="1m", max_reanalyses=10)
    second = await insert_signal(db, interval="1m", max_reanalyses=10)
    third = await insert_signal(db, interval="1m", max_reanalyses=10)
    stale = http_response(answer_json(first.signal_id, "enter_trade", 97))

    def respond(request: RawRequest) -> bytes:
        signal_id = request.params.get("signalId")
        own = http_response(answer_json(signal_id, "wait", 55))
        if signal_id == first.signal_id:
            return own + stale  # one write: the extra response lands in the client's read buffer
        if signal_id == third.signal_id and request.number_on_connection > 1 and len(raw.for_signal(signal_id)) == 1:
            return stale + own  # on a reused connection, before its real answer
        return own

    async with RawLlmProxy(respond) as raw, _worker_on(client, database_url, raw.url) as queue:
        handles = {}
        for row in (first, second, third):
            handles[row.signal_id] = (await start_monitor(client, row.signal_id, queue)).handle
            await eventually(partial(analysed, handles[row.signal_id], 1), timeout=45)
        await assert_three_checks(
            client,
            db,
            "hostile answers: a second response on a kept-alive connection, a stale one before the real",
            {row.signal_id: [] for row in (first, second, third)},
        )
    for row in (first, second, third):
        assert await signal_status(db, row.signal_id) == "monitoring"
        assert [a["decision"] for a in await analyses(db, row.signal_id)] == ["wait"]
        assert (
            await db.fetchval("SELECT count(*) FROM order_intents WHERE signal_id = $1", uuid.UUID(row.signal_id)) == 0
        )
    # The connection that carried the extra response was closed, not reused: the second signal's
    # request went on a new connection and was answered at its first attempt.
    (sent_first,) = raw.for_signal(first.signal_id)
    (sent_second,) = raw.for_signal(second.signal_id)
    assert sent_second.connection != sent_first.connection
    # The stale answer on a reused connection was refused as another request's, its connection
    # dropped, and the retry (a new connection) answered.
    third_sent = raw.for_signal(third.signal_id)
    assert len(third_sent) == 2 and third_sent[1].connection != third_sent[0].connection, third_sent
    assert third_sent[0].number_on_connection > 1
    history = await _history_text(client, handles[third.signal_id].id)
    assert "answer names signalId" in history and f"not this request's '{third.signal_id}'" in history


# Case 2: bound everything.


async def test_oversized_and_compressed_answers_are_bounded(client, database_url, db):
    bomb = gzip_bomb(400 << 20)  # 400 MB of zeros, ~400 KB as sent
    huge_body = b"{" + b" " * (30 << 20)
    row = await insert_signal(db, interval="1m", max_reanalyses=10)
    plan: dict[int, bytes] = {}

    def respond(request: RawRequest) -> bytes:
        n = len(raw.for_signal(row.signal_id))
        if n in plan:
            return plan[n]
        signal_id = request.params.get("signalId")
        big_raw = {"metadata": {"tokensUsed": 100, "modelName": "m", "rawAiResponse": "r" * 900_000}}
        return http_response(answer_json(signal_id, "wait", 55, **big_raw))

    plan[1] = http_response(bomb, headers={"Content-Encoding": "gzip"})
    plan[2] = http_response(huge_body)
    plan[3] = http_response(
        answer_json(row.signal_id, "enter_trade", 97, keyLevels={"stopLoss": 98.0, "takeProfit": [101.0] * 100_000})
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with RawLlmProxy(respond) as raw, _worker_on(client, database_url, raw.url) as queue:
        handle = (await start_monitor(client, row.signal_id, queue)).handle
        state = await eventually(lambda: analysed(handle, 1), timeout=60)
        size_after_first = await _history_bytes(client, handle.id)
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2))
        await eventually(lambda: analysed(handle, 2), timeout=30)
        size_after_second = await _history_bytes(client, handle.id)
        await assert_three_checks(
            client,
            db,
            "hostile answers: 400 MB gzip bomb, 30 MB body, 100,000 targets, 900 KB raw answer",
            {row.signal_id: [kline(row, 2)["t"]]},
        )
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before  # KiB on Linux
    assert grown_kb < 150 * 1024, f"the worker grew by {grown_kb} KiB reading a bomb"
    assert state.counts.failed_analyses == 0
    # Three bad answers (bomb, 30 MB, 100,000 targets), each refused, then the real one.
    # (a sixth when a busy machine made one exchange outlast the 5 s client timeout)
    assert len(raw.for_signal(row.signal_id)) >= 5
    # (history holds only the last failed attempt before an answer: the messages are unit-tested)
    assert await db.fetchval("SELECT count(*) FROM order_intents WHERE signal_id = $1", uuid.UUID(row.signal_id)) == 0
    assert await signal_status(db, row.signal_id) == "monitoring"
    stored = await analyses(db, row.signal_id)
    assert [a["decision"] for a in stored] == ["wait", "wait"]
    # History kept 16,000 characters of the 900,000-character raw answer; its row has it whole.
    assert stored[1]["raw_ai_response"] == "r" * 900_000
    assert "rawAiResponse: 900,000 characters, history keeps 16,000, the row all" in stored[1]["reasoning"]
    assert (
        await db.fetchval("SELECT count(*) FROM llm_raw_answers WHERE correlation_id LIKE $1", row.signal_id + "%") == 0
    )
    # What one analysis with a 900 KB raw answer adds to history: tens of KB.
    assert size_after_second - size_after_first < 80_000, size_after_second - size_after_first


# Case 5: the key in other spellings, and in the model's text.


async def test_the_key_is_kept_nowhere_in_any_spelling(client, database_url, db):
    spellings = [
        f"AUTHORIZATION: BEARER {TEST_KEY.upper()}",
        base64.b64encode(f"Authorization: Bearer {TEST_KEY}".encode()).decode(),
        f"Bearer {TEST_KEY}".encode().hex(),
        "x" * 190 + f" Bearer {TEST_KEY}",  # cut at 200 characters it kept 12 of the key
    ]
    row = await insert_signal(db, interval="1m", max_reanalyses=10)
    async with monitor_stack(client, database_url) as m:
        steps = [Fault.status(500, body={"success": False, "error": {"code": "E", "message": s}}) for s in spellings]
        m.proxy.script(
            row.signal_id,
            *steps[:3],
            Answer.wait(55, reasoning=f"your key {TEST_KEY[:10].upper()}... and {TEST_KEY[8:30]} was seen"),
        )
        handle = await m.start(row.signal_id)
        await eventually(lambda: analysed(handle, 1), timeout=60)
        m.proxy.script(row.signal_id, steps[3], Answer.wait(56, trade_plan={"note": TEST_KEY[-16:]}))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2))
        await eventually(lambda: analysed(handle, 2), timeout=60)
        await eventually(lambda: failed_analyses(handle, 0), timeout=5)
        await assert_three_checks(
            client,
            db,
            "hostile answers: the key echoed upper-cased, base64, hex, cut at 200; quoted by the model",
            {row.signal_id: [kline(row, 2)["t"]]},
        )
    history = await _history_text(client, handle.id)
    stored = await analyses(db, row.signal_id)
    kept = history + json.dumps([dict(a) for a in stored], default=str)
    assert "llm-proxy failed" in history and "***" in history
    for piece in _pieces(TEST_KEY):
        assert piece.lower() not in kept.lower(), piece
    assert "a secret masked" in stored[0]["reasoning"]


def _pieces(key: str) -> list[str]:
    """Every 8-character piece of the key, of its base64 (each alignment) and of its hex."""
    from runtime.redaction import encoded_forms

    forms = {key} | encoded_forms(key)
    return [f[i : i + 8] for f in forms for i in range(len(f) - 8)]
