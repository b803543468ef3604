"""An agent's phones over signed HTTP, both engines: register, sync signed offline
records, exceptions visible for reconciliation, allowance and revocation; tenancy."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from api.client import Client
from ledger.flows import cash, offline, parties
from ledger.flows.consent import Purpose
from ledger.flows.offline import OfflineRecord, RecordKind
from ledger.flows.parties import Role
from tests.consent_helpers import consenting_villager, withdrawal_code
from tests.test_api_harness import (
    Harness,
    account_body,
    api,
    api_server,
    approved,
    transfer_body,
)
from tests.test_api_orders import ok, refused

__all__ = ["api", "api_server"]

KES = "KES"
FLOAT_MINOR = 500_000


class Phone:
    """An agent's phone: its key, its device id and its capture counter."""

    def __init__(self, agent_id: str) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.id = uuid.uuid4()
        self.agent_id = uuid.UUID(agent_id)
        self.seq = 0

    @property
    def public_key(self) -> str:
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    def capture(
        self,
        villager_id: str,
        amount: int,
        *,
        kind: str = "cash_in",
        currency: str = KES,
        consent_code: str | None = None,
    ) -> dict[str, str]:
        """A signed record; one with ``consent_code`` is version 2."""
        self.seq += 1
        record = OfflineRecord(
            record_id=uuid.uuid4(),
            device_id=self.id,
            agent_id=self.agent_id,
            villager_id=uuid.UUID(villager_id),
            kind=RecordKind(kind),
            amount_minor=amount,
            currency=currency,
            seq=self.seq,
            captured_at=datetime.now(UTC).replace(microsecond=123_000),
            consent_code=consent_code,
            version=1 if consent_code is None else 2,
        )
        signed = offline.sign_record(self.key, record)
        return {
            "payload": offline.canonical_bytes(record).decode("ascii"),
            "signature": base64.b64encode(signed.signature).decode("ascii"),
        }


class Counter:
    """An onboarded agent with float, a villager, and the operator who set them up."""

    def __init__(self, api: Harness) -> None:
        self.api = api
        self.operator = api.client("operator")
        made = api.key("agent")
        self.agent = api.client_for(made)
        self.agent_id = made["principal_id"]
        self.villager_id = str(uuid.uuid4())
        for kind, party_id, extra in (
            ("agent", self.agent_id, {}),
            ("villager", self.villager_id, {"kyc_tier": "tier0"}),
        ):
            body = {"id": party_id, "kind": kind, "name": kind, "currency": KES, **extra}
            ok(self.operator.request("POST", "/v1/parties", json_body=body), 201)
        bank = self.operator.create_account(**account_body(code=999))["id"]
        float_account = str(parties.account_id(uuid.UUID(self.agent_id), Role.FLOAT))
        [funded] = approved(api, self.operator, [transfer_body(bank, float_account, FLOAT_MINOR)])
        assert funded["status"] == "created"

    def register(self, phone: Phone, allowance: int = 100_000) -> httpx.Response:
        return self.agent.request(
            "POST",
            "/v1/devices",
            json_body={
                "id": str(phone.id),
                "public_key": phone.public_key,
                "allowance_minor": allowance,
            },
        )

    def sync(
        self, phone: Phone, records: list[dict[str, str]], who: Client | None = None
    ) -> httpx.Response:
        return (who or self.agent).request(
            "POST", f"/v1/devices/{phone.id}/sync", json_body={"records": records}
        )

    def float_available(self) -> int:
        [found] = self.api.ledger.lookup_accounts(
            [parties.account_id(uuid.UUID(self.agent_id), Role.FLOAT)]
        )
        return found.credits_posted - found.debits_posted - found.debits_pending


@pytest.fixture
def counter(api: Harness) -> Counter:
    return Counter(api)


def test_an_agent_registers_its_phone_and_the_allowance_is_held(counter: Counter) -> None:
    phone = Phone(counter.agent_id)
    device = ok(counter.register(phone), 201)
    assert (device["agent_id"], device["state"], device["allowance_minor"]) == (
        counter.agent_id,
        "active",
        100_000,
    )
    assert device["public_key"] == phone.public_key
    assert counter.float_available() == FLOAT_MINOR - 100_000
    assert ok(counter.agent.request("GET", f"/v1/devices/{phone.id}"))["last_seq"] == 0

    again = ok(counter.register(phone), 201)  # the same device: a replay
    assert again["id"] == device["id"]
    other = Phone(counter.agent_id)
    other.key = phone.key
    refused(counter.register(other), 409, "public_key_in_use")
    refused(counter.register(Phone(counter.agent_id), FLOAT_MINOR), 422, "float_short")

    lowered = ok(
        counter.agent.request(
            "POST", f"/v1/devices/{phone.id}/allowance", json_body={"allowance_minor": 40_000}
        )
    )
    assert lowered["allowance_minor"] == 40_000
    assert counter.float_available() == FLOAT_MINOR - 40_000

    revoked = ok(counter.agent.request("POST", f"/v1/devices/{phone.id}/revoke"))
    assert (revoked["state"], revoked["allowance_minor"]) == ("revoked", 0)
    assert counter.float_available() == FLOAT_MINOR
    refused(counter.sync(phone, [phone.capture(counter.villager_id, 1_000)]), 409, "device_revoked")


def test_records_that_cannot_apply_become_visible_exceptions(counter: Counter) -> None:
    phone = Phone(counter.agent_id)
    ok(counter.register(phone), 201)
    batch = [
        phone.capture(counter.villager_id, 5_000, currency="UGX"),
        phone.capture(str(uuid.uuid4()), 7_000, kind="cash_out", currency="UGX"),
    ]
    report = ok(counter.sync(phone, batch))
    assert (report["stored_now"], report["exceptions"], report["applied"]) == (2, 2, 0)
    # A version 1 cash-out carries no consent: refused as such before anything else.
    assert [r["reason"] for r in report["records"]] == ["currency_mismatch", "consent_required"]
    assert [r["seq"] for r in report["records"]] == [1, 2]

    resent = ok(counter.sync(phone, batch))  # exactly once: the stored outcomes again
    assert (resent["stored_now"], resent["replayed"]) == (0, 2)
    assert resent["records"] == report["records"]

    found = ok(counter.agent.request("GET", "/v1/offline-exceptions", params={"limit": "1"}))
    assert [r["record_id"] for r in found["data"]] == [report["records"][0]["record_id"]]
    assert found["has_more"] is True
    auditor = counter.api.client("auditor")
    theirs = ok(
        auditor.request("GET", "/v1/offline-exceptions", params={"agent_id": counter.agent_id})
    )
    assert len(theirs["data"]) == 2
    assert ok(counter.agent.request("GET", f"/v1/devices/{phone.id}"))["last_seq"] == 2


def test_a_cash_out_synced_with_the_villagers_offline_code_posts_its_hold_once(
    counter: Counter,
) -> None:
    led = counter.api.ledger
    agent_id = uuid.UUID(counter.agent_id)
    otieno = consenting_villager(led, agent_id=agent_id, tier="tier1")
    cash.cash_in(
        led, cash_in_id=uuid.uuid4(), agent_id=agent_id, villager_id=otieno.id,
        amount_minor=100_000,
    )  # fmt: skip
    code = withdrawal_code(
        led,
        villager_id=otieno.id,
        agent_id=agent_id,
        amount_minor=60_000,
        purpose=Purpose.OFFLINE_WITHDRAWAL,
    )
    phone = Phone(counter.agent_id)
    ok(counter.register(phone), 201)
    batch = [phone.capture(str(otieno.id), 60_000, kind="cash_out", consent_code=code)]
    assert ok(counter.sync(phone, batch))["applied"] == 1
    assert ok(counter.sync(phone, batch))["replayed"] == 1
    [wallet] = led.lookup_accounts([otieno.account(Role.WALLET)])
    assert (wallet.credits_posted - wallet.debits_posted, wallet.debits_pending) == (40_000, 0)
    assert led.check_integrity().ok


def test_a_bad_batch_is_refused_whole_and_applies_nothing(counter: Counter) -> None:
    phone = Phone(counter.agent_id)
    ok(counter.register(phone), 201)
    good = phone.capture(counter.villager_id, 1_000, currency="UGX")
    forged = phone.capture(counter.villager_id, 1_000, currency="UGX")
    forged["signature"] = base64.b64encode(bytes(64)).decode("ascii")
    refused(counter.sync(phone, [good, forged]), 422, "record_signature_invalid")

    skipped = phone.capture(counter.villager_id, 1_000, currency="UGX")  # seq 3, not 1
    refused(counter.sync(phone, [skipped]), 422, "record_gap")
    refused(counter.sync(phone, [good, good]), 422, "records_out_of_order")
    bent = {**good, "payload": good["payload"].replace('":', '": ', 1)}
    refused(counter.sync(phone, [bent]), 422, "record_invalid")
    unicode = {**good, "payload": good["payload"].replace("UGX", "ÜGX")}
    refused(counter.sync(phone, [unicode]), 422, "record_invalid")
    bad_signature = {**good, "signature": "not base64"}
    refused(counter.sync(phone, [bad_signature]), 422, "validation_failed")
    refused(counter.sync(phone, []), 422, "validation_failed")
    assert ok(counter.agent.request("GET", f"/v1/devices/{phone.id}"))["last_seq"] == 0


def test_another_agents_device_is_404_and_other_roles_are_403(counter: Counter) -> None:
    phone = Phone(counter.agent_id)
    ok(counter.register(phone), 201)
    stranger = Counter(counter.api)
    refused(stranger.agent.request("GET", f"/v1/devices/{phone.id}"), 404, "device_not_found")
    refused(stranger.sync(phone, [phone.capture(counter.villager_id, 1)]), 404, "device_not_found")
    refused(
        stranger.agent.request("POST", f"/v1/devices/{phone.id}/revoke"), 404, "device_not_found"
    )
    refused(
        stranger.agent.request(
            "POST", f"/v1/devices/{phone.id}/allowance", json_body={"allowance_minor": 1}
        ),
        404,
        "device_not_found",
    )
    shop = counter.api.client("storefront")
    by_shop = shop.request(
        "POST",
        "/v1/devices",
        json_body={"id": str(uuid.uuid4()), "public_key": phone.public_key, "allowance_minor": 0},
    )
    refused(by_shop, 403, "forbidden")
    refused(shop.request("GET", f"/v1/devices/{phone.id}"), 404, "device_not_found")
    refused(shop.request("GET", "/v1/offline-exceptions"), 403, "forbidden")
    auditor = counter.api.client("auditor")
    assert ok(auditor.request("GET", f"/v1/devices/{phone.id}"))["id"] == str(phone.id)
    refused(
        counter.sync(phone, [phone.capture(counter.villager_id, 1)], who=auditor), 403, "forbidden"
    )
    # an operator may revoke a lost phone
    assert ok(counter.operator.request("POST", f"/v1/devices/{phone.id}/revoke"))["state"] == (
        "revoked"
    )


def _cash_flows_ready() -> bool:
    try:
        from ledger.flows import cash  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _cash_flows_ready(), reason="ledger.flows.cash has not landed")
def test_an_offline_cash_in_credits_the_villager_once(counter: Counter) -> None:
    from ledger.flows import limits

    limits.set_tier_limits(
        counter.api.ledger,
        currency=KES,
        tier="basic",
        per_transaction_max_minor=100_000,
        daily_max_minor=300_000,
        balance_max_minor=1_000_000,
    )
    phone = Phone(counter.agent_id)
    ok(counter.register(phone, 50_000), 201)
    batch = [phone.capture(counter.villager_id, 20_000)]
    report: dict[str, Any] = ok(counter.sync(phone, batch))
    [record] = report["records"]
    assert (record["state"], record["reason"]) == ("applied", None), record
    assert record["cash_operation_id"] is not None
    wallet = parties.account_id(uuid.UUID(counter.villager_id), Role.WALLET)
    [found] = counter.api.ledger.lookup_accounts([wallet])
    assert found.credits_posted == 20_000
    ok(counter.sync(phone, batch))
    [again] = counter.api.ledger.lookup_accounts([wallet])
    assert again.credits_posted == 20_000
    device = ok(counter.agent.request("GET", f"/v1/devices/{phone.id}"))
    assert device["allowance_minor"] == 30_000
