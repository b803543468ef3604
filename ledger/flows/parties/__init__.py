"""Parties and the accounts each one owns: the chart of accounts of a village.

Every party holds one currency. Onboarding a party creates its accounts on the core and
its rows here in one transaction; it is idempotent by the party id the client chose (an
account's id is derived from its party's id and its role, so a replay finds them).

============  ===============================  ======================================
party         role                             normal side, and the limit it keeps
============  ===============================  ======================================
platform      ``fee_income``                   credit; never below zero
(one per      ``commission_expense``           debit; never below zero
currency)     ``tax_payable``                  credit; never below zero
              ``rounding``                     either: fee remainders land here
              ``suspense``                     either: provider money nobody claimed
              ``settlement``                   either: payouts on their way out
              ``provider_clearing:<NAME>``     debit: money held at a provider (one per
                                               provider, opened on first use)
storefront    ``escrow``                       credit; paid orders not yet released
              ``proceeds``                     credit; released, not yet paid out
agent         ``float``                        credit; e-money the agent can spend
              ``cash``                         debit; cash the agent should hold
              ``cash_control``                 credit; the other side of ``cash``
              ``commission``                   credit; commission earned
              ``offline_allowance``            credit; float its devices may spend
                                               offline (held there, pending)
villager      ``wallet``                       credit; the villager's balance
============  ===============================  ======================================

"Never below zero" is the core's limit flag, so the database refuses it too.

A villager's KYC tier names a row of ``kyc_tiers`` (:mod:`ledger.flows.limits`). An
operator onboards through :func:`onboard_with_limits`, which refuses a tier without limits
in the villager's currency (``kyc_tier_unknown``, nothing written); :func:`onboard` itself
lets such a villager exist (it can then do no cash operation until the tier gets limits).

The tables' SQL lives in :mod:`ledger.flows.parties.repository`; other flows read parties
and their accounts through this module's functions (:func:`find_party`,
:func:`owner_of`, :func:`account_owners`), never through the tables.
"""

from ledger.flows.parties.repository import AccountOwner
from ledger.flows.parties.service import (
    KIND_ROLES,
    PARTY_NAMESPACE,
    PROVIDER_CLEARING,
    PROVIDER_LENGTH_MAX,
    ROLE_ACCOUNTS,
    AccountCode,
    Kind,
    Party,
    Role,
    account_id,
    account_owners,
    change_kyc_tier_in,
    ensure_platform,
    find_party,
    get_party,
    onboard,
    onboard_in,
    onboard_with_limits,
    onboard_with_limits_in,
    owner_of,
    platform_id,
    provider_clearing,
    provider_role,
    read_party,
)
from ledger.limits import NAME_LENGTH_MAX

__all__ = [
    "AccountCode",
    "AccountOwner",
    "KIND_ROLES",
    "Kind",
    "NAME_LENGTH_MAX",
    "PARTY_NAMESPACE",
    "PROVIDER_CLEARING",
    "PROVIDER_LENGTH_MAX",
    "Party",
    "ROLE_ACCOUNTS",
    "Role",
    "account_id",
    "account_owners",
    "change_kyc_tier_in",
    "ensure_platform",
    "find_party",
    "get_party",
    "onboard",
    "onboard_in",
    "onboard_with_limits",
    "onboard_with_limits_in",
    "owner_of",
    "platform_id",
    "provider_clearing",
    "provider_role",
    "read_party",
]
