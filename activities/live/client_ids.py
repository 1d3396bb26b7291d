"""Venue-valid client order ids from the workflow's idempotency keys.

Binance takes `^[a-zA-Z0-9-_]{1,36}$` and refuses `:` (the keys' separator) with -1100, so the id
is a digest of the key: `sm` + 26 base32 characters of its SHA-256 (130 bits: no two keys of a
lifetime meet). The same key gives the same id on every attempt and every worker; the key itself
is stored beside the id in the `orders` row."""

from __future__ import annotations

import base64
import hashlib
import re

VALID = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")
PREFIX = "sm"


def client_order_id(key: str) -> str:
    digest = base64.b32encode(hashlib.sha256(key.encode()).digest()).decode().rstrip("=").lower()
    return f"{PREFIX}{digest[:26]}"


def protective_key(position_key: str, revision: str) -> str:
    """The key of one revision of a position's resting stop (a new id each revision: Binance
    refuses an open order's id, and a moved stop is a new order)."""
    return f"{position_key}:protect:{revision}"
