"""Reading an llm-proxy answer without trusting it: bounded bytes, and connections that carried
bytes nobody asked for are not reused.

- `read_bounded`: the body as sent (`aiter_raw`, never httpx's own decoder, which inflates a whole
  chunk at once) at most `limit` bytes, decoded (gzip or zlib-deflate, the only encodings we ask
  for) at most `limit` bytes, inflated a piece at a time (`max_length`), so a 1 MB gzip bomb costs
  at most `limit` bytes of memory, never its gigabyte.
- `drop_poisoned_connections`: an HTTP/1.1 connection that received more than the one response it
  was asked for (a second complete response on a kept-alive connection) holds those bytes in its
  parser's buffer and would hand them to the next request as its answer. After every exchange the
  pool's idle connections with bytes waiting are closed. (httpcore's own check catches bytes still
  in the socket, not bytes its parser already read: it sees only the socket.)"""

from __future__ import annotations

import zlib
from typing import Any

import httpx

_DECODERS = {
    "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "x-gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "deflate": lambda: zlib.decompressobj(zlib.MAX_WBITS),
}
ACCEPT_ENCODING = "gzip, deflate"


class AnswerTooLarge(ValueError):
    pass


class AnswerUnreadable(ValueError):
    pass


async def read_bounded(response: httpx.Response, limit: int) -> bytes:
    """The decoded body of `response` (opened with `client.stream`), or AnswerTooLarge /
    AnswerUnreadable. Stops reading as soon as a bound is passed (the connection is then closed)."""
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise AnswerTooLarge(f"Content-Length {int(declared):,} bytes, over the bound of {limit:,}")
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        decoder = None
    elif encoding in _DECODERS:
        decoder = _DECODERS[encoding]()
    else:
        raise AnswerUnreadable(f"Content-Encoding {encoding[:40]!r} was not asked for")
    received = 0
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > limit:
                raise AnswerTooLarge(f"over {limit:,} bytes as sent")
            if decoder is None:
                body += chunk
            else:
                body += decoder.decompress(chunk, limit + 1 - len(body))
                if decoder.unconsumed_tail:
                    raise AnswerTooLarge(f"over {limit:,} bytes decompressed ({received:,} bytes as sent)")
            if len(body) > limit:
                raise AnswerTooLarge(f"over {limit:,} bytes decompressed ({received:,} bytes as sent)")
        if decoder is not None:
            body += decoder.flush(limit + 1 - len(body)) if len(body) <= limit else b""
            if len(body) > limit:
                raise AnswerTooLarge(f"over {limit:,} bytes decompressed ({received:,} bytes as sent)")
    except zlib.error as exc:
        raise AnswerUnreadable(f"{encoding} body does not decode: {exc}") from None
    return bytes(body)


async def drop_poisoned_connections(client: httpx.AsyncClient) -> int:
    """Closes the idle connections of `client`'s pool whose parser holds unread bytes; returns how
    many. Reads httpcore's connection objects (no public API says "bytes waiting"): if their shape
    changes this finds nothing, and tests/hostile/test_answers.py fails."""
    pool: Any = getattr(getattr(client, "_transport", None), "_pool", None)
    dropped = 0
    for connection in list(getattr(pool, "connections", None) or []):
        http11 = getattr(connection, "_connection", None) or connection
        parser = getattr(http11, "_h11_state", None)
        if parser is None or not http11.is_idle():
            continue
        waiting, _closed = parser.trailing_data
        if waiting:
            await http11.aclose()
            dropped += 1
    return dropped
