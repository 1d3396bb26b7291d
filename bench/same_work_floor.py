"""The same-work floor: the monitor's per-candle job written as plainly as Temporal allows.

`bench/floor.py` does nothing per candle, so a ratio against it compares an HTTP call plus a
database write with nothing. These two workflows do the same external work as the product per
candle, the way a careful Temporal engineer would write it without the product's promises:

- `SameWorkAnalysisWorkflow` (against `SignalMonitorWorkflow`): the `candle_closed` payload,
  de-duplicated by open time in a set; one activity that POSTs `analyze-signal` to llm-proxy
  (one shared httpx client) and inserts one `signal_analyses` row (one asyncpg pool), keyed on
  (signal, candle) so a retried attempt writes nothing twice.
- `SameWorkPositionWorkflow` (against `PositionManagerWorkflow`): the same with `manage-position`
  and one `position_management_decisions` row.

Defaults everywhere else: one task queue (so the activity may be dispatched eagerly), the SDK's
default data converter and sandbox, no search attributes, no caps, no details, no local activity.

`python -m bench.same_work_floor` runs its worker (env: TEMPORAL_ADDRESS, DATABASE_URL,
LLM_PROXY_URL, LLM_PROXY_KEY, BENCH_SAME_WORK_TASK_QUEUE, SIGNAL_MONITOR_MAX_CACHED_WORKFLOWS)."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey

from bench.closes import new_close_time

ANALYSIS_WORKFLOW = "SameWorkAnalysisWorkflow"
POSITION_WORKFLOW = "SameWorkPositionWorkflow"
ANALYSE_ACTIVITY = "same_work_analyse"
MANAGE_ACTIVITY = "same_work_manage"
# The `local` variant's two halves: the call (a regular activity) and the row (a local activity).
ASK_ACTIVITY = "same_work_ask"
STORE_ACTIVITY = "same_work_store"
LLM_QUEUE_SUFFIX = "-llm"
REANALYSES = SearchAttributeKey.for_int("Reanalyses")


@dataclass
class Owner:
    """Whose candles a same-work workflow handles (its workflow input)."""

    signal_id: str
    trader_id: str
    user_id: str
    symbol: str
    strategy: dict[str, Any]
    position_id: str = ""
    # What of the product's shape to add, for the profile (issue 27), each a word: `queue` (the call
    # on `<queue>-llm`, as the llm-proxy caps need: no eager dispatch), `upsert` (an int search
    # attribute set per candle, as the monitor's `Reanalyses`), `local` (the row written by a
    # local activity after the call, as the monitor's record). Empty: the careful minimum.
    variant: str = ""


@dataclass
class CandleWork:
    owner: Owner
    kline: dict[str, Any]
    kind: str = ""  # ANALYSE_ACTIVITY or MANAGE_ACTIVITY: which call and row


@dataclass
class StoreWork:
    owner: Owner
    kline: dict[str, Any]
    answer: dict[str, Any]
    kind: str  # ANALYSE_ACTIVITY or MANAGE_ACTIVITY: which row


class _Candles:
    """The careful minimum: a set of open times seen, a queue, one activity per new candle."""

    activity_name = ""

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._queue: list[dict[str, Any]] = []

    async def _loop(self, owner: Owner) -> None:
        words = owner.variant.split()
        queue = workflow.info().task_queue + LLM_QUEUE_SUFFIX if "queue" in words else None
        done = 0
        while True:
            await workflow.wait_condition(lambda: bool(self._queue))
            k = self._queue.pop(0)
            timeout = timedelta(seconds=60)
            if "local" in words:
                answer = await workflow.execute_activity(
                    ASK_ACTIVITY,
                    CandleWork(owner, k, self.activity_name),
                    task_queue=queue,
                    start_to_close_timeout=timeout,
                )
                await workflow.execute_local_activity(
                    STORE_ACTIVITY, StoreWork(owner, k, answer, self.activity_name), start_to_close_timeout=timeout
                )
            else:
                await workflow.execute_activity(
                    self.activity_name, CandleWork(owner, k), task_queue=queue, start_to_close_timeout=timeout
                )
            done += 1
            if "upsert" in words:
                workflow.upsert_search_attributes([REANALYSES.value_set(done)])

    # One handler for both workflows (Temporal takes a signal from a base class; not the run method).
    @workflow.signal(name="candle_closed")
    def candle_closed(self, payload: Any) -> None:
        if new_close_time(self._seen, payload) is not None:
            self._queue.append(payload)


@workflow.defn(name=ANALYSIS_WORKFLOW)
class SameWorkAnalysisWorkflow(_Candles):
    activity_name = ANALYSE_ACTIVITY

    @workflow.run
    async def run(self, owner: Owner) -> None:
        await self._loop(owner)


@workflow.defn(name=POSITION_WORKFLOW)
class SameWorkPositionWorkflow(_Candles):
    activity_name = MANAGE_ACTIVITY

    @workflow.run
    async def run(self, owner: Owner) -> None:
        await self._loop(owner)


def _candle(k: dict[str, Any]) -> dict[str, Any]:
    return {
        "openTime": k["t"],
        "closeTime": k["T"],
        "open": k["o"],
        "high": k["h"],
        "low": k["l"],
        "close": k["c"],
        "volume": k["v"],
    }


def _open_time(k: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(k["t"] / 1000, UTC)


class Activities:
    """The two activities over one httpx client and one asyncpg pool."""

    def __init__(self, http: Any, pool: Any, url: str, key: str) -> None:
        self._http, self._pool, self._url = http, pool, url
        self._headers = {"Authorization": f"Bearer {key}"}

    async def _ask(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._http.post(self._url, json=body, headers=self._headers)
        response.raise_for_status()
        return response.json()["data"]

    async def _ask_analysis(self, o: Owner, k: dict[str, Any]) -> dict[str, Any]:
        params = {"signalId": o.signal_id, "symbol": o.symbol, "strategy": o.strategy, "price": float(k["c"])}
        return await self._ask({"operation": "analyze-signal", "params": {**params, "candle": _candle(k)}})

    async def _ask_management(self, o: Owner, k: dict[str, Any]) -> dict[str, Any]:
        params = {
            "positionId": o.position_id,
            "signalId": o.signal_id,
            "symbol": o.symbol,
            "marketPrice": float(k["c"]),
        }
        return await self._ask({"operation": "manage-position", "params": {**params, "candle": _candle(k)}})

    async def _store_analysis(self, o: Owner, k: dict[str, Any], data: dict[str, Any]) -> None:
        await self._pool.execute(
            """INSERT INTO signal_analyses (signal_id, trader_id, user_id, decision, confidence, reasoning,
                   key_levels, trade_plan, technical_indicators, raw_ai_response, candle_open_time)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               ON CONFLICT (signal_id, candle_open_time) DO NOTHING""",
            o.signal_id,
            o.trader_id,
            o.user_id,
            data["decision"],
            round(data["confidence"], 2),
            data["reasoning"],
            data.get("keyLevels") or {},
            data.get("tradePlan") or {},
            data.get("technicalIndicators"),
            data["metadata"].get("rawAiResponse"),
            _open_time(k),
        )

    async def _store_management(self, o: Owner, k: dict[str, Any], data: dict[str, Any]) -> None:
        await self._pool.execute(
            """INSERT INTO position_management_decisions (position_id, signal_id, trader_id, user_id, action,
                   confidence, reasoning, action_details, market_price, risk_assessment, candle_open_time)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               ON CONFLICT (position_id, candle_open_time) DO NOTHING""",
            o.position_id,
            o.signal_id,
            o.trader_id,
            o.user_id,
            data["action"],
            round(data["confidence"], 2),
            data["reasoning"],
            data.get("actionDetails"),
            float(k["c"]),
            data.get("riskAssessment"),
            _open_time(k),
        )

    @activity.defn(name=ANALYSE_ACTIVITY)
    async def analyse(self, work: CandleWork) -> None:
        await self._store_analysis(work.owner, work.kline, await self._ask_analysis(work.owner, work.kline))

    @activity.defn(name=MANAGE_ACTIVITY)
    async def manage(self, work: CandleWork) -> None:
        await self._store_management(work.owner, work.kline, await self._ask_management(work.owner, work.kline))

    @activity.defn(name=ASK_ACTIVITY)
    async def ask(self, work: CandleWork) -> dict[str, Any]:
        if work.kind == MANAGE_ACTIVITY:
            return await self._ask_management(work.owner, work.kline)
        return await self._ask_analysis(work.owner, work.kline)

    @activity.defn(name=STORE_ACTIVITY)
    async def store(self, work: StoreWork) -> None:
        if work.kind == MANAGE_ACTIVITY:
            await self._store_management(work.owner, work.kline, work.answer)
        else:
            await self._store_analysis(work.owner, work.kline, work.answer)


async def _main() -> None:
    import httpx
    from temporalio.client import Client
    from temporalio.worker import Worker

    from activities.database import create_pool
    from runtime.lifecycle import stop_on_signals

    client = await Client.connect(os.environ["TEMPORAL_ADDRESS"])
    stop = stop_on_signals()
    pool = await create_pool(os.environ["DATABASE_URL"], 10)
    async with httpx.AsyncClient(timeout=30) as http:
        acts = Activities(http, pool, os.environ["LLM_PROXY_URL"], os.environ["LLM_PROXY_KEY"])
        queue = os.environ["BENCH_SAME_WORK_TASK_QUEUE"]
        worker = Worker(
            client,
            task_queue=queue,
            workflows=[SameWorkAnalysisWorkflow, SameWorkPositionWorkflow],
            activities=[acts.analyse, acts.manage, acts.ask, acts.store],
            max_cached_workflows=int(os.environ.get("SIGNAL_MONITOR_MAX_CACHED_WORKFLOWS", "1000")),
            graceful_shutdown_timeout=timedelta(seconds=2),
        )
        # Only the `queue` variant's calls come here.
        llm = Worker(
            client,
            task_queue=queue + LLM_QUEUE_SUFFIX,
            activities=[acts.analyse, acts.manage, acts.ask],
            graceful_shutdown_timeout=timedelta(seconds=2),
        )
        async with worker, llm:
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            await stop.wait()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(_main())
    sys.stdout.flush()
    os._exit(0)  # sdk-python#300: the SDK can crash at interpreter teardown
