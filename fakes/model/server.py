"""FakeModel: a local OpenAI-compatible `POST /v1/chat/completions` whose answers come from a
documented rule over the candles in the prompt (fakes/model/rule.py: a rule, NOT a model), with
scriptable faults played on the wire, usage in OpenRouter's shape, and every request recorded."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fakes.local_server import LocalServer, serve_app

from .rule import decide

log = logging.getLogger("fakes.model")

STANDIN_MODEL = "rule-standin"
# The faults `script` takes, one per coming request (any operation), in order.
FAULTS = (
    "ok",  # the rule's answer
    "fenced",  # the answer inside a ```json fence
    "truncated",  # the answer cut in the middle, finish_reason `length`
    "schema",  # valid JSON missing required keys
    "levels",  # enter_trade with a stop above the entry of a long (fails the checks)
    "not_json",  # prose
    "429",  # rate limited, Retry-After
    "402",  # credits exhausted
    "503",  # no provider, Retry-After
    "500",
    "error_in_200",  # HTTP 200 whose body is an error (OpenRouter does this)
)


@dataclass
class Recorded:
    body: dict[str, Any]
    authorization: str | None

    @property
    def prompt(self) -> str:
        return "\n".join(str(m.get("content", "")) for m in self.body.get("messages", []) if isinstance(m, dict))

    @property
    def user(self) -> str:
        users = [m for m in self.body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[0].get("content", "")) if users else ""


class FakeModel(LocalServer):
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        answer_delay: float = 0.0,
        served_model: str | None = None,
        cost_per_call: float | None = None,
        retry_after: float = 1.0,
    ) -> None:
        self.host, self._requested_port = host, port
        self.port: int | None = None
        self.api_key = api_key
        self.answer_delay = answer_delay
        self.served_model = served_model
        self.cost_per_call = cost_per_call
        self.retry_after = retry_after
        self.requests: list[Recorded] = []
        self.faults: collections.deque[str] = collections.deque()
        self.answered = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL (SIGNAL_MONITOR_MODEL_URL)."""
        return f"{self.base_url}/v1"

    def script(self, *faults: str) -> None:
        for fault in faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        self.faults.extend(faults)

    async def start(self) -> FakeModel:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner, self.port = await serve_app(
            app, self.host, self.port or self._requested_port, shutdown_timeout=1.0
        )
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        body = {"error": {"code": status, "message": message}}
        return web.json_response(body, status=status, headers=headers)

    async def _handle(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization")
        if self.api_key and auth != f"Bearer {self.api_key}":
            return self._error(401, "invalid key")
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            return self._error(400, "model and messages are required")
        rec = Recorded(body, auth)
        self.requests.append(rec)
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        fault = self.faults.popleft() if self.faults else "ok"
        retry = {"Retry-After": f"{self.retry_after:g}"}
        if fault == "429":
            return self._error(429, "rate limited", retry)
        if fault == "402":
            return self._error(402, "Insufficient credits: add more to continue")
        if fault == "503":
            return self._error(503, "no provider available", retry)
        if fault == "500":
            return self._error(500, "internal error")
        if fault == "error_in_200":
            return web.json_response({"error": {"code": 502, "message": "provider returned error"}})
        answer = decide(rec.user)
        finish = "stop"
        if fault == "schema":
            answer.pop("reasoning", None)
            answer.pop("keyLevels", None)
            answer.pop("actionDetails", None)
        if fault == "levels" and "keyLevels" in answer:
            entry = answer["keyLevels"]["entry"] or 100.0
            answer.update(decision="enter_trade", confidence=90)
            answer["keyLevels"].update(side="long", entry=entry, stopLoss=entry * 1.05, takeProfit=[entry * 0.9])
        text = json.dumps(answer)
        if fault == "fenced":
            text = f"```json\n{text}\n```"
        elif fault == "truncated":
            text, finish = text[: len(text) // 2], "length"
        elif fault == "not_json":
            text = "I think the market looks bullish, so I would wait."
        self.answered += 1
        usage: dict[str, Any] = {
            "prompt_tokens": max(1, len(rec.prompt) // 4),
            "completion_tokens": max(1, len(text) // 4),
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if self.cost_per_call is not None:
            usage["cost"] = self.cost_per_call
        return web.json_response(
            {
                "id": f"fake-{len(self.requests)}",
                "object": "chat.completion",
                "model": self.served_model or body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": usage,
            }
        )
