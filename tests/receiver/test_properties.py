"""Property-based tests for the signature parser and the payload normaliser."""

from __future__ import annotations

import contextlib
import json

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hookbird.signing import sign
from receiver.payload import MalformedPush, parse_push
from receiver.verify import VerificationFailure, parse_signature, verify_signature

hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
ids = st.integers(min_value=0, max_value=2**64 - 1)


@given(st.text(max_size=300))
def test_signature_parser_only_ever_raises_verification_failure(header: str) -> None:
    """Any header text parses or raises VerificationFailure, never anything else."""
    try:
        parsed = parse_signature(header)
    except VerificationFailure:
        return
    assert parsed.v1
    assert parsed.timestamp >= 0


@given(
    st.integers(min_value=0, max_value=10**11),
    st.lists(hex64, min_size=1, max_size=16),
    st.lists(st.sampled_from(["v0=x", "v2=abc", "scheme=1"]), max_size=3),
)
def test_signature_header_round_trips(t: int, v1s: list[str], unknown: list[str]) -> None:
    """t and every v1 survive formatting and parsing; unknown schemes are ignored."""
    header = ",".join([f"t={t}", *unknown, *(f"v1={v}" for v in v1s)])
    parsed = parse_signature(header)
    assert parsed.timestamp == t
    assert parsed.v1 == tuple(v1s)


@settings(max_examples=200)
@given(
    st.binary(max_size=2000),
    st.text(min_size=1, max_size=64),
    st.integers(min_value=-300, max_value=300),
)
def test_a_fresh_signature_verifies_and_any_changed_byte_does_not(
    body: bytes, secret: str, skew: int
) -> None:
    """sign() then verify() passes within the tolerance; flipping one body byte fails."""
    now = 1_790_000_000
    header = f"t={now + skew},v1={sign(body, secret, now + skew)}"
    verify_signature(body, header, (secret,), now=now, tolerance=300)
    if body:
        changed = bytes([body[0] ^ 1]) + body[1:]
        try:
            verify_signature(changed, header, (secret,), now=now, tolerance=300)
        except VerificationFailure:
            pass
        else:
            raise AssertionError("a changed body verified")


@given(st.binary(max_size=500))
def test_arbitrary_bytes_parse_or_are_malformed(body: bytes) -> None:
    """Whatever arrives, parse_push returns a Push or raises MalformedPush."""
    with contextlib.suppress(MalformedPush):
        parse_push(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "action",
                "administration_id",
                "webhook_id",
                "webhook_token",
                "entity_type",
                "entity_id",
                "state",
                "entity",
                "token",
                "other",
            ]
        ),
        json_values,
    )
)
def test_arbitrary_objects_parse_or_are_malformed(data: dict[str, object]) -> None:
    """Any JSON object with any field types is accepted or refused cleanly."""
    try:
        push = parse_push(json.dumps(data).encode())
    except MalformedPush:
        return
    assert isinstance(push.action, str)
    assert push.administration_id.isdigit()


@given(ids, ids, ids, st.booleans())
def test_ids_are_strings_whether_sent_as_numbers_or_strings(
    administration: int, webhook: int, entity: int, as_text: bool
) -> None:
    """Integer and string forms of the same IDs normalise to the same decimal strings."""
    wrap = str if as_text else int
    data = {
        "action": "contact_created",
        "administration_id": wrap(administration),
        "webhook_id": wrap(webhook),
        "entity_id": wrap(entity),
    }
    push = parse_push(json.dumps(data).encode())
    assert (push.administration_id, push.webhook_id, push.entity_id) == (
        str(administration),
        str(webhook),
        str(entity),
    )


@given(st.integers().filter(lambda n: n < 0 or n >= 2**64))
def test_ids_outside_64_bits_are_refused(value: int) -> None:
    """Negative IDs and IDs past 64 bits are malformed, as numbers and as strings."""
    for form in (value, str(value)):
        data = {"action": "x", "administration_id": form}
        assume(len(str(value)) < 4000)
        try:
            parse_push(json.dumps(data).encode())
        except MalformedPush:
            continue
        raise AssertionError(f"accepted administration_id {form!r}")
