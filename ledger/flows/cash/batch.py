"""What every cash operation builds: its two parties, its fee quote and its legs (core
transfers whose ids derive from the operation's id, so that a replay builds the same)."""

from __future__ import annotations

import uuid

from ledger.core.tx import Tx
from ledger.core.values import Transfer, TransferFlags
from ledger.flows import fees, parties
from ledger.flows.agent_float import check_id
from ledger.flows.errors import Refused
from ledger.flows.parties import Kind, Party, Role

__all__ = [
    "check_device",
    "hold_ids",
    "leg",
    "quote_or_none",
    "resolve",
    "shortages",
    "two_parties",
]


def two_parties(tx: Tx, agent_id: uuid.UUID, villager_id: uuid.UUID) -> tuple[Party, Party]:
    """(the agent, the villager); ``currency_mismatch`` when they hold different ones."""
    agent = parties.get_party(tx, agent_id, Kind.AGENT)
    villager = parties.get_party(tx, villager_id, Kind.VILLAGER)
    if agent.currency != villager.currency:
        raise Refused(
            "currency_mismatch",
            f"the agent holds {agent.currency}, the villager {villager.currency}",
        )
    return agent, villager


def shortages(agent: Party, villager: Party) -> dict[uuid.UUID, str]:
    """The refusal code of each account a cash operation's batch may find short."""
    return {
        agent.account(Role.FLOAT): "float_short",
        agent.account(Role.CASH): "agent_cash_short",
        agent.account(Role.CASH_CONTROL): "agent_cash_short",
        villager.account(Role.WALLET): "wallet_short",
    }


def quote_or_none(tx: Tx, product: str, currency: str, amount_minor: int) -> fees.Quote | None:
    """The fee quote in effect, or ``None`` when no schedule is."""
    try:
        return fees.quote(tx, product=product, currency=currency, amount_minor=amount_minor)
    except Refused as refusal:
        if refusal.code == "fee_schedule_missing":
            return None
        raise


def leg(
    op_id: uuid.UUID,
    name: str,
    *,
    debit: uuid.UUID,
    credit: uuid.UUID,
    amount_minor: int,
    currency: str,
    code: int,
    pending_s: int = 0,
) -> Transfer:
    """``debit`` pays ``credit`` (a hold that times out after ``pending_s``, if given)."""
    return Transfer(
        id=uuid.uuid5(op_id, name),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount_minor,
        currency=currency,
        code=code,
        flags=TransferFlags.PENDING if pending_s else TransferFlags(0),
        timeout_s=pending_s,
        metadata={"operation_id": str(op_id), "leg": name},
    )


def resolve(
    op_id: uuid.UUID, name: str, hold_id: uuid.UUID, code: int, *, post_minor: int | None
) -> Transfer:
    """A post (of ``post_minor``) or, with ``post_minor=None``, a void of a hold."""
    return Transfer(
        id=uuid.uuid5(op_id, name),
        debit_account_id=None,
        credit_account_id=None,
        amount=post_minor,
        currency=None,
        code=code,
        flags=(
            TransferFlags.POST_PENDING if post_minor is not None else TransferFlags.VOID_PENDING
        ),
        pending_id=hold_id,
        metadata={"operation_id": str(op_id), "leg": name},
    )


def hold_ids(cash_out_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """(the wallet's hold, the agent's cash hold) of a two-phase cash-out."""
    return uuid.uuid5(cash_out_id, "cash_out:hold"), uuid.uuid5(cash_out_id, "cash_out:cash_hold")


def check_device(device_id: object) -> uuid.UUID | None:
    return None if device_id is None else check_id(device_id, "device_id")
