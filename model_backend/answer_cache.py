"""A content-addressed cache of model answers (the backtest's, on by default there): the request
body (messages, model, temperature, max tokens, response format) hashed → the answer. Rerunning
the same backtest makes no call and costs nothing; any change to the prompt, the candles, the model
or its parameters is a different key. One JSON file per answer: inspectable, and an audit trail."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from model_backend.client import Completion


def request_key(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class AnswerCache:
    def __init__(self, directory: Path):
        self.directory = directory
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, body: dict[str, Any]) -> Completion | None:
        path = self._path(request_key(body))
        try:
            stored = json.loads(path.read_text())
            completion = Completion(**stored["completion"])
        except (OSError, ValueError, KeyError, TypeError):
            self.misses += 1
            return None
        self.hits += 1
        return completion

    def put(self, body: dict[str, Any], completion: Completion) -> None:
        path = self._path(request_key(body))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"model": body.get("model"), "completion": asdict(completion)}, default=str))
        tmp.replace(path)
