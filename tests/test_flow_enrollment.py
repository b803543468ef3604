"""Enrollment codes through the flow, both engines: a code registers a new key once,
within 15 minutes on the ledger's clock, voided by 5 wrong tries, bound to its principal."""

from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows import enrollment, events, offline, parties, principals
from ledger.flows.enrollment import CODE_TTL_S, TRIES_WRONG_MAX
from ledger.flows.errors import NotFound, Refused
from ledger.flows.parties import Kind
from ledger.flows.principals import Alg, Role
from tests.conftest import Clock


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def new_principal(led: Ledger, role: Role) -> uuid.UUID:
    made = principals.add_key(
        led,
        role=role,
        name=f"{role.value}-{uuid.uuid4().hex[:6]}",
        alg=Alg.ED25519,
        material=raw(Ed25519PrivateKey.generate()),
    )
    if role is Role.AGENT:
        parties.onboard(
            led, party_id=made.principal_id, kind=Kind.AGENT, name="Duka la Amani", currency="KES"
        )
    return made.principal_id


def events_of(led: Ledger, event_type: str) -> list[events.Event]:
    def work(tx: Tx) -> list[events.Event]:
        return [e for e in events.read_events(tx, limit=1000) if e.type == event_type]

    return led.transact(work)


def refused_code(led: Ledger, code: str, public_key: bytes) -> str:
    with pytest.raises(Refused) as caught:
        enrollment.redeem(led, code=code, public_key=public_key)
    return caught.value.code


def test_an_agents_code_registers_its_api_key_and_device_key_once(ledger: Ledger) -> None:
    agent = new_principal(ledger, Role.AGENT)
    issued = enrollment.issue(ledger, principal_id=agent, issued_by=None)
    assert len(issued.code) == 24 and issued.code.count("-") == 4
    phone = raw(Ed25519PrivateKey.generate())
    enrolled = enrollment.redeem(ledger, code=issued.code.lower(), public_key=phone)
    key = principals.find_key(ledger, enrolled.key_id)
    assert key is not None and key.active and key.principal_id == agent
    assert key.material == phone and key.role is Role.AGENT
    assert enrolled.device_id is not None
    device = offline.get_device(ledger, device_id=enrolled.device_id)
    assert device.agent_id == agent and device.public_key == phone
    assert device.allowance_minor == 0
    # the same key again answers the same enrollment; another key is refused
    again = enrollment.redeem(ledger, code=issued.code, public_key=phone)
    assert again == enrolled
    other = raw(Ed25519PrivateKey.generate())
    assert refused_code(ledger, issued.code, other) == "enrollment_code_used"
    [redeemed] = events_of(ledger, "enrollment.redeemed")
    assert redeemed.payload["key_id"] == enrolled.key_id
    [made] = events_of(ledger, "enrollment.issued")
    for event in (made, redeemed, *events_of(ledger, "enrollment.failed")):
        text = str(event.payload)
        assert issued.code not in text and issued.code.replace("-", "") not in text


def test_an_operator_or_auditor_gets_an_api_key_and_no_device(ledger: Ledger) -> None:
    for role in (Role.OPERATOR, Role.AUDITOR):
        principal = new_principal(ledger, role)
        issued = enrollment.issue(ledger, principal_id=principal, issued_by=None)
        enrolled = enrollment.redeem(
            ledger, code=issued.code, public_key=raw(Ed25519PrivateKey.generate())
        )
        assert enrolled.device_id is None and enrolled.role is role


def test_the_code_is_valid_at_899_s_and_expired_at_900_s(ledger: Ledger, clock: Clock) -> None:
    agent = new_principal(ledger, Role.AGENT)
    first = enrollment.issue(ledger, principal_id=agent, issued_by=None)
    clock.advance(CODE_TTL_S - 1)
    assert enrollment.redeem(ledger, code=first.code, public_key=raw(Ed25519PrivateKey.generate()))
    second = enrollment.issue(ledger, principal_id=agent, issued_by=None)
    clock.advance(CODE_TTL_S)
    key = raw(Ed25519PrivateKey.generate())
    assert refused_code(ledger, second.code, key) == "enrollment_code_expired"
    assert [e.payload["reason"] for e in events_of(ledger, "enrollment.failed")] == [
        "enrollment_code_expired"
    ]


def test_five_wrong_tries_void_the_code(ledger: Ledger) -> None:
    operator = new_principal(ledger, Role.OPERATOR)
    issued = enrollment.issue(ledger, principal_id=operator, issued_by=None)
    key = raw(Ed25519PrivateKey.generate())
    plain = issued.code.replace("-", "")
    wrong = plain[:4] + ("0" if plain[4] != "0" else "1") + plain[5:]
    for _ in range(TRIES_WRONG_MAX - 1):
        assert refused_code(ledger, wrong, key) == "enrollment_code_invalid"
    with pytest.raises(Refused, match="voided"):
        enrollment.redeem(ledger, code=wrong, public_key=key)
    assert refused_code(ledger, issued.code, key) == "enrollment_code_void"
    assert principals.find_key(ledger, "k_none") is None
    assert len(events_of(ledger, "enrollment.failed")) == TRIES_WRONG_MAX + 1


def test_malformed_codes_and_keys_are_refused_and_count_nothing(ledger: Ledger) -> None:
    operator = new_principal(ledger, Role.OPERATOR)
    issued = enrollment.issue(ledger, principal_id=operator, issued_by=None)
    key = raw(Ed25519PrivateKey.generate())
    for bad in ("", "<script>", "x" * 10_000, 12345, issued.code + "0", "UUUU" * 5):
        assert refused_code(ledger, bad, key) == "enrollment_code_invalid"  # type: ignore[arg-type]
    for bad_key in (b"", b"\x00" * 31, "text", None):
        with pytest.raises(Refused) as caught:
            enrollment.redeem(ledger, code=issued.code, public_key=bad_key)
        assert caught.value.code == "public_key_invalid"
    assert events_of(ledger, "enrollment.failed") == []
    assert enrollment.redeem(ledger, code=issued.code, public_key=key).role is Role.OPERATOR


def test_a_code_registers_its_own_principals_key_never_anothers(ledger: Ledger) -> None:
    alice, bob = new_principal(ledger, Role.AGENT), new_principal(ledger, Role.AGENT)
    code_a = enrollment.issue(ledger, principal_id=alice, issued_by=None)
    code_b = enrollment.issue(ledger, principal_id=bob, issued_by=None)
    enrolled = enrollment.redeem(
        ledger, code=code_a.code, public_key=raw(Ed25519PrivateKey.generate())
    )
    assert enrolled.principal_id == alice
    key = principals.find_key(ledger, enrolled.key_id)
    assert key is not None and key.principal_id == alice
    # bob's code is still open and still his
    assert (
        enrollment.redeem(
            ledger, code=code_b.code, public_key=raw(Ed25519PrivateKey.generate())
        ).principal_id
        == bob
    )


def test_a_new_code_voids_the_older_one_and_a_voided_principal_cannot_enroll(
    ledger: Ledger,
) -> None:
    agent = new_principal(ledger, Role.AGENT)
    old = enrollment.issue(ledger, principal_id=agent, issued_by=None)
    new = enrollment.issue(ledger, principal_id=agent, issued_by=None)
    key = raw(Ed25519PrivateKey.generate())
    assert refused_code(ledger, old.code, key) == "enrollment_code_void"
    # an operator revokes the principal's enrollment (its open codes are voided)
    assert enrollment.void_codes(ledger, principal_id=agent) == 1
    assert refused_code(ledger, new.code, key) == "enrollment_code_void"


def test_a_revoked_enrolled_key_stays_revoked_and_its_code_cannot_be_reused(
    ledger: Ledger,
) -> None:
    agent = new_principal(ledger, Role.AGENT)
    issued = enrollment.issue(ledger, principal_id=agent, issued_by=None)
    phone = raw(Ed25519PrivateKey.generate())
    enrolled = enrollment.redeem(ledger, code=issued.code, public_key=phone)
    assert principals.revoke_key(ledger, enrolled.key_id)
    assert refused_code(ledger, issued.code, raw(Ed25519PrivateKey.generate())) == (
        "enrollment_code_used"
    )
    key = principals.find_key(ledger, enrolled.key_id)
    assert key is not None and not key.active


def test_who_may_be_enrolled(ledger: Ledger) -> None:
    with pytest.raises(NotFound):
        enrollment.issue(ledger, principal_id=uuid.uuid4(), issued_by=None)
    storefront = new_principal(ledger, Role.STOREFRONT)
    with pytest.raises(Refused) as caught:
        enrollment.issue(ledger, principal_id=storefront, issued_by=None)
    assert caught.value.code == "enrollment_role_refused"
    agent_without_party = principals.add_key(
        ledger,
        role=Role.AGENT,
        name="no-party",
        alg=Alg.ED25519,
        material=raw(Ed25519PrivateKey.generate()),
    ).principal_id
    with pytest.raises(NotFound):
        enrollment.issue(ledger, principal_id=agent_without_party, issued_by=None)
    assert events_of(ledger, "enrollment.issued") == []
