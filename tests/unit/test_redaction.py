"""Redaction of a key in every form an error or a log line can quote it (runtime/redaction)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import httpx
import pytest

from runtime.redaction import MASK, Redactor, encoded_forms, has_unsafe_characters

KEY = "sk-llm-0123456789abcdef"


@pytest.mark.parametrize("key", [KEY, KEY + "\n", " " + KEY + "\r\n", KEY + "\t", "sk-é-ünïcode-\u202e-key\x00"])
def test_every_form_of_the_key_is_masked(key):
    redact = Redactor([key])
    texts = [
        f"Authorization: Bearer {key}",
        f"headers={{'Authorization': {('Bearer ' + key)!r}}}",
        f"Illegal header value {('Bearer ' + key).encode('utf-8', 'backslashreplace')!r}",
        f"LocalProtocolError({('Illegal header value ' + repr(('Bearer ' + key).encode()))!r})",
        json.dumps({"error": f"Bearer {key}"}),
        json.dumps({"error": f"Bearer {key}"}, ensure_ascii=False),
        f"GET /?key={quote(key, safe='')}",
        repr(ValueError(f"bad key {key!r}")),
    ]
    for text in texts:
        masked = redact(text)
        assert MASK in masked, text
        core = key.strip()
        # Neither the key nor any long piece of it survives.
        assert core not in masked and core[-12:] not in masked and core[:12] not in masked, masked


def test_the_real_httpx_error_of_a_key_with_a_newline_is_masked():
    key = KEY + "\n"
    try:
        httpx.Request("POST", "http://127.0.0.1:9/", headers={"Authorization": f"Bearer {key}"})
        request_error = ""
    except Exception as exc:  # httpx refuses some values itself; h11 refuses the rest when sending
        request_error = f"{type(exc).__name__}: {exc}"
    redact = Redactor([key])
    for text in (request_error, f"Illegal header value {('Bearer ' + key).encode()!r}"):
        assert KEY not in redact(text)


def test_nothing_else_is_touched():
    redact = Redactor([KEY, None, ""])
    assert redact("llm-proxy failed (attempt 2, HTTP 500)") == "llm-proxy failed (attempt 2, HTTP 500)"
    assert not Redactor([None, ""]) and Redactor([KEY])


@pytest.mark.parametrize("value", [KEY + "\n", " " + KEY, KEY + "\r", "sk key", "sk\x00key", "sk\u200bkey", "k\x7f"])
def test_unsafe_characters(value):
    assert has_unsafe_characters(value)


def test_a_normal_key_is_safe():
    assert not has_unsafe_characters(KEY) and not has_unsafe_characters("tmprl-AbC_123.xyz/+=")


LONG_KEY = "sk-or-v1-9f3a6c2e1b7d4f8a0c5e2d9b6a3f1e7c"


@pytest.mark.parametrize(
    "spelling",
    [
        LONG_KEY.upper(),
        LONG_KEY.lower().swapcase(),
        base64.b64encode(f"Authorization: Bearer {LONG_KEY}".encode()).decode(),
        base64.b64encode(f"Bearer {LONG_KEY}".encode()).decode(),
        base64.b64encode(f"x{LONG_KEY}".encode()).decode(),
        base64.urlsafe_b64encode(f"xx{LONG_KEY}\n".encode()).decode(),
        base64.b64encode(LONG_KEY.upper().encode()).decode(),
        f"Bearer {LONG_KEY}".encode().hex(),
        f"Bearer {LONG_KEY}".encode().hex().upper(),
    ],
)
def test_an_echoed_key_in_another_case_or_encoding_is_masked(spelling):
    masked = Redactor([LONG_KEY])(f"upstream said: {spelling} (echo)")
    assert MASK in masked and masked.startswith("upstream said: ") and masked.endswith(" (echo)")
    # No six characters of the key, or of its encodings, survive.
    assert spelling not in masked
    for form in encoded_forms(LONG_KEY) | {LONG_KEY}:
        assert not any(form[i : i + 8].lower() in masked.lower() for i in range(len(form) - 8)), form


def test_any_run_of_six_characters_of_a_long_key_is_masked_in_any_case():
    redact = Redactor([LONG_KEY])
    for start in range(0, len(LONG_KEY) - 6):
        for piece in (LONG_KEY[start : start + 6], LONG_KEY[start : start + 9].upper()):
            masked = redact(f"the model quoted «{piece}» here")
            assert piece not in masked and MASK in masked, piece
    # A cut message ending in the middle of the key keeps nothing of it.
    cut = ("error: invalid key Bearer " + LONG_KEY)[:40]
    assert LONG_KEY[:8] not in redact(cut)
    # Five characters are ordinary text; a short (weak) secret is masked whole only.
    assert redact("sk-or is a prefix") == "sk-or is a prefix"
    assert Redactor(["postgres"])("POSTGRES password; post office") == "*** password; post office"
