"""The small flows' public faces (issue 12) and the checks issue 13 added, on SQLite and
PostgreSQL.

Each of villagers, consent, parties, limits, fees, proposals, wallets and events is a
package whose ``__init__.py`` only re-exports (an explicit ``__all__``) what its
``service.py`` and ``repository.py`` define. Consent checks a request one way whichever
function takes it; ``proposals.register`` refuses a malformed kind with the error tree;
onboarding a villager through :func:`ledger.flows.parties.onboard_with_limits` and
registering one at a station refuse a KYC tier without limits in the currency
(``kyc_tier_unknown``) and write nothing.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.core.errors import LedgerError, MalformedRequest
from ledger.core.ledger import Ledger
from ledger.flows import consent, limits, parties, proposals, villagers
from ledger.flows.consent import Purpose
from ledger.flows.errors import NotFound, Refused
from ledger.flows.parties import Kind, Role

SMALL_FLOWS = (
    "villagers",
    "consent",
    "parties",
    "limits",
    "fees",
    "proposals",
    "wallets",
    "events",
)
KES, USD = "KES", "USD"


def refused(code: str, call: Callable[[], Any]) -> None:
    with pytest.raises(Refused) as caught:
        call()
    assert caught.value.code == code, caught.value


# -- the public faces -----------------------------------------------------------------------


@pytest.mark.parametrize("flow", SMALL_FLOWS)
def test_the_package_face_only_re_exports_with_an_explicit_all(flow: str) -> None:
    package = importlib.import_module(f"ledger.flows.{flow}")
    service = importlib.import_module(f"ledger.flows.{flow}.service")
    names = package.__all__
    assert names == sorted(set(names), key=names.index) and len(names) == len(set(names))
    assert names, flow
    for name in names:
        assert hasattr(package, name), f"{flow}.{name} is in __all__ but not there"
    tree = ast.parse(Path(package.__file__ or "").read_text())
    assert ast.get_docstring(tree), f"{flow}/__init__.py says what the flow is for"
    kinds = {type(node) for node in tree.body[1:]}
    assert kinds <= {ast.ImportFrom, ast.Assign}, f"{flow}/__init__.py defines code: {kinds}"
    # every public function and class of the service is public on the package, as itself
    for name, value in vars(service).items():
        if name.startswith("_") or getattr(value, "__module__", None) != service.__name__:
            continue
        if inspect.isfunction(value) or inspect.isclass(value):
            assert getattr(package, name, None) is value, f"{flow}.{name} is not re-exported"


def test_the_old_import_paths_still_give_the_service_functions() -> None:
    from ledger.flows.consent import make_code
    from ledger.flows.parties import onboard_with_limits
    from ledger.flows.villagers import register_villager

    assert register_villager.__module__ == "ledger.flows.villagers.service"
    assert make_code.__module__ == "ledger.flows.consent.service"
    assert onboard_with_limits.__module__ == "ledger.flows.parties.service"


# -- consent: one check of the request ------------------------------------------------------


def _consent_calls(**asked: Any) -> list[Callable[[], Any]]:
    """make_code, by_pin and check_code with the same request (no villager exists: every
    refusal here comes before the PIN or the database)."""
    villager_id = uuid.uuid4()
    return [
        lambda: consent.make_code(None, villager_id=villager_id, pin="2580", **asked),  # type: ignore[arg-type]
        lambda: consent.by_pin(None, villager_id=villager_id, pin="2580", **asked),  # type: ignore[arg-type]
        lambda: consent.check_code(
            None,  # type: ignore[arg-type]
            caller_id=uuid.uuid4(),
            villager_id=villager_id,
            code="123456",
            **asked,
        ),
    ]


W, P = Purpose.WITHDRAWAL, Purpose.PAYMENT


@pytest.mark.parametrize(
    ("asked", "code"),
    [
        ({"purpose": "bogus", "amount_minor": 100, "agent_id": uuid.uuid4()}, None),
        ({"purpose": W, "amount_minor": 0, "agent_id": uuid.uuid4()}, "amount_invalid"),
        ({"purpose": W, "amount_minor": 2**53, "agent_id": uuid.uuid4()}, "amount_invalid"),
        ({"purpose": W, "amount_minor": 100, "order_id": uuid.uuid4()}, "consent_purpose_invalid"),
        ({"purpose": P, "amount_minor": 100, "agent_id": uuid.uuid4()}, "consent_purpose_invalid"),
        ({"purpose": P, "amount_minor": 100, "order_id": "not-a-uuid"}, None),
    ],
)
def test_make_pin_and_check_refuse_a_bad_request_the_same_way(
    asked: dict[str, Any], code: str | None
) -> None:
    for call in _consent_calls(**asked):
        if code is None:
            with pytest.raises(MalformedRequest):
                call()
        else:
            refused(code, call)


# -- proposals: a malformed kind ---------------------------------------------------------


def test_registering_a_malformed_kind_is_a_malformed_request_and_registers_nothing(
    ledger: Ledger,
) -> None:
    def apply(tx: Any, payload: Any) -> None:
        return None

    too_long = "k" * (proposals.KIND_LENGTH_MAX + 1)
    for kind in ("", too_long):
        with pytest.raises(MalformedRequest) as caught:
            proposals.register(kind, apply)
        assert isinstance(caught.value, LedgerError)
        refused(
            "proposal_kind_unknown",
            lambda kind=kind: proposals.propose(
                ledger, proposal_id=uuid.uuid4(), kind=kind, payload={}, proposed_by=uuid.uuid4()
            ),
        )
    with pytest.raises(MalformedRequest):
        proposals.register("not_callable", "apply")  # type: ignore[arg-type]
    refused(
        "proposal_kind_unknown",
        lambda: proposals.propose(
            ledger,
            proposal_id=uuid.uuid4(),
            kind="not_callable",
            payload={},
            proposed_by=uuid.uuid4(),
        ),
    )


# -- KYC tiers at onboarding and registration -------------------------------------------------


def test_onboarding_with_limits_refuses_an_unknown_tier_and_writes_nothing(ledger: Ledger) -> None:
    for currency, tier in ((KES, "gold"), (USD, "tier0"), (KES, "Tier0")):
        party_id = uuid.uuid4()
        with pytest.raises(Refused) as caught:
            parties.onboard_with_limits(
                ledger,
                party_id=party_id,
                kind=Kind.VILLAGER,
                name="Ann",
                currency=currency,
                kyc_tier=tier,
            )
        assert caught.value.code == "kyc_tier_unknown"
        assert parties.read_party(ledger, party_id) is None
        assert ledger.lookup_accounts([parties.account_id(party_id, Role.WALLET)]) == []
    assert parties.read_party(ledger, parties.platform_id(USD)) is None
    made = parties.onboard_with_limits(
        ledger,
        party_id=uuid.uuid4(),
        kind=Kind.VILLAGER,
        name="Ann",
        currency=KES,
        kyc_tier="tier2",
    )
    assert (made.kyc_tier, parties.read_party(ledger, made.id)) == ("tier2", made)
    # A storefront has no tier and needs none; the other checks still come first.
    shop = parties.onboard_with_limits(
        ledger, party_id=uuid.uuid4(), kind=Kind.STOREFRONT, name="Duka", currency=USD
    )
    assert shop.kyc_tier is None
    refused(
        "kyc_tier_invalid",
        lambda: parties.onboard_with_limits(
            ledger, party_id=uuid.uuid4(), kind=Kind.VILLAGER, name="Ann", currency=KES
        ),
    )
    # The plain flow function still lets a villager exist in a tier without limits.
    loose = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.VILLAGER, name="Ann", currency=KES, kyc_tier="gold"
    )
    assert loose.kyc_tier == "gold"


def test_registering_a_villager_in_a_currency_without_tier0_writes_nothing(
    ledger: Ledger,
) -> None:
    agent_id, villager_id, phone = uuid.uuid4(), uuid.uuid4(), "+254712345678"
    parties.onboard(ledger, party_id=agent_id, kind=Kind.AGENT, name="Dollar desk", currency=USD)

    def register() -> villagers.Villager:
        return villagers.register_villager(
            ledger,
            villager_id=villager_id,
            agent_id=agent_id,
            phone=phone,
            name="Ann",
            currency=USD,
            language="en",
        )

    refused("kyc_tier_unknown", register)
    assert parties.read_party(ledger, villager_id) is None
    with pytest.raises(NotFound):
        villagers.get_villager(ledger, villager_id)
    limits.set_tier_limits(
        ledger,
        currency=USD,
        tier=villagers.REGISTRATION_TIER,
        per_transaction_max_minor=10_000,
        daily_max_minor=20_000,
        balance_max_minor=50_000,
    )
    made = register()  # the phone was not taken by the refused try
    assert (made.id, made.kyc_tier, made.currency, made.phone) == (villager_id, "tier0", USD, phone)
