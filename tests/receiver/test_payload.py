"""parse_push: what a push body must look like, without Redis or sockets."""

from __future__ import annotations

import json

import pytest

from receiver.payload import MAX_DEPTH, MalformedPush, nested_deeper_than, normalise_id, parse_push


def body(**fields: object) -> bytes:
    data: dict[str, object] = {"action": "contact_created", "administration_id": "123"}
    data.update(fields)
    return json.dumps(data).encode()


def test_string_and_integer_ids_are_both_kept_as_str() -> None:
    """Old payloads send integer IDs; every ID comes out as the same string."""
    push = parse_push(body(administration_id=123, webhook_id="9", entity_id=496081234567890123))
    assert push.administration_id == "123"
    assert push.webhook_id == "9"
    assert push.entity_id == "496081234567890123"


def test_full_push_fields() -> None:
    """The fields the receiver needs are read from a realistic push."""
    push = parse_push(
        body(
            webhook_id="1",
            webhook_token="tok",
            entity_type="Contact",
            entity_id="2",
            state="active",
            entity={"id": "2"},
        )
    )
    assert (push.action, push.entity_type, push.state, push.webhook_token) == (
        "contact_created",
        "Contact",
        "active",
        "tok",
    )
    assert push.data["entity"] == {"id": "2"}
    assert not push.is_test


def test_test_webhook_takes_its_token_from_token() -> None:
    """Moneybird's registration call names the token `token` and has no webhook_id."""
    push = parse_push(b'{"action":"test_webhook","administration_id":"5","token":"abc"}')
    assert push.is_test
    assert push.webhook_token == "abc"
    assert push.webhook_id is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not valid JSON"),
        (b'{"action": "x", ', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"contact_created"', "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b'{"administration_id": "1"}', "action"),
        (b'{"action": 5, "administration_id": "1"}', "action"),
        (b'{"action": "", "administration_id": "1"}', "action"),
        (b'{"action": "x"}', "administration_id is missing"),
        (b'{"action": "x", "administration_id": "abc"}', "administration_id must be an ID"),
        (b'{"action": "x", "administration_id": true}', "administration_id must be an ID"),
        (b'{"action": "x", "administration_id": -1}', "out of range"),
        (b'{"action": "x", "administration_id": 18446744073709551616}', "out of range"),
        (b'{"action": "x", "administration_id": 1.5}', "must be an ID"),
        (b'{"action": "x", "administration_id": 0.0}', "must be an ID"),
        (b'{"action": "x", "administration_id": 18446744073709551616.0}', "out of range"),
        (b'{"action": "x", "administration_id": "1", "entity": [1]}', "entity must be"),
        (b'{"action": "x", "administration_id": "1", "webhook_token": 7}', "webhook_token"),
        (b'{"action": "x", "administration_id": "1", "entity_type": {}}', "entity_type"),
        (b'{"action": "x", "administration_id": NaN}', "invalid JSON constant"),
        (b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
        (b'{"action": "x", "administration_id": "1", "note": "\\ud800"}', "not valid JSON"),
        (b'{"action": "x", "administration_id": "1", "total": 1e400}', "not valid JSON"),
        (b'{"action": "x", "administration_id": 1e30}', "out of range"),
        (b'{"action": "x", "administration_id": "1", "n": Infinity}', "constant Infinity"),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    """Each kind of broken body raises MalformedPush naming the problem."""
    with pytest.raises(MalformedPush, match=reason):
        parse_push(raw)


def test_deeply_nested_entity_is_refused() -> None:
    """10,000 levels inside a valid-looking push do not crash the parser."""
    raw = b'{"action":"x","administration_id":"1","entity":' + b'{"a":' * 10_000
    raw += b"1" + b"}" * 10_000 + b"}"
    with pytest.raises(MalformedPush):
        parse_push(raw)


def nested(depth: int) -> bytes:
    """A push whose deepest container is ``depth`` levels down (the push itself is 1)."""
    inner = b'{"a":' * (depth - 2) + b"[]" + b"}" * (depth - 2)
    return b'{"action":"x","administration_id":"1","entity":' + inner + b"}"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 200, 1000])
def test_nesting_past_the_limit_is_refused(depth: int) -> None:
    """Deeper than MAX_DEPTH, even where orjson reads it (1000): 400, before the workers'
    json module or a recursive walk could hit the recursion limit."""
    with pytest.raises(MalformedPush, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_push(nested(depth))


def test_the_nesting_limit_is_64_levels() -> None:
    """64 levels parse, 65 do not (a Moneybird push is a handful deep)."""
    assert parse_push(nested(64)).action == "x"
    with pytest.raises(MalformedPush, match="nested deeper than 64 levels"):
        parse_push(nested(65))


def test_nesting_up_to_the_limit_is_accepted() -> None:
    """Exactly MAX_DEPTH levels, and many shallow containers (the walk's trigger), parse."""
    assert parse_push(nested(MAX_DEPTH)).action == "x"
    wide = body(entity={"details": [{"id": str(n), "tax": {"rate": n}} for n in range(200)]})
    assert parse_push(wide).entity_id is None


def test_nested_deeper_than_counts_levels_from_the_top() -> None:
    """The top container is level 1; lists and objects both count."""
    assert not nested_deeper_than({"a": [{"b": []}]}, 4)
    assert nested_deeper_than({"a": [{"b": []}]}, 3)
    assert not nested_deeper_than({"a": "[[[[", "b": 1}, 1)


def test_normalise_id_bounds() -> None:
    """IDs are unsigned 64-bit: the largest passes, digits-only strings only."""
    assert normalise_id(2**64 - 1, "x", required=True) == str(2**64 - 1)
    assert normalise_id("0042", "x", required=True) == "42"
    assert normalise_id(None, "x", required=False) is None
    # strings already in canonical form come back as they are, the rest through int()
    assert normalise_id("0", "x", required=True) == "0"
    assert normalise_id("00", "x", required=True) == "0"
    assert normalise_id("9" * 19, "x", required=True) == "9" * 19
    assert normalise_id(str(2**64 - 1), "x", required=True) == str(2**64 - 1)
    with pytest.raises(MalformedPush, match="out of range"):
        normalise_id(str(2**64), "x", required=True)
    with pytest.raises(MalformedPush):
        normalise_id("", "x", required=True)
    with pytest.raises(MalformedPush):
        normalise_id("١٢", "x", required=True)  # non-ASCII digits


def test_an_id_string_may_be_20_characters_not_21() -> None:
    """Leading zeros are read up to 20 characters; a longer string is refused before any
    conversion, whatever its value."""
    assert normalise_id("0" * 18 + "42", "x", required=True) == "42"
    with pytest.raises(MalformedPush, match="must be an ID"):
        normalise_id("0" * 19 + "42", "x", required=True)


def test_a_push_never_shows_its_token() -> None:
    """A Push that ends up in a log line or a traceback does not carry the token along."""
    push = parse_push(body(webhook_id="1", webhook_token="s3cret-token", entity_id="2"))
    assert "s3cret-token" not in repr(push)
    assert "entity_id='2'" in repr(push)


@pytest.mark.parametrize("field", ["action", "entity_type", "state"])
def test_names_of_200_characters_pass_and_201_are_refused(field: str) -> None:
    """``action``, ``entity_type`` and ``state`` may be 200 characters long, not 201."""
    assert getattr(parse_push(body(**{field: "a" * 200})), field) == "a" * 200
    with pytest.raises(MalformedPush, match=field):
        parse_push(body(**{field: "a" * 201}))
