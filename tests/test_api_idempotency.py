"""Idempotency records on both engines: a claim is a lease, an expired record is reused,
and on PostgreSQL the records commit without waiting for the disk (the ledger's own
commit stays synchronous)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from api import idempotency
from api.idempotency import Claim, Scope, StoredAnswer
from api.principals import Alg, Role, add_key
from ledger import Ledger, open_ledger
from ledger.core.tx import Tx
from tests.conftest import Clock

T = TypeVar("T")

LOCK_S = 60
TTL_S = 3600
ANSWER = StoredAnswer(200, {"content-type": "application/json"}, b'{"ok":true}')


def scope_of(led: Ledger) -> Scope:
    key = add_key(
        led,
        role=Role.STOREFRONT,
        name=f"shop-{uuid.uuid4().hex[:8]}",
        alg=Alg.ED25519,
        material=bytes(32),
    )
    return Scope(key.principal_id, "POST", "/v1/transfers", str(uuid.uuid4()))


def claim(led: Ledger, scope: Scope, digest: str = "d1") -> Claim:
    return idempotency.claim(led, scope, digest=digest, ttl_s=TTL_S, lock_s=LOCK_S)


def test_a_claim_whose_answer_was_lost_is_taken_over_after_its_lease(
    ledger: Ledger, clock: Clock
) -> None:
    """The request died (or PostgreSQL lost its unflushed completion) after the ledger's
    commit: retries get 409 until the lease runs out, then one of them runs again."""
    scope = scope_of(ledger)
    assert claim(ledger, scope).outcome == "new"
    waiting = claim(ledger, scope)
    assert waiting.outcome == "in_progress"
    assert 1 <= waiting.retry_after_s <= 5
    clock.advance(LOCK_S - 1)
    assert claim(ledger, scope) == Claim("in_progress", retry_after_s=1)
    clock.advance(1)
    assert claim(ledger, scope).outcome == "new"  # taken over
    assert claim(ledger, scope).outcome == "in_progress"  # by one attempt only
    assert claim(ledger, scope, "other body").outcome == "reused"
    idempotency.complete(ledger, scope, ANSWER)
    assert claim(ledger, scope) == Claim("replay", ANSWER)


def test_an_answer_is_replayed_until_it_expires_then_the_key_is_new(
    ledger: Ledger, clock: Clock
) -> None:
    scope = scope_of(ledger)
    assert claim(ledger, scope).outcome == "new"
    idempotency.complete(ledger, scope, ANSWER)
    clock.advance(TTL_S - 1)
    assert claim(ledger, scope) == Claim("replay", ANSWER)
    assert claim(ledger, scope, "other body").outcome == "reused"
    clock.advance(1)
    assert claim(ledger, scope, "other body").outcome == "new"
    assert claim(ledger, scope, "other body").outcome == "in_progress"
    idempotency.complete(ledger, scope, StoredAnswer(201, {}, b"{}"))
    assert claim(ledger, scope, "other body") == Claim("replay", StoredAnswer(201, {}, b"{}"))


def test_a_released_claim_is_new_again_and_purge_deletes_only_expired(
    ledger: Ledger, clock: Clock
) -> None:
    scope, kept = scope_of(ledger), scope_of(ledger)
    assert claim(ledger, scope).outcome == "new"
    idempotency.release(ledger, scope)
    assert claim(ledger, scope).outcome == "new"
    idempotency.complete(ledger, scope, ANSWER)
    clock.advance(TTL_S)
    assert claim(ledger, kept).outcome == "new"
    assert idempotency.purge_expired(ledger) == 1
    assert claim(ledger, kept).outcome == "in_progress"
    assert claim(ledger, scope).outcome == "new"


class Probing(Ledger):
    """A real ledger that also reads ``synchronous_commit`` at the end of every
    transaction it runs (inside it, where ``SET LOCAL`` applies)."""

    def __init__(self, url: str, clock: Callable[[], object]) -> None:
        super().__init__(url, clock=clock)  # type: ignore[arg-type]
        self.seen: list[str] = []

    def transact(self, work: Callable[[Tx], T]) -> T:
        def probed(tx: Tx) -> T:
            result = work(tx)
            row = tx.one("SHOW synchronous_commit")
            assert row is not None
            self.seen.append(str(row[0]))
            return result

        return super().transact(probed)


@pytest.fixture
def probing(pg_url: str, clock: Clock) -> Iterator[Probing]:
    open_ledger(pg_url, migrate=True).close()
    led = Probing(pg_url, clock)
    try:
        yield led
    finally:
        led.close()


def test_on_postgresql_a_request_and_its_record_commit_durably_together(
    probing: Probing, clock: Clock
) -> None:
    """The record shares the request's transaction, money included (``run_post``): no
    statement of the records may turn ``synchronous_commit`` off in it."""
    scope = scope_of(probing)

    def request(tx: Tx) -> str:
        found = idempotency.claim_in(tx, scope, digest="d1", ttl_s=TTL_S, lock_s=LOCK_S)
        if found.outcome == "new":
            idempotency.complete_in(tx, scope, ANSWER)
        return str(found.outcome)

    probing.seen.clear()
    assert probing.transact(request) == "new"
    assert probing.transact(request) == "replay"  # the conflict path too
    clock.advance(TTL_S)
    assert probing.transact(request) == "new"  # an expired record taken over
    idempotency.purge_expired(probing)
    assert probing.seen == ["on"] * 4
