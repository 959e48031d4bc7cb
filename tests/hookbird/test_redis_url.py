"""REDIS_URL forms: the Sentinel form taken apart, malformed URLs named, passwords kept out."""

from __future__ import annotations

import pytest
import redis.connection
import redis.sentinel

import hookbird.outage
import hookbird.redis_url
from hookbird.commands.helpers import redis_url_problem, safe_url
from hookbird.outage import Outage, outage_of, ride_out
from hookbird.redis_url import (
    FOLLOWS_ON_RETRY,
    PrimaryFollowingConnection,
    RedisURLError,
    is_sentinel,
    parse_sentinel_url,
    sync_client,
)


def test_sentinel_url_lists_sentinels_service_and_db() -> None:
    """Hosts with and without ports (26379), the service and the database after it."""
    parsed = parse_sentinel_url("redis+sentinel://s1:26380,s2,[::1]:26381/mymaster/3")
    assert parsed.sentinels == (("s1", 26380), ("s2", 26379), ("::1", 26381))
    assert parsed.service == "mymaster"
    assert parsed.db == 3
    assert not parsed.tls


def test_sentinel_url_without_db_uses_db_0() -> None:
    """``/service`` alone means database 0, as rq-dashboard reads it."""
    assert parse_sentinel_url("redis+sentinel://s1:26379/mymaster").db == 0


def test_password_in_the_url_is_the_servers_and_sentinel_password_the_sentinels() -> None:
    """user:password authenticate to Redis; sentinel_password (query) to the Sentinels."""
    parsed = parse_sentinel_url(
        "redis+sentinel://app:p%40ss@s1/mymaster/0?sentinel_password=watch&client_name=hb"
    )
    assert parsed.server_options["username"] == "app"
    assert parsed.server_options["password"] == "p@ss"
    assert parsed.server_options["client_name"] == "hb"
    assert parsed.sentinel_options == {"password": "watch"}


def test_tls_form_uses_tls_to_servers_and_sentinels() -> None:
    """rediss+sentinel:// turns TLS on for both, with redis-py's ssl_* options."""
    parsed = parse_sentinel_url(
        "rediss+sentinel://s1/mymaster?ssl_ca_certs=/etc/ca.pem&ssl_check_hostname=false"
    )
    assert parsed.tls
    assert parsed.server_options["ssl"] is True
    assert parsed.sentinel_options["ssl"] is True
    assert parsed.sentinel_options["ssl_ca_certs"] == "/etc/ca.pem"
    assert parsed.sentinel_options["ssl_check_hostname"] is False


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("redis+sentinel://s1:26379", "names no service"),
        ("redis+sentinel://s1:26379/", "names no service"),
        ("redis+sentinel:///mymaster", "names no Sentinel"),
        ("redis+sentinel://s1:port/mymaster", "the port 'port'"),
        ("redis+sentinel://s1:99999/mymaster", "the port '99999'"),
        ("redis+sentinel://s1,:26379/mymaster", "without a host"),
        ("redis+sentinel://s1/mymaster/zero", "must be a number, got 'zero'"),
        ("redis+sentinel://s1/mymaster/0/extra", "more than /service_name/db"),
    ],
)
def test_malformed_sentinel_url_names_the_problem(url: str, named: str) -> None:
    """Each mistake gets a message that says which part is wrong."""
    with pytest.raises(RedisURLError, match=named.replace("(", r"\(")):
        parse_sentinel_url(url)
    problem = redis_url_problem(url)
    assert problem is not None
    assert named in problem


def test_problem_message_hides_the_password() -> None:
    """A malformed URL's message shows it without the password it carries."""
    problem = redis_url_problem("redis+sentinel://app:hunter2@s1:x/mymaster")
    assert problem is not None
    assert "hunter2" not in problem
    assert "app:***@s1:x" in problem


def test_plain_urls_still_checked_by_redis_py() -> None:
    """A URL without a scheme is named, with the Sentinel form among the examples."""
    problem = redis_url_problem("localhost:6379")
    assert problem is not None
    assert "redis+sentinel://" in problem
    assert redis_url_problem("redis://localhost:6379/0") is None
    assert redis_url_problem("redis+sentinel://s1/mymaster/0") is None


def test_safe_url_hides_sentinel_url_passwords() -> None:
    """Both the servers' password and ``sentinel_password`` become ***."""
    shown = safe_url("redis+sentinel://:secret@s1:26379,s2:26379/m/0?sentinel_password=other")
    assert shown == "redis+sentinel://***@s1:26379,s2:26379/m/0?sentinel_password=***"


def test_is_sentinel_knows_both_schemes() -> None:
    """redis+sentinel and rediss+sentinel, case-insensitive; nothing else."""
    assert is_sentinel("redis+sentinel://s/m")
    assert is_sentinel("REDISS+SENTINEL://s/m")
    assert not is_sentinel("redis://s:6379/0")


def test_sync_client_on_a_sentinel_url_sends_nothing_until_used() -> None:
    """Building a client connects nowhere (unreachable Sentinels are fine until used)."""
    client = sync_client("redis+sentinel://127.0.0.1:1/mymaster/2", socket_timeout=0.5)
    try:
        assert client.connection_pool.connection_kwargs["db"] == 2
        assert client.connection_pool.connection_kwargs["socket_timeout"] == 0.5
    finally:
        client.close()


@pytest.mark.parametrize(("scheme", "tls"), [("redis+sentinel", False), ("rediss+sentinel", True)])
def test_sentinel_clients_ask_the_sentinels_on_every_reconnect(scheme: str, tls: bool) -> None:
    """Both forms get the connection that looks the primary up again when a retry
    reconnects (tests/sentinel/test_primary_killed.py shows why), over TLS for rediss."""
    client = sync_client(f"{scheme}://127.0.0.1:1/mymaster/0")
    try:
        cls = client.connection_pool.connection_class
        assert issubclass(cls, PrimaryFollowingConnection)
        assert issubclass(cls, redis.connection.SSLConnection) is tls
    finally:
        client.close()


def test_the_redis_py_in_range_has_what_primary_following_relies_on() -> None:
    """redis-py 7.0 to 8.2 reconnect a retried command through ``connect_check_health``
    with ``retry_socket_connect``: the bound in pyproject.toml keeps it so."""
    assert FOLLOWS_ON_RETRY


def test_without_those_internals_sentinel_clients_keep_redis_pys_own_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fallback: redis-py's own Sentinel connection, and no outage retry on it (a
    retry on the same connection would keep reaching the old primary); plain clients
    still get the outage retry."""
    monkeypatch.setattr(hookbird.redis_url, "FOLLOWS_ON_RETRY", False)
    monkeypatch.setattr(hookbird.outage, "FOLLOWS_ON_RETRY", False)
    sentinel_client = sync_client("redis+sentinel://127.0.0.1:1/mymaster/0")
    plain_client = sync_client("redis://127.0.0.1:1/0")
    try:
        cls = sentinel_client.connection_pool.connection_class
        assert cls is redis.sentinel.SentinelManagedConnection
        outage = Outage(grace=5, where="test")
        assert outage_of(ride_out(sentinel_client, outage)) is None
        assert outage_of(ride_out(plain_client, outage)) is outage
    finally:
        sentinel_client.close()
        plain_client.close()
