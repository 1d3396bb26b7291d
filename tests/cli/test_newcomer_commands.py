"""A newcomer's commands against real parts (Temporal, PostgreSQL, the fake Binance's REST, the
fake llm-proxy), run as the `signal-monitor` console script: add-signal -> history -> status
after the end -> chart opened in a real browser; list's columns and refusals; start refusing a
missing signal and restarting a failed one with --again."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from functools import partial

from fakes.binance import Clock, FakeBinance
from fakes.llm_proxy import Answer
from market.candle import row_to_k
from tests.helpers.browser import ARTIFACTS
from tests.helpers.browser_page import browser_page
from tests.helpers.monitor import monitor_stack
from tests.helpers.processes import command_env, signal_monitor
from tests.helpers.support import eventually, insert_signal, signal_status, status_is
from workflows.monitor.workflow import SignalMonitorWorkflow


def _env(temporal_address: str, database_url: str, fake: FakeBinance, task_queue: str, tmp_path) -> dict[str, str]:
    return command_env(
        temporal_address,
        DATABASE_URL=database_url,
        BINANCE_REST_URL=fake.rest_url,
        TEMPORAL_UI_URL="http://ui.example:8233",
        SIGNAL_MONITOR_TASK_QUEUE=task_queue,
        SIGNAL_MONITOR_DEV_STATE=str(tmp_path / "no-stack-here"),
    )


async def _closes_after(fake: FakeBinance, symbol: str, after_ms: int, n: int) -> list[dict]:
    """The next n closed candles of the replay after `after_ms`, as the bridge would send them."""
    import httpx

    async def enough():
        async with httpx.AsyncClient(base_url=fake.rest_url) as http:
            rows = (await http.get("/api/v3/klines", params={"symbol": symbol, "interval": "1m", "limit": 50})).json()
        now = fake.clock.now_ms()
        closed = [r for r in rows if r[6] > after_ms and r[6] < now]
        assert len(closed) >= n, (len(closed), now)
        return [row_to_k(symbol, "1m", r) for r in closed[:n]]

    return await eventually(enough, timeout=30, interval=0.2)


async def test_add_signal_history_status_and_chart_in_a_browser(
    client, database_url, db, temporal_address, chromium, tmp_path
):
    from playwright.async_api import expect

    clock = Clock(60, int(time.time() * 1000) - 30 * 60_000, follow_wall_clock=True)
    async with FakeBinance(auto_series=True, clock=clock) as fake, monitor_stack(client, database_url) as m:
        env = _env(temporal_address, database_url, fake, m.task_queue, tmp_path)
        added = await signal_monitor(
            env,
            "add-signal",
            "solusdt",
            "1m",
            "--new-trader",
            "Sol scalper",
            "--min-confidence",
            "95",
            "--strategy",
            "Buy the retest of the breakout level.",
            "--wait",
            "0",
        )
        signal_id = re.search(r"^signal ([0-9a-f-]{36})$", added.stdout, re.M).group(1)  # type: ignore[union-attr]
        assert f"Temporal UI: http://ui.example:8233/namespaces/default/workflows/signal-{signal_id}" in added.stdout
        assert "close of the latest closed candle" in added.stdout and "new trader" in added.stdout
        row = await db.fetchrow(
            """SELECT s.status, s.price_at_signal, s."timestamp", t.name, t.min_confidence_to_enter,
                      t.auto_analyze_signals, t.strategy->>'instructions' AS instructions, u.subscription_tier
               FROM signals s JOIN traders t ON t.id = s.trader_id JOIN user_profiles u ON u.id = t.user_id
               WHERE s.id = $1""",
            uuid.UUID(signal_id),
        )
        # As the platform inserts one: new, eligible for the intake, SOL's price from the replay.
        assert row["status"] == "new" and row["auto_analyze_signals"] and row["subscription_tier"] == "elite"
        assert row["name"] == "Sol scalper" and float(row["min_confidence_to_enter"]) == 95
        assert row["instructions"] == "Buy the retest of the breakout level."
        assert 50 < float(row["price_at_signal"]) < 200, row
        assert row["timestamp"].timestamp() * 1000 <= time.time() * 1000

        m.proxy.script(signal_id, Answer.wait(55), Answer.enter(78), Answer.enter(97))
        handle = await m.start(signal_id)
        signal_ms = int(row["timestamp"].timestamp() * 1000)
        for n, k in enumerate(await _closes_after(fake, "SOLUSDT", signal_ms, 2), start=1):
            # One at a time: a close arriving while an analysis runs waits, and a second one then
            # supersedes it (on a busy machine analysis #0 can still be running when both arrive).
            await eventually(partial(_analysed, handle, n), timeout=60)
            await handle.signal(SignalMonitorWorkflow.candle_closed, k)
        result = await asyncio.wait_for(handle.result(), 120)
        assert result.status == "in_position", result
        stored = await db.fetchrow(
            """SELECT s.price_at_signal::text AS price, o.entry_price::text AS entry, o.stop_loss::text AS stop
               FROM signals s JOIN order_intents o ON o.signal_id = s.id WHERE s.id = $1""",
            uuid.UUID(signal_id),
        )
        # Prices as a trader writes them (100.218), never a float's expansion (100.21799999999999...).
        assert all(len(v) <= 12 for v in stored.values()), dict(stored)

        history = await signal_monitor(env, "history", signal_id)
        lines = history.stdout.splitlines()
        assert "status in_position" in lines[0] and "enters at confidence >= 95" in history.stdout
        table = [ln for ln in lines if re.match(r"^[0-2] ", ln)]
        assert len(table) == 3, history.stdout
        assert "wait -> continue" in table[0] and "enter_trade -> continue" in table[1]
        assert "enter_trade -> enter" in table[2] and "97" in table[2]
        doc = json.loads((await signal_monitor(env, "history", f"signal-{signal_id}", "--json")).stdout)
        assert [a["analysis_number"] for a in doc["analyses"]] == [0, 1, 2]
        assert all(a["price"] is not None and 50 < a["price"] < 200 for a in doc["analyses"]), doc["analyses"]
        assert doc["order_intent"]["side"] == "buy"

        status = await signal_monitor(env, "status", signal_id)
        assert "history (database):" in status.stdout
        assert len([ln for ln in status.stdout.splitlines() if re.match(r"^  [0-2] ", ln)]) == 3, status.stdout

        listed = await signal_monitor(env, "list", "--symbol", "SOLUSDT")
        header = listed.stdout.splitlines()[0]
        assert "ANALYSES" in header and "LAST DECISION" in header and "CONFIDENCE" in header
        mine = next(ln for ln in listed.stdout.splitlines() if signal_id in ln)
        assert "SOLUSDT" in mine and "1m" in mine and " 3 " in mine and "enter_trade->enter" in mine and "97" in mine
        bogus = await signal_monitor(env, "list", "--status", "bogus", check=False)
        assert bogus.returncode == 2 and "invalid choice: 'bogus'" in bogus.stderr

        out = tmp_path / "chart.html"
        charted = await signal_monitor(env, "chart", signal_id, "-o", str(out))
        assert "3 analyses" in charted.stdout and "levels from " in charted.stdout, charted.stdout
        # The entry mark is the fill the position manager got, when it has opened by now.
        filled = await db.fetchval(
            "SELECT average_price FROM orders WHERE signal_id = $1 AND metadata->>'kind' = 'entry'", signal_id
        )

    async with browser_page(chromium, 1500, 900) as page:
        await page.goto(out.as_uri())
        for text in ("#0 wait 55%", "#1 enter_trade 78%", "#2 enter_trade 97%"):
            await expect(page.get_by_text(text, exact=True).first).to_be_visible()
        for prefix in ("entry ", "stop-loss ", "take-profit 1 "):
            await expect(page.get_by_text(re.compile("^" + re.escape(prefix) + r"[0-9.]+$")).first).to_be_visible()
        if filled is not None:
            await expect(page.get_by_text(f"entry buy {filled.normalize()}", exact=True).first).to_be_visible()
        # Candles drawn: plotly's candlestick boxes are SVG paths in the "trace boxes" layer.
        assert await page.locator("g.trace.boxes path").count() > 0
        await page.screenshot(path=str(ARTIFACTS / "signal-chart.png"), full_page=True)


async def test_start_refuses_a_missing_signal_and_restarts_a_failed_one_with_again(
    client, database_url, db, temporal_address, tmp_path
):
    async with FakeBinance() as fake, monitor_stack(client, database_url) as m:
        env = _env(temporal_address, database_url, fake, m.task_queue, tmp_path)
        missing = str(uuid.uuid4())
        refused = await signal_monitor(env, "start", missing, check=False)
        assert refused.returncode == 1 and f"no signal {missing}" in refused.stderr, refused
        listed = [wf async for wf in client.list_workflows(f"WorkflowId = 'signal-{missing}'")]
        assert listed == [] and "started" not in refused.stdout

        # A signal that cannot be monitored (an interval Binance does not have) ends `failed`.
        row = await insert_signal(db, symbol="ETHUSDT", interval="15m")
        await db.execute("UPDATE signals SET interval = '7m' WHERE id = $1", uuid.UUID(row.signal_id))
        first = await signal_monitor(env, "start", row.signal_id)
        assert first.stdout.strip() == f"{row.workflow_id}: started"
        await eventually(lambda: status_is(db, row.signal_id, "failed"), timeout=30)
        await db.execute("UPDATE signals SET interval = '15m' WHERE id = $1", uuid.UUID(row.signal_id))  # fixed
        again = await signal_monitor(env, "start", row.signal_id)
        assert "already ended" in again.stdout and "start --again" in again.stdout, again.stdout
        restarted = await signal_monitor(env, "start", row.signal_id, "--again")
        assert f"{row.workflow_id}: started again" in restarted.stdout, restarted

        handle = client.get_workflow_handle_for(SignalMonitorWorkflow.run, row.workflow_id)

        async def monitoring():
            state = await handle.query(SignalMonitorWorkflow.state)
            assert state.status == "monitoring" and state.analyses == 1, state

        await eventually(monitoring, timeout=30)
        assert await signal_status(db, row.signal_id) == "monitoring"
        twice = await signal_monitor(env, "start", row.signal_id, "--again", check=False)
        assert twice.returncode == 1 and "not failed" in twice.stderr
        await handle.terminate("test done")


async def _analysed(handle, n: int) -> None:
    state = await handle.query(SignalMonitorWorkflow.state)
    assert state.counts.analysed == n and not state.analysing, state.counts
