"""How the browser tests find Chromium (tests/helpers/browser.py): the environment variable wins
and must name an executable; without a browser a test skips, or fails when CI is set."""

from __future__ import annotations

import sys

import pytest

from tests.helpers.browser import CHROMIUM_ENV, ChromiumNotFound, chromium_or_skip, find_chromium


def test_the_variable_names_the_browser():
    assert find_chromium({CHROMIUM_ENV: sys.executable}) == sys.executable


def test_a_variable_naming_nothing_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(ChromiumNotFound, match=CHROMIUM_ENV):
        find_chromium({CHROMIUM_ENV: str(tmp_path / "no-such-chromium")})


def test_found_on_path(tmp_path, monkeypatch):
    browser = tmp_path / "chromium-browser"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_chromium({}) == str(browser)


def test_without_a_browser_skips_with_the_reason_and_fails_under_ci(tmp_path, monkeypatch):
    missing = {CHROMIUM_ENV: str(tmp_path / "gone")}
    with pytest.raises(pytest.skip.Exception, match="is not an executable"):
        chromium_or_skip(missing)
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        chromium_or_skip({**missing, "CI": "true"})
