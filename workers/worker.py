"""`signal-monitor worker`: the workflow, the database activities and the llm-proxy activity.

Two pollers share one asyncpg pool and one httpx client: the main task queue (workflows and
database activities) and `<queue>-llm`, whose concurrency and rate caps bind llm-proxy calls only.
SIGTERM/SIGINT drain: in-flight activities get a grace period, then the process exits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, NamedTuple

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities import platform_schema
from activities.candle_source import SingleFlightCache, binance_fetch
from activities.database import create_pool
from activities.decide_and_record import DecisionRecorder
from activities.execution import ExecutionBackends
from activities.live.accounts import Credentials, KeysFileError, load_keys_file
from activities.live.backend import LiveExecution, LiveSettings
from activities.llm_pacing import LlmCallPacer
from activities.llm_proxy import LlmProxy, new_http_client
from activities.model_decisions import ModelDecisions
from activities.paper_execution import PaperExecution
from activities.position_advisor import PositionAdvisor
from activities.position_starter import PositionStarter
from activities.positions_db import PositionStore
from activities.raw_answers import RawAnswers
from activities.shadow_db import ShadowPositionStarter, ShadowSignalStore
from activities.signals_db import SignalStore
from model_backend.client import ModelClient
from runtime import metrics
from runtime.config import ConfigError, Settings
from runtime.lifecycle import stop_on_signals
from runtime.temporal_client import connect_client, describe_target
from workers.activity_metrics import OperatorMetrics
from workers.monitor_gauge import publish_running_monitors
from workers.search_attributes import ensure_search_attributes
from workflows.common.names import llm_task_queue_for
from workflows.monitor.workflow import SignalMonitorWorkflow
from workflows.position.paper import PaperRules
from workflows.position.workflow import PositionManagerWorkflow

log = logging.getLogger(__name__)


class DecisionActivities(NamedTuple):
    """The decision backend's two activities (llm-proxy's, the model's, or a backtest's)."""

    analyze_signal: Callable[..., Any]
    manage_position: Callable[..., Any]


async def run_worker(
    settings: Settings,
    stop: asyncio.Event | None = None,
    client: Client | None = None,
    ready: asyncio.Event | None = None,
    decision_activities: DecisionActivities | None = None,
) -> None:
    """`decision_activities`: `analyze_signal` and `manage_position` built by the caller (the
    backtest's, on its replayed series); else the settings' backend's."""
    database_url = settings.require_database()
    backend = settings.decision_backend()
    if backend == "model":
        settings.require_model()
    else:
        settings.require_llm_proxy()
    live_keys(settings)  # a keys file others can read is refused before anything starts
    if client is None:
        metrics.init_runtime(settings.metrics_address)  # before connecting: the runtime serves it
        log.info("connecting to Temporal at %s", describe_target())
        client = await connect_client()
    await ensure_search_attributes(client)
    stop = stop or stop_on_signals()
    pool = await create_pool(database_url, settings.db_pool_size)
    live: LiveExecution | None = None
    http = new_http_client(settings.llm_timeout_seconds, settings.llm_max_concurrent)
    try:
        schema = await platform_schema.inspect(pool)
        choice = platform_schema.choose_initial_analysis(settings.initial_analysis, schema)
        log.info("beside the platform: %s", platform_schema.describe(schema, choice))
        shadow = settings.shadow_mode
        if shadow:
            log.warning(
                "shadow mode (SIGNAL_MONITOR_SHADOW=on): analyses go to shadow_analyses; nothing is written to "
                "signals or signal_analyses, no position is started, nothing is placed; analysis #0 is the monitor's"
            )
        store = (ShadowSignalStore if shadow else SignalStore)(
            pool,
            initial_analysis="monitor" if shadow else choice.mode,
            platform_grace_seconds=settings.platform_grace_seconds,
            analysis_retry_initial_seconds=settings.analysis_retry_initial_seconds,
            # auto: only the signals trigger 028 actually posts for (profile tier exactly 'elite').
            platform_exact_elite=settings.initial_analysis == "auto",
        )
        llm_queue = llm_task_queue_for(settings.task_queue)
        pacer = None
        if settings.llm_queue_max_per_second:
            pacer = LlmCallPacer(pool, llm_queue, settings.llm_queue_max_per_second)
        if decision_activities is None:
            decision_activities = decision_backend_activities(settings, http, pacer, RawAnswers(pool))
        paper = PaperExecution(
            pool, PaperRules(fee_pct=settings.paper_fee_pct, slippage_pct=settings.paper_slippage_pct)
        )
        starter: PositionStarter | ShadowPositionStarter = (
            ShadowPositionStarter() if shadow else PositionStarter(client)
        )
        # A decision and its row in one activity; the decision backend's own activities stay
        # registered for the runs that started before the patches.
        positions = PositionStore(pool)
        recorder = DecisionRecorder(
            decision_activities.analyze_signal,
            store.record_analysis,
            decision_activities.manage_position,
            positions.record_position_decision,
        )
        live = live_backend(settings, pool)
        execution = ExecutionBackends(pool, paper, live)
        main = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[SignalMonitorWorkflow, PositionManagerWorkflow],
            activities=[
                store.load_signal,
                store.record_analysis,
                store.finish_signal,
                store.find_platform_analysis,
                starter.start_position_manager,
                positions.load_position,
                positions.record_position_decision,
                positions.close_signal,
                execution.open_position,
                execution.modify_position,
                execution.reduce_position,
                execution.close_position,
                execution.reconcile_position,
            ],
            max_cached_workflows=settings.max_cached_workflows,
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.sticky_schedule_to_start_seconds),
            graceful_shutdown_timeout=timedelta(seconds=20),
            interceptors=[OperatorMetrics()],
        )
        llm = Worker(
            client,
            task_queue=llm_queue,
            activities=[*decision_activities, recorder.analyze_and_record_signal, recorder.manage_and_record_position],
            max_concurrent_activities=settings.llm_max_concurrent,
            max_activities_per_second=settings.llm_max_per_second,
            max_task_queue_activities_per_second=settings.llm_queue_max_per_second,
            graceful_shutdown_timeout=timedelta(seconds=20),
            interceptors=[OperatorMetrics()],
        )
        async with main, llm:
            log.info(
                "worker polling %s and %s (decisions: %s, at most %d concurrent calls)",
                settings.task_queue,
                llm_task_queue_for(settings.task_queue),
                describe_backend(settings),
                settings.llm_max_concurrent,
            )
            gauge = asyncio.create_task(
                publish_running_monitors(client, settings.task_queue, settings.running_refresh_seconds)
            )
            if ready is not None:
                ready.set()
            try:
                await stop.wait()
            finally:
                gauge.cancel()
                await asyncio.gather(gauge, return_exceptions=True)
            log.info("stopping: draining in-flight tasks")
    finally:
        if live is not None:
            await live.aclose()
        await http.aclose()
        await pool.close()
    log.info("worker stopped")


def decision_backend_activities(
    settings: Settings, http: httpx.AsyncClient, pacer: LlmCallPacer | None, raw_answers: RawAnswers | None = None
) -> DecisionActivities:
    """`analyze_signal` and `manage_position`: llm-proxy's or the `model` backend's (the same
    activity names, inputs and results: the workflows do not know which). Both share the
    worker's one httpx client (its pool, its timeout, no transport retries)."""
    if settings.decision_backend() == "model":
        url, key, model = settings.require_model()
        client = ModelClient(
            http, url, key, settings.model_structured, settings.model_temperature, settings.model_max_tokens
        )
        candles = SingleFlightCache(binance_fetch(settings.binance_rest_url))
        decisions = ModelDecisions(client, candles, model, settings.monitoring_model, settings.model_candles)
        return DecisionActivities(decisions.analyze_signal, decisions.manage_position)
    proxy_url, proxy_key = settings.require_llm_proxy()
    proxy = LlmProxy(http, proxy_url, proxy_key, pacer, raw_answers=raw_answers)
    advisor = PositionAdvisor(http, proxy_url, proxy_key, pacer, raw_answers=raw_answers)
    return DecisionActivities(proxy.analyze_signal, advisor.manage_position)


def describe_backend(settings: Settings) -> str:
    """For the start-up log line: which backend, where, which models (never the key)."""
    if settings.decision_backend() == "model":
        monitoring = f", monitoring model {settings.monitoring_model}" if settings.monitoring_model else ""
        return (
            f"model {settings.model} at {settings.model_url}{monitoring}, "
            f"structured {settings.model_structured}, {settings.model_candles} candles"
        )
    return f"llm-proxy at {settings.llm_proxy_url}"


def live_keys(settings: Settings) -> dict[str, Credentials] | None:
    """The exchange credentials when live trading is on (None when off)."""
    if not settings.live_trading:
        return None
    if settings.exchange_keys_file is None:
        raise ConfigError("SIGNAL_MONITOR_LIVE_TRADING=on needs SIGNAL_MONITOR_EXCHANGE_KEYS_FILE")
    try:
        return load_keys_file(settings.exchange_keys_file)
    except KeysFileError as err:
        raise ConfigError(str(err)) from None


def live_backend(settings: Settings, pool: Any) -> LiveExecution | None:
    keys = live_keys(settings)
    if keys is None:
        log.info("live trading is off: every position is paper")
        return None
    log.info("live trading is ON for %d exchange account(s)", len(keys))
    return LiveExecution(
        pool,
        keys,
        LiveSettings(
            exchange_url=settings.exchange_url,
            recv_window_ms=settings.exchange_recv_window_ms,
            timeout_seconds=settings.exchange_timeout_seconds,
        ),
    )


@contextlib.asynccontextmanager
async def running_worker(
    client: Client,
    settings: Settings,
    stop_timeout: float = 30,
    decision_activities: DecisionActivities | None = None,
) -> AsyncIterator[None]:
    """`run_worker` in this process (the backtest, the tests): entered once it polls, its start-up
    error raised; on exit stopped and waited for (at most `stop_timeout` seconds)."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run_worker(settings, stop=stop, client=client, ready=ready, decision_activities=decision_activities)
    )
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()  # raises the worker's start-up error
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, stop_timeout)
