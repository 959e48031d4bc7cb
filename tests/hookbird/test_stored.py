"""The stored form of a push: a JSON header line, then the raw body, unchanged."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from hookbird.stored import HEADER_FIELDS, pack_push, unpack_push

texts = st.text()  # any str, lone surrogates included (header values come from latin-1 or JSON)


@given(header=st.dictionaries(st.sampled_from(HEADER_FIELDS) | texts, texts), body=st.binary())
def test_any_header_and_body_come_back_unchanged(header: dict[str, str], body: bytes) -> None:
    stored = pack_push(header, body)
    assert stored.index(b"\n") == len(stored) - len(body) - 1  # the header is one line
    assert stored.startswith(json.dumps(header, separators=(",", ":")).encode() + b"\n")
    assert unpack_push(stored) == {**header, "body": body}


def test_the_header_is_ascii_json_even_for_non_ascii_values() -> None:
    stored = pack_push({"user_agent": "Moneybird ☃\n", "action": "contact_created"}, b"{}\n{}")
    head, _, body = stored.partition(b"\n")
    assert head.isascii()
    assert json.loads(head)["user_agent"] == "Moneybird ☃\n"
    assert body == b"{}\n{}"


def test_a_value_without_a_readable_header_is_all_body() -> None:
    assert unpack_push(b'{"action": "x"') == {"body": b'{"action": "x"'}
    assert unpack_push(b"not json\n{}") == {"body": b"not json\n{}"}
    assert unpack_push(b"[1]\n{}") == {"body": b"[1]\n{}"}


def test_a_missing_value_is_empty() -> None:
    assert unpack_push(None) == {}


def test_a_decoded_reply_is_read_too() -> None:
    assert unpack_push('{"action":"contact_created"}\n{}') == {
        "action": "contact_created",
        "body": b"{}",
    }


def test_headers_orjson_cannot_write_take_the_quoting_path() -> None:
    """A lone surrogate (orjson refuses it) and DEL (orjson leaves it raw) are escaped as
    json.dumps escapes them, so the stored bytes never depend on which path wrote them."""
    for value in ("\ud800", "a\x7fb", 'say "hi"'):
        header = {"user_agent": value}
        expected = json.dumps(header, separators=(",", ":")).encode() + b"\n{}"
        assert pack_push(header, b"{}") == expected
