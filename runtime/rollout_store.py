"""The rollout rows in PostgreSQL (`monitor_rollout`, `live_rollout`, migration 010): read, seed
and write. One row per table; every change bumps its `revision` (a trigger) and NOTIFYs
`signal_monitor_rollout`, which the intakes LISTEN to."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Literal

import asyncpg

from runtime.rollout import Rollout

Table = Literal["monitor_rollout", "live_rollout"]
CHANNEL = "signal_monitor_rollout"


class RolloutTableMissing(RuntimeError):
    """Migration 010 is not applied: `signal-monitor migrate` first."""


def _from_row(row: Any) -> Rollout:
    return Rollout(
        mode=row["mode"],
        trader_ids=frozenset(str(t) for t in row["trader_ids"]),
        user_ids=frozenset(str(u) for u in row["user_ids"]),
        percent=Decimal(row["percent"]),
        revision=int(row["revision"]),
    )


async def read(conn: asyncpg.Connection, table: Table = "monitor_rollout") -> Rollout | None:
    """The stored rollout, or None when the table holds no row yet."""
    try:
        row = await conn.fetchrow(f"SELECT mode, trader_ids, user_ids, percent, revision FROM {table} WHERE id")
    except asyncpg.UndefinedTableError:
        raise RolloutTableMissing(f"table {table} does not exist: run `signal-monitor migrate`") from None
    return None if row is None else _from_row(row)


async def read_or_seed(conn: asyncpg.Connection, seed: Rollout, table: Table = "monitor_rollout") -> Rollout:
    """The stored rollout; an empty table gets `seed` first (the first writer wins when several
    processes start at once)."""
    found = await read(conn, table)
    if found is not None:
        return found
    await conn.execute(
        f"""INSERT INTO {table} (id, mode, trader_ids, user_ids, percent, updated_by)
            VALUES (true, $1, $2::uuid[], $3::uuid[], $4, 'seed') ON CONFLICT (id) DO NOTHING""",
        seed.mode,
        _uuids(seed.trader_ids),
        _uuids(seed.user_ids),
        seed.percent,
    )
    stored = await read(conn, table)
    assert stored is not None
    return stored


async def write(conn: asyncpg.Connection, rollout: Rollout, by: str, table: Table = "monitor_rollout") -> Rollout:
    """Stores `rollout` (insert or update) and returns it as stored, with its new revision."""
    row = await conn.fetchrow(
        f"""INSERT INTO {table} (id, mode, trader_ids, user_ids, percent, updated_by)
            VALUES (true, $1, $2::uuid[], $3::uuid[], $4, $5)
            ON CONFLICT (id) DO UPDATE SET mode = EXCLUDED.mode, trader_ids = EXCLUDED.trader_ids,
                user_ids = EXCLUDED.user_ids, percent = EXCLUDED.percent, updated_by = EXCLUDED.updated_by
            RETURNING mode, trader_ids, user_ids, percent, revision""",
        rollout.mode,
        _uuids(rollout.trader_ids),
        _uuids(rollout.user_ids),
        rollout.percent,
        by,
    )
    return _from_row(row)


def _uuids(values: frozenset[str]) -> list[uuid.UUID]:
    return sorted(uuid.UUID(v) for v in values)
