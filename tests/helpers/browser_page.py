"""A page in a fresh headless Chromium for the browser tests, with waits long enough for a busy
machine; the browser is closed on the way out, whatever happened."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from tests.helpers.browser import ARTIFACTS, CHROMIUM_ARGS, UI_TIMEOUT_MS

if TYPE_CHECKING:
    from playwright.async_api import Page


@asynccontextmanager
async def browser_page(chromium: str, width: int, height: int) -> AsyncIterator[Page]:
    # Imported here, as the tests do: collecting a test module must not need Playwright.
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)  # where the tests put their screenshots
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(UI_TIMEOUT_MS)
            # expect() keeps its own 5 s default, not the page's: a busy machine renders slower.
            expect.set_options(timeout=UI_TIMEOUT_MS)
            yield page
        finally:
            await browser.close()
