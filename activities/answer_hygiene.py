"""A model's answer is data: what of it is kept, and in what shape, before it reaches workflow
history, a row or a log.

- Text: NUL and lone surrogates (PostgreSQL's `text` and `jsonb` hold neither; asyncpg cannot even
  encode a surrogate) become U+FFFD; secrets are masked (before any cut, so no piece survives a
  cut); then the text is cut to its bound.
- JSON objects (key levels, trade plan, indicators, action details, risk): the same for every
  string and key; NaN and infinities (jsonb refuses them) become null; nesting deeper than
  `MAX_DEPTH` is dropped; an object larger than `MAX_OBJECT_BYTES` is replaced by a note.
- Lists of price levels longer than `MAX_LEVELS`: targets (`takeProfit`, `newTakeProfit`) make the
  answer bad (a trade is never built from a trimmed list the model did not give); supports and
  resistances are trimmed.
- `tokensUsed` outside PostgreSQL's `integer` is dropped.

Every change is a note; the notes are appended to the kept reasoning (`[signal-monitor: ...]`) and
logged, so whoever reads the row or the history sees what was changed. One analysis or decision adds
at most about 50 KB to history: reasoning 8,000 characters, raw answer 16,000, each object 8 KiB.
Pure: no I/O."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_REASONING_CHARS = 8_000
MAX_RAW_CHARS = 16_000
MAX_MODEL_NAME_CHARS = 200
MAX_OBJECT_BYTES = 8 * 1024
MAX_LEVELS = 20
MAX_DEPTH = 16
INT_MAX = 2**31 - 1  # PostgreSQL `integer`
TARGET_LISTS = frozenset({"takeProfit", "newTakeProfit"})
LEVEL_LISTS = frozenset({"support", "resistance"})

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class TooLarge(ValueError):
    """Part of the answer is over a bound that makes the answer unusable (the message says which)."""


@dataclass
class AnswerHygiene:
    """Cleans one answer; `redact` masks the process's secrets. Collects notes on what it changed."""

    redact: Callable[[str], str] = field(default=lambda text: text)
    notes: list[str] = field(default_factory=list)
    # The raw answer whole (cleaned and masked) when history keeps only its first MAX_RAW_CHARS.
    full_raw: str | None = None

    def text(self, value: str, what: str, limit: int) -> str:
        masked = self._string(value, what)
        if len(masked) > limit:
            self.notes.append(f"{what}: cut from {len(masked):,} to {limit:,} characters")
            masked = masked[:limit]
        return masked

    def raw(self, value: str) -> str:
        """The raw answer as history keeps it; the whole of it in `full_raw` when that is cut."""
        whole = self.text(value, "rawAiResponse", len(value))
        if len(whole) <= MAX_RAW_CHARS:
            return whole
        self.full_raw = whole
        self.notes.append(f"rawAiResponse: {len(whole):,} characters, history keeps {MAX_RAW_CHARS:,}, the row all")
        return whole[:MAX_RAW_CHARS]

    def tokens(self, value: Any) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if not 0 <= value <= INT_MAX:
            self.notes.append(f"tokensUsed {str(value)[:30]} out of range: dropped")
            return None
        return value

    def obj(self, value: Any, what: str) -> dict[str, Any] | None:
        """A JSON object cleaned and bounded, or None when it is not an object."""
        if not isinstance(value, dict):
            return None
        cleaned = self._json(value, what, 0)
        size = len(json.dumps(cleaned, ensure_ascii=False).encode("utf-8"))
        if size > MAX_OBJECT_BYTES:
            self.notes.append(f"{what}: {size:,} bytes, over the bound of {MAX_OBJECT_BYTES:,}: not kept")
            return {"trimmed": f"{what} was {size:,} bytes (bound {MAX_OBJECT_BYTES:,})"}
        return cleaned

    def levels(self, value: Any, what: str) -> dict[str, Any] | None:
        """Key levels / action details: target lists over `MAX_LEVELS` are `TooLarge`; support and
        resistance lists are trimmed; then cleaned and bounded as any object, except that an
        object still too large is `TooLarge` (levels are what a trade is built from)."""
        if not isinstance(value, dict):
            return None
        trimmed = dict(value)
        for key, items in value.items():
            if not isinstance(items, list) or len(items) <= MAX_LEVELS:
                continue
            if key in TARGET_LISTS:
                raise TooLarge(f"{what}.{key} has {len(items):,} levels (at most {MAX_LEVELS})")
            if key in LEVEL_LISTS:
                self.notes.append(f"{what}.{key}: {len(items):,} levels, kept the first {MAX_LEVELS}")
                trimmed[key] = items[:MAX_LEVELS]
        cleaned = self._json(trimmed, what, 0)
        size = len(json.dumps(cleaned, ensure_ascii=False).encode("utf-8"))
        if size > MAX_OBJECT_BYTES:
            raise TooLarge(f"{what} is {size:,} bytes (at most {MAX_OBJECT_BYTES:,})")
        return cleaned

    def _json(self, value: Any, what: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            self.notes.append(f"{what}: nesting deeper than {MAX_DEPTH} dropped")
            return None
        if isinstance(value, str):
            return self._string(value, what)
        if isinstance(value, float) and not math.isfinite(value):
            self.notes.append(f"{what}: a non-finite number ({value}) replaced by null")
            return None
        if isinstance(value, dict):
            return {self._string(str(k), what): self._json(v, what, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self._json(v, what, depth + 1) for v in value]
        return value

    def _string(self, value: str, what: str) -> str:
        cleaned, replaced = _UNSTORABLE.subn(REPLACEMENT, value)
        if replaced:
            self.notes.append(f"{what}: {replaced} character(s) a database cannot hold replaced by U+FFFD")
        masked = self.redact(cleaned)
        if masked != cleaned:
            self.notes.append(f"{what}: a secret masked")
        return masked

    def annotated(self, reasoning: str) -> str:
        """The reasoning with the notes (each once, in order) appended."""
        if not self.notes:
            return reasoning
        notes = "; ".join(dict.fromkeys(self.notes))
        return f"{reasoning}\n[signal-monitor: {notes}]"[: MAX_REASONING_CHARS + 2_000]


def storable_text(value: str | None) -> str | None:
    """A text column's value: what PostgreSQL cannot hold replaced (the database activities' own
    guard, for answers recorded before the cleaning above existed)."""
    return None if value is None else _UNSTORABLE.sub(REPLACEMENT, value)


def storable_json(value: Any) -> Any:
    """A jsonb column's value: strings as `storable_text`, NaN and infinities as null."""
    return AnswerHygiene()._json(value, "", 0)


def storable_int(value: int | None) -> int | None:
    """An `integer` column's value: out of range is NULL."""
    return value if value is not None and -INT_MAX - 1 <= value <= INT_MAX else None
