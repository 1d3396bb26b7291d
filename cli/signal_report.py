"""Everything recorded about one signal, gathered for `history`, `status` and `chart`: the signal
and trader rows, every analysis row, the order intent, and (for prices and the chart) the
exchange's REST klines over the monitoring window. Gathering only: formatting and drawing live in
cli/history.py and cli/chart_render.py."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel, Field

from cli.chart_model import ChartAnalysis, ChartCandle, ChartEvent, ChartLevels, ChartModel
from market.candle import Candle
from market.intervals import UnknownInterval, interval_ms
from market.rest import KlinesError, fetch_candles, rest_client
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


class OrderIntentRow(BaseModel):
    side: str
    entry_price: float | None
    stop_loss: float | None
    take_profits: list[float]
    status: str
    created_at: datetime


class SignalReport(BaseModel):
    signal: SignalInfo
    analyses: list[AnalysisRow]
    order_intent: OrderIntentRow | None = None
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
    ends = [a.created_at for a in report.analyses if a.created_at]
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
                      reasoning, gemini_tokens_used, model_name, analysis_latency_ms, key_levels
               FROM signal_analyses WHERE signal_id = $1
               ORDER BY analysis_number NULLS FIRST, created_at""",
            sid,
        )
        intent = await conn.fetchrow(
            """SELECT side, entry_price, stop_loss, take_profits, status, created_at
               FROM order_intents WHERE signal_id = $1""",
            sid,
        )
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
        )
        for r in rows
    ]
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
    return SignalReport(signal=info, analyses=analyses, order_intent=order_intent)


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
    if report.order_intent is not None and report.order_intent.entry_price is not None:
        oi = report.order_intent
        return ChartLevels(
            source="order intent", entry=oi.entry_price, stop_loss=oi.stop_loss, take_profits=oi.take_profits
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


def chart_model(report: SignalReport) -> ChartModel:
    s = report.signal
    try:
        step = timedelta(milliseconds=interval_ms(s.interval or ""))
    except UnknownInterval:
        step = timedelta(0)  # no known length: an analysis sits at its candle's open, not its close
    analyses = [
        ChartAnalysis(
            analysis_number=a.analysis_number if a.analysis_number is not None else i,
            at=(a.candle_open_time + step)
            if a.candle_open_time
            else (s.timestamp or a.created_at or datetime.now(UTC)),
            price=a.price,
            proxy_decision=a.decision,
            decision=a.monitor_decision,
            confidence=a.confidence,
        )
        for i, a in enumerate(report.analyses)
    ]
    events: list[ChartEvent] = []
    if s.timestamp is not None:
        events.append(ChartEvent(kind="signal", at=s.timestamp, price=s.price, label=f"signal {_g(s.price)}"))
    entering = next((a for a in analyses if a.decision == "enter"), None)
    if entering is not None:
        price = report.order_intent.entry_price if report.order_intent else entering.price
        side = report.order_intent.side if report.order_intent else "buy"
        events.append(ChartEvent(kind="entry", at=entering.at, price=price, label=f"entry ({side}) {_g(price)}"))
    if s.status == "closed" and s.closed_at is not None:
        price = _close_at(report, s.closed_at)
        events.append(ChartEvent(kind="exit", at=s.closed_at, price=price, label=f"exit {_g(price)}"))
    elif s.status in ("expired", "cancelled", "failed") and (s.closed_at or s.updated_at):
        reason = (s.monitor_reason or "")[:60]
        events.append(
            ChartEvent(
                kind="end", at=s.closed_at or s.updated_at, price=None, label=f"monitor ended: {s.status} {reason}"
            )
        )
    last = analyses[-1].label if analyses else "no analysis yet"
    return ChartModel(
        title=f"{s.symbol} {s.interval} · signal {s.signal_id[:8]} · {s.status} · {len(analyses)} analyses, last {last}",
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
    )


def _g(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _close_at(report: SignalReport, at: datetime) -> float | None:
    ms = int(at.timestamp() * 1000)
    before = [c for c in report.candles if c.t <= ms]
    return float(before[-1].c) if before else None
