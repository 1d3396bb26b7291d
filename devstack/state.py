"""What a running `signal-monitor dev` tells the commands run next to it.

The stack holds an exclusive `flock` on `.dev-state/dev.lock` for its whole life and records where
its parts are in `.dev-state/stack.json` (addresses and URLs, never a secret). A command started in
the same directory reads that file only while the lock is held, i.e. while that stack is really
running: a file left by a killed stack, and the pids in it, are never trusted. The environment
always wins over the file."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

STATE_ENV = "SIGNAL_MONITOR_DEV_STATE"


def state_dir() -> Path:
    # Read before `Settings` (not one of its fields): this directory is where the environment the
    # settings are then read from comes from (apply_to_environment).
    return Path(os.environ.get(STATE_ENV) or ".dev-state")


class StackInfo(BaseModel):
    """`.dev-state/stack.json`: addresses only."""

    pid: int
    database_url: str | None = None
    temporal_address: str
    temporal_namespace: str = "default"
    temporal_ui: str | None = None
    binance_rest_url: str | None = None
    binance_ws_url: str | None = None
    task_queue: str | None = None
    replay: bool = False

    def env(self) -> dict[str, str]:
        values = {
            "DATABASE_URL": self.database_url,
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_NAMESPACE": self.temporal_namespace,
            "TEMPORAL_UI_URL": self.temporal_ui,
            "BINANCE_REST_URL": self.binance_rest_url,
            "BINANCE_WS_URL": self.binance_ws_url,
            "SIGNAL_MONITOR_TASK_QUEUE": self.task_queue,
        }
        return {k: v for k, v in values.items() if v}


class StackRunning(RuntimeError):
    pass


def without_password(url: str) -> str | None:
    """The URL as it may be written down: None when it carries a password."""
    parts = urlsplit(url)
    if parts.password:
        return None
    return urlunsplit(parts)


class StackLock:
    """The running stack's lock. `acquire` refuses at once when another stack holds it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fh: IO[str] | None = None

    @property
    def stack_file(self) -> Path:
        return self.directory / "stack.json"

    def acquire(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fh = open(self.directory / "dev.lock", "a+")  # not inherited by the stack's children (PEP 446)
        for attempt in range(5):
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # A command may hold a shared lock for an instant while it looks for a stack.
                if attempt < 4:
                    time.sleep(0.1)
        else:
            fh.close()
            info = read_running(self.directory)
            where = f" (pid {info.pid}, Temporal UI {info.temporal_ui or info.temporal_address})" if info else ""
            raise StackRunning(
                f"another `signal-monitor dev` is running in {self.directory}{where}; "
                "stop it first (Ctrl-C, or kill -TERM its pid): nothing was touched"
            ) from None
        self._fh = fh
        self.stack_file.unlink(missing_ok=True)  # left by a stack that was killed: not trusted

    def publish(self, info: StackInfo) -> None:
        tmp = self.stack_file.with_suffix(".tmp")
        tmp.write_text(info.model_dump_json(indent=2) + "\n")
        tmp.replace(self.stack_file)

    def release(self) -> None:
        self.stack_file.unlink(missing_ok=True)
        if self._fh is not None:
            self._fh.close()  # closing drops the flock
            self._fh = None


def _locked_by_someone(directory: Path) -> bool:
    path = directory / "dev.lock"
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def read_running(directory: Path | None = None) -> StackInfo | None:
    """The running stack's addresses, or None when no stack holds the lock here."""
    directory = directory or state_dir()
    if not _locked_by_someone(directory):
        return None
    with contextlib.suppress(OSError, ValueError):
        return StackInfo.model_validate(json.loads((directory / "stack.json").read_text()))
    return None


def apply_to_environment(directory: Path | None = None) -> StackInfo | None:
    """Fill in what the environment does not set from a running stack next to us."""
    info = read_running(directory)
    if info is not None:
        for key, value in info.env().items():
            os.environ.setdefault(key, value)
    return info
