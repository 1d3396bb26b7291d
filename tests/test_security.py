"""Security: secrets stay out of everything a UI user, a log reader or a metrics scraper sees;
hostile strings are stored as data; the llm-proxy key goes only to LLM_PROXY_URL.

The full run is the production shape: `signal-monitor worker`, `intake` and `bridge` as processes
configured only through their environment, which holds three secrets (the llm-proxy key, a
database password, a Temporal API key). A signal row is inserted, the intake starts its monitor,
the bridge forwards closes from the fake Binance, the llm-proxy fails in several ways before
answering, and the signal is entered. Then every history, log line, metrics scrape and CLI output
of the run is searched for the secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from aiohttp import web
from temporalio.client import WorkflowExecutionStatus

from fakes import free_port
from fakes.binance import FakeBinance
from fakes.llm_proxy import Answer, FakeLlmProxy, Fault
from runtime.config import RUNNING_MONITORS_QUERY
from tests.helpers.bridge import replay_start, unique_symbol
from tests.helpers.monitor import failed_analyses, monitor_stack
from tests.helpers.processes import command_env, project_process, signal_monitor
from tests.helpers.servers import create_database
from tests.helpers.support import analyses, async_update, eventually, insert_signal, signal_status
from workflows.monitor.models import MonitorView
from workflows.monitor.workflow import SignalMonitorWorkflow


async def _role_with_password(admin_url: str, password: str) -> tuple[str, str]:
    """A login role with a password, owning nothing but allowed everything the project does: the
    documented `signal_monitor_worker` role (migration 007) is granted to it."""
    role = f"sm_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        await conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        await conn.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
        await conn.execute(f"GRANT signal_monitor_worker TO {role}")
    finally:
        await conn.close()
    parts = urlsplit(admin_url)  # a socket directory in `?host=`, or a host and port
    netloc = f"{role}:{password}@" + parts.netloc.rpartition("@")[2]
    return role, urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def test_no_secret_in_histories_logs_metrics_or_cli_output_of_a_full_run(
    client, postgres_server, temporal_address
):
    start = replay_start()  # the fake replays from here, never past the wall clock
    llm_key = "sk-llm-" + secrets.token_hex(12)
    db_password = "pg-pw-" + secrets.token_hex(12)
    temporal_key = "tmprl-" + secrets.token_hex(12)
    admin_url = await create_database(postgres_server)
    role, database_url = await _role_with_password(admin_url, db_password)
    queue = f"tq-sec-{uuid.uuid4().hex[:8]}"
    symbol = unique_symbol("SEC")
    ports = {name: free_port() for name in ("worker", "intake", "bridge")}
    outputs: list[str] = []
    async with FakeBinance(start=start, speed=30) as fake, FakeLlmProxy(api_key=llm_key) as proxy:
        fake.start_series(symbol, "1m")
        env = command_env(
            temporal_address,
            DATABASE_URL=database_url,
            LLM_PROXY_URL=proxy.url,
            LLM_PROXY_KEY=llm_key,
            TEMPORAL_API_KEY=temporal_key,
            TEMPORAL_TLS="false",  # the dev server has no TLS; the key is still sent, and ignored
            SIGNAL_MONITOR_TASK_QUEUE=queue,
            SIGNAL_MONITOR_LOG_LEVEL="DEBUG",
            SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS="1",
            BINANCE_WS_URL=fake.ws_url,
            BINANCE_REST_URL=fake.rest_url,
            SIGNAL_BRIDGE_REFRESH_SECONDS="0.5",
            SIGNAL_BRIDGE_QUERY=f"{RUNNING_MONITORS_QUERY} AND TaskQueue = '{queue}'",
        )
        conn = await asyncpg.connect(admin_url)
        try:
            row = await insert_signal(conn, symbol=symbol, interval="1m", timestamp=start, max_reanalyses=20)
            # Failures whose errors land in the history, then a decision two closes later.
            proxy.script(
                row.signal_id,
                Fault.status(500),
                Fault.not_json(),
                Answer.wait(55),
                Fault.status(429, retry_after=1),
                Answer.wait(60),
                Fault.status(503),
                Answer.enter(90),
            )

            def on(name: str) -> dict[str, str]:
                return dict(env, SIGNAL_MONITOR_METRICS_ADDRESS=f"127.0.0.1:{ports[name]}")

            async with (
                project_process(["worker"], on("worker"), ready_text="worker polling") as worker,
                project_process(["intake"], on("intake"), ready_text="listening on") as intake,
                project_process(["bridge"], on("bridge")) as bridge,
            ):
                client.get_workflow_handle(row.workflow_id)

                async def entered() -> None:
                    # After the enter its position is managed: `in_position`, later `closed`.
                    got = await conn.fetchrow(
                        "SELECT status, monitor_reason FROM signals WHERE id = $1", uuid.UUID(row.signal_id)
                    )
                    assert got["status"] in ("in_position", "closed"), dict(got)

                await eventually(entered, timeout=90)
                # Processes really used the password-protected role.
                in_use = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role)
                assert in_use >= 2, in_use
                async with httpx.AsyncClient() as http:
                    for port in ports.values():
                        scrape = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                        assert "temporal_" in scrape or "signal_monitor_" in scrape
                        outputs.append(scrape)
                for args in (["status", row.signal_id], ["list", "--symbol", symbol]):
                    result = await signal_monitor(env, *args)
                    outputs += [result.stdout, result.stderr]
                bad = await signal_monitor(dict(env, LLM_PROXY_URL="not a url"), "start", "nope", check=False)
                outputs += [bad.stdout, bad.stderr]
            outputs += [worker.output(), intake.output(), bridge.output()]
            rows = await analyses(conn, row.signal_id)
        finally:
            await conn.close()
    assert len(rows) >= 3 and rows[-1]["decision"] == "enter_trade"
    assert all(r.authorized for r in proxy.requests) and len(proxy.requests) >= 7
    histories = []
    async for execution in client.list_workflows(f"WorkflowId = '{row.workflow_id}'"):
        history = await client.get_workflow_handle(row.workflow_id, run_id=execution.run_id).fetch_history()
        histories.append(history.to_json())
    # Retried attempts' errors are in the history (an activity's last failure, on its started event).
    assert any("lastFailure" in h and "llm-proxy failed" in h for h in histories), "no error in the history"
    everything = {"history": "\n".join(histories), "logs and CLI output and metrics": "\n".join(outputs)}
    assert row.signal_id in everything["history"] and row.signal_id in everything["logs and CLI output and metrics"]
    for where, text in everything.items():
        for name, secret in (
            ("llm-proxy key", llm_key),
            ("database password", db_password),
            ("Temporal API key", temporal_key),
        ):
            # pytest.fail, not assert: the failure message must not print the secret either.
            if secret in text or secret[-12:] in text:
                pytest.fail(f"the {name} (or its tail) appears in the {where}")


async def test_the_llm_proxy_key_goes_only_to_llm_proxy_url(client, database_url, db):
    """llm-proxy answering a redirect elsewhere (even to plain http) is not followed: the key never
    leaves for another host or scheme, the answer counts as a bad answer and is retried."""
    caught: list[dict[str, str]] = []

    async def trap(request: web.Request) -> web.Response:
        caught.append(dict(request.headers))
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", trap)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        row = await insert_signal(db, interval="1m")
        async with monitor_stack(client, database_url) as m:
            elsewhere = f"http://127.0.0.1:{port}/analyze"
            m.proxy.script(
                row.signal_id,
                Answer.raw({"moved": True}, status=307, headers={"Location": elsewhere}),
                Answer.raw("", status=302, headers={"Location": elsewhere}),
                Answer.wait(61),
            )
            handle = await m.start(row.signal_id)

            async def analysed() -> MonitorView:
                s = await handle.query(SignalMonitorWorkflow.state)
                assert s.counts.analysed == 1 and not s.analysing, s.counts
                return s

            await eventually(analysed, timeout=60)
            requests = [r for r in m.proxy.requests if r.signal_id == row.signal_id]
    finally:
        await runner.cleanup()
    assert caught == [], "a request followed the redirect"
    assert [r.status for r in requests] == [307, 302, 200] and all(r.authorized for r in requests)
    assert (await analyses(db, row.signal_id))[0]["confidence"] == 61


HOSTILE = 'x\'); DROP TABLE signals; -- \\ $1 %s {{}} "quoted" \u202e\U0001f4a5'


async def test_hostile_strings_are_stored_as_data(client, database_url, db):
    """Symbols, reasons, strategy JSON and model reasoning full of SQL and odd characters are kept
    verbatim: every query is parameterised, nothing is interpreted."""
    strategy = {"instructions": HOSTILE, "modelTier": "fast'; --", "nested": {"k'ey": [HOSTILE, 1, None]}}
    hostile_symbol = "BTC'; DELETE FROM signals; --"
    bad_symbol = await insert_signal(db, symbol=hostile_symbol, interval="1m")
    row = await insert_signal(db, interval="1m", strategy=strategy, max_reanalyses=10)
    signals_before = await db.fetchval("SELECT count(*) FROM signals")
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, Answer.wait(55, reasoning=HOSTILE))
        bad_handle = await m.start(bad_symbol.signal_id)
        handle = await m.start(row.signal_id)
        bad_result = await asyncio.wait_for(bad_handle.result(), 30)

        async def analysed() -> None:
            s = await handle.query(SignalMonitorWorkflow.state)
            assert s.counts.analysed == 1 and not s.analysing, s.counts

        await eventually(analysed, timeout=30)
        # The raw form, so the workflow itself strips and stores it (an AbandonRequest strips here).
        await handle.execute_update(async_update(SignalMonitorWorkflow.abandon), {"reason": HOSTILE})
        result = await asyncio.wait_for(handle.result(), 30)
        sent = [r.params for r in m.proxy.requests if r.signal_id == row.signal_id]
    # Symbols are compared upper-case, as Binance spells them.
    assert bad_result.status == "failed" and hostile_symbol.upper() in bad_result.reason
    assert await db.fetchval("SELECT symbol FROM signals WHERE id = $1::uuid", bad_symbol.signal_id) == hostile_symbol
    assert (
        await db.fetchval("SELECT monitor_reason FROM signals WHERE id = $1::uuid", bad_symbol.signal_id)
        == bad_result.reason
    )
    assert await signal_status(db, bad_symbol.signal_id) == "failed"
    assert await db.fetchval("SELECT count(*) FROM signals") == signals_before
    assert result.status == "expired" and result.reason == f"abandoned by operator: {HOSTILE.strip()}"
    assert await db.fetchval("SELECT monitor_reason FROM signals WHERE id = $1::uuid", row.signal_id) == result.reason
    stored = await analyses(db, row.signal_id)
    assert [r["reasoning"] for r in stored] == [HOSTILE]
    assert sent and all(p["strategy"] == strategy for p in sent), sent[0].get("strategy")
    described = await client.get_workflow_handle(row.workflow_id).describe()
    assert described.status == WorkflowExecutionStatus.COMPLETED
    assert (
        json.loads(await db.fetchval("SELECT strategy::text FROM traders WHERE id = $1::uuid", row.trader_id))
        == strategy
    )


# A key pasted with a stray character: refused at start-up; planted past that check, every form
# it takes in an error (the header value, its repr, its bytes) is redacted.
STRAY = {"trailing newline": "\n", "CRLF": "\r\n", "trailing space": " ", "tab": "\t", "escape": "\x1b"}


@pytest.mark.parametrize("stray", STRAY.values(), ids=STRAY.keys())
async def test_a_key_with_whitespace_or_control_characters_is_refused_at_start_up(temporal_address, stray):
    key = "sk-llm-" + secrets.token_hex(12)
    env = command_env(
        temporal_address,
        DATABASE_URL="postgresql://nobody@127.0.0.1:9/none",
        LLM_PROXY_URL="http://127.0.0.1:9/",
        LLM_PROXY_KEY=key + stray,
    )
    for command in ("worker", "intake"):
        result = await signal_monitor(env, command, check=False)
        said = result.stdout + result.stderr
        assert result.returncode == 2 and "LLM_PROXY_KEY contains whitespace or control characters" in said, said
        if key[-12:] in said:
            pytest.fail(f"`{command}` printed the key")


@pytest.mark.parametrize("stray", STRAY.values(), ids=STRAY.keys())
async def test_a_planted_key_with_a_stray_character_reaches_no_history_query_cli_or_log(
    client, database_url, db, caplog, stray
):
    from cli.operator import run_argv
    from tests.helpers.monitor import TEST_KEY

    row = await insert_signal(db, interval="1m", max_reanalyses=10, auto_analyze=False)
    async with monitor_stack(client, database_url, llm_proxy_key=TEST_KEY + stray) as m:
        handle = await m.start(row.signal_id)

        # Not retried: a request that cannot be sent, or a refused key, stays so.
        state = await eventually(lambda: failed_analyses(handle, 1), timeout=30)
        out, err = io.StringIO(), io.StringIO()
        assert await run_argv(["status", row.signal_id], client, out, err) == 0
        history = (await handle.fetch_history()).to_json()
        await handle.cancel()
    everything = {
        "history": history,
        "state query": state.model_dump_json(),
        "CLI output": out.getvalue() + err.getvalue(),
        # Ours: the fake llm-proxy's own server (aiohttp) may log what it was sent, as llm-proxy may.
        "logs": "\n".join(logging.Formatter().format(r) for r in caplog.records if not r.name.startswith("aiohttp")),
    }
    assert "llm-proxy" in state.failures[0].error
    for where, text in everything.items():
        for form in (TEST_KEY, TEST_KEY[-12:], repr(TEST_KEY + stray), repr((TEST_KEY + stray).encode())):
            if form in text:
                pytest.fail(f"a form of the key appears in the {where}")
