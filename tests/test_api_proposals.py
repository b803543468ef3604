"""Maker-checker over signed HTTP, both engines: an operator's correction of a party's
account is a proposal that a second operator approves before any money moves.

The story: the platform owes a villager 2,500 (a refund the flows missed). Operator Amina
proposes the correction from the operator's account into the villager's wallet: 202,
nothing moves. Amina cannot approve her own proposal; an auditor or a storefront cannot
approve at all. Operator Baraka approves: the wallet is credited once, however many times
and by however many operators the approval is sent. A proposal Baraka rejects moves
nothing and cannot be approved afterwards.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from api.client import Client
from ledger.core.errors import InvariantViolation
from ledger.flows import limits, parties
from ledger.flows.parties import Role
from tests.test_api_attacks import refused
from tests.test_api_harness import Harness, account_body, api, api_server, transfer_body

__all__ = ["api", "api_server"]

KES = "KES"
OWED_MINOR = 2_500
RACERS = 8
TIER = "desk1"
WALLET_MAX_MINOR = 100_000


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@dataclass
class Desk:
    api: Harness
    maker: Client
    checker: Client
    checker_id: str
    bank: str
    wallet: str

    def propose(self, amount: int = OWED_MINOR, **over: Any) -> dict[str, Any]:
        body = {"transfers": [transfer_body(self.bank, self.wallet, amount, **over)]}
        proposal: dict[str, Any] = ok(
            self.maker.request("POST", "/v1/transfers", json_body=body), 202
        )["proposal"]
        return proposal

    def decide(
        self, who: Client, proposal_id: str, action: str, body: Any = None
    ) -> httpx.Response:
        return who.request("POST", f"/v1/proposals/{proposal_id}/{action}", json_body=body)

    def wallet_balance(self) -> tuple[int, int]:
        [found] = self.api.ledger.lookup_accounts([uuid.UUID(self.wallet)])
        return found.credits_posted - found.debits_posted, found.credits_pending


@pytest.fixture
def desk(api: Harness) -> Desk:
    maker, checker_key = api.client("operator"), api.key("operator")
    checker = api.client_for(checker_key)
    limits.set_tier_limits(
        api.ledger,
        currency=KES,
        tier=TIER,
        per_transaction_max_minor=WALLET_MAX_MINOR,
        daily_max_minor=WALLET_MAX_MINOR,
        balance_max_minor=WALLET_MAX_MINOR,
    )
    villager = str(uuid.uuid4())
    body = {"id": villager, "kind": "villager", "name": "Wanjiru", "currency": KES}
    ok(maker.request("POST", "/v1/parties", json_body={**body, "kyc_tier": "tier0"}), 201)
    limits.set_kyc_tier(api.ledger, villager_id=uuid.UUID(villager), tier=TIER)  # as approved
    bank = maker.create_account(**account_body())["id"]
    wallet = str(parties.account_id(uuid.UUID(villager), Role.WALLET))
    return Desk(api, maker, checker, checker_key["principal_id"], bank, wallet)


def test_a_correction_waits_for_a_second_operator_then_moves_once(desk: Desk) -> None:
    proposal = desk.propose()
    assert proposal["state"] == "proposed"
    assert proposal["kind"] == "transfers"
    assert proposal["payload"]["transfers"][0]["credit_account_id"] == desk.wallet
    assert proposal["decided_by"] is None and proposal["result"] is None
    assert desk.wallet_balance() == (0, 0)  # nothing moved yet
    transfer_id = uuid.UUID(proposal["payload"]["transfers"][0]["id"])
    assert desk.api.ledger.lookup_transfers([transfer_id]) == []

    refused(desk.decide(desk.maker, proposal["id"], "approve"), 422, "proposal_maker_cannot_decide")
    assert desk.wallet_balance() == (0, 0)

    approved = ok(desk.decide(desk.checker, proposal["id"], "approve"))
    assert approved["state"] == "approved"
    assert approved["decided_by"] == desk.checker_id
    assert approved["result"] == [{"index": 0, "id": str(transfer_id), "status": "created"}]
    assert desk.wallet_balance() == (OWED_MINOR, 0)

    # approving again, by the checker or a third operator, answers the same and moves nothing
    again = ok(desk.decide(desk.checker, proposal["id"], "approve"))
    third = ok(desk.decide(desk.api.client("operator"), proposal["id"], "approve"))
    assert again == third == approved
    assert desk.wallet_balance() == (OWED_MINOR, 0)
    assert desk.api.ledger.check_integrity().ok


def test_the_checker_is_recorded_and_the_proposal_is_readable(desk: Desk) -> None:
    proposal = desk.propose()
    auditor = desk.api.client("auditor")
    assert ok(auditor.request("GET", f"/v1/proposals/{proposal['id']}")) == proposal
    listed = ok(auditor.request("GET", "/v1/proposals", params={"state": "proposed"}))
    assert proposal["id"] in [p["id"] for p in listed["data"]]
    approved = ok(desk.decide(desk.checker, proposal["id"], "approve"))
    assert approved["proposed_by"] == proposal["proposed_by"]
    assert approved["decided_by"] not in (None, proposal["proposed_by"])
    listed = ok(desk.maker.request("GET", "/v1/proposals", params={"state": "approved"}))
    assert proposal["id"] in [p["id"] for p in listed["data"]]
    refused(auditor.request("GET", f"/v1/proposals/{uuid.uuid4()}"), 404, "proposal_not_found")


def test_a_rejected_proposal_moves_nothing_and_stays_rejected(desk: Desk) -> None:
    proposal = desk.propose(amount=99_000)
    refused(
        desk.decide(desk.checker, proposal["id"], "reject", {"reason": ""}),
        422,
        "validation_failed",
    )
    reason = {"reason": "wrong wallet: see ticket 4411"}
    rejected = ok(desk.decide(desk.checker, proposal["id"], "reject", reason))
    assert (rejected["state"], rejected["reason"]) == ("rejected", reason["reason"])
    assert ok(desk.decide(desk.checker, proposal["id"], "reject", reason)) == rejected
    refused(desk.decide(desk.checker, proposal["id"], "approve"), 409, "proposal_not_pending")
    assert desk.wallet_balance() == (0, 0)
    transfer_id = uuid.UUID(proposal["payload"]["transfers"][0]["id"])
    assert desk.api.ledger.lookup_transfers([transfer_id]) == []
    assert desk.api.ledger.check_integrity().ok


def test_a_correction_past_the_wallets_kyc_maximum_is_not_applied(desk: Desk) -> None:
    """The approval runs the wallet's checks as every flow does: refused as a whole, the
    proposal stays proposed, nothing moved."""
    proposal = desk.propose(amount=WALLET_MAX_MINOR + 1)
    refused(desk.decide(desk.checker, proposal["id"], "approve"), 422, "limit_exceeded_balance")
    assert desk.wallet_balance() == (0, 0)
    auditor = desk.api.client("auditor")
    assert ok(auditor.request("GET", f"/v1/proposals/{proposal['id']}"))["state"] == "proposed"
    assert desk.api.ledger.check_integrity().ok


def test_an_approved_proposal_cannot_be_rejected(desk: Desk) -> None:
    proposal = desk.propose()
    ok(desk.decide(desk.checker, proposal["id"], "approve"))
    answer = desk.decide(desk.maker, proposal["id"], "reject", {"reason": "too late"})
    refused(answer, 409, "proposal_not_pending")
    assert desk.wallet_balance() == (OWED_MINOR, 0)


def test_other_roles_cannot_decide(desk: Desk) -> None:
    proposal = desk.propose()
    auditor, shop = desk.api.client("auditor"), desk.api.client("storefront")
    refused(desk.decide(auditor, proposal["id"], "approve"), 403, "forbidden")
    refused(desk.decide(auditor, proposal["id"], "reject", {"reason": "no"}), 403, "forbidden")
    refused(desk.decide(shop, proposal["id"], "approve"), 403, "forbidden")
    refused(shop.request("GET", f"/v1/proposals/{proposal['id']}"), 403, "forbidden")
    refused(shop.request("GET", "/v1/proposals"), 403, "forbidden")
    assert desk.wallet_balance() == (0, 0)
    assert ok(auditor.request("GET", f"/v1/proposals/{proposal['id']}"))["state"] == "proposed"


def test_proposing_the_same_transfers_again_answers_the_same_proposal(desk: Desk) -> None:
    body = {"transfers": [transfer_body(desk.bank, desk.wallet, OWED_MINOR)]}
    first = ok(desk.maker.request("POST", "/v1/transfers", json_body=body), 202)
    again = ok(desk.maker.request("POST", "/v1/transfers", json_body=body), 202)  # new key
    assert again == first
    other = desk.checker.request("POST", "/v1/transfers", json_body=body)
    refused(other, 409, "proposal_exists_different")


def test_a_hold_on_a_party_account_is_proposed_and_its_post_too(desk: Desk) -> None:
    hold = desk.propose(flags=["pending"], timeout_s=3_600)
    ok(desk.decide(desk.checker, hold["id"], "approve"))
    assert desk.wallet_balance() == (0, OWED_MINOR)
    post = {
        "id": str(uuid.uuid4()),
        "pending_id": hold["payload"]["transfers"][0]["id"],
        "code": 1,
        "flags": ["post_pending"],
    }
    posted = ok(desk.maker.request("POST", "/v1/transfers", json_body={"transfers": [post]}), 202)
    assert desk.wallet_balance() == (0, OWED_MINOR)
    ok(desk.decide(desk.checker, posted["proposal"]["id"], "approve"))
    assert desk.wallet_balance() == (OWED_MINOR, 0)


def test_an_operator_transfer_touching_no_party_account_is_applied_at_once(desk: Desk) -> None:
    other = desk.maker.create_account(**account_body())["id"]
    [moved] = desk.maker.create_transfers([transfer_body(desk.bank, other, 10)])
    assert moved["status"] == "created"


def test_racing_approvals_apply_once(desk: Desk) -> None:
    """Eight operators approve at once: the proposal row is locked in the approval's
    transaction, so the transfer is applied once and all eight see the same answer."""
    proposal = desk.propose()
    checkers = [desk.api.client("operator") for _ in range(RACERS)]
    start = threading.Barrier(RACERS)
    answers: list[httpx.Response] = []

    def approve(who: Client) -> None:
        start.wait()
        answers.append(desk.decide(who, proposal["id"], "approve"))

    threads = [threading.Thread(target=approve, args=(c,)) for c in checkers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * RACERS, [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["result"][0]["status"] == "created"
    assert desk.wallet_balance() == (OWED_MINOR, 0)
    statement = desk.api.ledger.account_transfers(uuid.UUID(desk.wallet))
    assert [t.amount for t in statement] == [OWED_MINOR]
    assert desk.api.ledger.check_integrity().ok


def test_the_database_refuses_a_maker_as_checker_and_a_changed_decision(desk: Desk) -> None:
    proposal = desk.propose()
    proposal_id, maker = uuid.UUID(proposal["id"]), uuid.UUID(proposal["proposed_by"])

    def self_approve(tx: Any) -> None:
        tx.execute(
            "UPDATE proposals SET state = 'approved', decided_by = :m, decided_at_us = 1,"
            " result = '[]' WHERE id = :id",
            {"m": maker, "id": proposal_id},
        )

    with pytest.raises(InvariantViolation, match=r"(?i)check|constraint"):
        desk.api.ledger.transact(self_approve)
    ok(desk.decide(desk.checker, proposal["id"], "reject", {"reason": "duplicate"}))

    def reopen(tx: Any) -> None:
        tx.execute("UPDATE proposals SET reason = 'x' WHERE id = :id", {"id": proposal_id})

    with pytest.raises(InvariantViolation, match=r"(?i)refused|never changes"):
        desk.api.ledger.transact(reopen)


def test_the_maker_cannot_reject_its_own_proposal_either(desk: Desk) -> None:
    """The table holds no decision by a proposal's maker: a rejection by the maker is a
    clear 422, not a storage error, and the proposal stays open for another operator."""
    proposal = desk.propose()
    answer = desk.decide(desk.maker, proposal["id"], "reject", {"reason": "withdrawn"})
    refused(answer, 422, "proposal_maker_cannot_decide")
    assert ok(desk.decide(desk.checker, proposal["id"], "reject", {"reason": "no"}))["state"] == (
        "rejected"
    )
