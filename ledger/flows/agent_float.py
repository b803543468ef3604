"""An agent's float: e-money the agent spends on villagers' cash-ins and gets back from
their cash-outs.

Money (each operation one linked batch, idempotent by the client's id):

- **top-up**: the agent deposits cash with a super-agent or a bank (the ``provider``);
  the provider's clearing account at the platform pays the agent's ``float``
  (``provider_clearing:<PROVIDER>`` debit, ``float`` credit). Reconciliation matches the
  clearing account against the provider's statement.
- **float transfer**: one agent's ``float`` pays another's, in one currency;
  ``float_short`` when the payer's float (less what is held on it) cannot cover it.

The float's limit flag (never below zero, holds included) is the database's guard; the
refusal codes come from it.

Low-float threshold: :func:`set_float_threshold` sets, per agent, the float below which
the agent should top up. Every flow that changes the float calls :func:`check_float_low`
at its end: when the float **available** (credits posted, less debits posted and
pending: what the agent can spend now) is below the threshold and the alarm is armed, it
emits one ``float.low`` event and disarms it; when the float is back at or above the
threshold, it re-arms it. So one crossing from at-or-above to below emits one event,
however many operations follow below. Setting a threshold emits nothing: the alarm is
armed if the float is at or above it then, else it waits for the float to come back up.
The flows here and in :mod:`ledger.flows.cash` call it (an offline cash-in does not: it
spends float its device's allowance already held, so the float available does not
change). A flow that changes the float without calling it (an order paid in cash, a
device's allowance held) is seen late: the next call rings or re-arms for it.

Guarantee cap: :func:`set_guarantee_cap` bounds the float's posted balance by the
collateral the agent lodged; a top-up or an incoming float transfer that would take the
balance above it is refused (``guarantee_cap_exceeded``). A villager's cash-out, which
also raises the float, is not refused by the cap (the agent already handed the cash
over); lowering the cap below the balance refuses only later top-ups.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger
from ledger.core.store import from_us
from ledger.core.tx import Row, Tx
from ledger.core.values import Status, Transfer, TransferFlags
from ledger.flows import events, parties, wallets
from ledger.flows.errors import Conflict, Refused
from ledger.flows.parties import Kind, Party, Role

__all__ = [
    "AMOUNT_MAX_MINOR",
    "FLOAT_TRANSFER_CODE",
    "TOP_UP_CODE",
    "FloatStatus",
    "FloatTopUp",
    "FloatTransfer",
    "check_amount",
    "check_float_low",
    "check_guarantee_cap",
    "check_id",
    "get_float",
    "get_float_in",
    "set_float_threshold",
    "set_float_threshold_in",
    "set_guarantee_cap",
    "set_guarantee_cap_in",
    "submit_linked",
    "top_up_float",
    "top_up_float_in",
    "transfer_float",
    "transfer_float_in",
]

TOP_UP_CODE = 711
"""Core transfer ``code``: a provider's clearing account pays an agent's float."""
FLOAT_TRANSFER_CODE = 712
"""Core transfer ``code``: one agent's float pays another's."""
AMOUNT_MAX_MINOR = 2**53 - 1
"""The largest amount a request may carry (every JSON client holds it exactly)."""


# -- shared checks and the batch --------------------------------------------------------


def check_id(value: object, name: str) -> uuid.UUID:
    """``value`` if it is a UUID; else a malformed request."""
    if not isinstance(value, uuid.UUID):
        raise MalformedRequest(f"{name} must be a UUID")
    return value


def check_amount(value: object, name: str = "amount_minor") -> int:
    """``value`` if it is an amount 1..2**53-1; else :class:`Refused` ``amount_invalid``."""
    if type(value) is not int or not 1 <= value <= AMOUNT_MAX_MINOR:
        raise Refused("amount_invalid", f"{name} must be an integer in 1..{AMOUNT_MAX_MINOR}")
    return value


def submit_linked(
    tx: Tx,
    transfers: Sequence[Transfer],
    short: Mapping[uuid.UUID, str],
    *,
    reference: wallets.Reference | None = None,
) -> None:
    """Create ``transfers`` as one linked batch (all or none). A limit refusal raises
    :class:`Refused` with the code ``short`` gives the account that was short
    (``funds_short`` if it names none); any other refusal is a bug. Then every wallet
    the batch touches gets its KYC maximum checked and its receipts
    (:func:`ledger.flows.wallets.after_transfers_in`; ``reference`` names the operation,
    by default what the transfers' metadata names)."""
    if not transfers:
        return
    batch = [
        dataclasses.replace(t, flags=t.flags | TransferFlags.LINKED)
        if i < len(transfers) - 1
        else t
        for i, t in enumerate(transfers)
    ]
    results = tx.create_transfers(batch)
    failed = [r for r in results if r.status is not Status.CREATED]
    if not failed:
        wallets.after_transfers_in(tx, batch, results, reference=reference)
        return
    cause = next((r for r in failed if r.status is not Status.LINKED_EVENT_FAILED), failed[0])
    transfer = batch[cause.index]
    if cause.status is Status.EXCEEDS_CREDITS and transfer.debit_account_id is not None:
        raise Refused(
            short.get(transfer.debit_account_id, "funds_short"),
            f"{transfer.metadata} refused: {cause.status}",
        )
    if cause.status is Status.EXCEEDS_DEBITS and transfer.credit_account_id is not None:
        raise Refused(
            short.get(transfer.credit_account_id, "funds_short"),
            f"{transfer.metadata} refused: {cause.status}",
        )
    raise InvariantViolation(f"transfer {transfer.id} refused: {cause.status}")


# -- settings and status ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FloatStatus:
    """An agent's float now, and its settings (minor units of ``currency``)."""

    agent_id: uuid.UUID
    currency: str
    balance_minor: int
    """Credits posted less debits posted."""
    held_minor: int
    """Debits pending: held for devices' offline allowances and the like."""
    available_minor: int
    """What the agent can spend now: balance less held."""
    low_threshold_minor: int | None
    low_armed: bool
    """Whether the next fall below the threshold emits ``float.low``."""
    guarantee_cap_minor: int | None


def _settings(tx: Tx, agent_id: uuid.UUID, *, lock: bool) -> Row | None:
    return tx.one(
        "SELECT low_threshold_minor, low_armed, guarantee_cap_minor FROM agent_float"
        f" WHERE agent_id = :a{tx.for_update if lock else ''}",
        {"a": agent_id},
    )


def _locked_settings(tx: Tx, agent_id: uuid.UUID) -> Row:
    tx.execute(
        "INSERT INTO agent_float (agent_id, low_threshold_minor, low_armed,"
        " guarantee_cap_minor, updated_at_us) VALUES (:a, NULL, :armed, NULL, :now)"
        " ON CONFLICT (agent_id) DO NOTHING",
        {"a": agent_id, "armed": False, "now": tx.now_us},
    )
    row = _settings(tx, agent_id, lock=True)
    assert row is not None  # inserted above; settings rows are never deleted
    return row


def _float_counters(tx: Tx, agent: Party) -> tuple[int, int]:
    """(posted balance, held) of the agent's float."""
    [account] = tx.lookup_accounts([agent.account(Role.FLOAT)])
    return account.credits_posted - account.debits_posted, account.debits_pending


def get_float_in(tx: Tx, *, agent_id: uuid.UUID) -> FloatStatus:
    """:func:`get_float` inside a transaction someone else opened."""
    agent = parties.get_party(tx, check_id(agent_id, "agent_id"), Kind.AGENT)
    balance, held = _float_counters(tx, agent)
    row = _settings(tx, agent.id, lock=False)
    threshold, armed, cap = (None, False, None) if row is None else (row[0], bool(row[1]), row[2])
    return FloatStatus(
        agent.id, agent.currency, balance, held, balance - held, threshold, armed, cap
    )


def get_float(led: Ledger, *, agent_id: uuid.UUID) -> FloatStatus:
    """The agent's float and its settings; :class:`NotFound` ``agent_not_found``."""
    return led.transact(lambda tx: get_float_in(tx, agent_id=agent_id))


def set_float_threshold(
    led: Ledger, *, agent_id: uuid.UUID, threshold_minor: int | None
) -> FloatStatus:
    """Set (or, with ``None``, clear) the agent's low-float threshold. Emits nothing now;
    see the module docstring for when ``float.low`` is emitted."""
    return led.transact(
        lambda tx: set_float_threshold_in(tx, agent_id=agent_id, threshold_minor=threshold_minor)
    )


def set_float_threshold_in(
    tx: Tx, *, agent_id: uuid.UUID, threshold_minor: int | None
) -> FloatStatus:
    """:func:`set_float_threshold` inside a transaction someone else opened."""
    if threshold_minor is not None:
        check_amount(threshold_minor, "threshold_minor")
    agent = parties.get_party(tx, check_id(agent_id, "agent_id"), Kind.AGENT)
    _locked_settings(tx, agent.id)
    balance, held = _float_counters(tx, agent)
    armed = threshold_minor is not None and balance - held >= threshold_minor
    tx.execute(
        "UPDATE agent_float SET low_threshold_minor = :t, low_armed = :armed,"
        " updated_at_us = :now WHERE agent_id = :a",
        {"t": threshold_minor, "armed": armed, "now": tx.now_us, "a": agent.id},
    )
    return get_float_in(tx, agent_id=agent.id)


def set_guarantee_cap(led: Ledger, *, agent_id: uuid.UUID, cap_minor: int | None) -> FloatStatus:
    """Set (or, with ``None``, remove) the most the agent's float may hold, the agent's
    collateral; top-ups and incoming float transfers beyond it are refused."""
    return led.transact(lambda tx: set_guarantee_cap_in(tx, agent_id=agent_id, cap_minor=cap_minor))


def set_guarantee_cap_in(tx: Tx, *, agent_id: uuid.UUID, cap_minor: int | None) -> FloatStatus:
    """:func:`set_guarantee_cap` inside a transaction someone else opened."""
    if cap_minor is not None and (
        type(cap_minor) is not int or not 0 <= cap_minor <= AMOUNT_MAX_MINOR
    ):
        raise Refused("amount_invalid", f"cap_minor must be an integer in 0..{AMOUNT_MAX_MINOR}")
    agent = parties.get_party(tx, check_id(agent_id, "agent_id"), Kind.AGENT)
    _locked_settings(tx, agent.id)
    tx.execute(
        "UPDATE agent_float SET guarantee_cap_minor = :cap, updated_at_us = :now"
        " WHERE agent_id = :a",
        {"cap": cap_minor, "now": tx.now_us, "a": agent.id},
    )
    return get_float_in(tx, agent_id=agent.id)


def check_float_low(tx: Tx, agent_id: uuid.UUID) -> bool:
    """Call at the end of every flow that changes an agent's float: emit ``float.low``
    when the float available just fell below the agent's threshold (once per crossing),
    re-arm the alarm when it is back at or above it. Whether it emitted."""
    row = _settings(tx, agent_id, lock=False)
    if row is None or row[0] is None:
        return False
    row = _settings(tx, agent_id, lock=True)
    assert row is not None  # settings rows are never deleted
    threshold, armed = int(row[0]), bool(row[1])
    agent = parties.get_party(tx, agent_id, Kind.AGENT)
    balance, held = _float_counters(tx, agent)
    available = balance - held
    low = available < threshold
    if low == (not armed):
        return False  # no crossing: still low and disarmed, or still fine and armed
    tx.execute(
        "UPDATE agent_float SET low_armed = :armed, updated_at_us = :now WHERE agent_id = :a",
        {"armed": not low, "now": tx.now_us, "a": agent_id},
    )
    if not low:
        return False
    events.emit(
        tx,
        events.FLOAT_LOW,
        {
            "agent_id": str(agent_id),
            "currency": agent.currency,
            "available_minor": available,
            "threshold_minor": threshold,
        },
        party_id=agent_id,
        subject_id=agent_id,
    )
    return True


def check_guarantee_cap(tx: Tx, agent: Party) -> None:
    """:class:`Refused` ``guarantee_cap_exceeded`` when the agent's float now holds more
    than its cap (call after the transfers that raised it; the transaction rolls back)."""
    row = _settings(tx, agent.id, lock=False)
    if row is None or row[2] is None:
        return
    balance, _ = _float_counters(tx, agent)
    if balance > row[2]:
        raise Refused(
            "guarantee_cap_exceeded",
            f"agent {agent.id}'s float would hold {balance}, above its cap of {row[2]}",
        )


# -- top-up -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FloatTopUp:
    """Cash an agent deposited with a provider, turned into float (minor units)."""

    id: uuid.UUID
    agent_id: uuid.UUID
    provider: str
    currency: str
    amount_minor: int
    transfer_id: uuid.UUID
    created_at: datetime


def _top_up(row: Row) -> FloatTopUp:
    return FloatTopUp(row[0], row[1], row[2], row[3], row[4], row[5], from_us(row[6]))


def top_up_float(
    led: Ledger, *, topup_id: uuid.UUID, agent_id: uuid.UUID, amount_minor: int, provider: str
) -> FloatTopUp:
    """The agent deposited ``amount_minor`` of cash with ``provider``: its float grows by
    that much out of the provider's clearing account. ``guarantee_cap_exceeded`` when the
    float would pass the agent's cap. Idempotent by ``topup_id``."""
    return led.transact(
        lambda tx: top_up_float_in(
            tx, topup_id=topup_id, agent_id=agent_id, amount_minor=amount_minor, provider=provider
        )
    )


def top_up_float_in(
    tx: Tx, *, topup_id: uuid.UUID, agent_id: uuid.UUID, amount_minor: int, provider: str
) -> FloatTopUp:
    """:func:`top_up_float` inside a transaction someone else opened."""
    check_id(topup_id, "topup_id")
    check_id(agent_id, "agent_id")
    check_amount(amount_minor)
    parties.provider_role(provider)
    columns = "id, agent_id, provider, currency, amount_minor, transfer_id, created_at_us"
    row = tx.one(f"SELECT {columns} FROM float_topups WHERE id = :id", {"id": topup_id})
    if row is not None:
        found = _top_up(row)
        if (found.agent_id, found.amount_minor, found.provider) != (
            agent_id,
            amount_minor,
            provider,
        ):
            raise Conflict("topup_id_reused", f"top-up {topup_id} was another request")
        return found
    agent = parties.get_party(tx, agent_id, Kind.AGENT)
    clearing = parties.provider_clearing(tx, agent.currency, provider)
    transfer = Transfer(
        id=uuid.uuid5(topup_id, "float:top_up"),
        debit_account_id=clearing,
        credit_account_id=agent.account(Role.FLOAT),
        amount=amount_minor,
        currency=agent.currency,
        code=TOP_UP_CODE,
        metadata={"topup_id": str(topup_id), "provider": provider},
    )
    submit_linked(tx, [transfer], {})
    check_guarantee_cap(tx, agent)
    tx.execute(
        f"INSERT INTO float_topups ({columns}) VALUES"
        " (:id, :agent, :provider, :currency, :amount, :transfer, :now)",
        {
            "id": topup_id,
            "agent": agent_id,
            "provider": provider,
            "currency": agent.currency,
            "amount": amount_minor,
            "transfer": transfer.id,
            "now": tx.now_us,
        },
    )
    events.emit(
        tx,
        events.FLOAT_TOPPED_UP,
        {
            "topup_id": str(topup_id),
            "agent_id": str(agent_id),
            "provider": provider,
            "currency": agent.currency,
            "amount_minor": amount_minor,
        },
        party_id=agent_id,
        subject_id=topup_id,
    )
    check_float_low(tx, agent_id)
    return FloatTopUp(
        topup_id, agent_id, provider, agent.currency, amount_minor, transfer.id, tx.now
    )


# -- agent to agent -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FloatTransfer:
    """Float one agent paid another (minor units)."""

    id: uuid.UUID
    from_agent_id: uuid.UUID
    to_agent_id: uuid.UUID
    currency: str
    amount_minor: int
    transfer_id: uuid.UUID
    created_at: datetime


def _float_transfer(row: Row) -> FloatTransfer:
    return FloatTransfer(row[0], row[1], row[2], row[3], row[4], row[5], from_us(row[6]))


def transfer_float(
    led: Ledger,
    *,
    transfer_id: uuid.UUID,
    from_agent_id: uuid.UUID,
    to_agent_id: uuid.UUID,
    amount_minor: int,
) -> FloatTransfer:
    """Move ``amount_minor`` of float from one agent to another (same currency):
    ``float_short``, ``guarantee_cap_exceeded`` (the receiver's), ``agents_must_differ``,
    ``currency_mismatch``. Idempotent by ``transfer_id``."""
    return led.transact(
        lambda tx: transfer_float_in(
            tx,
            transfer_id=transfer_id,
            from_agent_id=from_agent_id,
            to_agent_id=to_agent_id,
            amount_minor=amount_minor,
        )
    )


def transfer_float_in(
    tx: Tx,
    *,
    transfer_id: uuid.UUID,
    from_agent_id: uuid.UUID,
    to_agent_id: uuid.UUID,
    amount_minor: int,
) -> FloatTransfer:
    """:func:`transfer_float` inside a transaction someone else opened."""
    check_id(transfer_id, "transfer_id")
    check_id(from_agent_id, "from_agent_id")
    check_id(to_agent_id, "to_agent_id")
    check_amount(amount_minor)
    columns = "id, from_agent_id, to_agent_id, currency, amount_minor, transfer_id, created_at_us"
    row = tx.one(f"SELECT {columns} FROM float_transfers WHERE id = :id", {"id": transfer_id})
    if row is not None:
        found = _float_transfer(row)
        if (found.from_agent_id, found.to_agent_id, found.amount_minor) != (
            from_agent_id,
            to_agent_id,
            amount_minor,
        ):
            raise Conflict(
                "transfer_id_reused", f"float transfer {transfer_id} was another request"
            )
        return found
    if from_agent_id == to_agent_id:
        raise Refused("agents_must_differ", "an agent cannot transfer float to itself")
    payer = parties.get_party(tx, from_agent_id, Kind.AGENT)
    payee = parties.get_party(tx, to_agent_id, Kind.AGENT)
    if payer.currency != payee.currency:
        raise Refused("currency_mismatch", f"the agents hold {payer.currency} and {payee.currency}")
    transfer = Transfer(
        id=uuid.uuid5(transfer_id, "float:transfer"),
        debit_account_id=payer.account(Role.FLOAT),
        credit_account_id=payee.account(Role.FLOAT),
        amount=amount_minor,
        currency=payer.currency,
        code=FLOAT_TRANSFER_CODE,
        metadata={"float_transfer_id": str(transfer_id)},
    )
    submit_linked(tx, [transfer], {payer.account(Role.FLOAT): "float_short"})
    check_guarantee_cap(tx, payee)
    tx.execute(
        f"INSERT INTO float_transfers ({columns}) VALUES"
        " (:id, :payer, :payee, :currency, :amount, :transfer, :now)",
        {
            "id": transfer_id,
            "payer": from_agent_id,
            "payee": to_agent_id,
            "currency": payer.currency,
            "amount": amount_minor,
            "transfer": transfer.id,
            "now": tx.now_us,
        },
    )
    payload = {
        "float_transfer_id": str(transfer_id),
        "from_agent_id": str(from_agent_id),
        "to_agent_id": str(to_agent_id),
        "currency": payer.currency,
        "amount_minor": amount_minor,
    }
    for party_id in (from_agent_id, to_agent_id):
        events.emit(
            tx, events.FLOAT_TRANSFERRED, payload, party_id=party_id, subject_id=transfer_id
        )
    check_float_low(tx, from_agent_id)
    check_float_low(tx, to_agent_id)
    return FloatTransfer(
        transfer_id, from_agent_id, to_agent_id, payer.currency, amount_minor, transfer.id, tx.now
    )
