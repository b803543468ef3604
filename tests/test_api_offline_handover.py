"""Hand-overs captured offline, synced over signed HTTP (``POST /v1/devices/{id}/sync``),
both engines: the order delivered once with the villager's pickup code, and the attacks
refused: another tenant's order, another agent's device or records, a replay, a forged
signature, markup in the text fields, oversized payloads and batches. After each attack
the order and its pickup code are as they were."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.client import Client
from ledger.flows import offline
from ledger.flows.offline import OfflineRecord, RecordKind
from ledger.flows.parties import Role
from tests.test_api_devices import Phone
from tests.test_api_harness import api, api_server
from tests.test_api_orders import Village, fee_schedule, new_village, ok, refused, village

__all__ = ["api", "api_server", "fee_schedule", "village"]

MARKUP = "<img src=x onerror=alert(1)>"
PAYLOAD_LENGTH_MAX = 1024
"""``SignedRecordIn.payload``'s bound (api/schemas.py)."""
SYNC_RECORDS_MAX = 500


def handover(
    phone: Phone, order: dict[str, Any], code: str, *, key: Ed25519PrivateKey | None = None
) -> dict[str, str]:
    """The phone's next record: the order's goods handed over with ``code`` (version 3),
    signed with the phone's key (or ``key``: a forgery)."""
    phone.seq += 1
    record = OfflineRecord(
        record_id=uuid.uuid4(),
        device_id=phone.id,
        agent_id=phone.agent_id,
        villager_id=uuid.UUID(order["villager_id"]),
        kind=RecordKind.HANDOVER,
        amount_minor=order["amount_minor"],
        currency=order["currency"],
        seq=phone.seq,
        captured_at=datetime.now(UTC).replace(microsecond=456_000),
        version=3,
        order_id=uuid.UUID(order["id"]),
        pickup_code=code,
    )
    signed = offline.sign_record(key or phone.key, record)
    return {
        "payload": offline.canonical_bytes(record).decode("ascii"),
        "signature": base64.b64encode(signed.signature).decode("ascii"),
    }


def enrolled(village: Village, agent: Client | None = None, agent_id: str | None = None) -> Phone:
    phone = Phone(agent_id or village.agent_id)
    body = {"id": str(phone.id), "public_key": phone.public_key, "allowance_minor": 10_000}
    ok((agent or village.agent).request("POST", "/v1/devices", json_body=body), 201)
    return phone


def dispatched(village: Village, method: str = "pickup_point") -> tuple[dict[str, Any], str]:
    """An order paid in cash at the agent and dispatched to the station; her pickup code."""
    order = village.order(delivery_method=method)
    ok(village.step(village.agent, order["id"], "pay", {"source": "cash"}))
    ok(village.step(village.shop, order["id"], "dispatch"))
    return order, village.pickup_code(order)


def sync(who: Client, phone: Phone, records: list[dict[str, str]]) -> httpx.Response:
    return who.request("POST", f"/v1/devices/{phone.id}/sync", json_body={"records": records})


def order_now(village: Village, order: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = ok(village.shop.request("GET", f"/v1/orders/{order['id']}"))
    return found


def wrong_tries(village: Village, order: dict[str, Any]) -> list[tuple[str, int]]:
    rows = village.api.ledger.transact(
        lambda tx: tx.execute(
            "SELECT state, tries_wrong FROM pickup_codes WHERE order_id = :o",
            {"o": uuid.UUID(order["id"])},
        )
    )
    return [(str(r[0]), int(r[1])) for r in rows]


def test_a_handover_synced_delivers_the_order_once(village: Village) -> None:
    phone = enrolled(village)
    order, code = dispatched(village)
    float_before = village.balance(village.agent_id, Role.FLOAT)
    record = handover(phone, order, code)

    answer = ok(sync(village.agent, phone, [record]))
    [done] = answer["records"]
    assert (done["kind"], done["state"], done["reason"]) == ("handover", "applied", None)
    assert done["order_id"] == order["id"] and answer["stored_now"] == 1
    assert order_now(village, order)["state"] == "delivered"

    again = ok(sync(village.agent, phone, [record]))  # the answer was lost: sent again
    assert again["records"] == answer["records"]
    assert (again["stored_now"], again["replayed"]) == (0, 1)
    assert wrong_tries(village, order) == [("used", 0)]
    assert village.balance(village.agent_id, Role.FLOAT) == float_before
    device = ok(village.agent.request("GET", f"/v1/devices/{phone.id}"))
    assert (device["last_seq"], device["allowance_minor"]) == (1, 10_000)


def test_wrong_codes_count_as_online_and_are_listed_as_exceptions(village: Village) -> None:
    phone = enrolled(village)
    order, code = dispatched(village)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    records = [handover(phone, order, wrong) for _ in range(3)] + [handover(phone, order, code)]
    answer = ok(sync(village.agent, phone, records))
    reasons = [r["reason"] for r in answer["records"]]
    assert reasons == ["pickup_code_invalid"] * 2 + ["pickup_code_void"] * 2
    assert wrong_tries(village, order) == [("void", 3)]
    assert order_now(village, order)["state"] == "dispatched"
    listed = ok(village.agent.request("GET", "/v1/offline-exceptions?limit=10"))["data"]
    assert [(e["order_id"], e["kind"]) for e in listed] == [(order["id"], "handover")] * 4


def test_another_tenants_order_is_not_found_and_its_code_is_untouched(
    village: Village,
) -> None:
    other = new_village(village.api)
    order, code = dispatched(other)  # Neema's station's order, for Neema's villager
    phone = enrolled(village)
    answer = ok(sync(village.agent, phone, [handover(phone, order, code)]))
    [outcome] = answer["records"]
    assert (outcome["state"], outcome["reason"]) == ("exception", "order_not_found")
    assert order_now(other, order)["state"] == "dispatched"
    assert wrong_tries(other, order) == [("open", 0)]


def test_another_agents_device_and_records_are_refused(village: Village) -> None:
    order, code = dispatched(village)
    phone = enrolled(village)
    other = new_village(village.api)
    # another agent syncing to this agent's device: as if it did not exist
    refused(sync(other.agent, phone, [handover(phone, order, code)]), 404, "device_not_found")
    # another agent's own phone carrying a record that names this agent
    theirs = enrolled(other, other.agent, other.agent_id)
    theirs.agent_id = uuid.UUID(village.agent_id)
    answer = ok(sync(other.agent, theirs, [handover(theirs, order, code)]))
    [outcome] = answer["records"]
    assert (outcome["state"], outcome["reason"]) == ("exception", "record_agent_mismatch")
    assert order_now(village, order)["state"] == "dispatched"
    assert wrong_tries(village, order) == [("open", 0)]


def test_a_forged_signature_refuses_the_batch_and_tries_no_code(village: Village) -> None:
    phone = enrolled(village)
    order, code = dispatched(village)
    forged = handover(phone, order, code, key=Ed25519PrivateKey.generate())
    refused(sync(village.agent, phone, [forged]), 422, "record_signature_invalid")
    bytes_swapped = handover(phone, order, code)
    phone.seq -= 1
    other_code = handover(phone, order, f"{(int(code) + 7) % 10**6:06d}")
    tampered = {"payload": other_code["payload"], "signature": bytes_swapped["signature"]}
    refused(sync(village.agent, phone, [tampered]), 422, "record_signature_invalid")
    assert order_now(village, order)["state"] == "dispatched"
    assert wrong_tries(village, order) == [("open", 0)]
    assert ok(village.agent.request("GET", f"/v1/devices/{phone.id}"))["last_seq"] == 0


def test_markup_in_the_text_fields_is_refused_and_not_echoed(village: Village) -> None:
    phone = enrolled(village)
    order, code = dispatched(village)
    good = handover(phone, order, code)
    fields = json.loads(good["payload"])
    for name in ("pickup_code", "order_id", "kind", "currency"):
        bent = json.dumps({**fields, name: MARKUP}, sort_keys=True, separators=(",", ":"))
        answer = sync(village.agent, phone, [{**good, "payload": bent}])
        refused(answer, 422, "record_invalid")
        assert "<img" not in answer.text and "onerror" not in answer.text, name
    assert order_now(village, order)["state"] == "dispatched"
    assert wrong_tries(village, order) == [("open", 0)]


def test_oversized_payloads_and_batches_are_refused(village: Village) -> None:
    phone = enrolled(village)
    order, code = dispatched(village)
    good = handover(phone, order, code)
    padded = good["payload"][:-1] + "," + '"x":"' + "9" * PAYLOAD_LENGTH_MAX + '"}'
    refused(sync(village.agent, phone, [{**good, "payload": padded}]), 422, "validation_failed")
    refused(sync(village.agent, phone, [good] * (SYNC_RECORDS_MAX + 1)), 422, "validation_failed")
    long_code = good["payload"].replace(f'"pickup_code":"{code}"', f'"pickup_code":"{code}0"')
    refused(sync(village.agent, phone, [{**good, "payload": long_code}]), 422, "record_invalid")
    assert order_now(village, order)["state"] == "dispatched"
    assert ok(sync(village.agent, phone, [good]))["records"][0]["state"] == "applied"
