"""`signal-monitor shadow report [--since 24h|7d|ISO time] [--no-candles] [--json]`: what the monitor
decided in shadow mode (shadow_analyses, shadow_intake) beside what the platform decided for the
same signals (its own signal_analyses row), what the later candles did after every entry of
either (from BINANCE_REST_URL's klines), and what it cost in calls, tokens and dollars.

An entry (the monitor's `enter`, the platform's `enter_trade`) is judged by the paper backend's
own fill rules on the candles after it (workflows/position/paper.py): `won` when a candle reaches
the first take-profit before the stop-loss, `lost` when the stop comes first (a candle reaching
both counts as the stop), `open` when neither yet, `no levels` when the answer named none."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, TextIO

import asyncpg

from backtest.outcomes import _levels as key_levels_of
from market.candle import Candle
from market.rest import KlinesError, fetch_candles, rest_client
from runtime.exits import EXIT_OK, EXIT_USAGE
from runtime.model_prices import estimated_cost_usd
from workflows.common.candles import INTERVAL_MS
from workflows.position.paper import Bar, stop_fill_price, target_fill_price

Outcome = Literal["won", "lost", "open", "no levels", "no candles"]
# The platform's decision for a signal: a row it stored itself, other than llm-proxy's rows for
# the shadow monitor's own calls (those repeat a shadow analysis's decision, confidence, reasoning).
_PLATFORM_ROWS = """
SELECT DISTINCT ON (pa.signal_id) pa.signal_id, pa.decision, pa.confidence, pa.key_levels
FROM signal_analyses pa
WHERE pa.signal_id = ANY($1::uuid[]) AND pa.analysis_number IS NULL AND pa.monitor_decision IS NULL
  AND NOT EXISTS (SELECT 1 FROM shadow_analyses sh WHERE sh.signal_id = pa.signal_id
                  AND sh.decision = pa.decision AND sh.confidence = pa.confidence
                  AND sh.reasoning = btrim(pa.reasoning, E' \\t\\r\\n'))
ORDER BY pa.signal_id, pa.created_at, pa.id"""
_ANALYSES = """
SELECT sh.signal_id, sh.analysis_number, sh.candle_open_time, sh.decision, sh.monitor_decision, sh.confidence,
       sh.key_levels, sh.gemini_tokens_used, sh.model_name, sh.created_at,
       s.symbol, coalesce(s.interval, t.filter->>'interval') AS interval, s."timestamp" AS signal_time,
       si.end_status, si.end_reason
FROM shadow_analyses sh
JOIN signals s ON s.id = sh.signal_id
LEFT JOIN traders t ON t.id = s.trader_id
LEFT JOIN shadow_intake si ON si.signal_id = sh.signal_id
WHERE sh.signal_id IN (SELECT DISTINCT signal_id FROM shadow_analyses WHERE created_at >= $1)
ORDER BY s."timestamp", sh.signal_id, sh.analysis_number"""


def add_shadow_commands(sub: argparse._SubParsersAction, entry: Callable[[argparse.Namespace], int]) -> None:
    p = sub.add_parser("shadow", help="shadow mode (SIGNAL_MONITOR_SHADOW=on): compare with the platform")
    steps = p.add_subparsers(dest="shadow_command", required=True)
    r = steps.add_parser("report", help="decisions beside the platform's, later candles, calls, tokens and cost")
    r.add_argument("--since", type=since_arg, default="7d", help="24h, 7d, 90m or an ISO time (default 7d)")
    r.add_argument("--no-candles", action="store_true", help="do not ask BINANCE_REST_URL for the later candles")
    r.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=entry, skip_teardown=True)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")


def since_arg(raw: str) -> datetime | timedelta:
    text = raw.strip()
    match = _DURATION.match(text)
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return timedelta(**{unit: float(match.group(1))})
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--since takes 24h, 7d, 90m or an ISO time, got {raw!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class Entry:
    by: Literal["monitor", "platform"]
    analysis: int | None
    outcome: Outcome


@dataclass
class SignalReport:
    signal_id: str
    symbol: str
    interval: str
    signal_time: datetime
    monitor: list[str] = field(default_factory=list)  # proxy decision + confidence per analysis
    monitor_first: str | None = None
    monitor_entered: bool = False
    end: str | None = None
    platform: str | None = None  # its decision, or None when it has none
    platform_confidence: float | None = None
    calls: int = 0
    tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    entries: list[Entry] = field(default_factory=list)

    @property
    def first_differs(self) -> bool | None:
        return None if self.platform is None else self.platform != self.monitor_first

    @property
    def entry_differs(self) -> bool | None:
        return None if self.platform is None else (self.platform == "enter_trade") != self.monitor_entered


def levels(key_levels: Any) -> tuple[Literal["long", "short"], Decimal | None, Decimal | None, Decimal | None]:
    # The back-test reads a signal's key levels the same way; only its side is named by order side.
    side, entry, sl, tp = key_levels_of(key_levels)
    return ("short" if side == "sell" else "long"), entry, sl, tp


def entry_outcome(key_levels: Any, candles: Sequence[Candle] | None) -> Outcome:
    side, _, stop, target = levels(key_levels)
    if stop is None or target is None:
        return "no levels"
    if candles is None:
        return "no candles"
    for c in candles:
        bar = Bar(open=c.o, high=c.h, low=c.l, close=c.c)
        if stop_fill_price(side, stop, bar) is not None:
            return "lost"
        if target_fill_price(side, target, bar) is not None:
            return "won"
    return "open"


async def build_report(
    conn: asyncpg.Connection, since: datetime, candles_after: Callable[[str, str, int], Any] | None
) -> list[SignalReport]:
    rows = await conn.fetch(_ANALYSES, since)
    by_signal: dict[str, SignalReport] = {}
    later: list[tuple[SignalReport, Entry, Any, int]] = []
    for r in rows:
        sid = str(r["signal_id"])
        rep = by_signal.get(sid)
        if rep is None:
            rep = by_signal[sid] = SignalReport(
                sid, r["symbol"] or "?", r["interval"] or "?", r["signal_time"], end=r["end_status"]
            )
        rep.monitor.append(f"{r['decision']} {float(r['confidence']):g}")
        if r["analysis_number"] == 0:
            rep.monitor_first = r["decision"]
        tokens = r["gemini_tokens_used"] or 0
        rep.calls += 1
        rep.tokens += tokens
        rep.cost_usd += estimated_cost_usd(r["model_name"], tokens)
        if r["monitor_decision"] == "enter":
            rep.monitor_entered = True
            entry = Entry("monitor", r["analysis_number"], "no candles")
            rep.entries.append(entry)
            later.append(
                (rep, entry, r["key_levels"], _after_ms(r["candle_open_time"], r["signal_time"], rep.interval))
            )
    platform = await conn.fetch(_PLATFORM_ROWS, [r.signal_id for r in by_signal.values()]) if by_signal else []
    for p in platform:
        rep = by_signal[str(p["signal_id"])]
        rep.platform, rep.platform_confidence = p["decision"], float(p["confidence"])
        if p["decision"] == "enter_trade":
            entry = Entry("platform", None, "no candles")
            rep.entries.append(entry)
            later.append((rep, entry, p["key_levels"], _after_ms(None, rep.signal_time, rep.interval)))
    for rep, entry, key_levels, after_ms in later:
        candles = None
        if candles_after is not None:
            candles = await candles_after(rep.symbol, rep.interval, after_ms)
        entry.outcome = entry_outcome(key_levels, candles)
    return list(by_signal.values())


def _after_ms(candle_open_time: datetime | None, signal_time: datetime, interval: str) -> int:
    """Where the later candles start: after the analysed candle, or for analysis #0 (and the
    platform's, made on the signal's own price) after the signal's time."""
    if candle_open_time is not None:
        return int(candle_open_time.timestamp() * 1000) + (INTERVAL_MS.get(interval) or 60_000)
    return int(signal_time.timestamp() * 1000) + 1


def rest_candles(rest_url: str) -> Callable[[str, str, int], Any]:
    async def fetch(symbol: str, interval: str, after_ms: int) -> list[Candle] | None:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        try:
            async with rest_client(rest_url) as http:
                rows = await fetch_candles(http, symbol, interval, after_ms, now_ms)
        except (KlinesError, OSError):
            return None
        return [c for c in rows if c.t >= after_ms and c.T < now_ms]

    return fetch


def _share(n: int, of: int) -> str:
    return f"{n} of {of}" + (f" ({100 * n / of:.0f} %)" if of else "")


def render(reports: list[SignalReport], since: datetime) -> list[str]:
    compared = [r for r in reports if r.platform is not None]
    first = sum(1 for r in compared if r.first_differs)
    entered = sum(1 for r in compared if r.entry_differs)
    calls, tokens = sum(r.calls for r in reports), sum(r.tokens for r in reports)
    cost = sum((r.cost_usd for r in reports), Decimal(0))
    n = len(reports) or 1
    lines = [
        f"shadow report since {since:%Y-%m-%d %H:%M} UTC: {len(reports)} signal(s), {calls} analyses",
        f"platform decision known for {len(compared)}; the monitor's first decision differed on "
        f"{_share(first, len(compared))}, its entry (entered or not) on {_share(entered, len(compared))}",
    ]
    for who in ("monitor", "platform"):
        outcomes = [e.outcome for r in reports for e in r.entries if e.by == who]
        counts = ", ".join(f"{k} {outcomes.count(k)}" for k in ("won", "lost", "open", "no levels", "no candles"))
        lines.append(f"{who} entries: {len(outcomes)} ({counts})")
    lines.append(
        f"per signal: {calls / n:.2f} calls, {tokens / n:,.0f} tokens, {cost / n:.6f} USD (estimate; total {cost:.6f})"
    )
    lines.append("")
    lines.append(
        f"{'signal':8} {'symbol':10} {'int':4} {'platform':16} {'monitor':32} {'end':12} {'entries':26} calls tokens"
    )
    for r in reports:
        plat = f"{r.platform} {r.platform_confidence:g}" if r.platform else "-"
        entries = " ".join(f"{e.by[0]}:{e.outcome}" for e in r.entries) or "-"
        mark = " *" if r.first_differs or r.entry_differs else ""
        lines.append(
            f"{r.signal_id[:8]:8} {r.symbol:10} {r.interval:4} {plat:16} {', '.join(r.monitor)[:32]:32} "
            f"{(r.end or 'running'):12} {entries:26} {r.calls:5} {r.tokens:6}{mark}"
        )
    lines.append("* the monitor's decision differed from the platform's; entries m: monitor, p: platform")
    return lines


async def run_report(
    args: argparse.Namespace, database_url: str, rest_url: str | None, out: TextIO, now: datetime | None = None
) -> int:
    since = args.since if isinstance(args.since, datetime) else (now or datetime.now(UTC)) - args.since
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        source = None if args.no_candles or not rest_url else rest_candles(rest_url)
        reports = await build_report(conn, since, source)
    finally:
        await conn.close()
    if args.json:
        print(json.dumps([asdict(r) for r in reports], default=str, indent=2), file=out)
    else:
        for line in render(reports, since):
            print(line, file=out)
    return EXIT_OK


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="signal-monitor")
    add_shadow_commands(parser.add_subparsers(dest="command", required=True), lambda _a: EXIT_OK)
    return parser.parse_args(argv)


def main(args: argparse.Namespace, database_url: str, rest_url: str | None, out: TextIO) -> int:
    try:
        return asyncio.run(run_report(args, database_url, rest_url, out))
    except asyncpg.UndefinedTableError as exc:
        print(f"error: {exc} (run `signal-monitor migrate`)", file=out)
        return EXIT_USAGE
