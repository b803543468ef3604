"""The transfers an order's operations make, from the order's row alone (no I/O): the
payment into escrow, a release to the seller and the fee legs, a refund to the payer,
the reversal of earlier releases. Leg ids derive from the step id, so that a replay
builds the same legs; every leg names the order in its metadata (``order_id``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from ledger.core.errors import InvariantViolation
from ledger.core.values import Transfer
from ledger.flows import parties
from ledger.flows.errors import Refused
from ledger.flows.orders.model import (
    CASH_RECEIVED_CODE,
    CASH_RETURNED_CODE,
    PAYMENT_CODE,
    REFUND_CODE,
    RELEASE_CODE,
    REVERSAL_CODE,
    Group,
    Leg,
    OrderRow,
    ReleasedLeg,
    Source,
)
from ledger.flows.parties import Role


def leg_id(step_id: uuid.UUID, name: str) -> uuid.UUID:
    """The id of the step's leg ``name`` (the same on every replay)."""
    return uuid.uuid5(step_id, f"order:{name}")


def _transfer(
    step_id: uuid.UUID,
    name: str,
    row: OrderRow,
    *,
    debit: uuid.UUID,
    credit: uuid.UUID,
    amount_minor: int,
    code: int,
    reverses_id: uuid.UUID | None = None,
) -> Transfer:
    return Transfer(
        id=leg_id(step_id, name),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount_minor,
        currency=row.currency,
        code=code,
        reverses_id=reverses_id,
        metadata={"order_id": str(row.id), "leg": name},
    )


def _party(party_id: uuid.UUID | None, what: str, row: OrderRow) -> uuid.UUID:
    if party_id is None:  # the service checks it before it asks for legs
        raise InvariantViolation(f"order {row.id} has no {what}")
    return party_id


def escrow_account(row: OrderRow) -> uuid.UUID:
    """The storefront's escrow, which holds what the order paid and has not released."""
    return parties.account_id(row.storefront_id, Role.ESCROW)


def proceeds_account(row: OrderRow) -> uuid.UUID:
    """The seller's proceeds, where a release pays the seller's part."""
    return parties.account_id(row.storefront_id, Role.PROCEEDS)


def shortages(row: OrderRow) -> dict[uuid.UUID, str]:
    """Which refusal code to answer when an account of this order is short."""
    short = {
        escrow_account(row): "escrow_short",
        proceeds_account(row): "proceeds_short",
    }
    if row.villager_id is not None:
        short[parties.account_id(row.villager_id, Role.WALLET)] = "wallet_short"
    if row.agent_id is not None:
        agent = row.agent_id
        short[parties.account_id(agent, Role.FLOAT)] = "float_short"
        short[parties.account_id(agent, Role.CASH)] = "agent_cash_short"
        short[parties.account_id(agent, Role.CASH_CONTROL)] = "agent_cash_short"
        short[parties.account_id(agent, Role.COMMISSION)] = "agent_commission_short"
    platform = parties.platform_id(row.currency)
    short[parties.account_id(platform, Role.FEE_INCOME)] = "fee_income_short"
    short[parties.account_id(platform, Role.TAX_PAYABLE)] = "tax_payable_short"
    short[parties.account_id(platform, Role.COMMISSION_EXPENSE)] = "commission_expense_short"
    return short


def _payer_account(row: OrderRow, source: Source | None) -> uuid.UUID:
    """What paid the order (and what a refund pays back): the villager's wallet, or for
    cash the agent's float."""
    if source is Source.WALLET:
        return parties.account_id(_party(row.villager_id, "villager", row), Role.WALLET)
    return parties.account_id(_party(row.agent_id, "agent", row), Role.FLOAT)


def _cash_leg(
    row: OrderRow, step_id: uuid.UUID, name: str, *, received: bool, amount_minor: int, code: int
) -> Transfer:
    """The agent's cash-on-hand grows by the cash handed over (``received``) or shrinks
    by the cash handed back."""
    agent = _party(row.agent_id, "agent", row)
    cash = parties.account_id(agent, Role.CASH)
    control = parties.account_id(agent, Role.CASH_CONTROL)
    debit, credit = (cash, control) if received else (control, cash)
    return _transfer(
        step_id, name, row, debit=debit, credit=credit, amount_minor=amount_minor, code=code
    )


def payment_legs(row: OrderRow, step_id: uuid.UUID, source: Source) -> list[Leg]:
    """The order's amount into escrow: from the villager's wallet; or, in cash, from the
    agent's float while the agent's cash-on-hand grows by the cash handed over. The first
    leg is the payment a refund names."""
    amount_minor = row.amount_minor
    pay = _transfer(
        step_id,
        "payment",
        row,
        debit=_payer_account(row, source),
        credit=escrow_account(row),
        amount_minor=amount_minor,
        code=PAYMENT_CODE,
    )
    legs = [Leg(Group.PAYMENT, pay)]
    if source is not Source.WALLET:
        cash_in = _cash_leg(
            row,
            step_id,
            "cash_received",
            received=True,
            amount_minor=amount_minor,
            code=CASH_RECEIVED_CODE,
        )
        legs.append(Leg(Group.PAYMENT, cash_in))
    return legs


def check_fee_within(fee_minor: int, amount_minor: int) -> None:
    """A release pays its fee out of what it releases: a larger fee is refused."""
    if fee_minor > amount_minor:
        raise Refused(
            "fee_exceeds_release", f"a fee of {fee_minor} exceeds the {amount_minor} released"
        )


def release_legs(
    row: OrderRow,
    step_id: uuid.UUID,
    amount_minor: int,
    *,
    fee_minor: int,
    fee_transfers: Sequence[Transfer],
) -> list[Leg]:
    """Release ``amount_minor`` of escrow: the seller gets ``amount_minor - fee_minor``
    (no leg when that is 0), then the fee legs (:func:`ledger.flows.fees.fee_transfers`
    of the quote, paid out of escrow), which add up to ``fee_minor``."""
    check_fee_within(fee_minor, amount_minor)
    seller_minor = amount_minor - fee_minor
    legs: list[Leg] = []
    if seller_minor > 0:
        seller = _transfer(
            step_id,
            "seller",
            row,
            debit=escrow_account(row),
            credit=proceeds_account(row),
            amount_minor=seller_minor,
            code=RELEASE_CODE,
        )
        legs.append(Leg(Group.RELEASE, seller))
    return legs + [Leg(Group.RELEASE, t) for t in fee_transfers]


def release_split(row: OrderRow, legs: Sequence[Leg]) -> tuple[int, int]:
    """What a release's legs paid: (to the seller, in fees out of escrow)."""
    escrow, proceeds = escrow_account(row), proceeds_account(row)
    seller_minor = sum(
        leg.transfer.amount or 0 for leg in legs if leg.transfer.credit_account_id == proceeds
    )
    fee_minor = sum(
        leg.transfer.amount or 0
        for leg in legs
        if leg.transfer.debit_account_id == escrow and leg.transfer.credit_account_id != proceeds
    )
    return seller_minor, fee_minor


def refund_legs(row: OrderRow, step_id: uuid.UUID, amount_minor: int) -> list[Leg]:
    """Escrow back to the payer, naming the payment it reverses: to the wallet; or, for
    cash, to the agent's float while the agent's cash-on-hand shrinks by the cash handed
    back (the payment's legs, turned round)."""
    refund = _transfer(
        step_id,
        "refund",
        row,
        debit=escrow_account(row),
        credit=_payer_account(row, row.payment_source),
        amount_minor=amount_minor,
        code=REFUND_CODE,
        reverses_id=row.payment_transfer_id,
    )
    legs = [Leg(Group.REFUND, refund)]
    if row.payment_source is not Source.WALLET:
        cash_back = _cash_leg(
            row,
            step_id,
            "cash_returned",
            received=False,
            amount_minor=amount_minor,
            code=CASH_RETURNED_CODE,
        )
        legs.append(Leg(Group.REFUND, cash_back))
    return legs


def reversal_legs(row: OrderRow, step_id: uuid.UUID, released: Sequence[ReleasedLeg]) -> list[Leg]:
    """Every earlier release leg given back into escrow, each naming the leg it reverses."""
    return [
        Leg(
            Group.REVERSAL,
            Transfer(
                id=leg_id(step_id, f"reversal:{leg.transfer_id}"),
                debit_account_id=leg.credit_account_id,
                credit_account_id=leg.debit_account_id,
                amount=leg.amount_minor,
                currency=row.currency,
                code=REVERSAL_CODE,
                reverses_id=leg.transfer_id,
                metadata={"order_id": str(row.id), "leg": "reversal"},
            ),
        )
        for leg in released
    ]
