"""How numbers, candles, counts and the command itself read to a trader (cli/text.py). Pure."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

from cli.text import candle_ending, candle_span, closes_text, command_name, plain, signed
from workflows.monitor.models import MonitorCounts


def test_decimals_read_plainly():
    assert [plain(D("-0E-8")), plain(D("0E-8")), plain(D("1.50000000")), plain(D("4.33E+4")), plain(None)] == [
        "0",
        "0",
        "1.5",
        "43300",
        "-",
    ]
    assert (plain(0.34196923), plain(D("-3.42022672")), plain("junk")) == ("0.34196923", "-3.42022672", "junk")
    assert (signed(D("3.20")), signed(D("-1.05")), signed(D("-0E-8")), signed(None)) == ("+3.2", "-1.05", "0", "-")


def test_a_candle_is_named_by_both_ends():
    t = datetime(2026, 12, 1, 22, 21, tzinfo=UTC)
    assert candle_span(t, "1m") == "2026-12-01 22:21–22:22 UTC"
    assert candle_span(int(t.timestamp() * 1000), "15m") == "2026-12-01 22:21–22:36 UTC"
    assert candle_span(datetime(2026, 12, 1, 23, 59, tzinfo=UTC), "1m") == "2026-12-01 23:59–2026-12-02 00:00 UTC"
    assert candle_span(None, "1m") == "signal" and candle_span(t, "7m").endswith("(open time)")
    # A signal stamped 22:22 is the close of the candle 22:21–22:22 (the one "ending 22:22").
    assert candle_ending(datetime(2026, 12, 1, 22, 22, tzinfo=UTC), "1m") == "candle 2026-12-01 22:21–22:22 UTC"


def test_closes_set_aside_say_why():
    assert closes_text(MonitorCounts(received=2, analysed=3)) == "candle closes received 2, none set aside"
    text = closes_text(MonitorCounts(received=3, analysed=2, stale=1, duplicate=1))
    assert text.startswith("candle closes received 3, set aside: 1 stale (closed no later than the signal")
    assert "already seen, normal" in text and "1 duplicate (the same close sent again" in text


def test_the_command_to_run_is_the_one_that_works_here(tmp_path: Path, monkeypatch):
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    script = venv / "signal-monitor"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    # Not on PATH (no venv activated): the path that runs it, relative to this directory.
    assert command_name(".venv/bin/signal-monitor") == os.path.join(".venv", "bin", "signal-monitor")
    assert command_name(str(script), cwd=tmp_path / "elsewhere") == str(script)
    # On PATH (an activated venv): the bare name.
    monkeypatch.setenv("PATH", f"{venv}:/usr/bin:/bin")
    assert command_name(str(script)) == "signal-monitor"
