"""The one door between the backtest's worker and llm-proxy: a local HTTP forwarder that holds the
hard cap on calls, counts calls and tokens per signal, and adds a variant's headers.

The worker talks to the gate with a throwaway local key; only the gate holds the real
`LLM_PROXY_KEY`, so the key stays out of workflow inputs, results and logs as everywhere else.
A call past the cap is never forwarded: it is refused with HTTP 422 (a request error the monitor
does not retry) and the engine stops the run."""

from __future__ import annotations

import collections
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
from aiohttp import web

CAP_ERROR_CODE = "BACKTEST_CALL_CAP"
_FORWARDED_HEADERS = ("x-trigger-source", "x-correlation-id", "content-type")


def tokens_of(body: Any) -> int:
    """Tokens an llm-proxy answer reports (metadata.tokensUsed, else usage.total_tokens)."""
    if not isinstance(body, dict):
        return 0
    data = body.get("data")
    meta = data.get("metadata") if isinstance(data, dict) else None
    for value in ((meta or {}).get("tokensUsed"), (body.get("usage") or {}).get("total_tokens")):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return 0


class CallCounter(Protocol):
    """What the feed and the report read of a run's calls (the gate's, or the model meter's)."""

    max_calls: int | None
    calls: int
    calls_by_signal: collections.Counter[str]
    tokens_by_signal: collections.Counter[str]

    @property
    def cap_reached(self) -> bool: ...

    def room(self) -> int | None: ...


class CallGate:
    def __init__(
        self,
        target_url: str,
        target_key: str,
        max_calls: int | None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._target_url = target_url
        self._target_key = target_key
        self.max_calls = max_calls
        self._extra = dict(extra_headers or {})
        self._timeout = timeout
        self.local_key = "bt-" + secrets.token_hex(16)
        self.calls = 0
        self.refused = 0
        self.calls_by_signal: collections.Counter[str] = collections.Counter()
        self.tokens_by_signal: collections.Counter[str] = collections.Counter()
        self._runner: web.AppRunner | None = None
        self._http: httpx.AsyncClient | None = None
        self.url = ""

    def __repr__(self) -> str:  # never the keys
        return f"<CallGate calls={self.calls} cap={self.max_calls}>"

    @property
    def cap_reached(self) -> bool:
        return self.max_calls is not None and self.calls >= self.max_calls

    def room(self) -> int | None:
        return None if self.max_calls is None else max(0, self.max_calls - self.calls)

    async def start(self) -> CallGate:
        self._http = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/llm-proxy"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _handle(self, request: web.Request) -> web.Response:
        auth = request.headers.get("authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.local_key}".encode()):
            return web.json_response(
                {"success": False, "error": {"code": "UNAUTHORIZED", "message": "bad key"}}, status=401
            )
        raw = await request.read()
        try:
            params = json.loads(raw).get("params") or {}
            signal_id = str(params.get("signalId"))
        except (ValueError, AttributeError):
            signal_id = "?"
        if self.cap_reached:
            self.refused += 1
            message = f"backtest llm-proxy call cap ({self.max_calls}) reached; call not made"
            return web.json_response(
                {"success": False, "error": {"code": CAP_ERROR_CODE, "message": message}}, status=422
            )
        self.calls += 1
        self.calls_by_signal[signal_id] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED_HEADERS}
        headers.update(self._extra)
        headers["Authorization"] = f"Bearer {self._target_key}"
        assert self._http is not None
        try:
            resp = await self._http.post(self._target_url, content=raw, headers=headers)
        except httpx.TimeoutException:
            return web.Response(status=504, text="llm-proxy timed out (via the backtest gate)")
        except httpx.TransportError as exc:
            return web.Response(status=502, text=f"llm-proxy unreachable (via the backtest gate): {type(exc).__name__}")
        try:
            self.tokens_by_signal[signal_id] += tokens_of(resp.json())
        except ValueError:
            pass
        out_headers = {k: v for k, v in resp.headers.items() if k.lower() == "retry-after"}
        return web.Response(
            status=resp.status_code,
            body=resp.content,
            headers=out_headers,
            content_type=resp.headers.get("content-type", "application/json").split(";")[0],
        )
