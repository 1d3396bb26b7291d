"""Redaction of a key in every form an error or a log line can quote it (runtime/redaction)."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest

from runtime.redaction import MASK, Redactor, has_unsafe_characters

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
