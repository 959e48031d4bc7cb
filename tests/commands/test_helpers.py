"""safe_url(): a Redis URL fit for messages and logs, whatever its password holds."""

from __future__ import annotations

import pytest

from hookbird.commands.helpers import safe_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://default:p@ss@host:6379/0", "redis://default:***@host:6379/0"),
        ("redis://:s3cr@t@@10.0.0.5/1", "redis://***@10.0.0.5/1"),
        ("redis://only-secret@host", "redis://***@host"),
        ("rediss://app:pw@redis.example:6380", "rediss://app:***@redis.example:6380"),
        (
            "redis+sentinel://u:p@ss@h1:26379,h2:26379/mymaster/0",
            "redis+sentinel://u:***@h1:26379,h2:26379/mymaster/0",
        ),
        ("redis://host/0?password=p@ss&db=1", "redis://host/0?password=***&db=1"),
        (
            "unix:///run/redis.sock?db=0&password=hunter2",
            "unix:///run/redis.sock?db=0&password=***",
        ),
        (
            "redis+sentinel://h1:26379/mymaster?sentinel_password=x%40y",
            "redis+sentinel://h1:26379/mymaster?sentinel_password=***",
        ),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("unix:///run/redis@1/redis.sock", "unix:///run/redis@1/redis.sock"),
    ],
)
def test_passwords_are_hidden_and_the_host_is_kept(url: str, shown: str) -> None:
    """The password up to the last @ before the host, and password query values, are hidden;
    the username, host, port, database and other parameters stay readable."""
    assert safe_url(url) == shown


def test_no_part_of_a_password_with_at_signs_leaks() -> None:
    """A password holding @ is hidden whole, not cut at its first @."""
    shown = safe_url("redis://default:first@second@third@redis.internal:6379")
    for part in ("first", "second", "third"):
        assert part not in shown
    assert shown.endswith("@redis.internal:6379")
