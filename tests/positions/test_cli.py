"""`signal-monitor positions`, `close <signal> --reason`, `trader resume <trader id>`."""

from __future__ import annotations

import io
import uuid
from decimal import Decimal as D

from activities import platform_schema
from cli import operator as operator_cli
from cli.main import build_parser
from cli.positions import resume_trader
from intake import service as intake
from tests.helpers.monitor import monitor_stack
from tests.helpers.positions import candle, entered_signal, result_of, start_position, view
from tests.helpers.support import eventually, insert_signal
from workflows.position.workflow import PositionManagerWorkflow


async def _cli(client, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await operator_cli.run(build_parser().parse_args(list(argv)), client, out, err)
    return code, out.getvalue(), err.getvalue()


async def test_positions_list_and_close_by_cli(client, database_url, db):
    row = await entered_signal(db, symbol="XRPUSDT")
    async with monitor_stack(client, database_url) as m:
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))

        async def listed():
            state = await view(handle)
            assert state.status == "open"
            code, out, _ = await _cli(client, "positions", "--symbol", "xrpusdt", "--trader", row.trader_id)
            assert code == 0 and f"position-{row.signal_id}" in out and " open " in out, out

        await eventually(listed)
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 101, 99, 100))
        code, out, err = await _cli(client, "close", row.signal_id, "--reason", "desk says so")
        assert code == 0, err
        assert "closed: operator: closed by operator: desk says so" in out and "realized P&L" in out
        result = await result_of(handle)
        code, _, err = await _cli(client, "close", f"position-{row.signal_id}", "--reason", "again")
        assert code == 1 and "already ended" in err
    assert result.status == "closed"


async def test_trader_resume_lifts_the_pause_for_the_intake(database_url, db):
    row = await insert_signal(db)
    tid = uuid.UUID(row.trader_id)
    await db.execute(
        "UPDATE traders SET paused = true, paused_reason = '3 losses', consecutive_losses = 3 WHERE id = $1", tid
    )
    queries = intake.build_queries(await platform_schema.inspect(db))

    async def why_not() -> intake.Ineligible | None:
        return intake.ineligibility(await db.fetchrow(queries.by_id, uuid.UUID(row.signal_id)), queries.profile_tier)

    why = await why_not()
    assert why is not None and why.kind == "trader_paused" and "3 losses" in why.reason
    out = io.StringIO()
    await resume_trader(database_url, row.trader_id, out)
    assert "resumed (was paused: 3 losses)" in out.getvalue()
    assert await why_not() is None
    assert await db.fetchval("SELECT consecutive_losses FROM traders WHERE id = $1", tid) == 0
