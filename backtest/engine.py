"""One backtest run: a fresh database, the call gate, the project's worker in-process on the
time-skipping server, the trader and signals inserted, the series fed (feed.py) to the real
`SignalMonitorWorkflow`s and `PositionManagerWorkflow`s, and the report built (outcomes.py).

Time: the test server's clock cannot go back, so the whole series is shifted by a whole number of
weeks into the server's future (candle boundaries keep their alignment) and shifted back in the
report. Each candle close is delivered at its own (shifted) close time, T + 1 ms, after the clock
was slept there; each signal is started at its own time. Before the next step every monitor has
settled (its analysis recorded, nothing pending), so the same inputs give the same report."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import asyncpg

from activities.model_decisions import ModelDecisions
from backtest.feed import Feed
from backtest.gate import CallCounter, CallGate
from backtest.inputs import TraderSettings
from backtest.model_run import ModelCallMeter, ModelRun, SeriesCandles, answer_cache
from backtest.outcomes import outcome
from backtest.report import Report, RunInfo, SignalOutcome, build_report
from backtest.sandbox import Sandbox
from backtest.spec import BacktestSpec, ProxyTarget
from market.candle import Candle
from model_backend.client import ModelClient, new_model_http_client
from model_backend.masking import Mask
from runtime.config import Settings
from workers.worker import DecisionActivities, running_worker

WEEK_MS = 7 * 86_400_000
TRADES_FROM = "PositionManagerWorkflow (paper backend)"


def _price_at(candles: list[Candle], time_ms: int) -> Decimal | None:
    closed = [c for c in candles if c.T + 1 <= time_ms]
    return closed[-1].c if closed else None


async def _insert_trader(
    conn: asyncpg.Connection, settings: TraderSettings, symbol: str, interval: str, strategy: dict[str, Any]
) -> tuple[uuid.UUID, uuid.UUID]:
    user_id, trader_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute("INSERT INTO user_profiles (id, subscription_tier) VALUES ($1, 'elite')", user_id)
    await conn.execute(
        """INSERT INTO traders (id, user_id, name, enabled, filter, strategy, auto_analyze_signals,
                                max_reanalyses, min_confidence_to_enter, max_monitoring_duration)
           VALUES ($1, $2, $3, true, $4::jsonb, $5::jsonb, false, $6, $7, $8)""",
        trader_id,
        user_id,
        f"backtest {symbol} {interval}",
        json.dumps({"interval": interval}),
        json.dumps(strategy),
        settings.max_reanalyses,
        settings.min_confidence_to_enter,
        settings.max_monitoring_duration,
    )
    # Position settings go to the trader's columns where the schema has them (migration 006).
    present = {
        r["column_name"]
        for r in await conn.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = 'traders'")
    }
    for column, value in (
        ("paper_stake", settings.paper_stake),
        ("max_position_duration", settings.max_position_duration),
    ):
        if column in present:
            await conn.execute(f"UPDATE traders SET {column} = $2 WHERE id = $1", trader_id, value)
    return user_id, trader_id


async def run_backtest(
    sandbox: Sandbox,
    spec: BacktestSpec,
    proxy: ProxyTarget,
    progress: Callable[[str], None] | None = None,
    model: ModelRun | None = None,
) -> Report:
    """`model`: the `model` backend decides (backtest/model_run.py) instead of llm-proxy behind the gate."""
    say = progress or (lambda _msg: None)
    database_url = await sandbox.new_database()
    gate = await CallGate(proxy.url, proxy.key, spec.max_calls, proxy.headers).start()
    task_queue = f"backtest-{uuid.uuid4().hex[:10]}"
    meter = ModelCallMeter(spec.max_calls, model.model) if model is not None else None
    counter: CallCounter = meter if meter is not None else gate
    settings = Settings(
        database_url=database_url,
        llm_proxy_url=gate.url,
        llm_proxy_key=gate.local_key,
        task_queue=task_queue,
        llm_max_concurrent=8,
        llm_max_per_second=None,
        llm_queue_max_per_second=None,
        llm_timeout_seconds=60.0,
        max_cached_workflows=1000,
        db_pool_size=4,
        paper_fee_pct=spec.settings.fee_rate * 100,
        paper_slippage_pct=spec.settings.slippage * 100,
    )
    run = Feed(sandbox.env, spec, counter, task_queue)
    outcomes: list[SignalOutcome] = []
    conn = await asyncpg.connect(database_url)
    http = None
    activities: DecisionActivities | None = None
    if model is not None and meter is not None:
        http = new_model_http_client(settings.llm_timeout_seconds, settings.llm_max_concurrent)
        client = ModelClient(http, model.url, model.key, model.structured, model.temperature, model.max_tokens)
        decisions = ModelDecisions(
            client,
            SeriesCandles(spec.candles),
            model.model,
            model.monitoring_model,
            model.candle_count,
            answer_cache=answer_cache(model),
            meter=meter,
            time_shift=lambda: run.shift_ms,
            mask=Mask.for_series(float(spec.candles[0].c)) if model.masked else None,
        )
        activities = DecisionActivities(decisions.analyze_signal, decisions.manage_position)
    try:
        async with running_worker(sandbox.env.client, settings, stop_timeout=60, decision_activities=activities):
            now = await run._now_ms()
            run.shift_ms = (math.ceil((now - spec.candles[0].t) / WEEK_MS) + 1) * WEEK_MS
            strategy = {**spec.settings.strategy, **proxy.strategy}
            _user, trader_id = await _insert_trader(conn, spec.settings, spec.symbol, spec.interval, strategy)
            first_close, last_close = spec.candles[0].T + 1, spec.candles[-1].T + 1
            events: list[tuple[int, int, Any]] = [(c.T + 1, 0, c) for c in spec.candles]
            not_run: list[SignalOutcome] = []
            for s in spec.signals:
                price = s.price if s.price is not None else _price_at(spec.candles, s.time_ms)
                if s.time_ms < first_close or s.time_ms >= last_close or price is None:
                    why = "before the first close" if s.time_ms < first_close else "at or after the last close"
                    not_run.append(
                        SignalOutcome(
                            signal_time_ms=s.time_ms,
                            price=price or Decimal(0),
                            status="not_run",
                            reason=f"signal {why} of the data",
                        )
                    )
                    continue
                events.append((s.time_ms, 1, (s, price)))
            events.sort(key=lambda e: (e[0], e[1]))
            say(f"feeding {len(spec.candles)} closes and {len(events) - len(spec.candles)} signals to the monitors")
            for at, kind, item in events:
                if kind == 0 and not run.running() and not run.open_positions():
                    run.horizon_ms = at  # nobody to feed and no timer to fire: no need to move the clock
                    continue
                await run.sleep_to(at + run.shift_ms)
                go_on = await (run.deliver(item) if kind == 0 else run.start(conn, item[0], item[1], trader_id))
                if not go_on:
                    break
            started = {m.spec.time_ms for m in run.monitors}
            for _at, kind, item in events:
                if kind == 1 and item[0].time_ms not in started:
                    not_run.append(
                        SignalOutcome(
                            signal_time_ms=item[0].time_ms,
                            price=item[1],
                            status="not_run",
                            reason=run.stopped or "not started",
                        )
                    )
            await run.finish()
            for m in run.monitors:
                outcomes.append(await outcome(run, conn, m))
            outcomes += not_run
    finally:
        await conn.close()
        await gate.stop()
        if http is not None:
            await http.aclose()
    if meter is not None:
        say(meter.summary())
    info = RunInfo(
        symbol=spec.symbol,
        interval=spec.interval,
        candles=len(spec.candles),
        first_open_ms=spec.candles[0].t,
        last_close_ms=run.horizon_ms,
        proxy=f"model {model.label}" if model is not None else proxy.label,
        scripted=proxy.local if model is None else model.standin,
        trades_from=TRADES_FROM,
        stake=spec.settings.paper_stake,
        max_calls=spec.max_calls,
        stopped=run.stopped,
        late_events=run.late_events,
        max_late_seconds=round(run.max_late_ms / 1000, 1),
    )
    return build_report(info, outcomes)
