"""Migration 006: trader settings with defaults and checks, the trade tables, RLS, idempotence."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from migrations.runner import MIGRATIONS_DIR
from tests.helpers.servers import create_database


async def test_position_settings_defaults_checks_and_tables(postgres_server):
    url = await create_database(postgres_server)
    conn = await asyncpg.connect(url)
    try:
        # Idempotent: applying the file again changes nothing and raises nothing.
        await conn.execute((MIGRATIONS_DIR / "006_positions.sql").read_text())
        trader = uuid.uuid4()
        await conn.execute("INSERT INTO traders (id, user_id, name) VALUES ($1, $2, 'd')", trader, uuid.uuid4())
        row = await conn.fetchrow("SELECT * FROM traders WHERE id = $1", trader)
        assert row["management_interval"] is None and row["use_trailing_stop"] is False
        assert row["max_position_duration"] == timedelta(days=7) and row["paper_stake"] == 1000
        assert row["partial_take_profit_levels"] == "[]" and row["paused"] is False
        for bad in (
            "management_interval = '7m'",
            "use_trailing_stop = true",
            "trailing_stop_distance = 0",
            "max_loss_per_position = 101",
            "max_consecutive_losses = 0",
            "paper_stake = 0",
            "max_position_duration = interval '0'",
            "partial_take_profit_levels = '{}'::jsonb",
        ):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(f"UPDATE traders SET {bad} WHERE id = $1", trader)
        rls = await conn.fetch(
            "SELECT relname FROM pg_class WHERE relrowsecurity AND relname = ANY($1::text[]) ORDER BY relname",
            ["orders", "positions", "position_management_decisions"],
        )
        assert [r[0] for r in rls] == ["orders", "position_management_decisions", "positions"]
        signal = uuid.uuid4()
        position = (
            "INSERT INTO positions (id, user_id, symbol, side, contracts, entry_price, signal_id) "
            "VALUES ($1, $2, 'BTCUSDT', 'long', 1, 100, $3)"
        )
        await conn.execute(position, "p1", uuid.uuid4(), signal)
        with pytest.raises(asyncpg.UniqueViolationError):  # one position a signal
            await conn.execute(position, "p2", uuid.uuid4(), signal)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE positions SET status = 'gone' WHERE id = 'p1'")
        decision = (
            "INSERT INTO position_management_decisions (position_id, action, candle_open_time) "
            "VALUES ('p1', 'hold', '2026-01-01T00:00Z')"
        )
        await conn.execute(decision)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(decision)
        signal_row = await conn.fetchval("INSERT INTO signals (symbol, status) VALUES ('BTCUSDT', 'new') RETURNING id")
        await conn.execute("UPDATE signals SET status = 'closed', closed_at = now() WHERE id = $1", signal_row)
    finally:
        await conn.close()


def test_migration_numbers_are_unique():
    names = [p.name[:3] for p in Path(MIGRATIONS_DIR).glob("[0-9]*.sql")]
    assert len(names) == len(set(names))
