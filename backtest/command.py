"""`signal-monitor backtest`: arguments, inputs, the estimate, the run(s), the printed report."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backtest import inputs
from backtest.compare import compare_json, format_compare
from backtest.inputs import InputError
from backtest.report import Report, format_table, to_json
from market.candle import Candle
from market.intervals import UnknownInterval, interval_ms
from market.rest import KlinesError, rest_client
from runtime.config import Settings
from runtime.exits import EXIT_OK, EXIT_USAGE, fail

if TYPE_CHECKING:
    from backtest.spec import BacktestSpec, ProxyTarget


class UsageError(ValueError):
    pass


def parse_duration(text: str) -> timedelta:
    """`90` (seconds), `90s`, `15m`, `4h`, `2d`, `1w`."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90, 15m, 4h, 2d)")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return timedelta(seconds=float(m.group(1)) * unit)


def _when(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r} (e.g. 2024-01-01T00:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ProxySpec:
    """`local`, `env` (LLM_PROXY_URL + LLM_PROXY_KEY) or a URL (key from LLM_PROXY_KEY), then
    optional `;header:Name=Value` and `;strategy:key=value` parts choosing a prompt version."""

    text: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    strategy: dict[str, Any] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        return self.target == "local"


def parse_proxy(text: str) -> ProxySpec:
    target, *parts = [p.strip() for p in text.split(";")]
    if target not in ("local", "env") and not re.match(r"https?://", target):
        raise UsageError(f"proxy {text!r}: expected local, env or an http(s) URL")
    headers: dict[str, str] = {}
    strategy: dict[str, Any] = {}
    for part in parts:
        kind, _, assignment = part.partition(":")
        name, eq, value = assignment.partition("=")
        if kind not in ("header", "strategy") or not eq or not name:
            raise UsageError(f"proxy {text!r}: {part!r} is not header:Name=Value or strategy:key=value")
        if kind == "header":
            if name.lower() == "authorization":
                raise UsageError("the Authorization header comes from LLM_PROXY_KEY, not from the command line")
            headers[name] = value
        else:
            strategy[name] = value
    return ProxySpec(text=text, target=target, headers=headers, strategy=strategy)


def add_arguments(p: argparse.ArgumentParser) -> None:
    data = p.add_argument_group("candles (--data FILE, or --start/--end from Binance REST klines)")
    data.add_argument("--data", type=Path, help="CSV open_time_ms,open,high,low,close,volume or a JSON list of rows")
    data.add_argument("--symbol", required=True, help="what the data holds, e.g. BTCUSDT")
    data.add_argument("--interval", required=True, help="e.g. 1m, 15m, 4h")
    data.add_argument("--start", type=_when, help="fetch closes from BINANCE_REST_URL from this time (ISO)")
    data.add_argument("--end", type=_when, help="... up to this time (ISO)")
    sig = p.add_argument_group("signals (one of)")
    sig.add_argument("--signals", type=Path, help="CSV/JSON of signal times and prices, or a `signals` table export")
    sig.add_argument("--every", type=int, help="a signal at the close of every N-th candle")
    tr = p.add_argument_group("trader settings (the database's columns; flags win over --settings)")
    tr.add_argument("--settings", type=Path, help="JSON object of trader settings")
    tr.add_argument("--max-reanalyses", type=int)
    tr.add_argument("--min-confidence", type=float, dest="min_confidence_to_enter")
    tr.add_argument("--max-monitoring-duration", type=parse_duration, help="e.g. 24h")
    tr.add_argument("--stake", dest="paper_stake", help="quote currency per trade (1000)")
    tr.add_argument("--fee-rate", help="per fill (0.001 = 0.1 %%)")
    tr.add_argument("--slippage", help="fraction of the entry price (0)")
    tr.add_argument("--max-position-duration", type=parse_duration, help="e.g. 7d")
    px = p.add_argument_group("llm-proxy")
    px.add_argument(
        "--proxy", default="local", help="local (deterministic stand-in, default), env (LLM_PROXY_URL), or a URL"
    )
    px.add_argument("--max-calls", type=int, help="hard cap on llm-proxy calls per run (required unless local)")
    px.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two proxies side by side (see --proxy)")
    out = p.add_argument_group("output")
    out.add_argument("--json", type=Path, help="write the report as JSON")
    out.add_argument("--chart", type=Path, help="write the price chart, trades and equity curve (HTML)")
    out.add_argument("--verbose", action="store_true", help="the worker's own log lines too")


async def _candles(args: argparse.Namespace) -> list[Candle]:
    interval_ms(args.interval)  # an unknown interval is a usage error, before any file or request
    if args.data is not None:
        if args.start or args.end:
            raise UsageError("--data and --start/--end are alternatives")
        return inputs.load_candles(args.data, args.interval)
    if not (args.start and args.end):
        raise UsageError("give --data FILE, or --start and --end to fetch from Binance REST klines")
    if args.end <= args.start:
        raise UsageError("--end must be after --start")
    base = Settings.from_env().binance_rest_url
    async with rest_client(base, timeout=20) as client:
        return await inputs.fetch_klines(client, args.symbol, args.interval, args.start, args.end)


def _signals(args: argparse.Namespace, candles: list[Candle]) -> list[inputs.SignalSpec]:
    if (args.signals is None) == (args.every is None):
        raise UsageError("give one of --signals FILE or --every N")
    if args.every is not None:
        return inputs.every_n(candles, args.every)
    return inputs.load_signals(args.signals, args.symbol, args.interval)


def _settings(args: argparse.Namespace) -> inputs.TraderSettings:
    names = (
        "max_reanalyses",
        "min_confidence_to_enter",
        "max_monitoring_duration",
        "paper_stake",
        "fee_rate",
        "slippage",
        "max_position_duration",
    )
    return inputs.load_settings(args.settings, {n: getattr(args, n) for n in names})


def _target(spec: ProxySpec, local_url: str | None, local_key: str) -> ProxyTarget:
    from backtest.spec import ProxyTarget

    if spec.local:
        assert local_url is not None
        return ProxyTarget(spec.text, local_url, local_key, spec.headers, spec.strategy, local=True)
    settings = Settings.from_env()
    url = settings.llm_proxy_url if spec.target == "env" else spec.target
    key = settings.llm_proxy_key
    if not url:
        raise UsageError("--proxy env needs LLM_PROXY_URL")
    if not key:
        raise UsageError("a real llm-proxy needs LLM_PROXY_KEY")
    return ProxyTarget(spec.text, url, key, spec.headers, spec.strategy)


async def _run(args: argparse.Namespace, spec: BacktestSpec, proxies: list[ProxySpec]) -> list[Report]:
    from backtest.engine import run_backtest
    from backtest.policies import local_policy
    from backtest.sandbox import sandbox
    from fakes.llm_proxy import FakeLlmProxy

    local = None
    local_key = "bt-local-" + secrets.token_hex(8)
    if any(p.local for p in proxies):
        local = await FakeLlmProxy(api_key=local_key, default=local_policy).start()
    try:
        targets = [_target(p, local.url if local else None, local_key) for p in proxies]
        reports = []
        async with sandbox(quiet=not args.verbose) as box:
            for target in targets:
                started = time.monotonic()
                report = await run_backtest(box, spec, target, progress=lambda m: print(f"[backtest] {m}", flush=True))
                print(f"[backtest] {target.label}: done in {time.monotonic() - started:.1f} s", flush=True)
                reports.append(report)
        return reports
    finally:
        if local is not None:
            await local.stop()


def main(args: argparse.Namespace) -> int:
    if not args.verbose:
        # The worker's per-analysis lines would bury the report; warnings still show.
        logging.getLogger().setLevel(logging.WARNING)
        for name in ("temporalio", "workers", "intake", "runtime", "activities", "workflows", "fakes", "httpx"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # The test server implements neither search-attribute listing nor visibility counts.
        for name in ("workers.search_attributes", "workers.monitor_gauge"):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        proxies = [parse_proxy(p) for p in (args.compare or [args.proxy])]
        if any(not p.local for p in proxies) and args.max_calls is None:
            raise UsageError("--max-calls is required with a real llm-proxy (it caps what the run may spend)")
        if args.max_calls is not None and args.max_calls < 0:
            raise UsageError("--max-calls must be 0 or more")
        candles = asyncio.run(_candles(args))
        signals = _signals(args, candles)
        settings = _settings(args)
    except (UsageError, InputError, UnknownInterval) as exc:
        return fail(exc, EXIT_USAGE)
    except KlinesError as exc:
        return fail(exc)
    from backtest.spec import BacktestSpec, expected_analyses, expected_management

    spec = BacktestSpec(args.symbol, args.interval, candles, signals, settings, args.max_calls)
    analyses, management = expected_analyses(spec), expected_management(spec)
    cap = f"cap {args.max_calls} per run" if args.max_calls is not None else "no cap (local stand-in)"
    print(
        f"[backtest] {len(candles)} candles, {len(signals)} signals; estimate per run (before retries): "
        f"{len(signals)} signals x expected analyses = at most {analyses} analyze-signal calls, plus at most "
        f"{management} manage-position calls while positions are open{'; 2 runs' if args.compare else ''}; {cap}",
        flush=True,
    )
    from backtest.sandbox import SandboxError

    try:
        reports = asyncio.run(_run(args, spec, proxies))
    except UsageError as exc:
        return fail(exc, EXIT_USAGE)
    except SandboxError as exc:
        return fail(exc)
    if len(reports) == 2:
        a, b = reports
        print(format_table(a), "", format_table(b), "", format_compare(a, b), sep="\n")
        payload: dict[str, Any] = compare_json(a, b, to_json(a), to_json(b))
    else:
        print(format_table(reports[0]))
        payload = to_json(reports[0])
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"[backtest] JSON report: {args.json}")
    if args.chart:
        from backtest.chart import write_chart

        write_chart(reports[0], candles, args.chart)
        if len(reports) == 2:
            second = args.chart.with_name(args.chart.stem + "-B" + args.chart.suffix)
            write_chart(reports[1], candles, second)
            print(f"[backtest] charts: {args.chart} (A), {second} (B)")
        else:
            print(f"[backtest] chart: {args.chart}")
    return EXIT_OK


def build(sub: Any, names: Sequence[str] = ("backtest",)) -> None:
    p = sub.add_parser(
        names[0],
        help="run a recorded market through the real workflows (time-skipping server, throwaway database) and score the decisions",
    )
    add_arguments(p)
    p.set_defaults(func=main, skip_teardown=True)
