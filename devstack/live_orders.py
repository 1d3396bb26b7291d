"""`signal-monitor dev --live-orders`: the demo trades live on a local Binance spot exchange.

The local exchange (fakes/binance/spot_api.py) takes its prices from the replayed candles; one
funded account's keys go to an owner-only keys file in the state folder; the worker gets the three
switches (`SIGNAL_MONITOR_LIVE_TRADING=on`, the keys file, the exchange URL), the demo trader
gets two more (an exchange account, `auto_execute_trades`) and its owner the last: the live
rollout (`users` step, this owner, caps that fit the demo's stake)."""

from __future__ import annotations

import secrets
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from activities.live.accounts import write_keys_file
from fakes.binance.spot_api import FakeSpotExchange

START_BALANCE = {"USDT": Decimal(10_000)}
# The demo trader's stake is the paper default (1000 USDT): one order fits, and a few at once.
DEMO_MAX_ORDER_USD = Decimal(1_500)
DEMO_MAX_TOTAL_USD = Decimal(5_000)


@dataclass
class LiveDemo:
    exchange: FakeSpotExchange
    account_id: str
    api_key: str
    keys_file: Path

    def env(self) -> dict[str, str]:
        return {
            "SIGNAL_MONITOR_LIVE_TRADING": "on",
            "SIGNAL_MONITOR_EXCHANGE_KEYS_FILE": str(self.keys_file),
            "SIGNAL_MONITOR_EXCHANGE_URL": self.exchange.base_url,
        }

    def orders_text(self) -> list[str]:
        return [
            f"{o.client_order_id} {o.side} {o.type} {o.status} qty {o.orig_qty} executed {o.executed_qty}"
            + (f" at {o.trades[-1].price}" if o.trades else "")
            for o in self.exchange.orders_of(self.api_key)
        ]


async def start(stack: AsyncExitStack, market: Any, symbol: str, state: Path, port: int) -> LiveDemo:
    exchange = await stack.enter_async_context(FakeSpotExchange("127.0.0.1", port))
    exchange.list_symbol(symbol)
    exchange.follow(market)
    api_key, secret = "dev-" + secrets.token_hex(12), secrets.token_hex(32)
    exchange.open_account(api_key, secret, dict(START_BALANCE))
    account_id = str(uuid.uuid4())
    keys_file = state / "exchange-keys.json"
    write_keys_file(keys_file, {account_id: (api_key, secret)})
    return LiveDemo(exchange, account_id, api_key, keys_file)


async def make_trader_live(database_url: str, trader_id: str, demo: LiveDemo) -> str:
    """The trader's switches and its owner in the live rollout; returns the owner's id."""
    conn = await asyncpg.connect(database_url)
    try:
        user_id = await conn.fetchval("SELECT user_id FROM traders WHERE id = $1", uuid.UUID(trader_id))
        # The `users` step for this owner alone, with the demo's caps (docs/rollout.md, "Live orders").
        await conn.execute(
            """INSERT INTO live_rollout (mode, user_ids, max_order_usd, max_total_usd, updated_by)
               VALUES ('users', ARRAY[$1::uuid], $2, $3, 'signal-monitor dev --live-orders')
               ON CONFLICT (id) DO UPDATE SET mode = 'users',
                   user_ids = ARRAY(SELECT DISTINCT unnest(live_rollout.user_ids || EXCLUDED.user_ids)),
                   max_order_usd = EXCLUDED.max_order_usd, max_total_usd = EXCLUDED.max_total_usd,
                   updated_by = EXCLUDED.updated_by""",
            user_id,
            DEMO_MAX_ORDER_USD,
            DEMO_MAX_TOTAL_USD,
        )
        await conn.execute(
            """INSERT INTO exchange_accounts (id, user_id, name, exchange, is_testnet, api_key, api_secret)
               VALUES ($1, $2, 'local exchange (dev)', 'binance', false, 'in the keys file', 'in the keys file')""",
            uuid.UUID(demo.account_id),
            user_id,
        )
        await conn.execute(
            "UPDATE traders SET auto_execute_trades = true, exchange_account_id = $2 WHERE id = $1",
            uuid.UUID(trader_id),
            uuid.UUID(demo.account_id),
        )
    finally:
        await conn.close()
    return str(user_id)
