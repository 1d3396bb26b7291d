"""The signal row checks behind `start`: does the signal exist, and putting a `failed` signal
back to `new` for `start --again`."""

from __future__ import annotations

import uuid

import asyncpg


async def signal_status(database_url: str, signal_id: str) -> tuple[bool, str | None]:
    """(exists, status)."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        row = await conn.fetchrow("SELECT status FROM signals WHERE id = $1", uuid.UUID(signal_id))
    finally:
        await conn.close()
    return (row is not None, row["status"] if row else None)


async def reset_failed_signal(database_url: str, signal_id: str) -> int:
    """`failed` -> `new`, its reason cleared. Earlier analyses stay, without their number (a new
    run numbers from 0 again and the database refuses a second row per number); `history` lists
    them first. Returns how many analyses were set aside; raises LookupError unless `failed`."""
    sid = uuid.UUID(signal_id)
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        async with conn.transaction():
            status = await conn.fetchval("SELECT status FROM signals WHERE id = $1 FOR UPDATE", sid)
            if status != "failed":
                raise LookupError(f"signal {signal_id} is {status or 'missing'}, not failed: nothing to start again")
            moved = await conn.execute(
                "UPDATE signal_analyses SET analysis_number = NULL WHERE signal_id = $1 AND analysis_number IS NOT NULL",
                sid,
            )
            await conn.execute(
                "UPDATE signals SET status = 'new', monitor_reason = NULL, closed_at = NULL, updated_at = now() WHERE id = $1",
                sid,
            )
    finally:
        await conn.close()
    return int(moved.split()[-1])
