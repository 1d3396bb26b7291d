"""LiveExecution: the four execution activities' live halves (open, modify, reduce, close) on a
Binance spot account, exactly once.

Every order's `orders` row is written *before* its request leaves (status `pending`, its client id
as the row id, the sending time in `metadata.sent_at`) and completed from the exchange's answer.
A retried or restarted attempt finds the row and the order by its client id; a pending row whose
answer never came is resolved by looking again once its recvWindow has passed. The position's
stop-loss rests on the exchange; closing cancels it, then sells. An exchange-side fill (the stop
hit while nobody watched) is taken from the exchange's fills."""

from __future__ import annotations

import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
from temporalio.exceptions import ApplicationError

from activities.live.accounts import Credentials
from activities.live.client import base_url, new_client
from activities.live.client_ids import client_order_id, protective_key
from activities.live.errors import Classified
from activities.live.fills import Execution, aggregate
from activities.live.filters import SymbolRules
from activities.live.limits import RiskLimits, refusal
from activities.live.venue import OcoSpec, OrderSpec, Venue, VenueError
from runtime import live_rollout
from workflows.common import names
from workflows.position.models import (
    Fill,
    ModifyInput,
    OpenedPosition,
    OpenPositionInput,
    OrderInput,
    Reconciled,
    ReconcileInput,
)

log = logging.getLogger(__name__)

ZERO = Decimal(0)
STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "open",
    "FILLED": "closed",
    "CANCELED": "canceled",
    "PENDING_CANCEL": "open",
    "REJECTED": "rejected",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
}
RULES_TTL = 300.0


def position_id_for(signal_id: str) -> str:
    return f"live-{signal_id}"


def _exit_kind(order: dict) -> str:
    return "stop_loss" if order.get("type") == "STOP_LOSS_LIMIT" else "take_profit"


@dataclass(frozen=True)
class LiveSettings:
    exchange_url: str | None
    recv_window_ms: int = 5000
    timeout_seconds: float = 5.0
    stop_limit_gap_pct: Decimal = Decimal("0.5")


class LiveExecution:
    def __init__(self, pool: asyncpg.Pool, keys: dict[str, Credentials], settings: LiveSettings):
        self._pool = pool
        self._keys = keys
        self._settings = settings
        self._time_offsets: dict[str, int] = {}
        self._bans: dict[str, float] = {}
        self._rules_cache: dict[tuple[str, str], tuple[float, SymbolRules]] = {}
        # One HTTP session for every account's clients (connections kept alive between attempts).
        self._session: aiohttp.ClientSession | None = None
        self._ssl = ssl.create_default_context()
        self._idle: dict[tuple[str, str], list[Any]] = {}

    async def aclose(self) -> None:
        for clients in self._idle.values():
            for client in clients:
                await client.close()
        self._idle.clear()
        if self._session is not None:
            await self._session.close()

    # ---- the account ----------------------------------------------------------------------
    async def _venue(self, account_id: str) -> Venue:
        row = await self._pool.fetchrow(
            "SELECT exchange, is_testnet, coalesce(is_active, true) AS active FROM exchange_accounts WHERE id = $1",
            uuid.UUID(account_id),
        )
        if row is None or not row["active"] or (row["exchange"] or "").lower() != "binance":
            raise ApplicationError(
                f"exchange account {account_id} is missing, inactive or not a binance account",
                type=names.EXCHANGE_ACCOUNT_UNUSABLE,
                non_retryable=True,
            )
        creds = self._keys.get(account_id)
        if creds is None:
            raise ApplicationError(
                f"exchange account {account_id} has no keys in the worker's keys file",
                type=names.EXCHANGE_ACCOUNT_UNUSABLE,
                non_retryable=True,
            )
        url = base_url(bool(row["is_testnet"]), self._settings.exchange_url)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl), trust_env=False)
        idle = self._idle.setdefault((account_id, url), [])
        if idle:
            client = idle.pop()
        else:
            # Building a ccxt client costs milliseconds of CPU: made once, kept for the account's
            # next attempts (one attempt at a time uses a client, so errors read its own answer).
            client = new_client(
                url, creds.api_key, creds.api_secret, self._settings.timeout_seconds, self._session, self._ssl
            )
            # The clock offset measured after a -1021 is kept for the account's next attempts.
            client.options["timeDifference"] = self._time_offsets.get(account_id, 0)
        return Venue(client, self._settings.recv_window_ms, bans=self._bans, account=account_id)

    async def _release(self, account_id: str, venue: Venue) -> None:
        self._keep_offset(account_id, venue)
        idle = self._idle.setdefault((account_id, venue.base_url.removesuffix("/api/v3")), [])
        if len(idle) < 4:
            idle.append(venue.client)
        else:
            await venue.close()

    def _keep_offset(self, account_id: str, venue: Venue) -> None:
        self._time_offsets[account_id] = int(venue.client.options.get("timeDifference") or 0)

    @staticmethod
    def _raise(err: VenueError, doing: str) -> None:
        c = err.classified
        if c.kind == "rate_limited":
            raise ApplicationError(
                f"{doing}: rate limited ({c.reason}); retry after {c.retry_after} s",
                type=names.EXCHANGE_RATE_LIMITED,
                next_retry_delay=_delay(c.retry_after),
            ) from None
        if c.kind in ("refused", "would_trigger"):
            raise ApplicationError(
                f"{doing}: exchange refused: {c.reason}", type=names.EXCHANGE_REFUSED, non_retryable=True
            )
        raise ApplicationError(f"{doing}: {c.reason}", type=names.EXCHANGE_UNAVAILABLE) from None

    # ---- rows -----------------------------------------------------------------------------
    async def _pending(
        self, conn: Any, cid: str, user_id: str, signal_id: str, account_id: str, spec: OrderSpec,
        kind: str, key: str, position_id: str, sent_at: float, extra: dict | None = None,
    ) -> None:  # fmt: skip
        """The order's row before its request leaves (a second attempt keeps the first's)."""
        meta = {
            "mode": "live",
            "key": key,
            "kind": kind,
            "position_id": position_id,
            "client_order_id": cid,
            "sent_at": sent_at,
            **(extra or {}),
        }
        await conn.execute(
            """
            INSERT INTO orders (id, signal_id, exchange_account_id, user_id, symbol, side, type, status, price,
                                quantity, filled, remaining, metadata)
            VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, 0, $9, $10)
            ON CONFLICT (id) DO UPDATE SET metadata = orders.metadata || jsonb_build_object('sent_at', $11::float8),
                updated_at = now()
            WHERE orders.status = 'pending'
            """,
            cid,
            signal_id,
            uuid.UUID(account_id),
            uuid.UUID(user_id),
            spec.symbol,
            spec.side.lower(),
            {"MARKET": "market", "STOP_LOSS_LIMIT": "stop_limit"}.get(spec.type, "limit"),
            spec.stop_price or spec.price,
            spec.quantity,
            meta,
            sent_at,
        )

    async def _complete(self, conn: Any, cid: str, order: dict, ex: Execution, rules: SymbolRules, extra: dict) -> None:
        await conn.execute(
            """
            UPDATE orders SET status = $2, average_price = $3, filled = $4, remaining = quantity - $4, cost = $5,
                fee_currency = $6, fee_cost = $7, metadata = metadata || $8, updated_at = now()
            WHERE id = $1
            """,
            cid,
            STATUS.get(str(order.get("status")), "open"),
            ex.average_price if ex.executed else None,
            ex.executed,
            ex.cost,
            rules.quote,
            ex.fee_in(rules.quote, rules.base),
            {"exchange_order_id": order.get("orderId"), "exchange_status": order.get("status"),
             "fees": {k: str(v) for k, v in ex.fees.items()}, **extra},
        )  # fmt: skip

    async def _record_refusal(
        self, cid: str, input_user: str, signal_id: str, account_id: str, spec: OrderSpec, kind: str, key: str,
        position_id: str, reason: str,
    ) -> None:  # fmt: skip
        async with self._pool.acquire() as conn:
            await self._pending(conn, cid, input_user, signal_id, account_id, spec, kind, key, position_id, time.time())
        await self._reject(cid, reason)

    # ---- placing, exactly once ------------------------------------------------------------
    async def _place(
        self, venue: Venue, spec: OrderSpec, record: Callable[[float], Awaitable[None]], doing: str
    ) -> tuple[dict, Execution]:
        """The order with this client id (found or placed) and what it executed, from its fills."""
        row = await self._pool.fetchrow("SELECT status, metadata FROM orders WHERE id = $1", spec.client_id)
        try:
            if row is not None and row["status"] == "pending":
                # A previous attempt recorded its intent, then its answer (or the worker) was lost:
                # only after its recvWindow does "not found" mean it never reached the engine.
                sent_at = float((row["metadata"] or {}).get("sent_at") or 0)
                found = await venue.settle(spec.symbol, spec.client_id, sent_at)
                order = found if found is not None else await venue.place_once(spec, record)
            else:
                # No row: no attempt ever recorded an intent, and none sends without one first.
                order = await venue.place_once(spec, record, never_sent=row is None)
            return order, await self._execution(venue, spec.symbol, order)
        except VenueError as err:
            if err.kind in ("refused", "would_trigger"):
                await self._reject(spec.client_id, err.classified.reason)
            self._raise(err, doing)
            raise

    async def _execution(self, venue: Venue, symbol: str, order: dict) -> Execution:
        if order.get("fills"):
            return aggregate(order["fills"])
        if Decimal(str(order.get("executedQty", "0"))) == 0:
            return aggregate([])
        return aggregate(await venue.trades(symbol, order["orderId"]))

    # ---- open -------------------------------------------------------------------------------
    async def open(self, input: OpenPositionInput, account_id: str) -> OpenedPosition:
        """An entry the exchange or the account refuses ends the position unopened, with the reason."""
        try:
            return await self._open(input, account_id)
        except ApplicationError as err:
            if err.type in (names.EXCHANGE_REFUSED, names.EXCHANGE_ACCOUNT_UNUSABLE):
                raise ApplicationError(err.message, type=names.INVALID_SIGNAL_DATA, non_retryable=True) from None
            raise

    async def _open(self, input: OpenPositionInput, account_id: str) -> OpenedPosition:
        position_id = position_id_for(input.signal_id)
        if input.side != "long":
            raise ApplicationError(
                "live account is spot only: a short entry cannot be executed (no order sent)",
                type=names.INVALID_SIGNAL_DATA,
                non_retryable=True,
            )
        existing = await self._pool.fetchrow("SELECT * FROM positions WHERE id = $1", position_id)
        cid = client_order_id(input.key)
        venue = await self._venue(account_id)
        try:
            rules = await self._rules(venue, input.symbol, "open")
            qty = rules.floor_qty(input.stake / input.reference_price)
            sent = await self._pool.fetchrow("SELECT status, metadata FROM orders WHERE id = $1", cid)
            if existing is None and (sent is None or sent["status"] == "rejected"):
                # Checked only before the first send: a later attempt must finish what was sent.
                await self._check_entry(input, account_id, cid, rules, qty, position_id)
            spec = OrderSpec(cid, input.symbol, "BUY", "MARKET", qty)

            async def record(sent_at: float) -> None:
                async with self._pool.acquire() as conn:
                    await self._pending(conn, cid, input.user_id, input.signal_id, account_id, spec, "entry",
                                        input.key, position_id, sent_at)  # fmt: skip

            order, ex = await self._place(venue, spec, record, "open position")
            if ex.executed == 0:
                async with self._pool.acquire() as conn:
                    await self._complete(conn, cid, order, ex, rules, {})
                raise ApplicationError(
                    f"entry order {cid} ended {order.get('status')} with nothing filled",
                    type=names.INVALID_SIGNAL_DATA,
                    non_retryable=True,
                )
            held = ex.net_base(rules.base, "buy")
            fee = ex.fee_in(rules.quote, rules.base)
            inserted = False
            async with self._pool.acquire() as conn, conn.transaction():
                await self._complete(conn, cid, order, ex, rules, {})
                inserted = bool(
                    await conn.fetchval(
                        """
                        INSERT INTO positions (id, exchange_account_id, user_id, symbol, side, contracts,
                            initial_contracts, entry_price, mark_price, realized_pnl, fees_paid, signal_id, status,
                            stop_loss, take_profit, mode, metadata)
                        VALUES ($1, $2, $3, $4, 'long', $5, $5, $6, $6, $7, $8, $9, 'open', $10, $11, 'live', $12)
                        ON CONFLICT (id) DO NOTHING RETURNING true
                        """,
                        position_id,
                        uuid.UUID(account_id),
                        uuid.UUID(input.user_id),
                        input.symbol,
                        held,
                        ex.average_price,
                        -fee,
                        fee,
                        uuid.UUID(input.signal_id),
                        input.stop_loss,
                        [str(t) for t in input.take_profits],
                        {
                            "entry_order": cid,
                            "key": input.key,
                            "base": rules.base,
                            "quote": rules.quote,
                            "exchange_target": _text(input.exchange_target),
                        },
                    )
                )
                opened = await conn.fetchval("SELECT created_at FROM positions WHERE id = $1", position_id)
            if input.stop_loss is not None:
                await self._protect(venue, account_id, input.user_id, input.signal_id, position_id,
                                    protective_key(input.key, "0"), input.stop_loss, rules,
                                    target=input.exchange_target)  # fmt: skip
            log.info("live position %s opened: %s %s at %s (order %s)", position_id, held, input.symbol,
                     ex.average_price, cid)  # fmt: skip
            fill = Fill(
                order_id=cid, kind="entry", price=ex.average_price, quantity=held, fee=fee, realized_pnl=-fee,
                inserted=inserted,
            )  # fmt: skip
            return OpenedPosition(position_id=position_id, fill=fill, opened_at=opened)
        finally:
            await self._release(account_id, venue)

    async def _rules(self, venue: Venue, symbol: str, doing: str) -> SymbolRules:
        """A symbol's filters, kept RULES_TTL seconds (they change rarely; a stale one only costs
        a -1013, which is recorded, never retried)."""
        cached = self._rules_cache.get((venue.base_url, symbol))
        if cached is not None and time.monotonic() - cached[0] < RULES_TTL:
            return cached[1]
        try:
            rules = await venue.rules(symbol)
        except VenueError as err:
            self._raise(err, doing)
            raise
        self._rules_cache[(venue.base_url, symbol)] = (time.monotonic(), rules)
        return rules

    async def _check_entry(
        self, input: OpenPositionInput, account_id: str, cid: str, rules: SymbolRules, qty: Decimal, position_id: str
    ) -> None:
        """Filters, the risk limits and the live rollout (docs/rollout.md), before anything is
        sent: a refusal is recorded (an `orders` row `rejected` with the reason) and ends the
        position unopened."""
        spec = OrderSpec(cid, input.symbol, "BUY", "MARKET", qty)
        reason = rules.refusal(qty, input.reference_price)
        if reason is None:
            limits = await self.limits(input.user_id, input.trader_id)
            exposure, loss = await self._exposure(input.user_id)
            notional = qty * input.reference_price
            reason = refusal(
                limits,
                notional=notional,
                open_exposure=exposure,
                loss_today=loss,
                has_stop_loss=input.stop_loss is not None,
            )
            if reason is None:
                # Read at each entry, so a change of step or caps applies at once, without a restart.
                async with self._pool.acquire() as conn:
                    live = await live_rollout.load(conn)
                verdict = live_rollout.live_verdict(
                    live, input.trader_id, input.user_id, order_usd=notional, open_usd=exposure
                )
                if not verdict.allowed:
                    live_rollout.count_refusal(verdict)
                    reason = verdict.reason
        if reason is not None:
            await self._record_refusal(cid, input.user_id, input.signal_id, account_id, spec, "entry", input.key,
                                       position_id, reason)  # fmt: skip
            raise ApplicationError(f"entry refused: {reason}", type=names.INVALID_SIGNAL_DATA, non_retryable=True)

    async def limits(self, user_id: str, trader_id: str | None) -> RiskLimits:
        rows = await self._pool.fetch(
            """
            SELECT * FROM risk_limits
            WHERE (user_id IS NULL AND trader_id IS NULL)
               OR (user_id = $1 AND trader_id IS NULL)
               OR (user_id = $1 AND trader_id = $2)
            ORDER BY (user_id IS NOT NULL), (trader_id IS NOT NULL)
            """,
            uuid.UUID(user_id),
            uuid.UUID(trader_id) if trader_id else None,
        )
        return RiskLimits.merged([dict(r) for r in rows])

    async def _exposure(self, user_id: str) -> tuple[Decimal, Decimal]:
        row = await self._pool.fetchrow(
            """
            SELECT coalesce(sum(contracts * entry_price) FILTER (WHERE status = 'open'), 0) AS exposure,
                   coalesce(-sum(realized_pnl) FILTER (WHERE status = 'closed'
                       AND closed_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), 0) AS loss
            FROM positions WHERE user_id = $1 AND mode = 'live'
            """,
            uuid.UUID(user_id),
        )
        return row["exposure"], max(ZERO, row["loss"])

    # ---- the resting stop --------------------------------------------------------------------
    async def _protect(
        self, venue: Venue, account_id: str, user_id: str, signal_id: str, position_id: str, key: str,
        stop: Decimal, rules: SymbolRules, replace: str | None = None, target: Decimal | None = None,
    ) -> str | None:  # fmt: skip
        """Put the stop-loss on the exchange (a stop-limit sell of what the position holds), with
        `target` as one OCO when given; `replace`: the client id of a resting plain stop to
        cancel-replace. Returns the resting (stop leg's) id. A stop the exchange says would trigger
        immediately is an emergency exit: sold at market at once (`_emergency_exit`)."""
        pos = await self._pool.fetchrow("SELECT contracts, status FROM positions WHERE id = $1", position_id)
        if pos is None or pos["status"] != "open":
            return None
        qty = rules.floor_qty(pos["contracts"])
        stop_price, limit = rules.stop_limit(stop, self._settings.stop_limit_gap_pct)
        cid = client_order_id(key)
        spec = OrderSpec(cid, rules.symbol, "SELL", "STOP_LOSS_LIMIT", qty, price=limit, stop_price=stop_price)
        if rules.refusal(qty, limit) is not None:
            log.warning("position %s: %s too small to protect on the exchange", position_id, qty)
            return None
        if target is not None and replace is None:
            alone = client_order_id(f"{key}:alone")
            alone_row = await self._pool.fetchval("SELECT status FROM orders WHERE id = $1", alone)
            if alone_row is None or alone_row == "rejected":
                placed = await self._protect_oco(venue, account_id, user_id, signal_id, position_id, key, spec,
                                                 target, rules)  # fmt: skip
                if placed != "target_reached":
                    return placed
            # The target is already at or under the market: the stop rests alone, under its own id
            # (the candle's target rule sells at the close).
            cid = alone
            spec = OrderSpec(cid, rules.symbol, "SELL", "STOP_LOSS_LIMIT", qty, price=limit, stop_price=stop_price)

        async def record(sent_at: float) -> None:
            async with self._pool.acquire() as conn:
                await self._pending(conn, cid, user_id, signal_id, account_id, spec, "stop_loss", key,
                                    position_id, sent_at, {"protective": True})  # fmt: skip

        refused: str | None = None
        try:
            if replace is not None and await venue.lookup(rules.symbol, cid) is None:
                await record(time.time())
                try:
                    answer = await venue.cancel_replace(replace, spec)
                    order = answer["newOrderResponse"]
                    await self._complete_raw(venue, rules, replace, answer.get("cancelResponse"))
                except VenueError as err:
                    if err.classified.code == -2021:
                        # Cancelled, but the new stop was refused (e.g. it would trigger at once).
                        await self._complete_raw(venue, rules, replace, await venue.lookup(rules.symbol, replace))
                        raise VenueError(
                            Classified(
                                "would_trigger" if "would trigger" in err.classified.reason.lower() else "refused",
                                -2021,
                                f"cancel-replace: new stop refused: {err.classified.reason}",
                            )
                        ) from None
                    if err.classified.code != -2022:
                        raise
                    old = await venue.lookup(rules.symbol, replace)
                    await self._complete_raw(venue, rules, replace, old)
                    if old is not None and old.get("status") == "FILLED":
                        # The stop filled during the replace: nothing new; the exit reads the old one.
                        await self._reject(cid, "cancel-replace: the resting stop had filled")
                        return replace
                    if old is None or old.get("status") in ("NEW", "PARTIALLY_FILLED"):
                        raise  # not readable yet: a later attempt decides
                    order = await venue.place_once(spec, record)  # the old one is gone: a fresh stop
            else:
                order, _ = await self._place(venue, spec, record, "protect position")
        except VenueError as err:
            if err.kind not in ("would_trigger", "refused"):
                self._raise(err, "protect position")
            refused = err.classified.reason
        except ApplicationError as err:
            if err.type != names.EXCHANGE_REFUSED:
                raise
            refused = err.message
        if refused is not None:
            await self._reject(cid, refused)
            log.warning("position %s: stop %s not placed: %s", position_id, stop_price, refused)
            if "would trigger" in refused.lower():
                await self._emergency_exit(venue, account_id, user_id, signal_id, position_id, key, stop_price, rules)
            return None
        async with self._pool.acquire() as conn, conn.transaction():
            await self._complete(conn, cid, order, aggregate([]), rules, {"stop_price": str(stop_price)})
            await conn.execute(
                "UPDATE positions SET protective_order_id = $2, updated_at = now() WHERE id = $1", position_id, cid
            )
        return cid

    async def _protect_oco(
        self, venue: Venue, account_id: str, user_id: str, signal_id: str, position_id: str, key: str,
        stop: OrderSpec, target: Decimal, rules: SymbolRules,
    ) -> str | None:  # fmt: skip
        """Stop and target as one OCO (every leg's client id derived from this revision's key).
        Returns the stop leg's id, None when nothing rests, or "target_reached" when the exchange
        refused the target leg because the market is already there."""
        target_price = rules.round_price(target, up=True)
        oco = OcoSpec(
            stop=stop,
            target=OrderSpec(
                client_order_id(f"{key}:tp"), rules.symbol, "SELL", "LIMIT_MAKER", stop.quantity, price=target_price
            ),
            list_client_id=client_order_id(f"{key}:list"),
        )
        if rules.refusal(stop.quantity, target_price) is not None:
            return "target_reached"
        legs = {"oco_list": oco.list_client_id, "oco_stop": stop.client_id, "oco_target": oco.target.client_id}

        async def record(sent_at: float) -> None:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._pending(conn, stop.client_id, user_id, signal_id, account_id, stop, "stop_loss", key,
                                    position_id, sent_at, {"protective": True, **legs})  # fmt: skip
                await self._pending(conn, oco.target.client_id, user_id, signal_id, account_id, oco.target,
                                    "take_profit", f"{key}:tp", position_id, sent_at,
                                    {"protective": True, **legs})  # fmt: skip

        row = await self._pool.fetchrow("SELECT status, metadata FROM orders WHERE id = $1", stop.client_id)
        try:
            if row is not None and row["status"] == "pending":
                sent_at = float((row["metadata"] or {}).get("sent_at") or 0)
                await venue.wait_window(sent_at)
            stop_leg, target_leg = await venue.place_oco_once(oco, record, never_sent=row is None)
        except VenueError as err:
            if err.kind not in ("would_trigger", "refused"):
                self._raise(err, "protect position")
            reason = err.classified.reason
            for cid in (stop.client_id, oco.target.client_id):
                await self._reject(cid, f"OCO refused: {reason}")
            if "immediately match" in reason.lower():
                return "target_reached"
            log.warning("position %s: OCO not placed: %s", position_id, reason)
            if "would trigger" in reason.lower():
                await self._emergency_exit(venue, account_id, user_id, signal_id, position_id, key,
                                           stop.stop_price or ZERO, rules)  # fmt: skip
            return None
        async with self._pool.acquire() as conn, conn.transaction():
            await self._complete(conn, stop.client_id, stop_leg, aggregate([]), rules,
                                 {"stop_price": str(stop.stop_price)})  # fmt: skip
            await self._complete(conn, oco.target.client_id, target_leg, aggregate([]), rules,
                                 {"target_price": str(target_price)})  # fmt: skip
            await conn.execute(
                "UPDATE positions SET protective_order_id = $2, updated_at = now() WHERE id = $1",
                position_id,
                stop.client_id,
            )
        return stop.client_id

    async def _emergency_exit(
        self, venue: Venue, account_id: str, user_id: str, signal_id: str, position_id: str, key: str,
        stop_price: Decimal, rules: SymbolRules,
    ) -> None:  # fmt: skip
        """The stop cannot rest because the market is already through it: sell everything at market
        now (as Freqtrade's emergency exit does), once: its client id is derived from the stop
        revision's key. The workflow books it at its next reconcile (the position row is closed
        with the reason, the sell's row marked as the closing one)."""
        pos = await self._pool.fetchrow("SELECT * FROM positions WHERE id = $1", position_id)
        if pos is None or pos["status"] != "open":
            return
        ekey = f"{key}:emergency"
        spec = OrderSpec(client_order_id(ekey), rules.symbol, "SELL", "MARKET", rules.floor_qty(pos["contracts"]))
        reason = f"emergency exit: the stop {stop_price:f} would trigger immediately (sold at market)"

        async def record(sent_at: float) -> None:
            async with self._pool.acquire() as conn:
                await self._pending(conn, spec.client_id, user_id, signal_id, account_id, spec, "stop_loss", ekey,
                                    position_id, sent_at, {"emergency": True})  # fmt: skip

        try:
            order, ex = await self._place(venue, spec, record, "emergency exit")
        except ApplicationError as err:
            if err.type != names.EXCHANGE_REFUSED:
                raise
            # Refused (e.g. the coins are gone): the candle's stop rule and the reconcile decide.
            log.warning("position %s: emergency exit refused: %s", position_id, err.message)
            return
        await self._book_exit(pos, spec.client_id, order, ex, rules, "stop_loss", True, reason, inserted=True)
        log.warning("position %s: %s, %s at %s", position_id, reason, ex.executed, ex.average_price)

    async def _set_resting(self, position_id: str, cid: str | None) -> None:
        await self._pool.execute(
            "UPDATE positions SET protective_order_id = $2, updated_at = now() WHERE id = $1", position_id, cid
        )

    async def _oco_target_of(self, cid: str) -> str | None:
        """The target leg's client id when the resting stop `cid` is an OCO's stop leg."""
        meta = await self._pool.fetchval("SELECT metadata FROM orders WHERE id = $1", cid)
        target = (meta or {}).get("oco_target") if (meta or {}).get("oco_stop") == cid else None
        return str(target) if target else None

    async def _complete_raw(self, venue: Venue, rules: SymbolRules, cid: str, order: dict | None) -> None:
        if order is not None:
            ex = await self._execution(venue, rules.symbol, order)
            async with self._pool.acquire() as conn:
                await self._complete(conn, cid, order, ex, rules, {})

    async def _reject(self, cid: str, reason: str) -> None:
        await self._pool.execute(
            "UPDATE orders SET status = 'rejected', metadata = metadata || $2, updated_at = now() "
            "WHERE id = $1 AND status = 'pending'",
            cid,
            {"refused": reason[:500]},
        )

    # ---- modify -------------------------------------------------------------------------------
    async def modify(self, input: ModifyInput) -> bool:
        pos = await self._pool.fetchrow("SELECT * FROM positions WHERE id = $1", input.position_id)
        if pos is None or pos["status"] != "open":
            return False
        account_id = str(pos["exchange_account_id"])
        venue = await self._venue(account_id)
        try:
            rules = await self._rules(venue, pos["symbol"], "modify position")
            resting = pos["protective_order_id"]
            target = input.exchange_target if input.stop_loss is not None else None
            rested_target = (pos["metadata"] or {}).get("exchange_target")
            oco = resting is not None and await self._oco_target_of(resting) is not None
            target_moved = _text(target) != rested_target
            if oco or target is not None:
                # An OCO is not replaced in place: cancel the list, then a new one (new client ids).
                if resting is not None and (input.stop_loss != pos["stop_loss"] or target_moved):
                    if await self._cancel_resting(venue, rules, resting) is not None:
                        return True  # a leg filled meanwhile: the next reconcile books that exit
                    await self._set_resting(input.position_id, None)
                    resting = None
                if input.stop_loss is not None and resting is None:
                    resting = await self._protect(
                        venue, account_id, str(pos["user_id"]), str(pos["signal_id"]), input.position_id,
                        protective_key(input.key, "m"), input.stop_loss, rules, target=target,
                    )  # fmt: skip
            elif input.stop_loss is not None and (input.stop_loss != pos["stop_loss"] or resting is None):
                resting = await self._protect(
                    venue, account_id, str(pos["user_id"]), str(pos["signal_id"]), input.position_id,
                    protective_key(input.key, "m"), input.stop_loss, rules, replace=resting,
                )  # fmt: skip
            elif input.stop_loss is None and resting is not None:
                await self._cancel_resting(venue, rules, resting)
                resting = None
            await self._pool.execute(
                "UPDATE positions SET metadata = metadata || jsonb_build_object('exchange_target', $2::text) "
                "WHERE id = $1",
                input.position_id,
                _text(target),
            )
            await self._pool.execute(
                """UPDATE positions SET stop_loss = $2, take_profit = $3, protective_order_id = $4, updated_at = now()
                   WHERE id = $1 AND status = 'open'""",
                input.position_id,
                input.stop_loss,
                [str(t) for t in input.take_profits],
                resting,
            )
            return True
        finally:
            await self._release(account_id, venue)

    async def _cancel_resting(self, venue: Venue, rules: SymbolRules, cid: str) -> dict | None:
        """Cancel what rests (a plain stop, or the whole OCO: cancelling one leg cancels the list);
        returns the leg that had filled instead (an exchange-side exit), if any."""
        target = await self._oco_target_of(cid)
        try:
            cancelled = await venue.cancel(rules.symbol, cid)
            order = cancelled if cancelled is not None else await venue.lookup(rules.symbol, cid)
            other = await venue.lookup(rules.symbol, target) if target is not None else None
        except VenueError as err:
            self._raise(err, "cancel resting order")
            raise
        filled: dict | None = None
        for leg_cid, leg in ((cid, order), (target, other)):
            if leg is None or leg_cid is None:
                continue
            await self._complete_raw(venue, rules, leg_cid, leg)
            if leg.get("status") == "FILLED":
                filled = leg
        return filled

    # ---- reduce / close ---------------------------------------------------------------------------
    async def exit(self, input: OrderInput) -> Fill:
        cid = client_order_id(input.key)
        pos = await self._pool.fetchrow("SELECT * FROM positions WHERE id = $1", input.position_id)
        if pos is None:
            raise ApplicationError(
                f"position {input.position_id} not found", type=names.POSITION_NOT_FOUND, non_retryable=True
            )
        rows = {
            r["id"]: r
            for r in await self._pool.fetch(
                "SELECT * FROM orders WHERE id = ANY($1::text[])", [cid, client_order_id(f"{input.key}:held")]
            )
        }
        for row in rows.values():
            if row["status"] not in ("pending", "rejected"):
                return _fill_of(row, input.kind, inserted=False)
        # A first sell refused for the balance: the retry goes straight to selling what is held.
        refused = ((rows[cid]["metadata"] or {}).get("refused") or "") if cid in rows else None
        if pos["status"] != "open":
            closing = await self._closing_order(input.position_id)
            if closing is not None:
                return _fill_of(closing, input.kind, inserted=False)
            raise ApplicationError(
                f"position {input.position_id} has nothing open", type=names.POSITION_CLOSED, non_retryable=True
            )
        account_id = str(pos["exchange_account_id"])
        venue = await self._venue(account_id)
        try:
            rules = await self._rules(venue, pos["symbol"], "exit position")
            if pos["protective_order_id"]:
                filled = await self._cancel_resting(venue, rules, pos["protective_order_id"])
                if filled is not None:
                    # The stop filled on the exchange: that is the exit, at its real fills.
                    return await self._exchange_exit(venue, rules, pos, filled)
            wanted = pos["contracts"] if input.close else min(input.quantity, pos["contracts"])
            short_reason: str | None = None
            spec = OrderSpec(cid, rules.symbol, "SELL", "MARKET", rules.floor_qty(wanted))
            if rules.refusal(spec.quantity, input.reference_price) is not None:
                # Dust (or nothing) left to sell: the position ends without an order.
                reason = f"{spec.quantity:f} {rules.base} left is below the exchange's minimum"
                return await self._end_without_order(input, pos, spec, account_id, reason)
            try:
                if refused is not None and "insufficient balance" in refused:
                    raise ApplicationError(refused, type=names.EXCHANGE_REFUSED, non_retryable=True)
                order, ex = await self._place(venue, spec, self._recorder(input, account_id, spec),
                                              f"{input.kind} position")  # fmt: skip
            except ApplicationError as err:
                if err.type != names.EXCHANGE_REFUSED or "insufficient balance" not in err.message:
                    raise
                # Less is held than the position says (sold by hand): read the balance only now,
                # sell what is there under a second id, and end the position saying why.
                try:
                    free, _locked = await venue.balance(rules.base)
                except VenueError as verr:
                    self._raise(verr, "exit position")
                    raise
                short_reason = f"balance lower than the position: {free:f} {rules.base} free of {wanted:f}"
                spec = OrderSpec(client_order_id(f"{input.key}:held"), rules.symbol, "SELL", "MARKET",
                                 rules.floor_qty(min(wanted, free)))  # fmt: skip
                if rules.refusal(spec.quantity, input.reference_price) is not None:
                    return await self._end_without_order(input, pos, spec, account_id, short_reason)
                order, ex = await self._place(venue, spec, self._recorder(input, account_id, spec),
                                              f"{input.kind} position")  # fmt: skip
            cid = spec.client_id
            closing = input.close or short_reason is not None or ex.executed >= pos["contracts"]
            fill = await self._book_exit(pos, cid, order, ex, rules, input.kind, closing,
                                         short_reason or input.close_reason, inserted=True)  # fmt: skip
            if not closing and pos["stop_loss"] is not None:
                await self._protect(venue, account_id, input.user_id, input.signal_id, input.position_id,
                                    protective_key(input.key, "after"), pos["stop_loss"], rules,
                                    target=_target_of(pos))  # fmt: skip
            return fill
        finally:
            await self._release(account_id, venue)

    async def _closing_order(self, position_id: str, filled_only: bool = False) -> Any:
        """The `orders` row that closed the position (`metadata.closed_position`), if any."""
        return await self._pool.fetchrow(
            "SELECT * FROM orders WHERE metadata ->> 'position_id' = $1 AND metadata ->> 'closed_position' = 'true'"
            + (" AND filled > 0" if filled_only else ""),
            position_id,
        )

    def _recorder(self, input: OrderInput, account_id: str, spec: OrderSpec) -> Callable[[float], Awaitable[None]]:
        async def record(sent_at: float) -> None:
            async with self._pool.acquire() as conn:
                await self._pending(conn, spec.client_id, input.user_id, input.signal_id, account_id, spec,
                                    input.kind, input.key, input.position_id, sent_at)  # fmt: skip

        return record

    async def _book_exit(
        self, pos: Any, cid: str, order: dict, ex: Execution, rules: SymbolRules, kind: str, closing: bool,
        reason: str | None, inserted: bool,
    ) -> Fill:  # fmt: skip
        fee = ex.fee_in(rules.quote, rules.base)
        realized = (ex.average_price - pos["entry_price"]) * ex.executed - fee
        async with self._pool.acquire() as conn, conn.transaction():
            await self._complete(conn, cid, order, ex, rules, {"realized_pnl": str(realized),
                                                               "closed_position": closing})  # fmt: skip
            await conn.execute(
                """
                UPDATE positions SET contracts = CASE WHEN $6 THEN 0 ELSE greatest(contracts - $2, 0) END,
                    realized_pnl = coalesce(realized_pnl, 0) + $3, fees_paid = fees_paid + $4, mark_price = $5,
                    updated_at = now(),
                    status = CASE WHEN $6 THEN 'closed' ELSE status END,
                    closed_at = CASE WHEN $6 THEN now() ELSE closed_at END,
                    exit_price = CASE WHEN $6 THEN $5 ELSE exit_price END,
                    close_reason = CASE WHEN $6 THEN $7 ELSE close_reason END,
                    protective_order_id = CASE WHEN $6 THEN NULL ELSE protective_order_id END,
                    unrealized_pnl = CASE WHEN $6 THEN 0 ELSE unrealized_pnl END
                WHERE id = $1 AND status = 'open'
                """,
                pos["id"],
                ex.executed,
                realized,
                fee,
                ex.average_price,
                closing,
                reason,
            )
        log.info("live %s of %s: %s at %s (order %s)", kind, pos["id"], ex.executed, ex.average_price, cid)
        return Fill(
            order_id=cid, kind=kind, price=ex.average_price, quantity=ex.executed, fee=fee, realized_pnl=realized,
            inserted=inserted,
        )  # fmt: skip

    async def _exchange_exit(self, venue: Venue, rules: SymbolRules, pos: Any, order: dict) -> Fill:
        ex = await self._execution(venue, rules.symbol, order)
        cid = str(order.get("clientOrderId"))
        kind = _exit_kind(order)
        fill = await self._book_exit(pos, cid, order, ex, rules, kind, True, f"{kind} filled on the exchange",
                                     inserted=True)  # fmt: skip
        # An OCO's other leg was expired by the exchange: its row says so too.
        meta = await self._pool.fetchval("SELECT metadata FROM orders WHERE id = $1", cid) or {}
        other = meta.get("oco_target") if meta.get("oco_stop") == cid else meta.get("oco_stop")
        if other and other != cid:
            try:
                await self._complete_raw(venue, rules, str(other), await venue.lookup(rules.symbol, str(other)))
            except VenueError as err:
                log.warning("position %s: OCO leg %s not read: %s", pos["id"], other, err.classified.reason)
        return fill

    async def _end_without_order(
        self, input: OrderInput, pos: Any, spec: OrderSpec, account_id: str, reason: str
    ) -> Fill:
        await self._record_refusal(spec.client_id, input.user_id, input.signal_id, account_id, spec, input.kind,
                                   input.key, input.position_id, reason)  # fmt: skip
        await self._pool.execute(
            """UPDATE positions SET status = 'closed', closed_at = now(), close_reason = $2, contracts = 0,
                   exit_price = $3, protective_order_id = NULL, updated_at = now()
               WHERE id = $1 AND status = 'open'""",
            input.position_id,
            reason[:300],
            input.reference_price,
        )
        await self._pool.execute(
            "UPDATE orders SET metadata = metadata || '{\"closed_position\": true}' WHERE id = $1", spec.client_id
        )
        return Fill(order_id=spec.client_id, kind=input.kind, price=input.reference_price, quantity=ZERO, fee=ZERO,
                    realized_pnl=ZERO, inserted=True)  # fmt: skip

    # ---- reconcile -----------------------------------------------------------------------------
    async def reconcile(self, input: ReconcileInput) -> Reconciled:
        """The position against the exchange: its resting stop filled (an exit to book from the
        real fills), cancelled by the exchange (put back), or the account holding less than the
        position (the user sold by hand: the position ends, saying so)."""
        pos = await self._pool.fetchrow("SELECT * FROM positions WHERE id = $1", input.position_id)
        if pos is None:
            raise ApplicationError(
                f"position {input.position_id} not found", type=names.POSITION_NOT_FOUND, non_retryable=True
            )
        if pos["status"] != "open":
            closing = await self._closing_order(input.position_id)
            if closing is not None and closing["filled"]:
                return Reconciled(fill=_fill_of(closing, _kind_of(closing), inserted=False))
            return Reconciled(ended=pos["close_reason"] or "closed")
        account_id = str(pos["exchange_account_id"])
        venue = await self._venue(account_id)
        try:
            rules = await self._rules(venue, pos["symbol"], "reconcile position")
            try:
                resting = (
                    await venue.lookup(rules.symbol, pos["protective_order_id"]) if pos["protective_order_id"] else None
                )
            except VenueError as err:
                self._raise(err, "reconcile position")
                raise
            if resting is not None and resting.get("status") == "FILLED":
                return Reconciled(fill=await self._exchange_exit(venue, rules, pos, resting))
            target_cid = await self._oco_target_of(pos["protective_order_id"]) if resting is not None else None
            if (
                target_cid is not None
                and resting is not None
                and resting.get("status") not in ("NEW", "PARTIALLY_FILLED")
            ):
                # The stop leg expired: its OCO's target may have filled (the exchange expires the other leg).
                try:
                    target = await venue.lookup(rules.symbol, target_cid)
                except VenueError as err:
                    self._raise(err, "reconcile position")
                    raise
                if target is not None and target.get("status") == "FILLED":
                    await self._complete_raw(venue, rules, pos["protective_order_id"], resting)
                    return Reconciled(fill=await self._exchange_exit(venue, rules, pos, target))
                await self._complete_raw(venue, rules, target_cid, target)
            try:
                free, locked = await venue.balance(rules.base)
            except VenueError as err:
                self._raise(err, "reconcile position")
                raise
            if free + locked + rules.step_size < pos["contracts"]:
                reason = (
                    f"balance lower than the position: {free + locked:f} {rules.base} held of "
                    f"{pos['contracts']:f} (sold outside the monitor)"
                )
                if resting is not None and resting.get("status") in ("NEW", "PARTIALLY_FILLED"):
                    await self._cancel_resting(venue, rules, pos["protective_order_id"])
                elif resting is not None:
                    await self._complete_raw(venue, rules, pos["protective_order_id"], resting)
                await self._pool.execute(
                    """UPDATE positions SET status = 'closed', closed_at = now(), close_reason = $2,
                           protective_order_id = NULL, updated_at = now() WHERE id = $1 AND status = 'open'""",
                    input.position_id,
                    reason[:300],
                )
                return Reconciled(ended=reason)
            if resting is not None and resting.get("status") in ("NEW", "PARTIALLY_FILLED"):
                return Reconciled(protected=True)
            if resting is not None:
                await self._complete_raw(venue, rules, pos["protective_order_id"], resting)
            if pos["stop_loss"] is None:
                return Reconciled()
            # Cancelled or expired by the exchange, or never placed: put the stop back.
            placed = await self._protect(
                venue, account_id, str(pos["user_id"]), str(pos["signal_id"]), input.position_id,
                protective_key(input.key, "back"), pos["stop_loss"], rules, target=_target_of(pos),
            )  # fmt: skip
            if placed is None:
                # The stop could not rest because the market is through it: the emergency exit
                # just made is this close's exit.
                closing = await self._closing_order(input.position_id, filled_only=True)
                if closing is not None:
                    return Reconciled(fill=_fill_of(closing, "stop_loss", inserted=True))
            return Reconciled(protected=placed is not None)
        finally:
            await self._release(account_id, venue)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def _target_of(pos: Any) -> Decimal | None:
    """The target resting beside the stop (as one OCO) for this position, if any."""
    target = (pos["metadata"] or {}).get("exchange_target")
    return Decimal(target) if target else None


def _kind_of(row: Any) -> str:
    kind = (row["metadata"] or {}).get("kind", "close")
    return kind if kind != "entry" else "close"


def _fill_of(row: Any, kind: str, inserted: bool) -> Fill:
    meta = row["metadata"] or {}
    return Fill(
        order_id=row["id"],
        kind=meta.get("kind", kind) if meta.get("kind") != "entry" else kind,
        price=row["average_price"] or row["price"] or ZERO,
        quantity=row["filled"] or ZERO,
        fee=row["fee_cost"] or ZERO,
        realized_pnl=Decimal(meta.get("realized_pnl", "0")),
        inserted=inserted,
    )


def _delay(seconds: float | None) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds or 1.0)
