"""The parties flow's service: its rules and functions (the package docstring,
:mod:`ledger.flows.parties`, says what they guarantee; the SQL is in its repository)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from ledger.core import currency as iso4217
from ledger.core.errors import InvariantViolation
from ledger.core.ledger import transactional
from ledger.core.tx import Tx
from ledger.core.values import Account, AccountFlags, Status
from ledger.flows import ownership
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.parties import repository, tills
from ledger.flows.parties.repository import AccountOwner
from ledger.limits import NAME_LENGTH_MAX

PARTY_NAMESPACE = uuid.UUID("5f0d7a52-3c1e-4b8e-9a52-6b1d2c9e7a10")
"""Derives account ids from party ids (and the platform's id from its currency)."""

PROVIDER_LENGTH_MAX = 32


class Kind(StrEnum):
    PLATFORM = "platform"
    STOREFRONT = "storefront"
    AGENT = "agent"
    VILLAGER = "villager"


class Role(StrEnum):
    FEE_INCOME = "fee_income"
    COMMISSION_EXPENSE = "commission_expense"
    TAX_PAYABLE = "tax_payable"
    ROUNDING = "rounding"
    SUSPENSE = "suspense"
    SETTLEMENT = "settlement"
    ESCROW = "escrow"
    PROCEEDS = "proceeds"
    FLOAT = "float"
    CASH = "cash"
    CASH_CONTROL = "cash_control"
    COMMISSION = "commission"
    OFFLINE_ALLOWANCE = "offline_allowance"
    WALLET = "wallet"


PROVIDER_CLEARING = "provider_clearing"
"""Prefix of the platform's per-provider clearing roles: ``provider_clearing:MPESA``."""


class AccountCode(IntEnum):
    """The core account ``code`` of each role: what kind of account it is."""

    WALLET = 101
    AGENT_FLOAT = 201
    AGENT_CASH = 202
    AGENT_CASH_CONTROL = 203
    AGENT_COMMISSION = 204
    AGENT_OFFLINE_ALLOWANCE = 205
    ESCROW = 301
    SELLER_PROCEEDS = 302
    FEE_INCOME = 401
    COMMISSION_EXPENSE = 402
    TAX_PAYABLE = 403
    ROUNDING = 404
    SUSPENSE = 405
    SETTLEMENT = 406
    PROVIDER_CLEARING = 407


_NOT_BELOW_ZERO_CREDIT = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
_NOT_BELOW_ZERO_DEBIT = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
_NONE = AccountFlags(0)

ROLE_ACCOUNTS: dict[str, tuple[AccountCode, AccountFlags]] = {
    Role.FEE_INCOME: (AccountCode.FEE_INCOME, _NOT_BELOW_ZERO_CREDIT),
    Role.COMMISSION_EXPENSE: (AccountCode.COMMISSION_EXPENSE, _NOT_BELOW_ZERO_DEBIT),
    Role.TAX_PAYABLE: (AccountCode.TAX_PAYABLE, _NOT_BELOW_ZERO_CREDIT),
    Role.ROUNDING: (AccountCode.ROUNDING, _NONE),
    Role.SUSPENSE: (AccountCode.SUSPENSE, _NONE),
    Role.SETTLEMENT: (AccountCode.SETTLEMENT, _NONE),
    Role.ESCROW: (AccountCode.ESCROW, _NOT_BELOW_ZERO_CREDIT),
    Role.PROCEEDS: (AccountCode.SELLER_PROCEEDS, _NOT_BELOW_ZERO_CREDIT),
    Role.FLOAT: (AccountCode.AGENT_FLOAT, _NOT_BELOW_ZERO_CREDIT),
    Role.CASH: (AccountCode.AGENT_CASH, _NOT_BELOW_ZERO_DEBIT),
    Role.CASH_CONTROL: (AccountCode.AGENT_CASH_CONTROL, _NOT_BELOW_ZERO_CREDIT),
    Role.COMMISSION: (AccountCode.AGENT_COMMISSION, _NOT_BELOW_ZERO_CREDIT),
    Role.OFFLINE_ALLOWANCE: (AccountCode.AGENT_OFFLINE_ALLOWANCE, _NOT_BELOW_ZERO_CREDIT),
    Role.WALLET: (AccountCode.WALLET, _NOT_BELOW_ZERO_CREDIT),
}

KIND_ROLES: dict[Kind, tuple[Role, ...]] = {
    Kind.PLATFORM: (
        Role.FEE_INCOME,
        Role.COMMISSION_EXPENSE,
        Role.TAX_PAYABLE,
        Role.ROUNDING,
        Role.SUSPENSE,
        Role.SETTLEMENT,
    ),
    Kind.STOREFRONT: (Role.ESCROW, Role.PROCEEDS),
    Kind.AGENT: (
        Role.FLOAT,
        Role.CASH,
        Role.CASH_CONTROL,
        Role.COMMISSION,
        Role.OFFLINE_ALLOWANCE,
    ),
    Kind.VILLAGER: (Role.WALLET,),
}


@dataclass(frozen=True, slots=True)
class Party:
    id: uuid.UUID
    kind: Kind
    name: str
    currency: str
    kyc_tier: str | None
    accounts: dict[str, uuid.UUID] = field(default_factory=dict)
    """Account id by role."""

    def account(self, role: str) -> uuid.UUID:
        try:
            return self.accounts[role]
        except KeyError:
            raise NotFound("account_not_found", f"{self.kind} {self.id} has no {role}") from None


def account_id(party_id: uuid.UUID, role: str) -> uuid.UUID:
    """The id of a party's account in a role (the same on every replay)."""
    return uuid.uuid5(PARTY_NAMESPACE, f"{party_id}:{role}")


def platform_id(currency: str) -> uuid.UUID:
    """The platform party of a currency."""
    return uuid.uuid5(PARTY_NAMESPACE, f"platform:{currency}")


def provider_role(provider: str) -> str:
    """The platform's clearing role for a provider (``MPESA`` -> ``provider_clearing:MPESA``)."""
    if (
        not provider
        or len(provider) > PROVIDER_LENGTH_MAX
        or not provider.isascii()
        or not provider.replace("_", "").isalnum()
        or provider != provider.upper()
    ):
        raise Refused("provider_invalid", "a provider is 1-32 upper-case ASCII letters or digits")
    return f"{PROVIDER_CLEARING}:{provider}"


# -- onboarding -------------------------------------------------------------------------


def onboard_in(
    tx: Tx,
    *,
    party_id: uuid.UUID,
    kind: Kind,
    name: str,
    currency: str,
    kyc_tier: str | None = None,
) -> Party:
    """Create a party and its accounts (and the platform of its currency, if new);
    the same details again answer the party as it is (:func:`onboard` runs it in a
    transaction of its own)."""
    kind = Kind(kind)
    _check_new_party(party_id, kind, name, currency, kyc_tier)
    if kind is not Kind.PLATFORM:
        ensure_platform(tx, currency)
    existing = find_party(tx, party_id)
    if existing is not None:
        if (existing.kind, existing.currency, existing.name) != (kind, currency, name) or (
            kind is Kind.VILLAGER and existing.kyc_tier != kyc_tier
        ):
            raise Conflict("party_exists_different", f"party {party_id} exists with other details")
        return existing
    repository.insert_party(
        tx, party_id=party_id, kind=kind.value, name=name, currency=currency, kyc_tier=kyc_tier
    )
    for role in KIND_ROLES[kind]:
        _open_account(tx, party_id, role, currency)
    if kind is Kind.AGENT:
        tills.till_of_in(tx, party_id)  # the number villagers type to name the agent
    found = find_party(tx, party_id)
    if found is None:
        raise InvariantViolation(f"party {party_id} was written and cannot be read back")
    return found


onboard = transactional(onboard_in)


def onboard_with_limits_in(
    tx: Tx,
    *,
    party_id: uuid.UUID,
    kind: Kind,
    name: str,
    currency: str,
    kyc_tier: str | None = None,
) -> Party:
    """:func:`onboard_in` as an operator onboards (``POST /v1/parties``): a villager's KYC
    tier must also have limits in its currency, else :class:`Refused`
    ``kyc_tier_unknown`` and nothing is written (:func:`onboard_in` alone lets a villager
    exist in a tier without limits: it then can do no cash operation until an operator
    adds them). :func:`onboard_with_limits` runs it in a transaction of its own."""
    kind = Kind(kind)
    _check_new_party(party_id, kind, name, currency, kyc_tier)
    if kyc_tier is not None:
        from ledger.flows import limits  # late: the KYC limits flow imports this one

        limits.tier_limits_in(tx, currency=currency, tier=kyc_tier)
    return onboard_in(
        tx, party_id=party_id, kind=kind, name=name, currency=currency, kyc_tier=kyc_tier
    )


onboard_with_limits = transactional(onboard_with_limits_in)


def _check_new_party(
    party_id: uuid.UUID, kind: Kind, name: str, currency: str, kyc_tier: str | None
) -> None:
    if not iso4217.is_supported(currency):
        raise Refused("currency_not_supported", f"{currency!r} is not an active ISO 4217 code")
    if not name or len(name) > NAME_LENGTH_MAX:
        raise Refused("name_invalid", f"a name is 1-{NAME_LENGTH_MAX} characters")
    if (kind is Kind.VILLAGER) != (kyc_tier is not None):
        raise Refused("kyc_tier_invalid", "a villager has a KYC tier; nobody else has one")
    if kind is not Kind.PLATFORM and party_id == platform_id(currency):
        raise Conflict("party_id_reserved", "that id is the platform's")


def ensure_platform(tx: Tx, currency: str) -> Party:
    """The platform party of ``currency``, created on first use."""
    found = find_party(tx, platform_id(currency))
    if found is not None:
        return found
    return onboard_in(
        tx,
        party_id=platform_id(currency),
        kind=Kind.PLATFORM,
        name=f"platform {currency}",
        currency=currency,
    )


def provider_clearing(tx: Tx, currency: str, provider: str) -> uuid.UUID:
    """The platform's clearing account at ``provider`` in ``currency``, opened on first use."""
    role = provider_role(provider)
    platform = ensure_platform(tx, currency)
    if role in platform.accounts:
        return platform.accounts[role]
    return _open_account(tx, platform.id, role, currency)


def _open_account(tx: Tx, party_id: uuid.UUID, role: str, currency: str) -> uuid.UUID:
    if role.startswith(f"{PROVIDER_CLEARING}:"):
        code, flags = AccountCode.PROVIDER_CLEARING, _NONE
    else:
        code, flags = ROLE_ACCOUNTS[role]
    new_id = account_id(party_id, role)
    metadata = {"party_id": str(party_id), "role": role}
    [result] = tx.create_accounts([Account(new_id, currency, code, flags, metadata)])
    # An existing account is adopted only if no principal opened it (so nobody can claim
    # a party's derivable id before onboarding) and it has this role's code and flags.
    if result.status.value.startswith("exists") and (
        result.status is not Status.EXISTS or ownership.owner_of(tx, new_id) is not None
    ):
        raise Conflict("account_id_taken", f"account {new_id} was opened by someone else")
    if result.status not in (Status.CREATED, Status.EXISTS):
        raise Conflict("account_exists_different", f"account {new_id}: {result.status}")
    repository.insert_account(tx, party_id=party_id, role=role, account_id=new_id)
    return new_id


# -- reading ----------------------------------------------------------------------------


def find_party(tx: Tx, party_id: uuid.UUID, *, lock: bool = False) -> Party | None:
    """The party with its accounts, or ``None``. With ``lock`` the party's row stays
    locked until ``tx`` commits (one villager's consents change one at a time)."""
    row = repository.select_party(tx, party_id, lock=lock)
    if row is None:
        return None
    accounts = repository.select_accounts(tx, party_id)
    return Party(row.id, Kind(row.kind), row.name, row.currency, row.kyc_tier, accounts)


read_party = transactional(find_party)
"""The party with its accounts, or ``None``, read in a transaction of its own."""


def get_party(tx: Tx, party_id: uuid.UUID, kind: Kind | None = None) -> Party:
    """The party, which must exist (and be of ``kind``): else :class:`NotFound`."""
    found = find_party(tx, party_id)
    if found is None or (kind is not None and found.kind is not kind):
        raise NotFound(f"{kind or 'party'}_not_found", f"no {kind or 'party'} {party_id}")
    return found


def owner_of(tx: Tx, account: uuid.UUID) -> tuple[uuid.UUID, str] | None:
    """Which party holds ``account``, and in which role."""
    return repository.select_owner(tx, account)


def account_owners(tx: Tx, accounts: Sequence[uuid.UUID]) -> dict[uuid.UUID, AccountOwner]:
    """The holder (party, role, kind, name, currency, KYC tier) of each of ``accounts``
    that a party holds, by account id; accounts of no party are absent."""
    return {owner.account_id: owner for owner in repository.select_owners(tx, accounts)}


def change_kyc_tier_in(tx: Tx, *, party_id: uuid.UUID, tier: str) -> None:
    """Write the party's KYC tier (the KYC limits flow,
    :func:`ledger.flows.limits.set_kyc_tier_in`, checks it and tells the villager)."""
    repository.update_kyc_tier(tx, party_id=party_id, tier=tier)
