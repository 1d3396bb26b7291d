"""What each signal came to: its decisions (the monitor's `state`), its trade (the position
manager's result), its llm-proxy calls and tokens (the gate), and for a signal not entered whether
it would have won."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import asyncpg

from backtest.feed import Feed, Monitor, Position
from backtest.report import Decision, SignalOutcome
from backtest.trades import Side, Trade, would_have_won
from market.intervals import interval_ms
from workflows.common.names import STATE_QUERY

# The position manager's close codes in the report's words.
EXIT_REASONS = {"max_position_duration": "duration", "close_action": "close"}


def _decisions(state: dict[str, Any], shift_ms: int) -> list[Decision]:
    out = []
    for d in state.get("history") or []:
        t = d.get("candle_open_time")
        out.append(
            Decision(
                analysis=d["analysis_number"],
                candle_open_ms=None if t is None else t - shift_ms,
                proxy_decision=d["proxy_decision"],
                confidence=float(d["confidence"]),
                decision=d["decision"],
            )
        )
    return out


def _levels(key_levels: Any) -> tuple[Side, Decimal | None, Decimal | None, Decimal | None]:
    kl = json.loads(key_levels) if isinstance(key_levels, str) else (key_levels or {})

    def num(x: Any) -> Decimal | None:
        try:
            d = Decimal(str(x))
        except ArithmeticError:
            return None
        return d if d.is_finite() and d > 0 else None

    tps = kl.get("takeProfit")
    tp = num(tps[0] if isinstance(tps, list) and tps else tps)
    entry, sl = num(kl.get("entry")), num(kl.get("stopLoss"))
    side: Side = "sell" if entry is not None and sl is not None and sl > entry else "buy"
    return side, entry, sl, tp


def _position_reason(p: Position) -> str:
    res = p.result
    if isinstance(res, Exception):
        return str(getattr(res, "cause", None) or res)
    return str((res or {}).get("reason"))


def _dec(x: Any) -> Decimal | None:
    return None if x is None else Decimal(str(x))


def _position_trade(m: Monitor, p: Position) -> Trade | None:
    """The trade as the position manager ran it: its fills' prices and its realised P&L after fees."""
    res = p.result
    if isinstance(res, Exception) or not res or res.get("status") != "closed" or p.exit_ms is None:
        return None
    code = str(res.get("reason", "")).split(":", 1)[0]
    reason = p.cut if code == "operator" and p.cut else EXIT_REASONS.get(code, code)
    entry, exit_price = _dec(res.get("entry_price")), _dec(res.get("exit_price"))
    if entry is None or exit_price is None:
        return None
    return Trade(
        signal_time_ms=m.spec.time_ms,
        side="sell" if res.get("side") == "short" else "buy",
        entry_time_ms=p.entry_ms,
        entry_price=entry,
        quantity=_dec(res.get("initial_quantity")) or Decimal(0),
        exit_time_ms=p.exit_ms,
        exit_price=exit_price,
        exit_reason=reason,
        fees=_dec(res.get("fees_paid")) or Decimal(0),
        pnl=_dec(res.get("realized_pnl")) or Decimal(0),
    )


async def outcome(run: Feed, conn: asyncpg.Connection, m: Monitor) -> SignalOutcome:
    spec, settings = run.spec, run.spec.settings
    state = await m.handle.query(STATE_QUERY)
    decisions = _decisions(state, run.shift_ms)
    res = m.result
    if isinstance(res, Exception):
        status = "cancelled" if m.cut else "failed"
        reason = m.cut or str(getattr(res, "cause", None) or res)
    else:
        status, reason = res.status, res.reason
    if m.cut:
        status = "cut_by_cap" if run.stopped else "end_of_data"
    sid = uuid.UUID(m.signal_id)
    delivered = [c for c in spec.candles if c.T + 1 <= run.horizon_ms]
    trade, won = None, None
    management: dict[str, int] = {}
    if status == "in_position" and m.position is not None:
        trade = _position_trade(m, m.position)
        if trade is not None:
            status = "closed"  # as the signal row says once its position closed (the trade shows how)
        rows = await conn.fetch(
            "SELECT action, count(*) AS n FROM position_management_decisions WHERE signal_id = $1 GROUP BY action", sid
        )
        management = {r["action"]: r["n"] for r in sorted(rows, key=lambda r: r["action"])}
        if trade is None:
            reason = f"{reason}; position: {_position_reason(m.position)}"
    elif status == "in_position":
        reason = f"{reason}; no PositionManagerWorkflow was started for it: no trade"
    elif status == "expired" and decisions:
        row = await conn.fetchrow(
            "SELECT key_levels FROM signal_analyses WHERE signal_id = $1 ORDER BY analysis_number DESC LIMIT 1", sid
        )
        if row is not None:
            side, _entry, sl, tp = _levels(row["key_levels"])
            after = decisions[-1].candle_open_ms
            start = m.spec.time_ms if after is None else after + interval_ms(spec.interval)
            end = m.spec.time_ms + int(settings.max_monitoring_duration.total_seconds() * 1000)
            window = [c for c in delivered if c.t >= start and c.T < end]
            won = would_have_won(side, sl, tp, window)
    return SignalOutcome(
        signal_time_ms=m.spec.time_ms,
        price=m.price,
        status=status,
        reason=reason,
        decisions=decisions,
        llm_calls=run.gate.calls_by_signal.get(m.signal_id, 0),
        tokens=run.gate.tokens_by_signal.get(m.signal_id, 0),
        trade=trade,
        management=management,
        would_have_won=won,
    )
