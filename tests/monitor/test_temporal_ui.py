"""The Temporal Web UI of a test run, in a real headless browser (the system's Chromium driven by
Playwright; the `chromium` fixture skips without one, and fails under CI): a monitored signal's
history shows its analysis activities with their summaries, and its search attributes are there.
Screenshots land in tests/artifacts/."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.helpers.browser import ARTIFACTS
from tests.helpers.browser_page import browser_page
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import eventually, insert_signal, kline
from workflows.monitor.workflow import SignalMonitorWorkflow


async def test_history_shows_analysis_summaries_and_search_attributes(
    client, database_url, db, temporal_ui_url, chromium
):
    from playwright.async_api import expect

    row = await insert_signal(db, symbol="ADAUSDT", interval="5m")
    async with monitor_stack(client, database_url) as m:
        handle = await m.start(row.signal_id)

        async def analysed(n: int):
            state = await handle.query(SignalMonitorWorkflow.state)
            assert state.counts.analysed == n and not state.analysing, state

        await eventually(lambda: analysed(1))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        await eventually(lambda: analysed(2))
        state = await handle.query(SignalMonitorWorkflow.state)
        run_id = (await handle.describe()).run_id

    candle = state.history[1].candle_open_time
    assert candle is not None
    # The candle by both ends (ADAUSDT 5m here).
    start, end = (datetime.fromtimestamp(ms / 1000, tz=UTC) for ms in (candle, candle + 300_000))
    candle_utc = f"{start.strftime('%Y-%m-%d %H:%M')}–{end.strftime('%H:%M')} UTC"
    summaries = ["analysis #0 · candle signal", f"analysis #1 · candle {candle_utc}"]
    url = f"{temporal_ui_url}/namespaces/default/workflows/{row.workflow_id}/{run_id}/history"
    async with browser_page(chromium, 1600, 1400) as page:
        await page.goto(url)
        # A single-page app: wait for the rendered history, not for the load event.
        await expect(page.get_by_text(row.workflow_id, exact=True).first).to_be_visible()
        for summary in summaries:
            await expect(page.get_by_text(summary, exact=True).first).to_be_visible()
        await expect(page.get_by_text("load signal and trader", exact=True).first).to_be_visible()
        # Each analysis wrote its own row: no separate record in the history.
        await expect(page.get_by_text("analyze_and_record_signal", exact=True).first).to_be_visible()
        await expect(page.get_by_text("record analysis #0 · candle signal · continue", exact=True)).to_have_count(0)
        await page.screenshot(path=str(ARTIFACTS / "temporal-ui-history.png"), full_page=True)

        await page.get_by_role("tab", name="Search Attributes").click()
        await page.wait_for_url("**/search-attributes")
        expected = {
            "SignalSymbol": '"ADAUSDT"',
            "SignalInterval": '"5m"',
            "TraderId": f'"{row.trader_id}"',
            "MonitorStatus": '"monitoring"',
            "Reanalyses": "1",
        }
        for key, value in expected.items():
            await expect(page.get_by_text(f'"{key}": {value}').first).to_be_visible()
        await page.screenshot(path=str(ARTIFACTS / "temporal-ui-search-attributes.png"), full_page=True)
