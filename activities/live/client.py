"""One ccxt Binance spot client per exchange account, set up for exactly-once use.

Only the spot sections are given URLs (`public`, `private`), so an unplanned call (margin, futures,
capital) fails loudly instead of reaching another host. ccxt's own retries and rate limiter are
off: one activity attempt is one request sequence and Temporal owns the retries."""

from __future__ import annotations

import ssl
from typing import Any

import ccxt.async_support as ccxt

BINANCE_URL = "https://api.binance.com"
BINANCE_TESTNET_URL = "https://testnet.binance.vision"


def base_url(is_testnet: bool, override: str | None) -> str:
    """`SIGNAL_MONITOR_EXCHANGE_URL` wins; else the testnet flag of the account picks."""
    if override:
        return override.rstrip("/")
    return BINANCE_TESTNET_URL if is_testnet else BINANCE_URL


def new_client(
    url: str,
    api_key: str,
    api_secret: str,
    timeout_seconds: float = 10.0,
    session: Any = None,
    ssl_context: ssl.SSLContext | None = None,
) -> ccxt.binance:
    """`session`, `ssl_context`: shared by the worker's clients (kept-alive connections; loading
    the CA store takes tens of milliseconds, once per context); without them the client makes
    its own, closed with the client."""
    api = f"{url.rstrip('/')}/api/v3"
    extra: dict[str, Any] = {}
    if session is not None:
        extra["session"] = session
    if ssl_context is not None:
        extra["ssl_context"] = ssl_context
    client = ccxt.binance(
        {
            **extra,
            # ccxt sleeps this long in close() by default (250 ms): nothing here needs it.
            "timeout_on_exit": 0,
            "apiKey": api_key,
            "secret": api_secret,
            "enableRateLimit": False,
            "timeout": int(timeout_seconds * 1000),
            # Errors are classified by Binance's own code in the body, which ccxt does not always quote.
            "enableLastJsonResponse": True,
            "enableLastHttpResponse": True,
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "adjustForTimeDifference": True,
                "recvWindow": 10000,
                # Full answers carry the fills (executed quantity, price and fee per trade).
                "newOrderRespType": {"market": "FULL", "limit": "FULL"},
            },
        }
    )
    client.urls["api"] = {"public": api, "private": api}
    return client
