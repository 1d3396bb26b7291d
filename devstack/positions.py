"""`signal-monitor dev`: after the demo signal is entered, follow its position to the close and
print the P&L (the fake llm-proxy holds twice, then closes, unless a stop or target comes first)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from cli.text import candle_span, plain, signed
from workflows.common.names import STATE_QUERY, position_workflow_id_for
from workflows.position.models import PositionResult, PositionView


async def follow_position(
    client: Client, signal_id: str, check: Callable[[], None], say: Callable[[str], None]
) -> None:
    handle = client.get_workflow_handle(position_workflow_id_for(signal_id), result_type=PositionResult)
    shown, opened = 0, False
    while True:
        check()
        try:
            desc = await handle.describe()
            state = await handle.query(STATE_QUERY, result_type=PositionView)
        except RPCError:
            await asyncio.sleep(0.5)  # not started yet
            continue
        if not opened and state.entry_price is not None:
            say(
                f"position opened ({'live' if (state.position_id or '').startswith('live-') else 'paper'}): "
                f"{state.side} {plain(state.quantity)} {state.symbol}, entry fill at "
                f"{plain(state.entry_price)}, stop {plain(state.stop_loss)}, targets "
                f"{', '.join(map(plain, state.take_profits)) or 'none'}"
            )
            opened = True
        for d in state.last_decisions[max(0, len(state.last_decisions) - (state.decisions - shown)) :]:
            say(
                f"managed candle {candle_span(d.candle_open_time, state.interval)}: {d.action}"
                + (f" ({d.confidence:g}%)" if d.confidence is not None else "")
            )
        shown = state.decisions
        if desc.status != WorkflowExecutionStatus.RUNNING:
            if desc.status == WorkflowExecutionStatus.COMPLETED:
                r = await handle.result()
                say(
                    f"position closed ({r.reason}): exit fill at {plain(r.exit_price)}, realized P&L "
                    f"{signed(r.realized_pnl)} after fees {plain(r.fees_paid)}; the signal is now closed"
                )
            else:
                say(f"position workflow ended: {desc.status.name if desc.status else 'unknown'}")
            return
        await asyncio.sleep(0.5)
