"""Everything recorded about one signal, gathered for `history`, `status` and `chart`: the signal
and trader rows, every analysis row, the order intent, and (for prices and the chart) the
exchange's REST klines over the monitoring window. Gathering only: formatting and drawing live in
cli/history.py and cli/chart_render.py."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, Field

from cli.chart_model import ChartAnalysis, ChartCandle, ChartEvent, ChartLevels, ChartModel
from cli.text import Amount, candle_span, plain, signed
from fakes.llm_proxy.names import FAKE_MODEL_NAME as STAND_IN_MODEL
from fakes.llm_proxy.names import REASONING_PREFIX as STAND_IN_PREFIX
from fakes.model.rule import REASONING_PREFIX as RULE_PREFIX
from fakes.model.server import STANDIN_MODEL as RULE_STANDIN_MODEL
from market.candle import Candle
from market.intervals import UnknownInterval, interval_ms
from market.rest import KlinesError, fetch_candles, rest_client
from workflows.common.timefmt import datetime_to_ms, ms_to_datetime, utc_text
from workflows.monitor.models import TERMINAL_SIGNAL_STATUSES

CANDLES_BEFORE, CANDLES_AFTER, MAX_CANDLES = 5, 2, 1000


class SignalNotFound(LookupError):
    pass


class SignalInfo(BaseModel):
    signal_id: str
    symbol: str | None
    interval: str | None
    status: str | None
    monitor_reason: str | None = None
    timestamp: datetime | None
    price: float | None
    closed_at: datetime | None = None
    updated_at: datetime | None = None
    trader_id: str | None = None
    trader_name: str | None = None
    min_confidence_to_enter: float | None = None
    max_reanalyses: int | None = None


class AnalysisRow(BaseModel):
    analysis_number: int | None
    created_at: datetime | None
    candle_open_time: datetime | None
    price: float | None = Field(description="the signal's price for #0, else the candle's close (exchange)")
    decision: str
    confidence: float
    monitor_decision: str | None
    reasoning: str
    tokens: int | None
    model_name: str | None
    latency_ms: int | None
    key_levels: dict[str, Any] | None = None
    # The `model` backend's audit (migration 008); None on llm-proxy's rows.
    cost_usd: float | None = None
    prompt_version: str | None = None
    abstained: bool | None = None


class OrderIntentRow(BaseModel):
    side: str
    entry_price: float | None
    stop_loss: float | None
    take_profits: list[float]
    status: str
    created_at: datetime


class PositionCost(BaseModel):
    """The position's management decisions and what the model calls behind them cost."""

    decisions: int
    model_decisions: int
    tokens: int
    cost_usd: float | None


class FillRow(BaseModel):
    """One `orders` row: a fill of the position (paper or live), as the backend wrote it."""

    order_id: str
    kind: str  # entry | stop_loss | trailing_stop | max_loss | take_profit | reduce | close
    side: str  # buy | sell
    type: str
    price: Amount
    quantity: Amount
    fee: Amount
    realized_pnl: Amount | None
    created_at: datetime
    candle_open_time: datetime | None = Field(
        description="the candle the fill belongs to (from the order's key); None for a fill at a moment "
        "(operator, duration): then created_at"
    )


class PositionRow(BaseModel):
    position_id: str
    mode: str
    side: str
    status: str
    size: Amount
    entry_price: Amount
    exit_price: Amount | None
    close_reason: str | None
    realized_pnl: Amount | None
    fees_paid: Amount | None
    stop_loss: Amount | None = None
    take_profits: list[Amount] = Field(default_factory=list)
    closed_at: datetime | None


class SignalReport(BaseModel):
    signal: SignalInfo
    analyses: list[AnalysisRow]
    position_cost: PositionCost | None = None
    order_intent: OrderIntentRow | None = None
    position: PositionRow | None = None
    fills: list[FillRow] = Field(default_factory=list)
    candles: list[Candle] = Field(default_factory=list)
    candles_source: str = "not fetched"


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


def window(report: SignalReport, now: datetime | None = None) -> tuple[int, int]:
    """The monitoring window in ms, padded by a few candles, at most MAX_CANDLES long
    (`UnknownInterval` when the signal's interval has no fixed length)."""
    s, step = report.signal, interval_ms(report.signal.interval or "")
    now = now or datetime.now(UTC)
    start = s.timestamp or next((a.created_at for a in report.analyses if a.created_at), None) or now
    ends = [a.created_at for a in report.analyses if a.created_at] + [f.created_at for f in report.fills]
    if s.status in TERMINAL_SIGNAL_STATUSES:
        ends += [t for t in (s.closed_at or s.updated_at,) if t]
    else:
        ends.append(now)  # still monitored: up to the candle in progress
    end = max(ends, default=start)
    start_ms = int(start.timestamp() * 1000) // step * step - CANDLES_BEFORE * step
    end_ms = int(end.timestamp() * 1000) // step * step + CANDLES_AFTER * step
    return max(start_ms, end_ms - MAX_CANDLES * step), end_ms


async def fetch_report(database_url: str, signal_id: str) -> SignalReport:
    sid = uuid.UUID(signal_id)
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        row = await conn.fetchrow(
            """SELECT s.id, s.symbol, coalesce(s.interval, t.filter->>'interval') AS interval, s.status,
                      s.monitor_reason, s."timestamp", s.price_at_signal, s.closed_at, s.updated_at,
                      s.trader_id, t.name AS trader_name, t.min_confidence_to_enter, t.max_reanalyses
               FROM signals s LEFT JOIN traders t ON t.id = s.trader_id WHERE s.id = $1""",
            sid,
        )
        if row is None:
            raise SignalNotFound(f"no signal {signal_id} in the database")
        rows = await conn.fetch(
            """SELECT analysis_number, created_at, candle_open_time, decision, confidence, monitor_decision,
                      reasoning, gemini_tokens_used, model_name, analysis_latency_ms, key_levels,
                      -- migration 008's columns, read so that a database without them still reports
                      (to_jsonb(a) ->> 'cost_usd')::numeric AS cost_usd, to_jsonb(a) ->> 'prompt_version' AS prompt_version,
                      (to_jsonb(a) ->> 'abstained')::boolean AS abstained
               FROM signal_analyses a WHERE signal_id = $1
               ORDER BY analysis_number NULLS FIRST, created_at""",
            sid,
        )
        try:
            cost = await conn.fetchrow(
                """SELECT count(*) AS decisions, count(to_jsonb(d) ->> 'prompt_version') AS model_decisions,
                          coalesce(sum(tokens_used), 0) AS tokens, sum((to_jsonb(d) ->> 'cost_usd')::numeric) AS cost_usd
                   FROM position_management_decisions d WHERE signal_id = $1""",
                sid,
            )
        except asyncpg.UndefinedTableError:
            cost = None  # no position tables (a database before migration 006)
        intent = await conn.fetchrow(
            """SELECT side, entry_price, stop_loss, take_profits, status, created_at
               FROM order_intents WHERE signal_id = $1""",
            sid,
        )
        position, fills = await _position_rows(conn, sid)
    finally:
        await conn.close()
    info = SignalInfo(
        signal_id=str(row["id"]),
        symbol=row["symbol"],
        interval=row["interval"],
        status=row["status"],
        monitor_reason=row["monitor_reason"],
        timestamp=row["timestamp"],
        price=_float(row["price_at_signal"]),
        closed_at=row["closed_at"],
        updated_at=row["updated_at"],
        trader_id=str(row["trader_id"]) if row["trader_id"] else None,
        trader_name=row["trader_name"],
        min_confidence_to_enter=_float(row["min_confidence_to_enter"]),
        max_reanalyses=row["max_reanalyses"],
    )
    analyses = [
        AnalysisRow(
            analysis_number=r["analysis_number"],
            created_at=r["created_at"],
            candle_open_time=r["candle_open_time"],
            price=info.price if r["candle_open_time"] is None else None,
            decision=r["decision"],
            confidence=float(r["confidence"]),
            monitor_decision=r["monitor_decision"],
            reasoning=r["reasoning"] or "",
            tokens=r["gemini_tokens_used"],
            model_name=r["model_name"],
            latency_ms=r["analysis_latency_ms"],
            key_levels=_json(r["key_levels"]),
            cost_usd=_float(r["cost_usd"]),
            prompt_version=r["prompt_version"],
            abstained=r["abstained"],
        )
        for r in rows
    ]
    position_cost = None
    if cost is not None and cost["decisions"]:
        position_cost = PositionCost(
            decisions=cost["decisions"],
            model_decisions=cost["model_decisions"],
            tokens=int(cost["tokens"]),
            cost_usd=_float(cost["cost_usd"]),
        )
    order_intent = None
    if intent is not None:
        order_intent = OrderIntentRow(
            side=intent["side"],
            entry_price=_float(intent["entry_price"]),
            stop_loss=_float(intent["stop_loss"]),
            take_profits=[float(x) for x in (_json(intent["take_profits"]) or [])],
            status=intent["status"],
            created_at=intent["created_at"],
        )
    return SignalReport(
        signal=info,
        analyses=analyses,
        order_intent=order_intent,
        position=position,
        fills=fills,
        position_cost=position_cost,
    )


def fill_candle(key: Any) -> datetime | None:
    """The candle open time in an order's key (`<signal>:<candle open ms>:<action>`), if it has one."""
    parts = str(key or "").split(":")
    if len(parts) >= 3 and parts[1].isdigit():
        return ms_to_datetime(int(parts[1]))
    return None


async def _position_rows(conn: asyncpg.Connection, sid: uuid.UUID) -> tuple[PositionRow | None, list[FillRow]]:
    try:
        p = await conn.fetchrow(
            """SELECT id, mode, side, status, coalesce(initial_contracts, contracts) AS size, entry_price, exit_price,
                      close_reason, realized_pnl, fees_paid, closed_at, stop_loss, take_profit
               FROM positions WHERE signal_id = $1""",
            sid,
        )
        orders = await conn.fetch(
            """SELECT id, side, type, average_price, price, filled, quantity, fee_cost, metadata, created_at
               FROM orders WHERE signal_id = $1 AND status = 'closed' ORDER BY created_at, id""",
            str(sid),
        )
    except asyncpg.UndefinedTableError:
        return None, []  # no position tables (a database before migration 006)
    position = None
    if p is not None:
        position = PositionRow(
            position_id=p["id"],
            mode=p["mode"],
            side=p["side"],
            status=p["status"],
            size=p["size"],
            entry_price=p["entry_price"],
            exit_price=p["exit_price"],
            close_reason=p["close_reason"],
            realized_pnl=p["realized_pnl"],
            fees_paid=p["fees_paid"],
            stop_loss=p["stop_loss"],
            take_profits=[Decimal(str(t)) for t in (_json(p["take_profit"]) or [])],
            closed_at=p["closed_at"],
        )
    fills = []
    for o in orders:
        meta = _json(o["metadata"]) or {}
        pnl = meta.get("realized_pnl")
        fills.append(
            FillRow(
                order_id=o["id"],
                kind=str(meta.get("kind") or "entry"),
                side=o["side"],
                type=o["type"],
                price=o["average_price"] if o["average_price"] is not None else o["price"],
                quantity=o["filled"] if o["filled"] is not None else o["quantity"],
                fee=o["fee_cost"] or Decimal(0),
                realized_pnl=Decimal(str(pnl)) if pnl is not None else None,
                created_at=o["created_at"],
                candle_open_time=fill_candle(meta.get("key")),
            )
        )
    return position, fills


async def add_candles(report: SignalReport, rest_url: str) -> SignalReport:
    """The exchange's klines over the window, and each candle analysis's price from them."""
    s = report.signal
    if not s.symbol or not s.interval:
        report.candles_source = "unavailable: the signal has no symbol or interval"
        return report
    try:
        start_ms, end_ms = window(report)
        async with rest_client(rest_url) as http:
            report.candles = await fetch_candles(http, s.symbol, s.interval, start_ms, end_ms)
        report.candles_source = f"REST klines from {rest_url}"
    except (UnknownInterval, KlinesError) as exc:
        report.candles_source = f"unavailable: {exc}"
        return report
    closes = {c.t: float(c.c) for c in report.candles}
    for a in report.analyses:
        if a.candle_open_time is not None and a.price is None:
            a.price = closes.get(int(a.candle_open_time.timestamp() * 1000))
    return report


def _levels(report: SignalReport) -> ChartLevels | None:
    p, oi = report.position, report.order_intent
    if p is not None:
        # The real entry (the fill); the stop and targets the position ended with, else the plan's.
        return ChartLevels(
            source="position (entry fill) and its stop / targets",
            entry=float(p.entry_price),
            stop_loss=float(p.stop_loss) if p.stop_loss is not None else (oi.stop_loss if oi else None),
            take_profits=[float(t) for t in p.take_profits] or (oi.take_profits if oi else []),
        )
    if oi is not None and oi.entry_price is not None:
        return ChartLevels(
            source="order intent (not filled)",
            entry=oi.entry_price,
            stop_loss=oi.stop_loss,
            take_profits=oi.take_profits,
        )
    for a in reversed(report.analyses):
        kl = a.key_levels or {}
        if isinstance(kl.get("entry"), (int, float)) or isinstance(kl.get("stopLoss"), (int, float)):
            tps = kl.get("takeProfit") or []
            tps = tps if isinstance(tps, list) else [tps]
            return ChartLevels(
                source=f"analysis #{a.analysis_number} key levels",
                entry=_num(kl.get("entry")),
                stop_loss=_num(kl.get("stopLoss")),
                take_profits=[x for x in (_num(t) for t in tps) if x is not None],
            )
    return None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def scripted(report: SignalReport) -> bool:
    """Were the decisions a local stand-in's (the llm-proxy stand-in's fixed script, or the model
    stand-in's documented rule over the candles), not a model's?"""
    return any(
        a.model_name in (STAND_IN_MODEL, RULE_STANDIN_MODEL) or a.reasoning.startswith((STAND_IN_PREFIX, RULE_PREFIX))
        for a in report.analyses
    )


def _candle_x(at: datetime, step_ms: int) -> datetime:
    """The open time of the chart's candle containing `at` (x of its candlestick)."""
    if step_ms <= 0:
        return at
    ms = datetime_to_ms(at)
    return ms_to_datetime(ms - ms % step_ms) or at


def _fill_events(report: SignalReport, step_ms: int, interval: str | None) -> list[ChartEvent]:
    events = []
    for f in report.fills:
        when = f.candle_open_time or f.created_at
        x = _candle_x(when, step_ms)
        on = (
            f"candle {candle_span(f.candle_open_time, interval)}"
            if f.candle_open_time
            else f"{utc_text(f.created_at, seconds=True)} (during candle {candle_span(x, interval)})"
        )
        if f.kind == "entry":
            label = f"entry {f.side} {plain(f.price)}"
            kind: Literal["entry", "exit", "partial"] = "entry"
        else:
            closing = report.position is not None and report.position.status == "closed" and f is report.fills[-1]
            kind = "exit" if closing else "partial"
            label = f"{'exit' if closing else 'partial exit'} {plain(f.price)} ({f.kind})"
        hover = (
            f"{label}: {f.side} {plain(f.quantity)} at {plain(f.price)}, fee {plain(f.fee)}; {on}; order {f.order_id}"
        )
        if f.kind != "entry" and f.realized_pnl is not None:
            hover += f"; P&L {signed(f.realized_pnl)}"
        events.append(ChartEvent(kind=kind, at=x, price=float(f.price), label=label, hover=hover))
    return events


def chart_model(report: SignalReport) -> ChartModel:
    s = report.signal
    try:
        step_ms = interval_ms(s.interval or "")
    except UnknownInterval:
        step_ms = 0  # no fixed length (`1M`): marks keep their own times
    analyses = []
    for i, a in enumerate(report.analyses):
        if a.candle_open_time is not None:
            at, candle = a.candle_open_time, candle_span(a.candle_open_time, s.interval)
        else:
            # #0 reads the signal's own price: the close of the candle ending at the signal's time.
            signal_at = s.timestamp or a.created_at or datetime.now(UTC)
            at = _candle_x(signal_at - timedelta(milliseconds=1), step_ms)
            candle = f"{candle_span(at, s.interval)} (the signal's own price)"
        analyses.append(
            ChartAnalysis(
                analysis_number=a.analysis_number if a.analysis_number is not None else i,
                at=at,
                price=a.price,
                proxy_decision=a.decision,
                decision=a.monitor_decision,
                confidence=a.confidence,
                candle=candle,
            )
        )
    events: list[ChartEvent] = []
    if s.timestamp is not None:
        x = _candle_x(s.timestamp - timedelta(milliseconds=1), step_ms)
        events.append(
            ChartEvent(
                kind="signal",
                at=x,
                price=s.price,
                label=f"signal {_g(s.price)}",
                hover=f"signal at {_g(s.price)}: close of candle {candle_span(x, s.interval)}",
            )
        )
    events += _fill_events(report, step_ms, s.interval)
    if not report.fills and report.order_intent is not None and s.status == "in_position":
        events.append(
            ChartEvent(
                kind="end",
                at=report.order_intent.created_at,
                price=None,
                label="entered: the position is not filled yet",
            )
        )
    if s.status in ("expired", "cancelled", "failed") and (s.closed_at or s.updated_at):
        reason = (s.monitor_reason or "")[:60]
        events.append(
            ChartEvent(
                kind="end", at=s.closed_at or s.updated_at, price=None, label=f"monitor ended: {s.status} {reason}"
            )
        )
    last = analyses[-1].label if analyses else "no analysis yet"
    p = report.position
    outcome = ""
    if p is not None and p.status == "closed":
        outcome = f" · exit {plain(p.exit_price)} ({p.close_reason}), realized P&L {signed(p.realized_pnl)}"
    elif p is not None:
        outcome = f" · position open since {plain(p.entry_price)}"
    return ChartModel(
        title=f"{s.symbol} {s.interval} · signal {s.signal_id[:8]} · {s.status}{outcome} · "
        f"{len(analyses)} analyses, last {last}",
        symbol=s.symbol or "?",
        interval=s.interval or "?",
        candles=[
            ChartCandle(
                open_time=datetime.fromtimestamp(c.t / 1000, tz=UTC),
                open=float(c.o),
                high=float(c.h),
                low=float(c.l),
                close=float(c.c),
            )
            for c in report.candles
        ],
        candles_source=report.candles_source,
        analyses=analyses,
        levels=_levels(report),
        events=events,
        note=standin_note(report),
    )


SCRIPTED_NOTE = (
    "decisions scripted by the local llm-proxy stand-in (a fixed script, not a model): the P&L says nothing "
    "about a strategy"
)
RULE_NOTE = (
    "decisions by the local model stand-in (a documented rule over the candles, not a model): the P&L says "
    "nothing about a strategy"
)


def standin_note(report: SignalReport) -> str | None:
    """What to say when a local stand-in decided (None when it was llm-proxy or a model)."""
    if any(a.model_name == RULE_STANDIN_MODEL or a.reasoning.startswith(RULE_PREFIX) for a in report.analyses):
        return RULE_NOTE
    return SCRIPTED_NOTE if scripted(report) else None


def _g(value: float | None) -> str:
    return "" if value is None else plain(value)
