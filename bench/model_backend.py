"""The `model` backend (issue 21): the CPU cost of building a prompt and checking an answer, and
how close a latency-bound backtest comes to its bound with `--concurrency`.

- `model_prompt_build_p50_ms` / `model_answer_check_p50_ms` (goal 5 ms each; this thread's CPU time, so
  other processes on the machine do not count): 100 candles,
  indicators, the rendered messages and their hash; an answer decoded, checked against the schema
  and the levels checked.
- `backtest_latency_bound_ratio` (goal 1.3): the shipped 60-candle series, 4 signals, concurrency 4,
  against the rule stand-in answering after D s a call (4 s; quick 1 s): wall time over
  (calls x D / concurrency + the same run's wall time with a 0 s stand-in)."""

from __future__ import annotations

import json
import time

from bench.report import Report, percentile

SAMPLES = 200


def cpu(rep: Report) -> None:
    from fakes.model.rule import decide
    from model_backend.answers import parse_analysis
    from model_backend.prompt import analysis_prompt
    from tests.helpers.model import analysis_input, series

    bars = series(300)
    rows = [b for b, _ in bars]
    build, check = [], []
    for i in range(SAMPLES):
        at = 150 + i % 100
        window = rows[at - 99 : at + 1]
        request = analysis_input(bars, 140, 2, at=at)
        started = time.thread_time()
        rendered = analysis_prompt(request, window, 1.2)  # indicators included
        build.append((time.thread_time() - started) * 1000)
        answer = json.dumps(decide(rendered.messages[1]["content"]))
        started = time.thread_time()
        checked = parse_analysis(answer, window[-1].c, rendered.indicators["atr14"])
        check.append((time.thread_time() - started) * 1000)
        assert checked.usable, checked.errors
    build_p50, check_p50 = percentile(build, 50), percentile(check, 50)
    rep.say("\nmodel backend: CPU per decision (100 candles)")
    rep.figure(
        "prompt build p50 / p99", f"{build_p50:.2f} / {percentile(build, 99):.2f} ms", detail=f"{rendered.chars} chars"
    )
    rep.figure("answer check p50 / p99", f"{check_p50:.2f} / {percentile(check, 99):.2f} ms")
    rep.goal("model_prompt_build_p50_ms", round(build_p50, 2), 5)
    rep.goal("model_answer_check_p50_ms", round(check_p50, 2), 5)


async def latency_bound(rep: Report, quick: bool) -> None:
    from backtest.concurrent import run_concurrent
    from backtest.model_run import ModelRun
    from backtest.sandbox import sandbox
    from backtest.spec import ProxyTarget
    from fakes.model import STANDIN_MODEL, FakeModel
    from tests.helpers.backtest import sample_spec

    delay, concurrency = (1.0 if quick else 4.0), 4
    spec = sample_spec()
    unused = ProxyTarget("unused", "http://127.0.0.1:9/unused", "unused")
    walls, calls = {}, 0
    async with sandbox() as box:
        for d in (0.0, delay):
            async with FakeModel(answer_delay=d) as standin:
                run = ModelRun("rule", standin.url, None, STANDIN_MODEL)  # no cache: every call made
                started = time.monotonic()
                report = await run_concurrent(box, spec, unused, concurrency, model=run)
                walls[d] = time.monotonic() - started
                calls = report.totals.llm_calls
    bound = calls * delay / concurrency + walls[0.0]
    rep.say(f"\nbacktest against a {delay:g} s-per-call stand-in, concurrency {concurrency}")
    rep.figure("wall with 0 s calls", f"{walls[0.0]:.1f} s", detail=f"{calls} calls")
    rep.figure(f"wall with {delay:g} s calls", f"{walls[delay]:.1f} s", detail=f"bound {bound:.1f} s")
    rep.goal("backtest_latency_bound_ratio", round(walls[delay] / bound, 2), 1.3)
