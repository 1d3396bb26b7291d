"""A hostile llm-proxy stand-in that writes raw bytes: HTTP/1.1 on a plain asyncio server, so it can
do what no well-behaved server framework lets a handler do (a second complete response on a
kept-alive connection, a stale answer before the real one, a gzip bomb, a body larger than it
says). Tests only; each request is answered by `respond(request, connection_index)`, which returns
the exact bytes to write."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fakes.llm_proxy.names import FAKE_MODEL_NAME


@dataclass
class RawRequest:
    connection: int  # which TCP connection (1, 2, ...) it came on
    number_on_connection: int  # 1 for the connection's first request
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def params(self) -> dict[str, Any]:
        params = self.body.get("params")
        return params if isinstance(params, dict) else {}


Responder = Callable[[RawRequest], bytes]


def http_response(body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> bytes:
    head = [f"HTTP/1.1 {status} OK", f"Content-Length: {len(body)}", "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def answer_json(signal_id: Any, decision: str, confidence: float, **data: Any) -> bytes:
    """A contract answer (analyze-signal) naming `signal_id`."""
    payload = {
        "signalId": signal_id,
        "decision": decision,
        "confidence": confidence,
        "reasoning": f"[raw stand-in] {decision}",
        "keyLevels": {"entry": 100.0, "stopLoss": 98.0, "takeProfit": [102.0, 104.0]},
        "metadata": {"tokensUsed": 100, "modelName": FAKE_MODEL_NAME, "rawAiResponse": "{}"},
        **data,
    }
    return json.dumps({"success": True, "data": payload}).encode()


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A gzip body of `inflated_bytes` zeros (about a thousandth of that as sent)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * (1 << 20)
    parts = [packer.compress(chunk) for _ in range(inflated_bytes >> 20)]
    return b"".join(parts) + packer.flush()


@dataclass
class RawLlmProxy:
    respond: Responder
    requests: list[RawRequest] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _connections: int = 0
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/functions/v1/llm-proxy"

    async def __aenter__(self) -> RawLlmProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def for_signal(self, signal_id: str) -> list[RawRequest]:
        return [r for r in self.requests if r.params.get("signalId") == signal_id]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        connection, served = self._connections, 0
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                served += 1
                request = RawRequest(connection, served, headers, json.loads(raw))
                self.requests.append(request)
                writer.write(self.respond(request))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
