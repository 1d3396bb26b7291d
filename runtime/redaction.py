"""Secrets out of text: every form a secret takes when an error or a log line quotes it.

A key reaches messages verbatim (`Bearer <key>`), as a Python repr (`'<key>\\n'`), as bytes
(`b'Bearer <key>\\n'`, h11's "Illegal header value"), JSON-escaped, URL-quoted, or repr'd twice
inside another exception's repr; with or without the whitespace around it. Pure: no I/O."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"


def has_unsafe_characters(value: str) -> bool:
    """Whitespace or control characters: never part of a real key, often a pasted newline."""
    return any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in value)


def forms(secret: str) -> set[str]:
    """The spellings of `secret` (and of it stripped) that text can contain."""
    found: set[str] = set()
    for base in {secret, secret.strip()}:
        if not base:
            continue
        once = {
            base,
            repr(base)[1:-1],
            repr(base.encode("utf-8", "backslashreplace"))[2:-1],
            json.dumps(base)[1:-1],
            json.dumps(base, ensure_ascii=False)[1:-1],
            quote(base, safe=""),
            quote_plus(base, safe=""),
        }
        # Quoted once more inside another repr (an exception whose message holds a repr).
        found |= once | {repr(f)[1:-1] for f in once}
    return {f for f in found if f}


class Redactor:
    def __init__(self, secrets: Iterable[str | None]):
        spellings: set[str] = set()
        for secret in secrets:
            if secret:
                spellings |= forms(secret)
        # Longest first: a form containing another is masked whole.
        self._forms = sorted(spellings, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def __bool__(self) -> bool:
        return bool(self._forms)
