"""The fake llm-proxy's aiohttp server: scripts per signal and operation, default policies,
recorded requests, faults played out on the wire, and the own-row mode."""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from fakes.local_server import LocalServer, serve_app

from .manage_position import MANAGE_OPERATION, MANAGE_REQUIRED, ManageAnswer, manage_policy
from .names import DEFAULT_API_KEY, DEFAULT_PATH
from .own_rows import store_row
from .policies import reanalysis_policy
from .recording import RecordedRequest
from .render import Rendered, encode, error_body, render
from .steps import DecisionAnswer, DefaultPolicy, FaultStep, RawAnswer, Step

log = logging.getLogger("fakes.llm_proxy")


class _Stopping(Exception):
    pass


class FakeLlmProxy(LocalServer):
    """Local aiohttp stand-in for llm-proxy ``analyze-signal``.

    ``async with FakeLlmProxy(api_key="k") as proxy: ... proxy.url ...`` or ``await proxy.start()`` /
    ``await proxy.stop()``. ``port=0`` picks a free port (``proxy.port`` tells which); a later
    ``start()`` after ``stop()`` rebinds the same port, so an outage can be simulated.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = DEFAULT_PATH,
        default: DefaultPolicy = reanalysis_policy,
        answer_delay: float = 0.0,
        shutdown_timeout: float = 2.0,
        backlog: int = 1024,
        store_rows: str | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must be a non-empty string")
        self._api_key = api_key
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self.path = path if path.startswith("/") else "/" + path
        self.default: DefaultPolicy = default
        self.answer_delay = answer_delay
        self._shutdown_timeout = shutdown_timeout
        self._backlog = backlog  # benchmarks open hundreds of connections at once
        self._store_rows_dsn = store_rows
        self._store_pool: Any = None
        self.rows_stored = 0
        self.row_store_failures: list[str] = []
        self._scripts: dict[Any, collections.deque[Step]] = {}
        # manage-position: its own queues (by signalId) and default policy
        self._position_scripts: dict[Any, collections.deque[Step]] = {}
        self.manage_default: DefaultPolicy = manage_policy
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._new_request: asyncio.Event | None = None
        self.requests: list[RecordedRequest] = []
        self.reset_stats()

    def __repr__(self) -> str:  # never shows the key
        return f"<FakeLlmProxy url={self.url if self.port else None!r} calls={self.calls}>"

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def url(self) -> str:
        return f"{self.base_url}{self.path}"

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeLlmProxy is not started")
        return super().base_url

    async def start(self) -> FakeLlmProxy:
        if self._runner is not None:
            raise RuntimeError("FakeLlmProxy already started")
        self._stopping = asyncio.Event()
        self._new_request = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", self.path, self._handle)
        # after a stop(), start() again binds the same port, so proxy.url stays valid (outage tests)
        self._runner, self.port = await serve_app(
            app,
            self.host,
            self.port if self.port is not None else self._requested_port,
            backlog=self._backlog,
            handler_cancellation=True,
            shutdown_timeout=self._shutdown_timeout,
        )
        if self._store_rows_dsn and self._store_pool is None:
            import asyncpg

            self._store_pool = await asyncpg.create_pool(self._store_rows_dsn, min_size=1, max_size=4)
        log.info("fake llm-proxy listening on %s", self.url)
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        assert self._stopping is not None
        self._stopping.set()  # wakes every sleeping handler
        await runner.cleanup()
        pool, self._store_pool = self._store_pool, None
        if pool is not None:
            await pool.close()
        log.info("fake llm-proxy stopped (%s)", self.stats())

    # -- scripting ------------------------------------------------------------------------------

    def script(self, signal_id: Any, *steps: Step) -> FakeLlmProxy:
        """Queue ``steps`` for requests whose ``params.signalId == signal_id`` (None: any signal).
        Steps are consumed one per request, in order; a signal's own queue wins over the None queue;
        with both empty the default policy answers. Calls accumulate."""
        for s in steps:
            if not isinstance(s, (DecisionAnswer, RawAnswer, FaultStep)):
                raise TypeError(f"not a step: {s!r} (use Answer.* or Fault.*)")
        self._scripts.setdefault(signal_id, collections.deque()).extend(steps)
        return self

    def script_position(self, signal_id: Any, *steps: Step) -> FakeLlmProxy:
        """Like :meth:`script`, for ``manage-position`` requests (``ManageAnswer.*`` or ``Fault.*``)."""
        for s in steps:
            if not isinstance(s, (ManageAnswer, RawAnswer, FaultStep)):
                raise TypeError(f"not a manage-position step: {s!r} (use ManageAnswer.* or Fault.*)")
        self._position_scripts.setdefault(signal_id, collections.deque()).extend(steps)
        return self

    def pending(self, signal_id: Any = ...) -> int:
        """Number of scripted steps not consumed yet (for one key, or all)."""
        if signal_id is ...:
            return sum(len(q) for q in self._scripts.values())
        return len(self._scripts.get(signal_id, ()))

    def clear_script(self) -> None:
        self._scripts.clear()

    def _next_step(self, params: dict[str, Any], operation: str = "analyze-signal") -> Step:
        sid = params.get("signalId")
        manage = operation == MANAGE_OPERATION
        scripts = self._position_scripts if manage else self._scripts
        for key in (sid, None):
            try:
                q = scripts.get(key)
            except TypeError:  # unhashable signalId
                continue
            if q:
                return q.popleft()
        return self.manage_default(params) if manage else self.default(params)

    # -- stats & inspection ----------------------------------------------------------------------

    def reset_stats(self) -> None:
        """Zero the counters (not ``requests`` nor the script); e.g. after a benchmark warm-up."""
        self.calls = 0  # requests received at the path (any method, any key)
        self.completed = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.status_counts: collections.Counter[int] = collections.Counter()
        self.outcome_counts: collections.Counter[str] = collections.Counter()
        self._first_start: float | None = None
        self._last_end: float | None = None

    def reset(self) -> None:
        """Forget requests, script and counters."""
        self.requests.clear()
        self.clear_script()
        self.reset_stats()

    @property
    def disconnects(self) -> int:
        return self.outcome_counts["disconnect"]

    @property
    def calls_per_second(self) -> float:
        """Completed calls / (last completion - first arrival) since the last reset_stats()."""
        if self._first_start is None or self._last_end is None:
            return 0.0
        span = self._last_end - self._first_start
        return self.completed / span if span > 0 else 0.0

    def stats(self) -> dict[str, Any]:
        span = (
            self._last_end - self._first_start if self._first_start is not None and self._last_end is not None else 0.0
        )
        return {
            "calls": self.calls,
            "completed": self.completed,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "status_counts": dict(self.status_counts),
            "outcome_counts": dict(self.outcome_counts),
            "elapsed_s": round(span, 6),
            "calls_per_second": round(self.calls_per_second, 3),
        }

    def requests_for(self, signal_id: Any) -> list[RecordedRequest]:
        return [r for r in self.requests if r.signal_id == signal_id]

    async def wait_for_requests(self, n: int, timeout: float = 5.0, signal_id: Any = ...) -> list[RecordedRequest]:
        """Wait until at least ``n`` requests (for ``signal_id`` if given) were received."""
        assert self._new_request is not None, "not started"

        def matching() -> list[RecordedRequest]:
            return self.requests if signal_id is ... else self.requests_for(signal_id)

        async def _wait() -> None:
            while len(matching()) < n:
                # read on every round: a restart (stop, start) replaces the event
                new_request = self._new_request
                assert new_request is not None
                new_request.clear()
                await new_request.wait()

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"expected {n} requests within {timeout}s, got {len(matching())}") from None
        return matching()

    # -- request handling ------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return
        raise _Stopping()

    def _authorized(self, request: web.Request) -> bool:
        value = request.headers.get("Authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self._api_key.encode())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        self.calls += 1
        if self._first_start is None:
            self._first_start = now
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        headers: dict[str, str] = {}
        for k, v in request.headers.items():
            k = k.lower()
            if k == "authorization":
                continue
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=headers,
            authorized=self._authorized(request),
            body=None,
            body_text=None,
            received_at=datetime.now(UTC),
            monotonic=now,
        )
        self.requests.append(rec)
        try:
            raw = await request.read()
            try:
                rec.body = json.loads(raw) if raw else None
            except ValueError:
                rec.body_text = raw.decode("utf-8", "replace")
            assert self._new_request is not None
            self._new_request.set()
            return await self._respond(request, rec)
        except _Stopping:
            rec.outcome = "stopped"
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)
        except asyncio.CancelledError:
            rec.outcome = "client_gone"
            raise
        finally:
            self.in_flight -= 1
            rec.completed_monotonic = self._last_end = time.monotonic()
            self.completed += 1
            self.outcome_counts[rec.outcome] += 1
            if rec.status is not None:
                self.status_counts[rec.status] += 1
            log.debug(
                "fake llm-proxy %s %s signal=%s -> %s (%s)",
                rec.method,
                rec.path,
                rec.signal_id,
                rec.status,
                rec.outcome,
            )

    def _reply(self, rec: RecordedRequest, rendered: Rendered, outcome: str = "answered") -> web.Response:
        rec.status, rec.outcome = rendered.status, outcome
        return web.Response(
            status=rendered.status, body=rendered.body, content_type=rendered.content_type, headers=rendered.headers
        )

    async def _respond(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        if request.method != "POST":
            rec.outcome = "rejected"
            return self._reply(
                rec,
                Rendered(405, *encode(error_body(405, "Method not allowed"), None), headers={"Allow": "POST"}),
                "rejected",
            )
        if not rec.authorized:
            return self._reply(
                rec, Rendered(401, *encode(error_body(401, "Invalid or missing API key"), None)), "rejected"
            )
        body = rec.body
        problem = None
        if not isinstance(body, dict):
            problem = "Request body must be a JSON object"
        elif body.get("operation") not in ("analyze-signal", MANAGE_OPERATION):
            problem = f"Unknown operation: {body.get('operation')!r}"
        elif not isinstance(body.get("params"), dict):
            problem = "Missing params"
        else:
            required = MANAGE_REQUIRED if body["operation"] == MANAGE_OPERATION else ("signalId", "symbol", "strategy")
            missing = [k for k in required if body["params"].get(k) in (None, "")]
            if missing:
                problem = f"Missing required parameters: {', '.join(missing)}"
        if problem:
            return self._reply(rec, Rendered(500, *encode(error_body(500, problem), None)), "rejected")

        params = body["params"]
        default = self.manage_default if body["operation"] == MANAGE_OPERATION else self.default
        step = self._next_step(params, body["operation"])
        rec.step = step
        started = time.monotonic()
        await self._sleep(self.answer_delay)
        for _ in range(10):  # follow timeout/trickle "then" chains; bounded
            await self._sleep(step.delay)
            if isinstance(step, FaultStep) and step.kind == "timeout":
                await self._sleep(step.seconds)
                step = step.then if step.then is not None else default(params)
                continue
            break
        else:
            raise RuntimeError("fake llm-proxy: too many nested timeout steps")

        if isinstance(step, FaultStep) and step.kind == "disconnect":
            rec.outcome = "disconnect"
            if request.transport is not None:
                if step.abort:
                    request.transport.abort()
                else:
                    request.transport.close()
            return web.Response(status=200)  # never sent: the transport is closed

        if isinstance(step, FaultStep) and step.kind in ("truncated", "slow_trickle"):
            inner = step.then if step.then is not None else default(params)
            if isinstance(inner, FaultStep) and inner.kind in ("timeout", "disconnect", "truncated", "slow_trickle"):
                raise RuntimeError(f"fake llm-proxy: cannot {step.kind} a {inner.kind} step")
            if step.kind == "slow_trickle":
                rendered = render(inner, params, int((time.monotonic() - started) * 1000))
                return await self._trickle(request, rec, rendered, step.seconds, step.chunks)
            rendered = render(inner, params, int((time.monotonic() - started) * 1000))
            half = rendered.body[: max(1, len(rendered.body) // 2)]
            if not step.abort:
                return self._reply(
                    rec, Rendered(rendered.status, half, rendered.content_type, rendered.headers), "truncated"
                )
            rec.status, rec.outcome = rendered.status, "truncated"
            resp = web.StreamResponse(status=rendered.status, headers=rendered.headers)
            resp.content_type = rendered.content_type
            resp.content_length = len(rendered.body)
            await resp.prepare(request)
            await resp.write(half)
            await asyncio.sleep(0.01)  # let the half go out before the close
            if request.transport is not None:
                request.transport.close()
            return resp

        rendered = render(step, params, int((time.monotonic() - started) * 1000))
        if self._store_pool is not None and isinstance(step, DecisionAnswer):
            try:
                await store_row(self._store_pool, params, rendered.body)
                self.rows_stored += 1
            except Exception as exc:  # the real proxy logs a failed insert and answers anyway
                self.row_store_failures.append(f"{type(exc).__name__}: {exc}")
                log.warning("fake llm-proxy: failed to store analysis: %s: %s", type(exc).__name__, exc)
        return self._reply(rec, rendered)

    async def _trickle(
        self, request: web.Request, rec: RecordedRequest, rendered: Rendered, seconds: float, chunks: int
    ) -> web.StreamResponse:
        rec.status, rec.outcome = rendered.status, "answered"
        resp = web.StreamResponse(status=rendered.status, headers=rendered.headers)
        resp.content_type = rendered.content_type
        resp.content_length = len(rendered.body)
        await resp.prepare(request)
        data = rendered.body
        size = max(1, -(-len(data) // chunks))
        pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        pause = seconds / max(1, len(pieces))
        for piece in pieces:
            await self._sleep(pause)
            await resp.write(piece)
        await resp.write_eof()
        return resp
