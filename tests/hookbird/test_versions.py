"""Versions seen: what a push, a reconciliation and a backfill record, and which of them
a version already delivered holds back (hookbird.versions.CLAIM, on a real Redis)."""

from __future__ import annotations

import itertools

import redis

from hookbird.versions import RESOURCES, Verdict, Versions, seen_key

ADM = "123"
_events = itertools.count()


def claim(
    versions: Versions,
    version: int | None,
    source: str = "push",
    *,
    entity_id: str = "7",
    destroyed: bool = False,
    event: str | None = None,
) -> Verdict:
    verdict, _own = versions.claim(
        administration_id=ADM,
        entity_type="Contact",
        entity_id=entity_id,
        version=version,
        source=source,
        destroyed=destroyed,
        state_key=f"hookbird:state:{event or next(_events)}",
        ttl=60,
    )
    return verdict


def test_a_push_records_its_version_and_an_older_one_does_not_lower_it(
    redis_client: redis.Redis,
) -> None:
    """Pushes always run here (latest_only is for stale ones); the highest version stays."""
    versions = Versions(redis_client)
    assert claim(versions, 5) == Verdict.RUN
    assert claim(versions, 3) == Verdict.RUN
    assert versions.all(ADM, "Contact") == {"7": (5, False)}


def test_a_reconciliation_of_a_version_already_pushed_is_skipped(
    redis_client: redis.Redis,
) -> None:
    """A push of version 5 was handled: a reconciliation event for 5 (or 4) is not."""
    versions = Versions(redis_client)
    claim(versions, 5)
    assert claim(versions, 5, "reconcile") == Verdict.SKIP
    assert claim(versions, 4, "reconcile") == Verdict.SKIP
    assert claim(versions, 6, "reconcile") == Verdict.RUN
    assert versions.all(ADM, "Contact") == {"7": (6, True)}


def test_a_late_push_of_the_version_a_reconciliation_delivered_is_skipped(
    redis_client: redis.Redis,
) -> None:
    """After a reconciliation delivered version 6, Moneybird's late push of 6 is not handled
    again; a push of a newer version is."""
    versions = Versions(redis_client)
    assert claim(versions, 6, "reconcile") == Verdict.RUN
    assert claim(versions, 6) == Verdict.SKIP
    assert claim(versions, 7) == Verdict.RUN
    assert versions.all(ADM, "Contact") == {"7": (7, False)}


def test_the_verdict_is_kept_for_the_retries_of_the_same_event(redis_client: redis.Redis) -> None:
    """A handler retry of a reconciliation event runs again, though its version is now seen."""
    versions = Versions(redis_client)
    assert claim(versions, 6, "reconcile", event="e1") == Verdict.RUN
    assert claim(versions, 6, "reconcile", event="e1") == Verdict.RUN
    assert claim(versions, 6, "reconcile", event="e2") == Verdict.SKIP


def test_backfill_and_replay_always_run(redis_client: redis.Redis) -> None:
    """A backfill delivers everything on purpose, as a replay does."""
    versions = Versions(redis_client)
    claim(versions, 9)
    assert claim(versions, 9, "backfill") == Verdict.RUN
    assert claim(versions, 9, "replay") == Verdict.RUN


def test_destroyed_removes_the_entity_and_a_late_reconciled_gone_is_skipped(
    redis_client: redis.Redis,
) -> None:
    """A destroyed push deletes the field; a reconciliation's "gone" for it then skips."""
    versions = Versions(redis_client)
    claim(versions, 5)
    assert claim(versions, None, destroyed=True) == Verdict.RUN
    assert redis_client.exists(seen_key(ADM, "Contact")) == 0
    assert claim(versions, None, "reconcile", destroyed=True) == Verdict.SKIP


def test_a_baseline_keeps_newer_versions_and_marks_nothing_delivered(
    redis_client: redis.Redis,
) -> None:
    """record_baseline takes Moneybird's listing, except where a newer version was seen."""
    versions = Versions(redis_client)
    claim(versions, 10, entity_id="1")
    versions.record_baseline(ADM, "Contact", {"1": 8, "2": 3})
    assert versions.all(ADM, "Contact") == {"1": (10, False), "2": (3, False)}


def test_every_resource_names_official_events() -> None:
    """Each action a reconciliation emits is one of Moneybird's event names."""
    from hookbird import catalog

    for resource in RESOURCES.values():
        for action in resource.actions:
            assert action in catalog.events(), action


def test_a_version_a_write_of_hookbird_produced_is_its_own(redis_client: redis.Redis) -> None:
    """own_write_recorder notes the version a write answered with; only that version of
    that entity counts as hookbird's own."""
    from hookbird.versions import own_write_recorder

    versions = Versions(redis_client)
    own_write_recorder(redis_client, 60)(ADM, {"id": "7", "version": 12})
    _, own = versions.claim(
        administration_id=ADM,
        entity_type="Contact",
        entity_id="7",
        version=12,
        source="push",
        destroyed=False,
        state_key="hookbird:state:own-1",
        ttl=60,
    )
    assert own
    assert versions.own_write(ADM, "7", 12)
    assert not versions.own_write(ADM, "7", 13)
    assert not versions.own_write(ADM, "8", 12)
