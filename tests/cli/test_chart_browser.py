"""A closed position's chart as a trader sees it: the HTML `chart` writes, opened in a real
headless Chromium (as the Temporal UI test does). The labels plotly actually drew must not overlap
one another, and the PNG (tests/artifacts/chart-closed-position.png) is there to look at."""

from __future__ import annotations

import itertools
from pathlib import Path

from cli.chart_render import standalone_html
from cli.signal_report import chart_model
from tests.helpers.browser import ARTIFACTS
from tests.helpers.browser_page import browser_page
from tests.unit.test_chart_and_history import _closed

# Each drawn annotation's text box, in page pixels.
BOXES_JS = """() => Array.from(document.querySelectorAll('g.annotation')).map(g => {
  const t = g.querySelector('text'); const r = t.getBoundingClientRect();
  return {text: t.textContent, left: r.left, top: r.top, right: r.right, bottom: r.bottom};
})"""


async def test_a_closed_positions_chart_draws_every_label_apart(tmp_path: Path, chromium: str):
    model = chart_model(_closed(model_name="fake-llm-proxy"))
    html = tmp_path / "chart.html"
    html.write_text(standalone_html(model))
    async with browser_page(chromium, 1320, 800) as page:
        await page.goto(html.as_uri())
        await page.wait_for_selector("g.annotation text")
        boxes = await page.evaluate(BOXES_JS)
        await page.screenshot(path=str(ARTIFACTS / "chart-closed-position.png"), full_page=True)
    texts = {b["text"] for b in boxes}
    assert {"entry buy 2304.15", "exit 2299 (stop_loss)", "#0 wait 55%", "signal 2300.5"} <= texts, texts
    assert "stop-loss 2299" in texts and "take-profit 1 2349.1" in texts
    for a, b in itertools.combinations(boxes, 2):
        apart = a["right"] <= b["left"] or b["right"] <= a["left"] or a["bottom"] <= b["top"] or b["bottom"] <= a["top"]
        assert apart, (a, b)
