"""The one settings model: README's names and defaults, one error policy naming the variable,
secrets never shown, the bridge as a nested section read from its own variables."""

from __future__ import annotations

import os
import re
from decimal import Decimal

import pytest

from runtime.config import ConfigError, Settings, env_name

PREFIXES = ("SIGNAL_MONITOR_", "SIGNAL_BRIDGE_", "BINANCE_")
PLAIN = ("DATABASE_URL", "LLM_PROXY_URL", "LLM_PROXY_KEY", "TEMPORAL_API_KEY", "TEMPORAL_UI_URL")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(PREFIXES) or name in PLAIN:
            monkeypatch.delenv(name)


def test_defaults_are_the_readmes() -> None:
    s = Settings.from_env()
    assert (s.database_url, s.llm_proxy_url, s.llm_proxy_key) == (None, None, None)
    assert s.task_queue == "signal-monitor"
    assert (s.llm_max_concurrent, s.llm_max_per_second, s.llm_queue_max_per_second) == (8, None, None)
    assert (s.llm_timeout_seconds, s.max_cached_workflows, s.db_pool_size) == (30.0, 1000, 10)
    assert s.sticky_schedule_to_start_seconds == 10.0
    assert (s.initial_analysis, s.platform_grace_seconds) == ("auto", 120.0)
    assert (s.paper_fee_pct, s.paper_slippage_pct) == (Decimal("0.1"), Decimal("0.05"))
    assert (s.intake_sweep_seconds, s.running_refresh_seconds, s.analysis_retry_initial_seconds) == (30.0, 15.0, 2.0)
    assert (s.metrics_address, s.log_format, s.log_level) == (None, None, "INFO")
    b = s.bridge
    assert (b.ws_url, b.rest_url) == ("wss://stream.binance.com:9443", "https://api.binance.com")
    assert (b.refresh_seconds, b.streams_per_connection, b.control_interval, b.subscribe_batch) == (
        5.0,
        1024,
        0.35,
        200,
    )
    assert (b.max_connection_age, b.reconnect_initial, b.reconnect_max) == (82800.0, 1.0, 60.0)
    assert (b.connect_attempts_per_5min, b.signal_concurrency, b.signal_timeout) == (200, 32, 10.0)
    assert (b.retry_initial, b.retry_max, b.missing_close_grace) == (1.0, 30.0, 5.0)
    assert (b.backfill_on_start, b.backfill_new_streams, b.rest_concurrency) == (True, True, 4)
    assert (b.rest_timeout, b.rest_max_attempts, b.stats_seconds) == (10.0, 5, 60.0)
    assert (b.mode, b.buckets, b.ownership_check_seconds, b.group, b.database_url) == (
        "redundant",
        64,
        2.0,
        "default",
        "",
    )


def test_variables_are_read_by_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "DATABASE_URL": "postgresql://u@h/db",
        "LLM_PROXY_URL": "http://proxy",
        "LLM_PROXY_KEY": "sk-1",
        "SIGNAL_MONITOR_TASK_QUEUE": "tq",
        "SIGNAL_MONITOR_LLM_MAX_PER_SECOND": "2.5",
        "SIGNAL_MONITOR_INITIAL_ANALYSIS": " Platform ",
        "SIGNAL_MONITOR_PAPER_FEE_PCT": "0.2",
        "SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS": "3",
        "SIGNAL_MONITOR_METRICS_ADDRESS": " 0.0.0.0:9464 ",
        "SIGNAL_MONITOR_LOG_FORMAT": "json",
        "BINANCE_WS_URL": "ws://127.0.0.1:9443",
        "BINANCE_REST_URL": "http://127.0.0.1:9443",
        "SIGNAL_BRIDGE_STREAMS_PER_CONNECTION": "10",
        "SIGNAL_BRIDGE_BACKFILL_ON_START": "off",
        "SIGNAL_BRIDGE_MODE": "shared",
        "SIGNAL_MONITOR_DB_POOL_SIZE": "",  # empty: the default
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s = Settings.from_env()
    assert (s.database_url, s.llm_proxy_url, s.llm_proxy_key, s.task_queue) == (
        "postgresql://u@h/db",
        "http://proxy",
        "sk-1",
        "tq",
    )
    assert (s.llm_max_per_second, s.initial_analysis, s.paper_fee_pct) == (2.5, "platform", Decimal("0.2"))
    assert (s.intake_sweep_seconds, s.metrics_address, s.log_format, s.db_pool_size) == (
        3.0,
        "0.0.0.0:9464",
        "json",
        10,
    )
    assert s.binance_rest_url == s.bridge.rest_url == "http://127.0.0.1:9443"
    b = s.bridge
    assert (b.ws_url, b.streams_per_connection, b.backfill_on_start, b.mode) == (
        "ws://127.0.0.1:9443",
        10,
        False,
        "shared",
    )
    assert b.database_url == "postgresql://u@h/db" and "postgresql" not in repr(s) + repr(b)
    assert "sk-1" not in repr(s) and b.printable()["database_url"] == "(set)"
    b.check()  # shared mode has its database


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SIGNAL_BRIDGE_REFRESH_SECONDS", "soon", "must be a number, got 'soon'"),
        ("SIGNAL_BRIDGE_STREAMS_PER_CONNECTION", "5000", "must be <= 1024"),
        ("SIGNAL_BRIDGE_CONTROL_INTERVAL", "0.1", "must be >= 0.2"),
        ("SIGNAL_BRIDGE_MODE", "sharded", "must be one of redundant, shared"),
        ("SIGNAL_BRIDGE_BACKFILL_ON_START", "maybe", "must be true or false"),
        ("SIGNAL_MONITOR_DB_POOL_SIZE", "ten", "must be a whole number, got 'ten'"),
        ("SIGNAL_MONITOR_INITIAL_ANALYSIS", "sometimes", "must be one of auto, platform, monitor"),
        ("SIGNAL_MONITOR_PLATFORM_GRACE_SECONDS", "-1", "must be >= 0"),
        ("SIGNAL_MONITOR_PAPER_SLIPPAGE_PCT", "11", "must be <= 10"),
        ("SIGNAL_MONITOR_PAPER_FEE_PCT", "NaN", "must be a number"),
        ("SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS", "0", "must be > 0"),
        ("SIGNAL_MONITOR_RUNNING_REFRESH_SECONDS", "x", "must be a number"),
        ("SIGNAL_MONITOR_LOG_LEVEL", "loud", "must be one of DEBUG, INFO"),
        ("SIGNAL_MONITOR_ANALYSIS_RETRY_INITIAL_SECONDS", "90", "must be <= 60"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="^" + re.escape(f"{name} {says}")):
        Settings.from_env()


@pytest.mark.parametrize("name", ["LLM_PROXY_KEY", "TEMPORAL_API_KEY", "DATABASE_URL"])
def test_secrets_with_whitespace_are_refused_without_showing_them(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(
        name, "postgresql://u:hunter2-secret@h/db\n" if name == "DATABASE_URL" else "sk-hunter2-secret\n"
    )
    with pytest.raises(ConfigError) as caught:
        Settings.from_env()
    assert name in str(caught.value) and "hunter2" not in str(caught.value)


def test_shared_mode_needs_the_database_only_for_the_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNAL_BRIDGE_MODE", "shared")
    settings = Settings.from_env()  # other processes sharing the environment are not stopped
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        settings.bridge.check()


def test_every_field_has_the_variable_the_readme_names() -> None:
    names = {field: env_name(Settings, field) for field in Settings.model_fields if field != "bridge"}
    assert names["database_url"] == "DATABASE_URL" and names["llm_proxy_key"] == "LLM_PROXY_KEY"
    assert names["task_queue"] == "SIGNAL_MONITOR_TASK_QUEUE"
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    readme = open(os.path.join(root, "README.md")).read()
    # A feature's own page (docs/*.md, linked from the README) may be where its variables are named.
    docs_dir = os.path.join(root, "docs")
    pages = [open(os.path.join(docs_dir, f)).read() for f in sorted(os.listdir(docs_dir)) if f.endswith(".md")]
    documented = "\n".join([readme, *pages])
    missing = [
        v for v in names.values() if f"`{v}`" not in documented and v.removeprefix("SIGNAL_MONITOR_") not in readme
    ]
    assert not missing, missing
    bridge = type(Settings().bridge)
    internal = {"reply_timeout", "open_timeout", "ping_interval", "ping_timeout", "dedup_capacity", "database_url"}
    undocumented = [
        env_name(bridge, f)
        for f in bridge.model_fields
        if f not in internal and f"`{env_name(bridge, f)}`" not in documented
    ]
    assert not undocumented, undocumented


def test_the_analysis_retry_setting_changes_only_the_first_interval() -> None:
    from datetime import timedelta

    from workflows.common.policies import ANALYSIS_RETRY, analysis_retry

    assert analysis_retry(None) is ANALYSIS_RETRY
    assert Settings.from_env().analysis_retry_initial_seconds == ANALYSIS_RETRY.initial_interval.total_seconds()
    short = analysis_retry(0.2)
    assert short.initial_interval == timedelta(seconds=0.2)
    assert (short.backoff_coefficient, short.maximum_interval, short.maximum_attempts) == (
        ANALYSIS_RETRY.backoff_coefficient,
        ANALYSIS_RETRY.maximum_interval,
        ANALYSIS_RETRY.maximum_attempts,
    )
    assert short.non_retryable_error_types == ANALYSIS_RETRY.non_retryable_error_types


def test_sticky_schedule_to_start_is_read_and_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNAL_MONITOR_STICKY_SCHEDULE_TO_START_SECONDS", "45")
    assert Settings.from_env().sticky_schedule_to_start_seconds == 45.0
    monkeypatch.setenv("SIGNAL_MONITOR_STICKY_SCHEDULE_TO_START_SECONDS", "0")
    with pytest.raises(ConfigError, match="SIGNAL_MONITOR_STICKY_SCHEDULE_TO_START_SECONDS"):
        Settings.from_env()
