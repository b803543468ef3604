"""The villager's consent over signed HTTP, both engines: an agent's cash-out request
carries the withdrawal code the villager made; without it, or with a wrong one, the
answer is a 422 problem and every balance is as it was; a replayed request answers what
was stored, though its code is spent."""

from __future__ import annotations

import uuid
from typing import Any

from ledger.flows import cash, parties
from ledger.flows.parties import Role
from tests.test_api_cash import Counter, api, api_server
from tests.test_api_harness import Harness
from tests.test_api_orders import ok, refused

__all__ = ["api", "api_server"]


def balances(counter: Counter) -> dict[str, tuple[int, int]]:
    """(posted, pending debits) of the wallet, the agent's float and its cash."""
    ids = {
        "wallet": parties.account_id(uuid.UUID(counter.villager_id), Role.WALLET),
        "float": parties.account_id(uuid.UUID(counter.agent_id), Role.FLOAT),
        "cash": parties.account_id(uuid.UUID(counter.agent_id), Role.CASH),
    }
    found = {a.id: a for a in counter.api.ledger.lookup_accounts(list(ids.values()))}
    return {
        name: (found[i].credits_posted - found[i].debits_posted, found[i].debits_pending)
        for name, i in ids.items()
    }


def cash_outs(counter: Counter) -> list[cash.CashOut]:
    return cash.list_cash_outs(counter.api.ledger, agent_id=uuid.UUID(counter.agent_id))


def post(counter: Counter, body: dict[str, Any], key: str | None = None) -> Any:
    return counter.agent.request(
        "POST", f"/v1/agents/{counter.agent_id}/cash-outs", json_body=body, idempotency_key=key
    )


def test_a_cash_out_without_the_villagers_code_is_422_and_holds_nothing(api: Harness) -> None:
    counter = Counter(api)
    ok(counter.cash_in(50_000), 201)
    before = balances(counter)
    problem = refused(counter.cash_out(20_000, consent_code=None), 422, "consent_required")
    assert "consent" in problem["title"]
    assert balances(counter) == before
    assert cash_outs(counter) == []


def test_a_wrong_code_is_422_and_the_right_one_then_holds_the_wallet(api: Harness) -> None:
    counter = Counter(api)
    ok(counter.cash_in(50_000), 201)
    code = counter.code(20_000)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    before = balances(counter)
    refused(counter.cash_out(20_000, consent_code=wrong), 422, "consent_invalid")
    refused(counter.cash_out(20_001, consent_code=code), 422, "consent_invalid")
    refused(counter.cash_out(20_000, consent_code="12345"), 422, "validation_failed")
    assert balances(counter) == before
    assert cash_outs(counter) == []
    made = ok(counter.cash_out(20_000, consent_code=code), 201)
    assert made["state"] == "requested"
    assert balances(counter)["wallet"] == (50_000, 20_000)
    refused(counter.cash_out(20_000, consent_code=code), 422, "consent_invalid")  # used


def test_a_replayed_post_answers_the_stored_answer_though_the_code_is_spent(
    api: Harness,
) -> None:
    counter = Counter(api)
    ok(counter.cash_in(50_000), 201)
    body = {
        "id": str(uuid.uuid4()),
        "villager_id": counter.villager_id,
        "amount_minor": 20_000,
        "consent_code": counter.code(20_000),
    }
    first = post(counter, body, key="till-7")
    made = ok(first, 201)
    held = balances(counter)
    replayed = post(counter, body, key="till-7")
    assert replayed.headers["idempotency-replayed"] == "true"
    assert ok(replayed, 201) == made
    # Days later, the key forgotten: the operation id still answers the same cash-out.
    assert ok(post(counter, body, key="till-8"), 201) == made
    assert ok(post(counter, {**body, "consent_code": None}, key="till-9"), 201) == made
    assert balances(counter) == held
    assert len(cash_outs(counter)) == 1
    assert api.ledger.check_integrity().ok
