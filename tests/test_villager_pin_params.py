"""The villagers' PIN hash parameters (issue 14: 20-50 ms a verify on this machine, memory
at least OWASP's 19 MiB floor), on both engines: a new PIN is hashed with them; a PIN
hashed with the old defaults (m=64 MiB, t=3, p=4) still verifies and is rehashed with
the new parameters by its next right PIN; a wrong PIN rehashes nothing."""

from __future__ import annotations

import time
import uuid

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from ledger import Ledger
from ledger.flows import parties, villagers
from ledger.flows.errors import Refused
from ledger.flows.parties import Kind
from ledger.flows.villagers import service as villager_service
from tests.villager_helpers import active_villager

PIN = "739146"
OLD = PasswordHasher(time_cost=3, memory_cost=65_536, parallelism=4)
MEMORY_FLOOR_KIB = 19 * 1024


def stored_hash(ledger: Ledger, villager_id: uuid.UUID) -> str:
    row = ledger.transact(
        lambda tx: tx.one(
            "SELECT pin_hash FROM villagers WHERE party_id = :id", {"id": villager_id}
        )
    )
    assert row is not None
    return str(row[0])


def test_the_parameters_are_argon2id_above_the_memory_floor() -> None:
    params = villager_service._HASHER
    assert params.memory_cost >= MEMORY_FLOOR_KIB
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19_456, 3, 1)
    hashed = params.hash(PIN)
    assert hashed.startswith("$argon2id$v=19$m=19456,t=3,p=1$")
    started = time.perf_counter()
    assert params.verify(hashed, PIN)
    assert time.perf_counter() - started < 0.5  # the old defaults took ~0.12-0.17 s here
    with pytest.raises(VerificationError):
        params.verify(hashed, "111111")


def test_an_old_hash_verifies_and_is_rehashed_once(ledger: Ledger) -> None:
    agent = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Juma", currency="KES"
    )
    made = active_villager(ledger, agent_id=agent.id, phone="+254712000099", pin=PIN)
    assert stored_hash(ledger, made.id).startswith("$argon2id$v=19$m=19456,t=3,p=1$")
    old = OLD.hash(PIN)
    ledger.transact(
        lambda tx: tx.execute(
            "UPDATE villagers SET pin_hash = :h WHERE party_id = :id", {"h": old, "id": made.id}
        )
    )
    with pytest.raises(Refused):
        villagers.verify_pin(ledger, villager_id=made.id, pin="1397")
    assert stored_hash(ledger, made.id) == old  # a wrong PIN rehashes nothing
    villagers.verify_pin(ledger, villager_id=made.id, pin=PIN)
    new = stored_hash(ledger, made.id)
    assert new != old and new.startswith("$argon2id$v=19$m=19456,t=3,p=1$")
    villagers.verify_pin(ledger, villager_id=made.id, pin=PIN)
    assert stored_hash(ledger, made.id) == new
