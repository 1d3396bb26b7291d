"""The trading platform's database as its own migrations build it (see docs/contracts/platform.md),
for the tests: Supabase's `auth.uid()`, `user_profiles` (with or without production's
`subscription_tier`), `user_subscriptions`, `traders`, `signals` (with a status check constraint
holding a value the monitor does not know), `signal_analyses` with its NOT NULL JSON columns and
`idx_signal_analyses_signal_id`, row-level security everywhere, trigger 032 as the platform defines
it, and trigger 028 calling `net.http_post` with its secrets from `vault.decrypted_secrets`.

pg_net is emulated: `net.http_post` queues the request and NOTIFYs; :class:`PgNet` (in the test
process) performs it asynchronously, after a delay, or never, as the real pg_net may. With the fake
llm-proxy in `store_rows` mode the platform's initial analysis then lands as its own row, and 032
sets the status from it, exactly as in production."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

import asyncpg
import httpx

from migrations.runner import migrate

log = logging.getLogger("tests.helpers.platform_shape")

PG_NET_CHANNEL = "test_pg_net_request"
# A value production's status constraint allows and the monitor never writes: it must survive 002.
PRODUCTION_ONLY_STATUS = "archived"

_AUTH = """
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.users (id uuid PRIMARY KEY, email text);
-- Supabase's auth.uid(): the JWT's subject, from the request's settings.
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
  $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
"""

_TABLES = """
CREATE TABLE user_profiles (
    id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
    email text NOT NULL,
    display_name text,
    is_admin boolean DEFAULT false,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
CREATE TABLE user_subscriptions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid UNIQUE REFERENCES auth.users (id) ON DELETE CASCADE,
    tier text CHECK (tier IN ('free', 'pro', 'elite')) DEFAULT 'free',
    status text CHECK (status IN ('active', 'cancelled', 'past_due')) DEFAULT 'active',
    custom_signals_count integer DEFAULT 0,
    started_at timestamptz DEFAULT now(),
    expires_at timestamptz,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
CREATE TABLE traders (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid REFERENCES auth.users (id) ON DELETE CASCADE,
    name text NOT NULL,
    enabled boolean DEFAULT true,
    filter jsonb,
    strategy jsonb,
    auto_analyze_signals boolean DEFAULT false,
    auto_execute_trades boolean DEFAULT false,
    ownership_type text DEFAULT 'user',
    access_tier text DEFAULT 'elite',
    is_built_in boolean DEFAULT false,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
CREATE TABLE signals (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    trader_id uuid REFERENCES traders (id) ON DELETE CASCADE,
    user_id uuid,
    symbol text,
    interval text,
    "timestamp" timestamptz DEFAULT now(),
    price_at_signal numeric,
    change_percent_at_signal numeric,
    volume_at_signal numeric,
    count integer,
    source text,
    indicator_data jsonb,
    status text DEFAULT 'new' CONSTRAINT signals_status_check CHECK (status IN (
        'new', 'analysis_queued', 'analyzing', 'rejected', 'monitoring', 'ready', 'in_position', 'closed',
        'expired', '__EXTRA__')),
    closed_at timestamptz,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
CREATE TABLE signal_analyses (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    signal_id uuid NOT NULL REFERENCES signals (id) ON DELETE CASCADE,
    trader_id uuid NOT NULL REFERENCES traders (id) ON DELETE CASCADE,
    user_id uuid NOT NULL,
    decision text NOT NULL CHECK (decision IN ('enter_trade', 'bad_setup', 'wait')),
    confidence numeric(5, 2) NOT NULL CHECK (confidence >= 0 AND confidence <= 100),
    reasoning text NOT NULL,
    key_levels jsonb NOT NULL,
    trade_plan jsonb NOT NULL,
    technical_indicators jsonb,
    raw_ai_response text,
    analysis_latency_ms integer,
    gemini_tokens_used integer,
    model_name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_signal_analyses_signal_id ON signal_analyses (signal_id);
CREATE INDEX idx_signal_analyses_created_at ON signal_analyses (created_at DESC);

ALTER TABLE user_profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE traders ENABLE ROW LEVEL SECURITY;
ALTER TABLE signals ENABLE ROW LEVEL SECURITY;
ALTER TABLE signal_analyses ENABLE ROW LEVEL SECURITY;
CREATE POLICY "own profile" ON user_profiles FOR SELECT USING (auth.uid() = id);
CREATE POLICY "own subscription" ON user_subscriptions FOR SELECT USING (auth.uid() = user_id);
CREATE POLICY "own traders" ON traders FOR SELECT USING (auth.uid() = user_id);
CREATE POLICY "own signals" ON signals FOR SELECT USING (auth.uid() = user_id);
CREATE POLICY "own analyses" ON signal_analyses FOR SELECT USING (auth.uid() = user_id);
"""

# Trigger 032 as the platform defines it: every inserted analysis row sets the signal's status.
_TRIGGER_032 = """
CREATE FUNCTION update_signal_status_from_analysis() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NEW.decision = 'wait' THEN
        UPDATE signals SET status = 'monitoring', updated_at = now() WHERE id = NEW.signal_id;
    ELSIF NEW.decision IN ('enter', 'enter_trade') THEN
        UPDATE signals SET status = 'ready', updated_at = now() WHERE id = NEW.signal_id;
    ELSIF NEW.decision IN ('bad', 'bad_setup') THEN
        UPDATE signals SET status = 'expired', closed_at = now(), updated_at = now() WHERE id = NEW.signal_id;
    END IF;
    RETURN NEW;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'status from analysis failed for %: %', NEW.signal_id, SQLERRM;
    RETURN NEW;
END;
$$;
CREATE TRIGGER update_signal_status_on_analysis AFTER INSERT ON signal_analyses
    FOR EACH ROW EXECUTE FUNCTION update_signal_status_from_analysis();
"""

# pg_net and Supabase Vault, emulated; then trigger 028 as the platform defines it: for an owner
# whose profile tier is exactly 'elite' and a trader with auto_analyze_signals, post analyze-signal
# to llm-proxy, asynchronously, swallowing every error.
_PG_NET = f"""
CREATE SCHEMA IF NOT EXISTS net;
CREATE TABLE net.http_request_queue (id bigserial PRIMARY KEY, url text, headers jsonb, body jsonb,
                                     timeout_milliseconds integer, created_at timestamptz DEFAULT now());
CREATE FUNCTION net.http_post(url text, body jsonb DEFAULT '{{}}'::jsonb, params jsonb DEFAULT '{{}}'::jsonb,
                              headers jsonb DEFAULT '{{}}'::jsonb, timeout_milliseconds integer DEFAULT 5000)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE request_id bigint;
BEGIN
    INSERT INTO net.http_request_queue (url, headers, body, timeout_milliseconds)
        VALUES (url, headers, body, timeout_milliseconds) RETURNING id INTO request_id;
    PERFORM pg_notify('{PG_NET_CHANNEL}', request_id::text);  -- delivered at commit, like pg_net's worker
    RETURN request_id;
END;
$$;
CREATE SCHEMA IF NOT EXISTS vault;
CREATE TABLE vault.decrypted_secrets (name text PRIMARY KEY, decrypted_secret text);
"""

_TRIGGER_028 = """
CREATE FUNCTION trigger_ai_analysis_on_signal() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    tr record;
    base_url text;
    key text;
BEGIN
    SELECT t.*, coalesce(p.subscription_tier, 'anonymous') AS tier INTO tr
    FROM traders t LEFT JOIN user_profiles p ON p.id = t.user_id WHERE t.id = NEW.trader_id;
    IF tr.tier != 'elite' OR tr.auto_analyze_signals != true THEN
        RETURN NEW;
    END IF;
    SELECT decrypted_secret INTO base_url FROM vault.decrypted_secrets WHERE name = 'project_url';
    SELECT decrypted_secret INTO key FROM vault.decrypted_secrets WHERE name = 'service_role_key';
    IF coalesce(base_url, '') = '' OR coalesce(key, '') = '' THEN
        RAISE WARNING 'no vault secret: no AI analysis for signal %', NEW.id;
        RETURN NEW;
    END IF;
    PERFORM net.http_post(
        url := base_url || '/functions/v1/llm-proxy',
        headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || key,
                                      'x-trigger-source', 'database-trigger', 'x-correlation-id', NEW.id::text),
        body := jsonb_build_object('operation', 'analyze-signal', 'params', jsonb_build_object(
            'signalId', NEW.id, 'symbol', NEW.symbol, 'traderId', NEW.trader_id, 'userId', tr.user_id,
            'timestamp', NEW."timestamp", 'price', NEW.price_at_signal, 'strategy', tr.strategy)),
        timeout_milliseconds := 30000);
    RETURN NEW;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'AI analysis trigger failed for %: %', NEW.id, SQLERRM;
    RETURN NEW;
END;
$$;
CREATE TRIGGER auto_trigger_ai_analysis AFTER INSERT ON signals
    FOR EACH ROW EXECUTE FUNCTION trigger_ai_analysis_on_signal();
"""


def platform_sql(*, profile_tier: bool = True, trigger_028: bool = True, trigger_032: bool = True) -> str:
    sql = _AUTH + _TABLES.replace("__EXTRA__", PRODUCTION_ONLY_STATUS)
    if profile_tier:  # production only: no platform migration creates it
        sql += "ALTER TABLE user_profiles ADD COLUMN subscription_tier text;\n"
    if trigger_032:
        sql += _TRIGGER_032
    sql += _PG_NET
    if trigger_028:
        sql += _TRIGGER_028
    return sql


async def create_platform_database(server: Any, *, migrated: bool = True, **shape: bool) -> str:
    from tests.helpers.servers import create_database

    url = await create_database(server, migrated=False)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(platform_sql(**shape))
    finally:
        await conn.close()
    if migrated:
        await migrate(url)
    return url


@dataclass
class Owner:
    user_id: str
    trader_id: str


class OwnerOptions(TypedDict, total=False):
    """The eligibility keywords of `add_owner`, for tables of cases."""

    subscription: tuple[str, str] | None
    expires_at: datetime | None
    profile_tier: str | None
    auto_analyze: bool


async def add_owner(
    db: asyncpg.Connection,
    *,
    subscription: tuple[str, str] | None = ("elite", "active"),
    expires_at: datetime | None = None,
    profile_tier: str | None = None,
    auto_analyze: bool = True,
    interval: str = "15m",
    max_reanalyses: int | None = None,
    min_confidence_to_enter: float | None = None,
) -> Owner:
    """A user (auth.users + profile + optional subscription) and one trader of theirs."""
    user, trader = uuid.uuid4(), uuid.uuid4()
    await db.execute("INSERT INTO auth.users (id, email) VALUES ($1, $2)", user, f"{user.hex[:8]}@example.com")
    has_tier = await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'user_profiles' "
        "AND column_name = 'subscription_tier')"
    )
    if has_tier:
        await db.execute(
            "INSERT INTO user_profiles (id, email, subscription_tier) VALUES ($1, $2, $3)",
            user,
            f"{user.hex[:8]}@example.com",
            profile_tier,
        )
    else:
        await db.execute("INSERT INTO user_profiles (id, email) VALUES ($1, $2)", user, f"{user.hex[:8]}@example.com")
    if subscription is not None:
        await db.execute(
            "INSERT INTO user_subscriptions (user_id, tier, status, expires_at) VALUES ($1, $2, $3, $4)",
            user,
            subscription[0],
            subscription[1],
            expires_at,
        )
    await db.execute(
        """INSERT INTO traders (id, user_id, name, filter, strategy, auto_analyze_signals)
           VALUES ($1, $2, $3, $4::jsonb, '{"instructions": "buy breakouts"}'::jsonb, $5)""",
        trader,
        user,
        f"trader {trader.hex[:8]}",
        json.dumps({"interval": interval}),
        auto_analyze,
    )
    for column, value in (("max_reanalyses", max_reanalyses), ("min_confidence_to_enter", min_confidence_to_enter)):
        if value is not None:
            await db.execute(f"UPDATE traders SET {column} = $2 WHERE id = $1", trader, value)
    return Owner(str(user), str(trader))


async def add_signal(
    db: asyncpg.Connection,
    owner: Owner,
    *,
    symbol: str = "BTCUSDT",
    interval: str = "15m",
    price: str = "43250.12",
    status: str | None = "default",
    timestamp: datetime | None = None,
    signal_id: str | None = None,
) -> str:
    """As the screener inserts it: without a status (the column default applies) unless given."""
    signal = uuid.UUID(signal_id) if signal_id else uuid.uuid4()
    columns = 'id, trader_id, user_id, symbol, interval, "timestamp", price_at_signal, source, indicator_data'
    values = "$1, $2, $3, $4, $5, $6, $7::text::numeric, 'cloud', '{\"rsi\": 61}'::jsonb"
    args: list[Any] = [signal, uuid.UUID(owner.trader_id), uuid.UUID(owner.user_id), symbol, interval]
    args += [timestamp or datetime.now(UTC), price]
    if status != "default":
        columns += ", status"
        values += ", $8"
        args.append(status)
    await db.execute(f"INSERT INTO signals ({columns}) VALUES ({values})", *args)
    return str(signal)


@dataclass
class PgNet:
    """Performs the requests trigger 028 queued through `net.http_post`, asynchronously: after
    `delay` seconds, or never for the signals in `drop` (pg_net failed)."""

    database_url: str
    delay: float = 0.2
    delays: dict[str, float] = field(default_factory=dict)  # per signal id
    drop: set[str] = field(default_factory=set)
    posted: list[str] = field(default_factory=list)
    _tasks: set[asyncio.Task] = field(default_factory=set)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def set_secrets(self, db: asyncpg.Connection, project_url: str | None, key: str | None) -> None:
        await db.execute("DELETE FROM vault.decrypted_secrets")
        for name, value in (("project_url", project_url), ("service_role_key", key)):
            if value is not None:
                await db.execute("INSERT INTO vault.decrypted_secrets VALUES ($1, $2)", name, value)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PgNet]:
        conn = await asyncpg.connect(self.database_url)
        http = httpx.AsyncClient(timeout=60)

        def on_request(_c: Any, _pid: int, _ch: str, payload: str) -> None:
            task = asyncio.create_task(self._perform(conn, http, int(payload)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        await conn.add_listener(PG_NET_CHANNEL, on_request)
        try:
            yield self
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await http.aclose()
            await conn.close()

    async def _perform(self, conn: asyncpg.Connection, http: httpx.AsyncClient, request_id: int) -> None:
        async with self._lock:  # one connection: one query at a time
            row = await conn.fetchrow("SELECT url, headers, body FROM net.http_request_queue WHERE id = $1", request_id)
        if row is None:
            return
        body = json.loads(row["body"])
        signal_id = str(body["params"]["signalId"])
        if signal_id in self.drop:
            log.info("pg_net emulation: request for %s dropped", signal_id)
            return
        await asyncio.sleep(self.delays.get(signal_id, self.delay))
        try:
            await http.post(row["url"], headers=json.loads(row["headers"]), json=body)
            self.posted.append(signal_id)
        except httpx.HTTPError as exc:  # pg_net only logs
            log.warning("pg_net emulation: %s", exc)


@contextlib.asynccontextmanager
async def platform_database(server: Any, **shape: bool) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A database shaped like the platform's (then migrated) and a connection to it, closed after."""
    url = await create_platform_database(server, **shape)
    db = await asyncpg.connect(url)
    try:
        yield url, db
    finally:
        await db.close()
