"""Exchange credentials: only from the worker's keys file (`SIGNAL_MONITOR_EXCHANGE_KEYS_FILE`), a
JSON object mapping each exchange account id to `{"api_key": ..., "api_secret": ...}`. The file is
refused when other users can read it; the keys never leave this module's objects (not in inputs,
results, rows or logs: `repr` hides them)."""

from __future__ import annotations

import json
import os
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path


class KeysFileError(RuntimeError):
    pass


@dataclass(frozen=True)
class Credentials:
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)


def load_keys_file(path: Path) -> dict[str, Credentials]:
    try:
        info = path.stat()
    except OSError as err:
        raise KeysFileError(f"exchange keys file {path}: {err.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeysFileError(
            f"exchange keys file {path} is readable by other users (mode {stat.S_IMODE(info.st_mode):o}); "
            "run: chmod 600 " + str(path)
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise KeysFileError(f"exchange keys file {path} is not valid JSON ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise KeysFileError(f"exchange keys file {path} must be a JSON object of account id -> keys")
    keys: dict[str, Credentials] = {}
    for account_id, entry in data.items():
        try:
            canonical = str(uuid.UUID(str(account_id)))
        except ValueError:
            raise KeysFileError(f"exchange keys file {path}: {str(account_id)[:40]!r} is not an account id") from None
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("api_key"), str)
            and isinstance(entry.get("api_secret"), str)
            and entry["api_key"].strip()
            and entry["api_secret"].strip()
        ):
            raise KeysFileError(f"exchange keys file {path}: account {canonical} needs api_key and api_secret")
        keys[canonical] = Credentials(entry["api_key"].strip(), entry["api_secret"].strip())
    return keys


def write_keys_file(path: Path, keys: dict[str, tuple[str, str]]) -> None:
    """For the dev stack and tests: owner-only from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({k: {"api_key": a, "api_secret": s} for k, (a, s) in keys.items()}, f)
