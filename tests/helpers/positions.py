"""Helpers for the position tests: an entered signal (status `in_position` + its order intent),
candles with chosen prices, starting `position-<id>` by hand, and the rows a position wrote."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle

from market.intervals import interval_ms
from tests.helpers.blocking import in_open_transaction
from tests.helpers.monitor import RECORD_HISTORIES_ENV
from tests.helpers.support import SignalRow, insert_signal
from workflows.position.models import PositionManagerInput, PositionResult, PositionView
from workflows.position.workflow import PositionManagerWorkflow

SIGNAL_AGE = timedelta(hours=1)


async def entered_signal(
    db: asyncpg.Connection,
    *,
    symbol: str = "BTCUSDT",
    interval: str = "1m",
    side: str = "buy",
    entry: float = 100.0,
    stop_loss: float | None = 95.0,
    take_profits: list[float] | None = None,
    **trader: Any,
) -> SignalRow:
    # Stamped an hour ago: the closes after the signal's candle are closes of the past, which a
    # position takes (it refuses closes from the future, as the monitor does).
    stamped = datetime.now(UTC) - SIGNAL_AGE
    row = await insert_signal(db, symbol=symbol, interval=interval, price=entry, timestamp=stamped)
    await db.execute("UPDATE signals SET status = 'in_position' WHERE id = $1", uuid.UUID(row.signal_id))
    for column, value in trader.items():
        if column == "partial_take_profit_levels":
            value = json.dumps(value)
        await db.execute(f"UPDATE traders SET {column} = $2 WHERE id = $1", uuid.UUID(row.trader_id), value)
    await db.execute(
        """INSERT INTO order_intents (signal_id, trader_id, user_id, symbol, side, entry_price, stop_loss, take_profits)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)""",
        uuid.UUID(row.signal_id),
        uuid.UUID(row.trader_id),
        uuid.UUID(row.user_id),
        symbol,
        side,
        entry,
        stop_loss,
        json.dumps(take_profits if take_profits is not None else [110.0]),
    )
    return row


async def entered_signal_of(db: asyncpg.Connection, owner: SignalRow, **signal: Any) -> SignalRow:
    """`entered_signal`, from `owner`'s trader (and its user): another signal of the same trader."""
    row = await entered_signal(db, **signal)
    trader, user = uuid.UUID(owner.trader_id), uuid.UUID(owner.user_id)
    await db.execute("UPDATE signals SET trader_id = $2 WHERE id = $1", uuid.UUID(row.signal_id), trader)
    await db.execute(
        "UPDATE order_intents SET trader_id = $2, user_id = $3 WHERE signal_id = $1",
        uuid.UUID(row.signal_id),
        trader,
        user,
    )
    row.trader_id, row.user_id = owner.trader_id, owner.user_id
    return row


def candle(row: SignalRow, n: int, o: float, h: float, low: float, c: float, **kw: Any) -> dict[str, Any]:
    """The n-th close after the signal's candle (n >= 1), with the given prices."""
    step = interval_ms(row.interval)
    t = signal_candle_t(row) + n * step
    k = {"t": t, "T": t + step - 1, "s": row.symbol, "i": row.interval, "o": str(o), "h": str(h), "l": str(low)}
    k.update({"c": str(c), "v": "10", "x": True})
    k.update(kw)
    return k


def signal_candle_t(row: SignalRow) -> int:
    """Open time of the candle holding the signal (`candle(row, 0)`)."""
    step = interval_ms(row.interval)
    return (int(row.timestamp.timestamp() * 1000) // step) * step


async def start_position(
    client: Client, row: SignalRow, task_queue: str, **fields: Any
) -> WorkflowHandle[PositionManagerWorkflow, PositionResult]:
    """By hand, as if the signal's own candle decided the entry (`entry_candle_t`, as the monitor
    passes it): the closes after it are managed. `entry_candle_t=None`: the closes after the start."""
    fields.setdefault("entry_candle_t", signal_candle_t(row))
    return await client.start_workflow(
        PositionManagerWorkflow.run,
        PositionManagerInput(signal_id=row.signal_id, **fields),
        id=f"position-{row.signal_id}",
        task_queue=task_queue,
    )


async def result_of(handle: WorkflowHandle, timeout: float = 60.0) -> PositionResult:
    """The result, or a test failure instead of a hang when the workflow is stuck. With
    SIGNAL_MONITOR_RECORD_HISTORIES set, every run's history is kept under <dir>/positions/."""
    try:
        return await asyncio.wait_for(handle.result(), timeout)
    finally:
        await keep_histories(handle)


async def keep_histories(handle: WorkflowHandle) -> None:
    """With SIGNAL_MONITOR_RECORD_HISTORIES set, every run's history under <dir>/positions/."""
    if RECORD_HISTORIES_ENV in os.environ:
        await save_histories(handle, Path(os.environ[RECORD_HISTORIES_ENV]) / "positions")


async def save_histories(handle: WorkflowHandle, directory: Path) -> None:
    test = os.environ.get("PYTEST_CURRENT_TEST", "run").split("::")[-1].split(" ")[0]
    directory.mkdir(parents=True, exist_ok=True)
    client = handle._client
    async for execution in client.list_workflows(f"WorkflowId = '{handle.id}'"):
        if execution.workflow_type != "PositionManagerWorkflow":
            continue
        history = await client.get_workflow_handle(handle.id, run_id=execution.run_id).fetch_history()
        (directory / f"{test}-{execution.run_id[-8:]}.json").write_text(history.to_json())


async def view(handle: WorkflowHandle) -> PositionView:
    return await handle.query(PositionManagerWorkflow.state)


JSON_COLUMNS = ("metadata", "take_profit", "action_details", "risk_assessment", "indicators")


def _decoded(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    rows = [dict(r) for r in records]
    for row in rows:
        for column in JSON_COLUMNS:
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
    return rows


async def position_rows(db: asyncpg.Connection, signal_id: str) -> dict[str, list[dict[str, Any]]]:
    sid = uuid.UUID(signal_id)
    return {
        "orders": _decoded(
            await db.fetch("SELECT * FROM orders WHERE signal_id = $1 ORDER BY created_at, id", signal_id)
        ),
        "positions": _decoded(await db.fetch("SELECT * FROM positions WHERE signal_id = $1", sid)),
        "decisions": _decoded(
            await db.fetch(
                "SELECT * FROM position_management_decisions WHERE signal_id = $1 ORDER BY candle_open_time", sid
            )
        ),
    }


async def hold_decision_key(blocker: asyncpg.Connection, row: SignalRow, k: dict[str, Any]) -> Any:
    """In a transaction of `blocker`'s, insert the decision row the position is about to write for
    close `k`: its insert then waits inside its own transaction on the unique key. Returns the
    transaction (roll it back, or end the connection, to let the write go on)."""
    return await in_open_transaction(
        blocker,
        "INSERT INTO position_management_decisions (position_id, action, candle_open_time) "
        "VALUES ($1, 'hold', to_timestamp($2 / 1000.0))",
        f"paper-{row.signal_id}",
        k["t"],
    )
