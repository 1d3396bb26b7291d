"""Holding what a workflow's database write needs from another connection, to act while the write
waits (tests/monitor/test_local_record.py, tests/positions/test_local_record.py, the fault tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from asyncpg.transaction import Transaction
from temporalio.client import WorkflowHandle

from tests.helpers.support import eventually, is_cancelled, local_write_waits


async def in_open_transaction(conn: asyncpg.Connection, sql: str, *args: Any) -> Transaction:
    """Runs `sql` in a transaction of `conn`'s left open, so the rows it locks or the keys it inserts
    stay held: a write that needs them waits. Roll the transaction back (or close `conn`) to let it go."""
    tx = conn.transaction()
    await tx.start()
    await conn.execute(sql, *args)
    return tx


async def cancel_while_the_write_waits(
    handle: WorkflowHandle[Any, Any],
    database_url: str,
    hold: Callable[[asyncpg.Connection], Awaitable[Transaction]],
    send: Callable[[], Awaitable[None]],
) -> None:
    """`hold` (on a connection of its own) what the workflow's local write needs, `send` what makes
    it write, cancel the workflow while the write waits; then let the write go and see it cancelled."""
    blocker = await asyncpg.connect(database_url)
    try:
        tx = await hold(blocker)
        await send()
        await eventually(lambda: local_write_waits(handle, blocker), timeout=30)
        await handle.cancel()
        await tx.rollback()
    finally:
        await blocker.close()
    await eventually(lambda: is_cancelled(handle), timeout=60)
