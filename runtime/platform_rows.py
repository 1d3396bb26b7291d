"""A trader and a `new` signal written into the platform's own tables with the columns its screener
fills: `add-signal`, the dev stack's demo signal and the tests write them the same way."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg


async def insert_trader(
    conn: asyncpg.Connection,
    trader_id: uuid.UUID,
    user_id: uuid.UUID,
    name: str,
    interval: str,
    strategy: dict[str, Any],
    auto_analyze: bool = True,
) -> None:
    """An enabled trader of `user_id`'s on `interval` candles."""
    await conn.execute(
        """INSERT INTO traders (id, user_id, name, enabled, filter, strategy, auto_analyze_signals)
           VALUES ($1, $2, $3, true, $4::jsonb, $5::jsonb, $6)""",
        trader_id,
        user_id,
        name,
        json.dumps({"interval": interval}),
        json.dumps(strategy),
        auto_analyze,
    )


async def insert_signal(
    conn: asyncpg.Connection,
    signal_id: uuid.UUID,
    trader_id: uuid.UUID,
    symbol: str,
    interval: str,
    at: datetime,
    price: Decimal | float | None,
    change_percent: Decimal | None,
    volume: Decimal | None,
    indicators: dict[str, Any],
) -> None:
    """A `new` signal of `trader_id`'s at `at` (pass exact numbers: a float is stored with its
    binary expansion)."""
    await conn.execute(
        """INSERT INTO signals (id, trader_id, symbol, interval, "timestamp", price_at_signal,
                                change_percent_at_signal, volume_at_signal, indicator_data, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, 'new')""",
        signal_id,
        trader_id,
        symbol,
        interval,
        at,
        price,
        change_percent,
        volume,
        json.dumps(indicators),
    )
