"""Cash-count variances over signed HTTP: read by auditors and operators, approved by two
different operators (maker-checker), rejected by one with a reason. Both engines.

The story: Wanjiru's count is KES 100 short. Operator Amina proposes approving the
variance (202, a ``variance_approval`` proposal; nothing moves). She cannot approve her
own proposal, auditors and agents cannot approve at all; operator Baraka approves it:
the variance transfer is posted once, and the variance records **Baraka's principal id**
as its approver (the signed caller, never a typed name). Another count's variance is
rejected by an operator with a reason: nothing moves, and an approval proposed for it
can no longer be applied.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from api.client import Client
from api.problems import FLOW_CODES
from ledger.flows import parties
from ledger.flows.parties import Role
from reconciliation import cash_count
from tests.test_api_attacks import send
from tests.test_api_cash import Counter
from tests.test_api_cash_counts import (
    SHORT_BY_100,
    api,
    count_body,
    recon_api,
    station,
    submit,
)
from tests.test_api_harness import Harness
from tests.test_api_orders import _RAISED, ok, refused

__all__ = ["api", "recon_api"]


def short_variance(api: Harness) -> tuple[Counter, dict[str, Any]]:
    """A station whose count is KES 100 short: its proposed variance."""
    shop = station(api)
    made = ok(submit(shop.agent, shop.agent_id, count_body(SHORT_BY_100, "short")), 201)
    return shop, made["variance"]


def propose(who: Client, variance_id: str, body: Any = None, **kw: Any) -> httpx.Response:
    return who.request("POST", f"/v1/variances/{variance_id}/approval", json_body=body, **kw)


def approve(who: Client, proposal_id: str) -> httpx.Response:
    return who.request("POST", f"/v1/proposals/{proposal_id}/approve")


def reject(who: Client, variance_id: str, reason: Any) -> httpx.Response:
    return who.request("POST", f"/v1/variances/{variance_id}/reject", json_body={"reason": reason})


def cash_minor(api: Harness, agent_id: str) -> int:
    [account] = api.ledger.lookup_accounts([parties.account_id(uuid.UUID(agent_id), Role.CASH)])
    return account.debits_posted - account.credits_posted


def operator(api: Harness) -> tuple[Client, str]:
    made = api.key("operator")
    return api.client_for(made), made["principal_id"]


def test_one_operator_proposes_another_approves_and_is_the_recorded_approver(
    api: Harness,
) -> None:
    shop, variance = short_variance(api)
    amina, amina_id = operator(api)
    baraka, baraka_id = operator(api)
    made = ok(propose(amina, variance["id"]), 202)
    proposal = made["proposal"]
    assert (proposal["kind"], proposal["state"], proposal["proposed_by"]) == (
        "variance_approval",
        "proposed",
        amina_id,
    )
    assert proposal["payload"] == {"variance_id": variance["id"]}
    assert made["variance"]["state"] == "proposed"
    assert cash_minor(api, shop.agent_id) == 500_000  # nothing moved yet

    refused(approve(amina, proposal["id"]), 422, "proposal_maker_cannot_decide")
    for outsider in ("auditor", "agent", "storefront"):
        refused(approve(api.client(outsider), proposal["id"]), 403, "forbidden")
    assert cash_minor(api, shop.agent_id) == 500_000

    approved = ok(approve(baraka, proposal["id"]))
    assert (approved["state"], approved["decided_by"]) == ("approved", baraka_id)
    result = approved["result"]
    assert (result["variance_id"], result["state"], result["amount_minor"]) == (
        variance["id"],
        "approved",
        10_000,
    )
    read = ok(api.client("auditor").request("GET", f"/v1/variances/{variance['id']}"))
    assert (read["state"], read["decided_by"], read["decided_by_name"]) == (
        "approved",
        baraka_id,
        None,
    )
    assert read["transfer_id"] == result["transfer_id"] and read["decided_at"] is not None
    assert cash_minor(api, shop.agent_id) == 490_000  # the expected cash is now the count
    [posted] = api.ledger.lookup_transfers([uuid.UUID(read["transfer_id"])])
    assert (posted.code, posted.amount) == (cash_count.CASH_VARIANCE_CODE, 10_000)

    assert ok(approve(baraka, proposal["id"])) == approved  # approving again moves nothing
    assert ok(approve(api.client("operator"), proposal["id"]))["decided_by"] == baraka_id
    assert cash_minor(api, shop.agent_id) == 490_000
    refused(propose(amina, variance["id"]), 409, "variance_approved")
    refused(reject(amina, variance["id"], "too late"), 409, "variance_approved")
    assert api.ledger.check_integrity().ok


def test_an_operator_rejects_with_a_reason_and_nothing_moves(api: Harness) -> None:
    shop, variance = short_variance(api)
    amina, amina_id = operator(api)
    baraka, _ = operator(api)
    pending = ok(propose(amina, variance["id"]), 202)["proposal"]
    for outsider in ("auditor", "agent", "storefront"):
        refused(reject(api.client(outsider), variance["id"], "no"), 403, "forbidden")
    for bad in ("", "x" * 501, 7):
        refused(reject(amina, variance["id"], bad), 422, "validation_failed")
    refused(reject(amina, variance["id"], "   "), 422, "reason_invalid")

    reason = "recounted next morning: <script>alert(1)</script>"
    rejected = ok(reject(amina, variance["id"], reason))
    assert (rejected["state"], rejected["reject_reason"], rejected["decided_by"]) == (
        "rejected",
        reason,
        amina_id,
    )
    assert rejected["transfer_id"] is None
    assert ok(reject(baraka, variance["id"], "again")) == rejected  # decided once
    refused(approve(baraka, pending["id"]), 409, "variance_rejected")
    still = ok(amina.request("GET", f"/v1/proposals/{pending['id']}"))
    assert still["state"] == "proposed"  # the refused approval rolled back whole
    refused(propose(baraka, variance["id"]), 409, "variance_rejected")
    assert cash_minor(api, shop.agent_id) == 500_000


def test_auditors_and_operators_read_variances_page_by_page(api: Harness) -> None:
    shop, first = short_variance(api)
    second = ok(submit(shop.agent, shop.agent_id, count_body({"1000": 4}, "short again")), 201)
    auditor = api.client("auditor")
    query = {"agent_id": shop.agent_id, "limit": "1"}
    page = ok(auditor.request("GET", "/v1/variances", params=query))
    assert [v["id"] for v in page["data"]] == [first["id"]] and page["has_more"] is True
    after = {**query, "starting_after": first["id"]}
    page = ok(auditor.request("GET", "/v1/variances", params=after))
    assert [v["id"] for v in page["data"]] == [second["variance"]["id"]]
    assert page["has_more"] is False
    assert type(page["data"][0]["amount_minor"]) is int
    approved = ok(
        shop.operator.request(
            "GET", "/v1/variances", params={"agent_id": shop.agent_id, "state": "approved"}
        )
    )
    assert approved["data"] == []
    for outsider in ("agent", "storefront"):
        refused(api.client(outsider).request("GET", "/v1/variances"), 403, "forbidden")
        refused(
            api.client(outsider).request("GET", f"/v1/variances/{first['id']}"), 403, "forbidden"
        )
    stranger = str(uuid.uuid4())
    refused(auditor.request("GET", f"/v1/variances/{stranger}"), 404, "variance_not_found")
    refused(
        auditor.request("GET", "/v1/variances", params={"starting_after": stranger}),
        400,
        "invalid_parameter",
    )
    bad = auditor.request("GET", "/v1/variances", params={"state": "maybe"})
    refused(bad, 400, "invalid_parameter")
    refused(
        auditor.request("GET", "/v1/variances", params={"limit": "101"}), 400, "invalid_parameter"
    )
    refused(propose(shop.operator, stranger), 404, "variance_not_found")


def test_a_replayed_proposal_is_one_proposal_and_attacks_are_refused(api: Harness) -> None:
    shop, variance = short_variance(api)
    amina, _ = operator(api)
    key = str(uuid.uuid4())
    first = propose(amina, variance["id"], idempotency_key=key)
    again = propose(amina, variance["id"], idempotency_key=key)
    assert again.headers.get("idempotency-replayed") == "true"
    assert again.json() == ok(first, 202)
    own_id = str(uuid.uuid4())
    made = ok(propose(amina, variance["id"], {"id": own_id}), 202)["proposal"]
    assert made["id"] == own_id
    assert ok(propose(amina, variance["id"], {"id": own_id}), 202)["proposal"] == made
    refused(
        propose(api.client("operator"), variance["id"], {"id": own_id}),
        409,
        "proposal_exists_different",
    )
    for outsider in ("auditor", "agent", "storefront"):
        refused(propose(api.client(outsider), variance["id"]), 403, "forbidden")
    refused(propose(amina, variance["id"], {"id": "not-a-uuid"}), 422, "validation_failed")
    refused(propose(amina, variance["id"], {"approver": "ops:akinyi"}), 422, "validation_failed")

    path = f"/v1/variances/{variance['id']}/approval"
    body = json.dumps({"id": str(uuid.uuid4())}).encode()
    refused(httpx.post(amina.url(path), content=body), 401, "signature_missing")
    refused(send(amina, "POST", path, body, send_body=b"{}"), 401, "digest_mismatch")
    other = f"/v1/variances/{uuid.uuid4()}/approval"
    assert send(amina, "POST", path, body, send_path=other).status_code == 401
    pending = [
        p
        for p in ok(amina.request("GET", "/v1/proposals", params={"state": "proposed"}))["data"]
        if p["kind"] == "variance_approval" and p["payload"]["variance_id"] == variance["id"]
    ]
    assert len(pending) == 2  # the replayed one and the client-id one; nothing else
    assert cash_minor(api, shop.agent_id) == 500_000


def test_every_code_the_variance_flow_raises_is_a_documented_problem() -> None:
    text = Path(cash_count.__file__).read_text()
    raised = set(_RAISED.findall(text)) | {"variance_approved", "variance_rejected"}
    assert {"variance_not_found", "decider_not_operator", "agent_cash_short"} <= raised
    assert raised <= set(FLOW_CODES), raised - set(FLOW_CODES)
