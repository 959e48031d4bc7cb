"""The stored form of a push: a JSON header line, then the body (its token blanked)."""

from __future__ import annotations

import json

import orjson
from hypothesis import assume, example, given
from hypothesis import strategies as st

from hookbird.stored import HEADER_FIELDS, pack_push, unpack_push, without_token

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


TOKEN = "stored-token-0123456789"


def test_the_token_is_blanked_and_every_other_byte_kept() -> None:
    """A push as Moneybird sends it (compact) or as json.dumps writes it: only the token's
    value changes, to ""."""
    compact = b'{"administration_id":"1","webhook_token":"%s","entity":{"a":1}}' % TOKEN.encode()
    blanked = without_token(compact, TOKEN, orjson.loads(compact))
    assert blanked == b'{"administration_id":"1","webhook_token":"","entity":{"a":1}}'
    spaced = json.dumps({"webhook_token": TOKEN, "action": "x"}, indent=1).encode()
    assert without_token(spaced, TOKEN, json.loads(spaced)) == spaced.replace(TOKEN.encode(), b"")


@given(
    extra=st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(), max_size=5),
    token=st.text(min_size=1, max_size=30),
    escape=st.booleans(),
)
@example(extra={"big": -(2**63) - 1}, token="\x7f", escape=True)  # orjson: a float
def test_any_body_keeps_its_other_fields_and_loses_its_token(
    extra: dict[str, object], token: str, escape: bool
) -> None:
    """Whatever the fields, the token's spelling (escapes, non-ASCII) or where else it
    appears, the result is JSON with the same fields and an empty webhook_token."""
    data = {**extra, "webhook_token": token, "note": token}
    body = json.dumps(data, ensure_ascii=escape).encode("utf-8", "surrogatepass")
    try:
        parsed = orjson.loads(body)  # as the receiver reads it; it refuses the rest with 400
    except orjson.JSONDecodeError:
        assume(False)
    blanked = without_token(body, token, parsed)
    assert json.loads(blanked) == {**data, "webhook_token": ""}


def test_a_body_without_a_token_is_left_alone() -> None:
    """Nothing to blank: the very same bytes."""
    body = b'{"action":"x","webhook_token":""}'
    assert without_token(body, "", json.loads(body)) is body
    assert without_token(body, None, json.loads(body)) is body


def test_a_repeated_field_is_rewritten_not_spliced() -> None:
    """Two webhook_token fields (JSON keeps the last): the body is written anew, token gone."""
    body = b'{"webhook_token":"%s","a":1,"webhook_token": "%s"}' % ((TOKEN.encode(),) * 2)
    blanked = without_token(body, TOKEN, orjson.loads(body))
    assert TOKEN.encode() not in blanked
    assert json.loads(blanked) == {"webhook_token": "", "a": 1}
