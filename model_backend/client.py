"""One chat-completions call to an OpenAI-compatible endpoint (OpenRouter, OpenAI, Ollama, vLLM,
llama.cpp), made from inside an activity.

Raw httpx, not the `openai` SDK: the SDK (3.x on the index here) brings a second HTTP stack
(`httpx2`) beside the worker's httpx, and retries by default; this request is one small JSON POST
whose body we want to see whole. Temporal owns retries (the transport never retries): every HTTP
status and transport error becomes an ApplicationError of the types the workflows' RetryPolicies
know, 429/503 with `next_retry_delay` from `Retry-After`. The key lives only in the client's
headers and is redacted from every message."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import activity_metrics
from activities.llm_proxy import model_call_error, retry_after
from runtime.redaction import Redactor
from workflows.common import names

StructuredMode = str  # json_schema | json_object_schema | json_object (runtime/config.py)
_HEARTBEAT_EVERY = 2.0
TITLE = "signal-monitor"


@dataclass(frozen=True)
class Completion:
    """One 200 answer: the text, what served it and what it used."""

    text: str | None
    finish_reason: str | None
    model_served: str | None
    tokens_in: int | None
    tokens_out: int | None
    tokens_cached: int | None
    provider_cost: Any
    latency_ms: int


def response_format(mode: StructuredMode, name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The structured-output request each kind of server understands (docs/model-backend.md)."""
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}
    if mode == "json_object_schema":  # llama-cpp-python's server
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object"}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _detail(body: Any, fallback: str) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code', '')} {error.get('message', '')}".strip()[:200]
    if isinstance(error, str):
        return error[:200]
    return fallback[:120].replace("\n", " ")


class ModelClient:
    """The worker's one connection pool to the model endpoint, its key and its settings."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str | None,
        structured: StructuredMode = "json_schema",
        temperature: float = 0.2,
        max_tokens: int = 1200,
    ):
        self._http = http
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._key = api_key
        self.structured = structured
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._redact = Redactor([api_key])

    def error(self, message: str, type: str, **kwargs: Any) -> ApplicationError:
        return model_call_error(self._redact, message, type, **kwargs)

    def request_body(
        self, model: str, messages: list[dict[str, str]], schema_name: str, schema: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "model": model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "response_format": response_format(self.structured, schema_name, schema),
        }

    async def complete(self, body: dict[str, Any]) -> Completion:
        headers = {"X-Title": TITLE, "HTTP-Referer": "https://github.com/signal-monitor"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        started = time.monotonic()
        request = asyncio.ensure_future(self._http.post(self._url, json=body, headers=headers))
        try:
            while True:
                done, _ = await asyncio.wait({request}, timeout=_HEARTBEAT_EVERY)
                if done:
                    break
                activity.heartbeat()
            response = request.result()
        except asyncio.CancelledError:
            request.cancel()
            raise
        except httpx.TimeoutException as exc:
            raise self.error(f"model endpoint timed out ({type(exc).__name__})", names.LLM_TIMEOUT) from None
        except httpx.LocalProtocolError as exc:
            raise self.error(
                f"model request could not be sent: {type(exc).__name__}: {exc}",
                names.LLM_REQUEST_REJECTED,
                non_retryable=True,
            ) from None
        except httpx.TransportError as exc:
            raise self.error(
                f"model endpoint unreachable: {type(exc).__name__}: {exc}", names.LLM_UNAVAILABLE
            ) from None
        except Exception as exc:
            raise self.error(f"model call failed: {type(exc).__name__}: {exc}", names.LLM_UNAVAILABLE) from None
        latency_ms = int((time.monotonic() - started) * 1000)
        code = response.status_code
        activity_metrics.llm_proxy_answered(timedelta(milliseconds=latency_ms), "ok" if code == 200 else f"http_{code}")
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        self.check_status(code, payload, response.text, retry_after(response))
        if not isinstance(payload, dict):
            raise self.error("model endpoint answered 200 without a JSON object", names.LLM_BAD_ANSWER)
        if payload.get("error"):
            # OpenRouter reports a provider's failure inside a 200: an error like any other.
            error = payload["error"]
            inner = _int(error.get("code")) if isinstance(error, dict) else None
            self.check_status(inner or 502, payload, "", None, inside_200=True)
        return self._completion(payload, latency_ms)

    def check_status(
        self, code: int, payload: Any, text: str, delay: timedelta | None, inside_200: bool = False
    ) -> None:
        where = f"HTTP {code}" + (" inside a 200" if inside_200 else "")
        detail = _detail(payload, text)
        if code == 200:
            return
        if code == 402:
            raise self.error(
                f"model provider: credits exhausted ({where}): {detail}", names.LLM_REQUEST_REJECTED, non_retryable=True
            )
        if code in (401, 403):
            raise self.error(
                f"model endpoint refused the key or the request ({where}): {detail}",
                names.LLM_AUTH_ERROR,
                non_retryable=True,
            )
        if code == 429:
            raise self.error(
                f"model endpoint rate limited ({where}): {detail}", names.LLM_RATE_LIMITED, next_retry_delay=delay
            )
        if code in (408, 425):
            raise self.error(
                f"model endpoint timed out the request ({where})", names.LLM_TIMEOUT, next_retry_delay=delay
            )
        if 400 <= code < 500:
            raise self.error(
                f"model endpoint rejected the request ({where}): {detail}",
                names.LLM_REQUEST_REJECTED,
                non_retryable=True,
            )
        if code >= 500:
            raise self.error(
                f"model endpoint failed ({where}): {detail}", names.LLM_SERVER_ERROR, next_retry_delay=delay
            )
        raise self.error(f"model endpoint answered an unexpected status ({where})", names.LLM_BAD_ANSWER)

    @staticmethod
    def _completion(payload: dict[str, Any], latency_ms: int) -> Completion:
        choices = payload.get("choices")
        choice: dict[str, Any] = (
            choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        )
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        usage: dict[str, Any] = payload["usage"] if isinstance(payload.get("usage"), dict) else {}
        details: dict[str, Any] = (
            usage["prompt_tokens_details"] if isinstance(usage.get("prompt_tokens_details"), dict) else {}
        )
        served = payload.get("model")
        return Completion(
            text=content if isinstance(content, str) else None,
            finish_reason=choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None,
            model_served=served if isinstance(served, str) else None,
            tokens_in=_int(usage.get("prompt_tokens")),
            tokens_out=_int(usage.get("completion_tokens")),
            tokens_cached=_int(details.get("cached_tokens")),
            provider_cost=usage.get("cost"),
            latency_ms=latency_ms,
        )


def new_model_http_client(timeout_seconds: float, max_connections: int) -> httpx.AsyncClient:
    # retries=0: Temporal's RetryPolicy is the only retry loop.
    transport = httpx.AsyncHTTPTransport(retries=0, limits=httpx.Limits(max_connections=max_connections))
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
        headers={"Content-Type": "application/json"},
        follow_redirects=False,
    )
