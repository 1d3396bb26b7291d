"""Local stand-ins for the services the product talks to (Binance, llm-proxy, the Temporal dev
server), shared by the tests, the benchmarks and the offline `dev` stack."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
