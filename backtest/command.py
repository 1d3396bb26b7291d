"""`signal-monitor backtest`: arguments, inputs, the estimate, the run(s), the printed report."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
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
    from backtest.model_run import ModelRun
    from backtest.spec import BacktestSpec, ProxyTarget
    from fakes.model import FakeModel


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
    px.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="two proxies side by side (see --proxy); with --decisions model, two model ids on the same endpoint",
    )
    md = p.add_argument_group("the model backend (docs/model-backend.md)")
    md.add_argument(
        "--decisions",
        choices=("llm-proxy", "model"),
        default="llm-proxy",
        help="model: SIGNAL_MONITOR_MODEL_URL/_MODEL/_KEY decide (--max-calls required), or the local rule "
        "stand-in when SIGNAL_MONITOR_MODEL_URL is unset",
    )
    md.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="independent signals in this many time-skipping servers at once (a latency-bound model run)",
    )
    md.add_argument(
        "--masked",
        action="store_true",
        help="also run a probe with the symbol, times and price level hidden, reported beside the plain run",
    )
    md.add_argument("--no-cache", action="store_true", help="call the model even for answers already cached")
    md.add_argument("--cache-dir", type=Path, help="the answer cache (default ~/.cache/signal-monitor/model-answers)")
    md.add_argument(
        "--model-cutoff",
        type=_when,
        help="the model's knowledge cutoff: signals before it are marked memorizable, totals given on those after it",
    )
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
    from backtest.concurrent import run_concurrent
    from backtest.policies import local_policy
    from backtest.sandbox import sandbox
    from fakes.llm_proxy import FakeLlmProxy

    local = None
    standin: FakeModel | None = None
    local_key = "bt-local-" + secrets.token_hex(8)
    if any(p.local for p in proxies):
        local = await FakeLlmProxy(api_key=local_key, default=local_policy).start()
    try:
        model = None
        runs: list[ModelRun | None] = [None]
        if args.decisions == "model":
            model, standin = await _model_run(args)
            runs = [model]
            if args.compare:
                # Two model ids on the same endpoint, side by side (the monitoring model follows each).
                runs = [dataclasses.replace(model, label=m, model=m, monitoring_model=None) for m in args.compare]
            elif args.masked:
                runs.append(dataclasses.replace(model, label=model.label + " (masked)", masked=True))
        targets = [_target(p, local.url if local else None, local_key) for p in proxies]
        reports = []
        async with sandbox(quiet=not args.verbose) as box:
            for target, model in itertools.product(targets, runs):
                started = time.monotonic()
                say = lambda m: print(f"[backtest] {m}", flush=True)  # noqa: E731
                report = await run_concurrent(
                    box, spec, target, args.concurrency, progress=say, model=model, quiet=not args.verbose
                )
                label = f"model {model.label}" if model is not None else target.label
                print(f"[backtest] {label}: done in {time.monotonic() - started:.1f} s", flush=True)
                reports.append(report)
        return reports
    finally:
        if local is not None:
            await local.stop()
        if standin is not None:
            await standin.stop()


async def _model_run(args: argparse.Namespace) -> tuple[ModelRun, FakeModel | None]:
    """The settings' model, or the local rule stand-in when SIGNAL_MONITOR_MODEL_URL is unset."""
    from backtest.model_run import ModelRun, default_cache_dir
    from fakes.model import STANDIN_MODEL, FakeModel

    settings = Settings.from_env()
    cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
    common: dict[str, Any] = dict(
        structured=settings.model_structured,
        temperature=settings.model_temperature,
        max_tokens=settings.model_max_tokens,
        candle_count=settings.model_candles,
        cache_dir=cache,
    )
    if settings.model_url:
        url, key, model = settings.require_model()
        return ModelRun(model, url, key, model, settings.monitoring_model, **common), None
    standin = await FakeModel().start()
    label = f"{STANDIN_MODEL} (local rule stand-in: a rule, not a model)"
    return ModelRun(label, standin.url, None, settings.model or STANDIN_MODEL, standin=True, **common), standin


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
        model_ids = list(args.compare or []) if args.decisions == "model" else []
        proxies = [parse_proxy(p) for p in ((args.compare if not model_ids else None) or [args.proxy])]
        if args.decisions == "model":
            if model_ids and args.masked:
                raise UsageError("--compare (two models) and --masked are alternatives")
            if args.masked and args.max_calls is not None:
                print("[backtest] --masked: two runs, each capped at --max-calls", flush=True)
            if Settings.from_env().model_url and args.max_calls is None:
                raise UsageError("--max-calls is required with a real model (it caps what the run may spend)")
        elif args.masked:
            raise UsageError("--masked is a probe of the model backend: use it with --decisions model")
        elif any(not p.local for p in proxies) and args.max_calls is None:
            raise UsageError("--max-calls is required with a real llm-proxy (it caps what the run may spend)")
        if args.concurrency < 1:
            raise UsageError("--concurrency must be 1 or more")
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
        cutoff = args.model_cutoff
        if cutoff is None and args.decisions == "model":
            from backtest.cutoff import known_cutoff

            cutoff = known_cutoff(Settings.from_env().model)
        if cutoff is not None:
            from backtest.cutoff import cutoff_json, format_cutoff

            cutoff_ms = int(cutoff.timestamp() * 1000)
            print("", format_cutoff(reports[0], cutoff_ms), sep="\n")
            payload["model_cutoff"] = cutoff_json(reports[0], cutoff_ms)
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
