"""A local stand-in for the platform's llm-proxy ``analyze-signal`` endpoint.

See ``docs/contracts/llm-proxy.md`` for the contract it imitates. Three uses:

* **tests**: a scriptable fake with failure modes, recording what the monitor sent::

      async with FakeLlmProxy(api_key="k") as proxy:
          proxy.script("sig-1", Fault.status(429, retry_after=2), Answer.enter(confidence=85))
          ...  # point the code under test at proxy.url
          assert proxy.requests[0].headers["x-correlation-id"].startswith("sig-1")

* **the offline dev stack**: with no script, every answer comes from a deterministic policy
  (:func:`reanalysis_policy` by default) whose reasoning starts with ``"[fake llm-proxy] "`` and whose
  ``metadata.modelName`` is ``"fake-llm-proxy"``, so nobody mistakes it for a model.
* **benchmarks**: ``answer_delay=`` adds a fixed latency to every answer; :meth:`FakeLlmProxy.stats`
  reports calls, the maximum number of concurrent in-flight requests and calls per second.
* **like the production proxy**: ``store_rows=<database url>`` inserts its own ``signal_analyses`` row
  for every well-formed answer before answering (signal, trader, user, decision, confidence,
  reasoning, key levels, trade plan, indicators, raw answer, tokens, model; no candle, no analysis
  number), logs and ignores a failed insert (e.g. a NOT NULL ``key_levels`` when the answer has none)
  and answers anyway, as the real one does.

Standalone: ``python -m fakes.llm_proxy --port 8787 --api-key KEY [--delay S]``.

Modules: ``steps`` (the step language), ``policies`` (default answers), ``render`` (envelopes and
error bodies), ``recording``, ``server``, ``own_rows`` (the ``store_rows`` mode),
``manage_position`` (the ``manage-position`` operation), ``__main__`` (the command line).

The ``Authorization`` header value is never logged nor recorded: a recorded request only says
whether it was ``authorized``.
"""

from .manage_position import ManageAnswer
from .names import DEFAULT_API_KEY, DEFAULT_PATH, DEFAULT_TOKENS, FAKE_MODEL_NAME, REASONING_PREFIX
from .policies import always, reanalysis_policy
from .recording import RecordedRequest
from .server import FakeLlmProxy
from .steps import BAD_ANSWER_KINDS, Answer, DecisionAnswer, DefaultPolicy, Fault, FaultStep, RawAnswer, Step

__all__ = [
    "BAD_ANSWER_KINDS",
    "DEFAULT_API_KEY",
    "DEFAULT_PATH",
    "DEFAULT_TOKENS",
    "FAKE_MODEL_NAME",
    "REASONING_PREFIX",
    "Answer",
    "DecisionAnswer",
    "DefaultPolicy",
    "FakeLlmProxy",
    "Fault",
    "FaultStep",
    "ManageAnswer",
    "RawAnswer",
    "RecordedRequest",
    "Step",
    "always",
    "reanalysis_policy",
]
