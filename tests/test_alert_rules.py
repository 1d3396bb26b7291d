"""The shipped alert rules (deploy/prometheus/alerts.yml) under `promtool test rules`: each rule
with series that fire it and series that do not (alerts_test.yml), and the same tests failing
once the rules' thresholds are moved out of reach, so a rule that could never fire is caught.

promtool comes from Debian's `prometheus` package (/usr/bin/promtool), which the test command's
first step installs when missing (`.ci/system-packages`), as it does Chromium. Found, not installed
here: without promtool these tests skip saying how to get it, except under CI (CI=true), where an
alert rule left untested is a failure (docs/rollout.md, "Alerts")."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.browser import on_ci

RULES_DIR = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
PROMTOOL = "/usr/bin/promtool"
INSTALL = "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus"
ALERTS = (
    "ModelCallErrorRateHigh",
    "DatabaseErrors",
    "NoAnalysesWhileMonitorsRun",
    "CandleClosesNotArriving",
    "ModelCostOverBudget",
    "TraderPaused",
    "LiveOrderRefused",
)


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or (PROMTOOL if os.access(PROMTOOL, os.X_OK) else None)
    if found:
        return found
    missing = f"no promtool: run `sh .ci/system-packages`, or as root `{INSTALL}`"
    if on_ci():
        pytest.fail(f"CI is set and the alert rules cannot be tested: {missing}")
    pytest.skip(missing)


def run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_every_alert_rule_fires_on_its_series_and_only_there(promtool):
    checked = run(promtool, "check", "rules", "alerts.yml", cwd=RULES_DIR)
    assert checked.returncode == 0 and f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout, checked
    tested = run(promtool, "test", "rules", "alerts_test.yml", cwd=RULES_DIR)
    print(tested.stdout)  # the closing note quotes it
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    # Every rule has a case that fires it (exp_alerts with labels) and one that does not (empty).
    cases = (RULES_DIR / "alerts_test.yml").read_text()
    for alert in ALERTS:
        blocks = re.findall(
            rf"alertname: {alert}\n\s+exp_alerts:(.*?)(?=\n\s*\n|\n\s+- eval_time|\n  - name|\Z)", cases, re.S
        )
        assert any(b.strip() == "[]" for b in blocks), f"{alert}: no case where it stays quiet"
        assert any("exp_labels" in b for b in blocks), f"{alert}: no case where it fires"


def test_the_rule_tests_fail_when_a_rule_can_no_longer_fire(promtool, tmp_path):
    rules = (RULES_DIR / "alerts.yml").read_text()
    # Every comparison moved out of reach: each firing case must now fail.
    unreachable = re.sub(r"(\)|\bvector\(0\)\)) (>|==) [\d.]+", lambda m: f"{m.group(1)} > 1e12", rules)
    assert unreachable != rules
    (tmp_path / "alerts.yml").write_text(unreachable)
    shutil.copy(RULES_DIR / "alerts_test.yml", tmp_path / "alerts_test.yml")
    tested = run(promtool, "test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert tested.returncode != 0 and "FAILED" in tested.stdout + tested.stderr
    for alert in ALERTS:
        assert f"alertname: {alert}," in tested.stdout + tested.stderr, alert
