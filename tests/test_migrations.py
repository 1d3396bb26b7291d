"""`signal-monitor migrate` on a fresh database and beside the platform's existing tables: each
file once, in order, in its own transaction; a broken file stops with its name and PostgreSQL's error."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from migrations.runner import MIGRATIONS_DIR, MigrationError, migrate
from tests.helpers.processes import BIN
from tests.helpers.servers import create_database

FILES = sorted(p.name for p in MIGRATIONS_DIR.glob("[0-9]*.sql"))


async def _cli_migrate(url: str) -> subprocess.CompletedProcess:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "signal-monitor"),
        "migrate",
        env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None  # communicate() waited for the exit
    return subprocess.CompletedProcess([], proc.returncode, out.decode(), err.decode())


async def test_fresh_database_then_rerun_is_a_no_op(postgres_server):
    url = await create_database(postgres_server, migrated=False)
    first = await _cli_migrate(url)
    assert first.returncode == 0, first.stderr
    assert f"applied {len(FILES)} migration(s)" in first.stdout
    second = await _cli_migrate(url)
    assert second.returncode == 0 and "up to date" in second.stdout, second
    conn = await asyncpg.connect(url)
    try:
        recorded = [r[0] for r in await conn.fetch("SELECT name FROM signal_monitor_migrations ORDER BY name")]
        assert recorded == FILES
        trader = uuid.uuid4()
        await conn.execute("INSERT INTO traders (id, user_id, name) VALUES ($1, $2, 'defaults')", trader, uuid.uuid4())
        row = await conn.fetchrow("SELECT * FROM traders WHERE id = $1", trader)
        assert (row["max_reanalyses"], float(row["min_confidence_to_enter"])) == (5, 70.0)
        assert row["max_monitoring_duration"] == timedelta(hours=24)
    finally:
        await conn.close()


PLATFORM_SCHEMA = """
CREATE TABLE user_profiles (id uuid PRIMARY KEY, subscription_tier text, email text);
CREATE TABLE traders (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid, name text, enabled bool,
    filter jsonb, strategy jsonb, auto_analyze_signals bool DEFAULT false, auto_execute_trades bool DEFAULT false,
    created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now(), description text);
CREATE TABLE signals (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), trader_id uuid REFERENCES traders(id),
    symbol text, interval text, "timestamp" timestamptz, price_at_signal numeric, change_percent_at_signal numeric,
    volume_at_signal numeric, indicator_data jsonb, status text DEFAULT 'new'
      CONSTRAINT signals_status_check CHECK (status IN ('new','analysis_queued','analyzing','rejected',
        'monitoring','ready','in_position','closed','expired')),
    closed_at timestamptz, updated_at timestamptz);
CREATE TABLE signal_analyses (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), signal_id uuid REFERENCES signals(id),
    trader_id uuid, user_id uuid, decision text CHECK (decision IN ('enter_trade','bad_setup','wait')),
    confidence numeric(5,2) CHECK (confidence BETWEEN 0 AND 100), reasoning text, key_levels jsonb,
    trade_plan jsonb, technical_indicators jsonb, raw_ai_response text, analysis_latency_ms int,
    gemini_tokens_used int, model_name text, created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
"""


async def test_applies_beside_the_platforms_tables_and_platform_rows_still_insert(postgres_server):
    url = await create_database(postgres_server, migrated=False)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(PLATFORM_SCHEMA)
        user, trader, old_signal = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO user_profiles (id, subscription_tier, email) VALUES ($1, 'ELITE', 'a@b.c')", user
        )
        await conn.execute(
            "INSERT INTO traders (id, user_id, name, filter) VALUES ($1, $2, 't', '{\"interval\": \"1h\"}')",
            trader,
            user,
        )
        await conn.execute(
            "INSERT INTO signals (id, trader_id, symbol, status) VALUES ($1, $2, 'ETHUSDT', 'closed')",
            old_signal,
            trader,
        )

        assert await migrate(url) == FILES

        # Existing rows are untouched, and get the settings' defaults.
        assert await conn.fetchval("SELECT status FROM signals WHERE id = $1", old_signal) == "closed"
        assert await conn.fetchval("SELECT max_reanalyses FROM traders WHERE id = $1", trader) == 5
        assert await conn.fetchval("SELECT email FROM user_profiles WHERE id = $1", user) == "a@b.c"
        # Rows filling only the platform's own columns still insert.
        signal = uuid.uuid4()
        await conn.execute(
            """INSERT INTO signals (id, trader_id, symbol, interval, "timestamp", price_at_signal,
               change_percent_at_signal, volume_at_signal, indicator_data, status, closed_at, updated_at)
               VALUES ($1, $2, 'BTCUSDT', '1h', now(), 1, 2, 3, '{}', 'new', NULL, now())""",
            signal,
            trader,
        )
        await conn.execute(
            """INSERT INTO signal_analyses (signal_id, trader_id, user_id, decision, confidence, reasoning,
               key_levels, trade_plan, technical_indicators, raw_ai_response, analysis_latency_ms,
               gemini_tokens_used, model_name) VALUES ($1, $2, $3, 'wait', 50, 'r', '{}', '{}', '{}', '', 1, 1, 'm')""",
            signal,
            trader,
            user,
        )
        # The platform's app writes several rows without a candle: still allowed.
        await conn.execute(
            "INSERT INTO signal_analyses (signal_id, decision, confidence) VALUES ($1, 'wait', 40)", signal
        )

        # The monitor's statuses are allowed; nonsense is not.
        for status in ("cancelled", "failed", "monitoring"):
            await conn.execute("UPDATE signals SET status = $2 WHERE id = $1", signal, status)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE signals SET status = 'bogus' WHERE id = $1", signal)

        # The database itself refuses a second analysis of one candle, and a second order intent.
        await conn.execute(
            "INSERT INTO signal_analyses (signal_id, decision, confidence, candle_open_time, analysis_number) "
            "VALUES ($1, 'wait', 50, '2026-01-01T00:00Z', 1)",
            signal,
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO signal_analyses (signal_id, decision, confidence, candle_open_time, analysis_number) "
                "VALUES ($1, 'enter_trade', 90, '2026-01-01T00:00Z', 2)",
                signal,
            )
        intent = "INSERT INTO order_intents (signal_id, symbol, side, entry_price) VALUES ($1, 'BTCUSDT', 'buy', 1)"
        await conn.execute(intent, signal)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(intent, signal)
    finally:
        await conn.close()


async def test_a_broken_file_stops_with_its_name_and_the_postgres_error(postgres_server, tmp_path: Path):
    url = await create_database(postgres_server, migrated=False)
    for name in FILES:
        shutil.copy(MIGRATIONS_DIR / name, tmp_path / name)
    broken = tmp_path / "900_broken.sql"
    broken.write_text("CREATE TABLE half_done (id int);\nALTER TABLE no_such_table ADD COLUMN x int;\n")
    with pytest.raises(MigrationError) as caught:
        await migrate(url, tmp_path)
    assert "900_broken.sql" in str(caught.value)
    assert 'relation "no_such_table" does not exist' in str(caught.value)
    conn = await asyncpg.connect(url)
    try:
        # Everything before it is applied and recorded; the broken file left nothing behind.
        assert [r[0] for r in await conn.fetch("SELECT name FROM signal_monitor_migrations ORDER BY name")] == FILES
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        broken.write_text("CREATE TABLE half_done (id int);\n")
        assert await migrate(url, tmp_path) == ["900_broken.sql"]
        assert await conn.fetchval("SELECT to_regclass('half_done')") is not None
    finally:
        await conn.close()
