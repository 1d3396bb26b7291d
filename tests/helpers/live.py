"""Helpers for the live-order tests: a local spot exchange with one funded account, the keys
file, an exchange account row, the live rollout and a trader with every switch on."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from activities.live.accounts import load_keys_file, write_keys_file
from activities.live.backend import LiveExecution, LiveSettings
from fakes.binance.spot_api import FakeSpotExchange
from tests.helpers.support import SignalRow

API_KEY = "live-test-key-" + uuid.uuid4().hex[:8]
API_SECRET = "live-test-secret-" + uuid.uuid4().hex


@dataclass
class LiveAccount:
    exchange: FakeSpotExchange
    account_id: str
    keys_file: Path

    def settings(self, **extra: Any) -> dict[str, Any]:
        """monitor_stack overrides: every worker-side switch on, against the local exchange."""
        return {
            "live_trading": True,
            "exchange_keys_file": self.keys_file,
            "exchange_url": self.exchange.base_url,
            "exchange_recv_window_ms": 2000,
            "exchange_timeout_seconds": 2.0,
            **extra,
        }

    def orders(self, symbol: str = "BTCUSDT") -> list[Any]:
        return self.exchange.orders_of(API_KEY, symbol)


@contextlib.asynccontextmanager
async def live_exchange(balances: dict[str, Any] | None = None, price: str = "100") -> AsyncIterator[LiveAccount]:
    async with FakeSpotExchange() as exchange:
        exchange.open_account(API_KEY, API_SECRET, balances or {"USDT": 2000})
        exchange.trade_at("BTCUSDT", price)
        account_id = str(uuid.uuid4())
        with tempfile.TemporaryDirectory(prefix="signal-monitor-keys-") as tmp:
            keys = Path(tmp) / "keys.json"
            write_keys_file(keys, {account_id: (API_KEY, API_SECRET)})
            yield LiveAccount(exchange, account_id, keys)


@contextlib.asynccontextmanager
async def live_backend(pool: asyncpg.Pool) -> AsyncIterator[tuple[LiveAccount, LiveExecution]]:
    """A funded account on the local exchange and the live backend on it, with the short answer
    window and timeout the fault tests lean on."""
    async with live_exchange() as account:
        backend = LiveExecution(
            pool,
            load_keys_file(account.keys_file),
            LiveSettings(exchange_url=account.exchange.base_url, recv_window_ms=2000, timeout_seconds=1.5),
        )
        try:
            yield account, backend
        finally:
            await backend.aclose()


async def make_live(db: asyncpg.Connection, row: SignalRow, account: LiveAccount, auto_execute: bool = True) -> None:
    """The trader's two switches: an exchange account (keys NOT in the row) and auto_execute_trades;
    and the live rollout on."""
    await live_rollout_on(db)
    await db.execute(
        """INSERT INTO exchange_accounts (id, user_id, name, exchange, is_testnet, api_key, api_secret)
           VALUES ($1, $2, 'test', 'binance', false, 'not-used', 'not-used') ON CONFLICT (id) DO NOTHING""",
        uuid.UUID(account.account_id),
        uuid.UUID(row.user_id),
    )
    await db.execute(
        "UPDATE traders SET auto_execute_trades = $2, exchange_account_id = $3 WHERE id = $1",
        uuid.UUID(row.trader_id),
        auto_execute,
        uuid.UUID(account.account_id),
    )


async def live_rollout_on(db: asyncpg.Connection) -> None:
    """The live rollout (one row, migration 010) at `all` with caps no test entry comes near."""
    await db.execute(
        """INSERT INTO live_rollout (mode, max_order_usd, max_total_usd, updated_by)
           VALUES ('all', 1000000, 1000000, 'tests')
           ON CONFLICT (id) DO UPDATE SET mode = 'all', max_order_usd = 1000000, max_total_usd = 1000000"""
    )


def exchange_view(account: LiveAccount) -> list[tuple[str, str, str, Decimal, Decimal]]:
    """The orders as the exchange lists them: (client id, side, type+status, qty, executed)."""
    return [(o.client_order_id, o.side, f"{o.type}/{o.status}", o.orig_qty, o.executed_qty) for o in account.orders()]
