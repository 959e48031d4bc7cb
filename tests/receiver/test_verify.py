"""Token and Moneybird-Signature checks, with vectors computed independently here."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from hookbird.signing import sign
from hookbird.subscriptions import token_digest
from receiver.verify import (
    Credentials,
    Signature,
    VerificationFailure,
    authenticate,
    parse_signature,
    verify_signature,
)

SECRET = "whsec-test-not-a-real-secret"
BODY = b'{"action":"sales_invoice_state_changed_to_paid","administration_id":"1"}'
NOW = 1_790_000_000


def hmac_hex(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def test_sign_matches_a_fixed_vector() -> None:
    """sign() equals HMAC-SHA256 over "{t}.{body}" (vector from `openssl dgst -sha256 -hmac`)."""
    # printf '1700000000.{}' | openssl dgst -sha256 -hmac secret
    assert sign(b"{}", "secret", 1700000000) == (
        "b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
    )
    assert sign(BODY, SECRET, NOW) == hmac_hex(SECRET, NOW, BODY)


def test_valid_signature_is_accepted() -> None:
    """A header made the way Moneybird makes it verifies."""
    header = f"t={NOW},v1={hmac_hex(SECRET, NOW, BODY)}"
    verify_signature(BODY, header, (SECRET,), now=NOW + 10, tolerance=300)


def test_any_matching_v1_is_accepted_during_rotation() -> None:
    """Several v1 values: one match is enough; unknown schemes are ignored."""
    header = f"t={NOW},v0=zzz,v1={'0' * 64},v1={hmac_hex(SECRET, NOW, BODY)},v9=new"
    verify_signature(BODY, header, (SECRET,), now=NOW, tolerance=300)


def test_any_configured_secret_may_match() -> None:
    """With two secrets configured (rotation on our side) either one verifies."""
    header = f"t={NOW},v1={hmac_hex(SECRET, NOW, BODY)}"
    verify_signature(BODY, header, ("old-secret-value", SECRET), now=NOW, tolerance=300)


def test_uppercase_hex_is_accepted() -> None:
    """Hex case does not matter."""
    header = f"t={NOW},v1={hmac_hex(SECRET, NOW, BODY).upper()}"
    verify_signature(BODY, header, (SECRET,), now=NOW, tolerance=300)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "malformed"),
        (f"v1={'a' * 64}", "no t"),
        (f"t={NOW}", "no well-formed v1"),
        (f"t={NOW},v0=abc,v2=def", "no well-formed v1"),
        (f"t={NOW},v1={'é' * 64}", "no well-formed v1"),
        (f"t={NOW},v1={'g' * 64}", "no well-formed v1"),
        (f"t={NOW},v1={'a' * 63}", "no well-formed v1"),
        (f"t={NOW},v1={'a' * 65}", "no well-formed v1"),
        (f"t={NOW},v1={'a' * 62}\u00e9\u00e9", "no well-formed v1"),
        (f"t=abc,v1={'a' * 64}", "not an epoch"),
        (f"t=-5,v1={'a' * 64}", "not an epoch"),
        (f"t={NOW},t={NOW},v1={'a' * 64}", "more than one t"),
        (f"t={NOW},v1={'a' * 64}", "does not match"),
        (f"t={NOW - 301},v1=SIG-1", "stale"),
        (f"t={NOW + 301},v1=SIG+1", "future"),
        ("t=1," + ",".join(["v1=aa"] * 17), "too many"),
        ("t=1,v1=" + "a" * 5000, "too long"),
    ],
)
def test_bad_signatures_are_refused(header: str | None, reason: str) -> None:
    """Every malformed, stale, future or wrong header raises with a log-safe reason."""
    if header is not None:
        header = header.replace("SIG-1", hmac_hex(SECRET, NOW - 301, BODY))
        header = header.replace("SIG+1", hmac_hex(SECRET, NOW + 301, BODY))
    with pytest.raises(VerificationFailure, match=reason) as caught:
        verify_signature(BODY, header, (SECRET,), now=NOW, tolerance=300)
    assert SECRET not in caught.value.reason


def test_signature_over_other_body_is_refused() -> None:
    """A signature is bound to the exact bytes: one changed byte fails."""
    header = f"t={NOW},v1={hmac_hex(SECRET, NOW, BODY)}"
    with pytest.raises(VerificationFailure):
        verify_signature(BODY.replace(b"1", b"2"), header, (SECRET,), now=NOW, tolerance=300)


def test_parse_signature_keeps_every_v1() -> None:
    """Whitespace is tolerated and all v1 values are kept in order."""
    parsed = parse_signature(f" t=12 , v1={'AB' * 32} ,v1={'cd' * 32}")
    assert parsed.timestamp == 12
    assert parsed.v1 == ("ab" * 32, "cd" * 32)


def test_a_v1_that_is_not_64_hex_digits_is_ignored() -> None:
    """A malformed or non-ASCII v1 beside a good one is skipped, not compared (no error)."""
    good = hmac_hex(SECRET, NOW, BODY)
    header = f"t={NOW},v1={'é' * 64},v1=xyz,v1={good}"
    assert parse_signature(header).v1 == (good,)
    verify_signature(BODY, header, (SECRET,), now=NOW, tolerance=300)


def creds(**changes: object) -> Credentials:
    values: dict[str, object] = {
        "token_sha256": token_digest("right-token"),
        "administration_id": "1",
    }
    values.update(changes)
    return Credentials(**values)  # type: ignore[arg-type]


def check(
    credentials: Credentials | None,
    *,
    token: str | None = "right-token",
    administration_id: str = "1",
    header: str | None = None,
    require_signature: bool = False,
) -> None:
    authenticate(
        body=BODY,
        administration_id=administration_id,
        presented_token=token,
        signature_header=header,
        credentials=credentials,
        now=NOW,
        tolerance=300,
        require_signature=require_signature,
    )


def test_authenticate_accepts_the_right_token() -> None:
    """Right token, right administration, enabled, no secret: accepted."""
    check(creds())


@pytest.mark.parametrize(
    ("credentials", "kwargs", "reason"),
    [
        (None, {}, "unknown webhook"),
        (creds(), {"token": "wrong-token"}, "wrong webhook_token"),
        (creds(), {"token": None}, "no webhook_token"),
        (creds(), {"administration_id": "2"}, "administration_id does not match"),
        (creds(enabled=False), {}, "disabled"),
        (creds(secrets=(SECRET,)), {}, "Moneybird-Signature missing"),
    ],
)
def test_authenticate_refuses(
    credentials: Credentials | None, kwargs: dict[str, object], reason: str
) -> None:
    """Unknown webhook, wrong token, other administration, disabled, unsigned: refused."""
    with pytest.raises(VerificationFailure, match=reason):
        check(credentials, **kwargs)  # type: ignore[arg-type]


def test_authenticate_requires_a_valid_signature_when_a_secret_is_known() -> None:
    """With a secret on file the right token alone is not enough; token + signature is."""
    header = f"t={NOW},v1={hmac_hex(SECRET, NOW, BODY)}"
    check(creds(secrets=(SECRET,)), header=header)
    with pytest.raises(VerificationFailure):
        check(creds(secrets=(SECRET,)), header=f"t={NOW},v1={'0' * 64}")


@pytest.mark.parametrize("source", ["environment", "subscription"])
def test_required_signature_refuses_a_webhook_without_a_secret(source: str) -> None:
    """HOOKBIRD_REQUIRE_SIGNATURE: the right token is not enough where no secret is known,
    whether the token came from the environment or the store; a signed push still passes."""
    with pytest.raises(VerificationFailure, match="HOOKBIRD_REQUIRE_SIGNATURE"):
        check(creds(source=source), require_signature=True)
    header = f"t={NOW},v1={hmac_hex(SECRET, NOW, BODY)}"
    check(creds(secrets=(SECRET,), source=source), header=header, require_signature=True)


def header_of_length(length: int) -> str:
    """A valid header padded with an unknown scheme to exactly ``length`` characters."""
    header = f"t={NOW},v1={hmac_hex(SECRET, NOW, BODY)},x="
    return header + "a" * (length - len(header))


def test_a_header_of_4096_characters_is_read_and_4097_refused() -> None:
    """The header limit is 4096 characters, inclusive."""
    assert len(header_of_length(4096)) == 4096
    verify_signature(BODY, header_of_length(4096), (SECRET,), now=NOW, tolerance=300)
    with pytest.raises(VerificationFailure, match="too long"):
        parse_signature(header_of_length(4097))


def test_t_may_have_12_digits_not_13() -> None:
    """A ``t`` of 12 digits is an epoch (read, then judged by its age); 13 is refused."""
    assert parse_signature(f"t={'9' * 12},v1={'a' * 64}").timestamp == 999_999_999_999
    with pytest.raises(VerificationFailure, match="not an epoch"):
        parse_signature(f"t=1{'0' * 12},v1={'a' * 64}")


def test_sixteen_v1_values_are_read() -> None:
    """Up to 16 ``v1`` values are compared (the 17th is refused above)."""
    good = hmac_hex(SECRET, NOW, BODY)
    header = f"t={NOW}," + ",".join([f"v1={'0' * 64}"] * 15 + [f"v1={good}"])
    assert len(parse_signature(header).v1) == 16
    verify_signature(BODY, header, (SECRET,), now=NOW, tolerance=300)


def test_a_signature_exactly_at_the_tolerance_is_accepted() -> None:
    """300 s old or 300 s ahead still passes with a tolerance of 300 s; 301 does not."""
    for t in (NOW - 300, NOW + 300):
        verify_signature(
            BODY, f"t={t},v1={hmac_hex(SECRET, t, BODY)}", (SECRET,), now=NOW, tolerance=300
        )


def test_credentials_never_show_their_token_digest_or_secrets() -> None:
    """repr() of Credentials (in a log line or a traceback) names neither the token's
    digest nor any signing secret, but still says which webhook it is for."""
    credentials = creds(secrets=(SECRET, "whsec-older-secret"), source="subscription")
    for text in (repr(credentials), str(credentials), f"{credentials!r}"):
        assert token_digest("right-token") not in text
        assert SECRET not in text
        assert "whsec-older-secret" not in text
        assert "administration_id='1'" in text
        assert "subscription" in text


def test_authenticate_returns_the_verified_signature_or_none() -> None:
    """A signed push gives back its parsed signature (the receiver dedups on it); a webhook
    without a secret gives None, and does not need one unless asked to."""
    good = hmac_hex(SECRET, NOW, BODY)

    def run(header: str | None, credentials: Credentials) -> Signature | None:
        return authenticate(
            body=BODY,
            administration_id="1",
            presented_token="right-token",
            signature_header=header,
            credentials=credentials,
            now=NOW,
            tolerance=300,
        )

    signed = run(f"t={NOW},v1={good}", creds(secrets=(SECRET,)))
    assert signed == Signature(timestamp=NOW, v1=(good,))
    assert run(None, creds()) is None
