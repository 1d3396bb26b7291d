"""Shadow mode beside the platform's triggers (tests/platform_shape.py): trigger 028 posts the
platform's analysis through the emulated pg_net, llm-proxy stores its own row per call, trigger
032 sets the status. The shadow intake and monitors run on the same signals and write nothing to
`signals` or `signal_analyses`, start no position, place nothing; their analyses land in
`shadow_analyses` with the platform's decision, and `signal-monitor shadow report` compares them,
judging every entry on later candles served by a local Binance klines endpoint."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp import web

from cli.shadow import parse, run_report
from fakes import free_port
from fakes.llm_proxy import Answer
from tests.helpers.monitor import monitor_stack
from tests.helpers.platform_shape import add_owner, add_signal, create_platform_database
from tests.helpers.support import eventually, running_intake
from tests.test_beside_platform import platform, rows_of, signal_row

SHOW = os.environ.get("SIGNAL_MONITOR_SHOW_LADDER") == "1"
IV = 15 * 60_000


def enter(confidence: float):
    return Answer.enter(confidence, entry=100.0, stop_loss=95.0, take_profit=[110.0])


# After each signal, per symbol: (open, high, low, close) of every later 15m candle.
PATHS = {
    "SOLUSDT": [(100, 103, 99, 102), (102, 111, 101, 110)],  # reaches 110 first: won
    "ETHUSDT": [(100, 101, 94, 95)],  # reaches 95 first: lost
    "ADAUSDT": [(100, 101, 99, 100)],  # neither: open
    "XRPUSDT": [(100, 101, 99, 100)],
}


@asynccontextmanager
async def klines_server() -> AsyncIterator[str]:
    """Binance's `GET /api/v3/klines` for the symbols above: candles from startTime on, each
    symbol's path repeating its last candle, up to now (closed ones only, as Binance serves them)."""

    async def klines(request: web.Request) -> web.Response:
        q = request.query
        path = PATHS[q["symbol"]]
        start = -(-int(q["startTime"]) // IV) * IV
        now = int(datetime.now(UTC).timestamp() * 1000)
        rows = []
        for i, t in enumerate(range(start, min(int(q.get("endTime", now)), now - IV), IV)):
            o, h, low, c = path[min(i, len(path) - 1)]
            rows.append([t, str(o), str(h), str(low), str(c), "10", t + IV - 1, "0", 1, "0", "0", "0"])
        return web.json_response(rows[: int(q.get("limit", 500))])

    app = web.Application()
    app.router.add_get("/api/v3/klines", klines)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_shadow_mode_beside_the_platforms_triggers_and_its_report(client, postgres_server):
    url = await create_platform_database(postgres_server)
    db = await asyncpg.connect(url)
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    try:
        async with platform(url, db) as (proxy, _pg_net), klines_server() as rest_url:
            cases = {
                # symbol: (the platform's answer (trigger 028), the shadow monitor's analysis #0, its end)
                "SOLUSDT": (Answer.wait(61), enter(85), "in_position"),
                "ETHUSDT": (enter(88), enter(80), "in_position"),
                "XRPUSDT": (Answer.abandon(81), Answer.abandon(72), "expired"),
                "ADAUSDT": (enter(86), Answer.wait(57), "expired"),
            }
            ids: dict[str, str] = {}
            for symbol, (theirs, ours, _) in cases.items():
                sid = str(uuid.uuid4())
                proxy.script(sid, theirs, ours)
                owner = await add_owner(db, profile_tier="elite", max_reanalyses=0)  # 028 fires for them
                ids[symbol] = await add_signal(db, owner, symbol=symbol, signal_id=sid, timestamp=two_hours_ago)

            async def platform_decided():
                for sid in ids.values():
                    assert len(await rows_of(db, sid)) == 1

            await eventually(platform_decided, timeout=30)
            async with (
                monitor_stack(client, url, proxy=proxy, shadow="on") as m,
                running_intake(m.client, m.settings, sweep_every=0.5),
            ):

                async def ended():
                    rows = await db.fetch("SELECT signal_id::text, end_status FROM shadow_intake")
                    assert {r["signal_id"]: r["end_status"] for r in rows} == {
                        ids[s]: end for s, (_, _, end) in cases.items()
                    }

                await eventually(ended, timeout=60)

            # Nothing of the monitor in the platform's tables: the signal rows are as 028/032 and
            # the proxy left them (the proxy's own row per call aside), no numbered analysis, no
            # intent, no position, no position workflow.
            for symbol, sid in ids.items():
                row = dict(await signal_row(db, sid))
                monitor_columns = ("monitor_intake", "monitor_started_at", "monitor_reason", "monitor_leave_reason")
                assert all(row[c] is None for c in monitor_columns), (symbol, row)
                rows = await rows_of(db, sid)
                assert len(rows) == len(proxy.requests_for(sid)) == 2, symbol  # 028's call and the monitor's
                assert all(r["analysis_number"] is None and r["monitor_decision"] is None for r in rows)
            assert await db.fetchval("SELECT count(*) FROM order_intents") == 0
            assert await db.fetchval("SELECT count(*) FROM positions") == 0
            assert [w async for w in client.list_workflows(f"WorkflowId = 'position-{ids['SOLUSDT']}'")] == []
            shadow = {
                r["symbol"]: r
                for r in await db.fetch(
                    """SELECT s.symbol, sh.* FROM shadow_analyses sh JOIN signals s ON s.id = sh.signal_id"""
                )
            }
            assert {s: (r["decision"], r["platform_decision"]) for s, r in shadow.items()} == {
                "SOLUSDT": ("enter_trade", "wait"),
                "ETHUSDT": ("enter_trade", "enter_trade"),
                "XRPUSDT": ("bad_setup", "bad_setup"),
                "ADAUSDT": ("wait", "enter_trade"),
            }
            assert shadow["SOLUSDT"]["monitor_decision"] == "enter" and shadow["SOLUSDT"]["gemini_tokens_used"] == 1100

            out = io.StringIO()
            assert await run_report(parse(["shadow", "report", "--since", "1h"]), url, rest_url, out) == 0
            report = out.getvalue()
            if SHOW:
                print("$ signal-monitor shadow report --since 1h\n" + report)
            assert "4 signal(s), 4 analyses" in report
            assert "the monitor's first decision differed on 2 of 4 (50 %)" in report
            assert "its entry (entered or not) on 2 of 4 (50 %)" in report
            assert "monitor entries: 2 (won 1, lost 1, open 0, no levels 0, no candles 0)" in report
            assert "platform entries: 2 (won 0, lost 1, open 1, no levels 0, no candles 0)" in report
            assert "per signal: 1.00 calls, 1,100 tokens" in report
            by_symbol = {
                line.split()[1]: line for line in report.splitlines() if line[:8] in {i[:8] for i in ids.values()}
            }
            assert "m:won" in by_symbol["SOLUSDT"] and by_symbol["SOLUSDT"].endswith("*")
            assert "m:lost p:lost" in by_symbol["ETHUSDT"] and not by_symbol["ETHUSDT"].endswith("*")
            assert "p:open" in by_symbol["ADAUSDT"]
            # Nothing since: an empty report, not an error.
            out = io.StringIO()
            future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            assert await run_report(parse(["shadow", "report", "--since", future]), url, rest_url, out) == 0
            assert "0 signal(s), 0 analyses" in out.getvalue()
    finally:
        await db.close()
