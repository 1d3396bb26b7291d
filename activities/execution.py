"""The execution backend the position workflow calls: `open_position`, `modify_position`,
`reduce_position`, `close_position`, routed to paper or live.

A position is live only when three switches agree: this worker allows it
(`SIGNAL_MONITOR_LIVE_TRADING=on`), the trader asks for it (`traders.auto_execute_trades`) and the
trader has an exchange account (`traders.exchange_account_id`). The choice is made once, at the
open, and recorded (`positions.mode`; a live entry's `orders` row exists before its request
leaves); every later call follows the record, never the switches. A live position on a worker
without live trading waits (a retryable error) instead of being handled as paper."""

from __future__ import annotations

import uuid

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.db_errors import permanent_errors
from activities.live.backend import LiveExecution
from activities.live.backend import position_id_for as live_position_id
from activities.live.client_ids import client_order_id
from activities.paper_execution import PaperExecution
from activities.paper_execution import position_id_for as paper_position_id
from workflows.common import names
from workflows.position import models

LIVE_TRADING_OFF = "LiveTradingOff"


class ExecutionBackends:
    def __init__(self, pool: asyncpg.Pool, paper: PaperExecution, live: LiveExecution | None):
        self._pool = pool
        self._paper = paper
        self._live = live

    async def live_account_for(self, input: models.OpenPositionInput) -> str | None:
        """The exchange account this entry trades on, or None for paper."""
        with permanent_errors("choose execution backend"):
            if await self._pool.fetchval("SELECT 1 FROM positions WHERE id = $1", paper_position_id(input.signal_id)):
                return None
            recorded = await self._pool.fetchrow(
                """SELECT exchange_account_id FROM positions WHERE id = $1
                   UNION ALL SELECT exchange_account_id FROM orders WHERE id = $2""",
                live_position_id(input.signal_id),
                client_order_id(input.key),
            )
            if recorded is not None:
                return str(recorded["exchange_account_id"])
            if self._live is None or not input.trader_id:
                return None
            trader = await self._pool.fetchrow(
                "SELECT auto_execute_trades, exchange_account_id FROM traders WHERE id = $1",
                uuid.UUID(input.trader_id),
            )
        if trader is None or not trader["auto_execute_trades"] or trader["exchange_account_id"] is None:
            return None
        return str(trader["exchange_account_id"])

    def _require_live(self) -> LiveExecution:
        if self._live is None:
            raise ApplicationError(
                "this is a live position and this worker has live trading off (SIGNAL_MONITOR_LIVE_TRADING): "
                "waiting for a worker with it on",
                type=LIVE_TRADING_OFF,
            )
        return self._live

    async def _mode(self, position_id: str) -> str:
        with permanent_errors("read position mode"):
            mode = await self._pool.fetchval("SELECT mode FROM positions WHERE id = $1", position_id)
        return mode or "paper"

    @activity.defn(name=names.OPEN_POSITION_ACTIVITY)
    async def open_position(self, input: models.OpenPositionInput) -> models.OpenedPosition:
        account = await self.live_account_for(input)
        if account is None:
            return await self._paper.open_position(input)
        return await self._require_live().open(input, account)

    @activity.defn(name=names.MODIFY_POSITION_ACTIVITY)
    async def modify_position(self, input: models.ModifyInput) -> bool:
        if await self._mode(input.position_id) == "live":
            return await self._require_live().modify(input)
        return await self._paper.modify_position(input)

    @activity.defn(name=names.REDUCE_POSITION_ACTIVITY)
    async def reduce_position(self, input: models.OrderInput) -> models.Fill:
        if await self._mode(input.position_id) == "live":
            return await self._require_live().exit(input)
        return await self._paper.reduce_position(input)

    @activity.defn(name=names.CLOSE_POSITION_ACTIVITY)
    async def close_position(self, input: models.OrderInput) -> models.Fill:
        if await self._mode(input.position_id) == "live":
            return await self._require_live().exit(input)
        return await self._paper.close_position(input)

    @activity.defn(name=names.RECONCILE_POSITION_ACTIVITY)
    async def reconcile_position(self, input: models.ReconcileInput) -> models.Reconciled:
        """Only live positions call it; a paper one has nothing to reconcile."""
        if await self._mode(input.position_id) == "live":
            return await self._require_live().reconcile(input)
        return models.Reconciled()
