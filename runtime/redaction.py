"""Secrets out of text: every form a secret takes when an error or a log line quotes it.

A key reaches messages verbatim (`Bearer <key>`), as a Python repr (`'<key>\\n'`), as bytes
(`b'Bearer <key>\\n'`, h11's "Illegal header value"), JSON-escaped, URL-quoted, or repr'd twice
inside another exception's repr; with or without the whitespace around it; and in the spellings
an upstream echo gives it: upper- or lower-cased, base64 (any alignment, standard or URL-safe) or
hex. A long secret (`RUN_MASKING_MIN_LENGTH`+ characters) is masked by its pieces too: any run of
`MIN_RUN` or more characters of one of those spellings, in any case, so a cut message (or a model
quoting part of the key) keeps no piece long enough to help. Pure: no I/O."""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
# Runs this long of a secret's spelling are masked wherever they appear; shorter ones are common
# text. Secrets shorter than RUN_MASKING_MIN_LENGTH (a weak database password like "postgres")
# would mask ordinary words by their pieces: only their whole spellings are masked.
MIN_RUN = 6
RUN_MASKING_MIN_LENGTH = 12


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


def encoded_forms(secret: str) -> set[str]:
    """The secret's base64 (each of the three byte alignments inside a longer encoded text, the
    characters that depend on the secret's bytes alone; standard and URL-safe) and hex, for the
    secret as given, upper- and lower-cased."""
    found: set[str] = set()
    for base in {secret.strip(), secret.strip().upper(), secret.strip().lower()}:
        raw = base.encode("utf-8", "backslashreplace")
        if not raw:
            continue
        found.add(raw.hex())
        for pad in range(3):
            encoded = base64.b64encode(b"\0" * pad + raw).decode("ascii")
            first_group = 1 if pad else 0  # the group holding padding bytes also holds a guess
            last_group = (pad + len(raw)) // 3  # groups made only of the secret's bytes
            whole = encoded[4 * first_group : 4 * last_group]
            if whole:
                found |= {whole, whole.replace("+", "-").replace("/", "_")}
    return found


# Lower-cases ASCII only: the text keeps its length, so positions found in it are the original's.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _runs_of(spellings: Iterable[str]) -> frozenset[str]:
    """Every MIN_RUN-character window of the spellings, ASCII-lower-cased."""
    return frozenset(s.translate(_ASCII_LOWER)[i : i + MIN_RUN] for s in spellings for i in range(len(s) - MIN_RUN + 1))


class Redactor:
    def __init__(self, secrets: Iterable[str | None]):
        spellings: set[str] = set()
        run_spellings: set[str] = set()
        for secret in secrets:
            if secret:
                whole = forms(secret) | encoded_forms(secret)
                spellings |= whole
                if len(secret.strip()) >= RUN_MASKING_MIN_LENGTH:
                    run_spellings |= whole
        # Longest first: a form containing another is masked whole.
        self._forms = sorted(spellings, key=len, reverse=True)
        self._whole = re.compile("|".join(re.escape(f) for f in self._forms), re.IGNORECASE) if self._forms else None
        self._runs = _runs_of(run_spellings)

    def __call__(self, text: str) -> str:
        if self._whole is not None:
            text = self._whole.sub(MASK, text)
        if not self._runs:
            return text
        # A set lookup per position (one pass, ~0.2 s per MB): a regex of the windows tries each of
        # them at every position and took 7 s for a 900 KB answer.
        low, runs = text.translate(_ASCII_LOWER), self._runs
        starts = [i for i in range(len(low) - MIN_RUN + 1) if low[i : i + MIN_RUN] in runs]
        if not starts:
            return text
        masked = bytearray(len(text))
        for start in starts:
            masked[start : start + MIN_RUN] = b"\1" * MIN_RUN
        out: list[str] = []
        i = 0
        while i < len(text):
            if masked[i]:
                while i < len(text) and masked[i]:
                    i += 1
                out.append(MASK)
            else:
                j = masked.find(1, i)
                j = len(text) if j < 0 else j
                out.append(text[i:j])
                i = j
        return "".join(out)

    def __bool__(self) -> bool:
        return bool(self._forms)
