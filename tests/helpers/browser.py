"""The headless Chromium the browser tests drive through Playwright (never Playwright's own
download): found, not installed. Installing it is the test command's job (`.ci/system-packages`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# A Chromium (or Chrome) executable to use instead of looking on the system.
CHROMIUM_ENV = "SIGNAL_MONITOR_CHROMIUM"
# Looked up on PATH in this order, then the Debian path (PATH may be a venv's only).
CHROMIUM_NAMES = ("chromium", "chromium-browser")
DEBIAN_CHROMIUM = "/usr/bin/chromium"
# Screenshots of the browser tests (ignored by git).
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# What works on these machines: no sandbox as root, no GPU, no phoning home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UI_TIMEOUT_MS = 60_000


class ChromiumNotFound(Exception):
    pass


def find_chromium(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The browser's path: $SIGNAL_MONITOR_CHROMIUM when set (it must exist), else the system's."""
    named = environ.get(CHROMIUM_ENV, "").strip()
    if named:
        found = shutil.which(named)
        if found is None:
            raise ChromiumNotFound(f"{CHROMIUM_ENV}={named!r} is not an executable")
        return found
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    if os.access(DEBIAN_CHROMIUM, os.X_OK):
        return DEBIAN_CHROMIUM
    raise ChromiumNotFound(
        f"no Chromium: set {CHROMIUM_ENV} to a Chromium executable, or install one "
        "(`sh .ci/system-packages`, or `apt-get install chromium` as root)"
    )


def on_ci(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def chromium_or_skip(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The browser for a test: without one the test skips with the reason, except under CI
    (CI=true), where a browser test that did not run is a failure."""
    try:
        return find_chromium(environ)
    except ChromiumNotFound as missing:
        if on_ci(environ):
            pytest.fail(f"CI is set and the browser test cannot run: {missing}")
        pytest.skip(str(missing))
