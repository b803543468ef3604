"""The float's operations (see :mod:`ledger.flows.agent_float`): each ``*_in`` function
runs inside a transaction someone else opened; its twin without ``_in`` opens its own."""

from __future__ import annotations

import uuid

from ledger.core.ledger import transactional
from ledger.core.tx import Tx
from ledger.core.values import Transfer
from ledger.flows import events, parties
from ledger.flows.agent_float import repository
from ledger.flows.agent_float.checks import check_amount, check_id, submit_linked
from ledger.flows.agent_float.model import (
    FLOAT_TRANSFER_CODE,
    TOP_UP_CODE,
    FloatStatus,
    FloatTopUp,
    FloatTransfer,
)
from ledger.flows.errors import Conflict, Refused
from ledger.flows.parties import Kind, Party, Role
from ledger.limits import AMOUNT_MAX_MINOR

__all__ = [
    "check_float_low",
    "check_guarantee_cap",
    "get_float",
    "get_float_in",
    "set_float_threshold",
    "set_float_threshold_in",
    "set_guarantee_cap",
    "set_guarantee_cap_in",
    "top_up_float",
    "top_up_float_in",
    "transfer_float",
    "transfer_float_in",
]


# -- settings and status ------------------------------------------------------------------


def _float_counters(tx: Tx, agent: Party) -> tuple[int, int]:
    """(posted balance, held) of the agent's float."""
    [account] = tx.lookup_accounts([agent.account(Role.FLOAT)])
    return account.credits_posted - account.debits_posted, account.debits_pending


def get_float_in(tx: Tx, *, agent_id: uuid.UUID) -> FloatStatus:
    """The agent's float and its settings; :class:`NotFound` ``agent_not_found``."""
    agent = parties.get_party(tx, check_id(agent_id, "agent_id"), Kind.AGENT)
    balance, held = _float_counters(tx, agent)
    found = repository.find_settings(tx, agent.id)
    threshold, armed, cap = (
        (None, False, None)
        if found is None
        else (found.low_threshold_minor, found.low_armed, found.guarantee_cap_minor)
    )
    return FloatStatus(
        agent.id, agent.currency, balance, held, balance - held, threshold, armed, cap
    )


get_float = transactional(get_float_in)


def set_float_threshold_in(
    tx: Tx, *, agent_id: uuid.UUID, threshold_minor: int | None
) -> FloatStatus:
    """Set (or, with ``None``, clear) the agent's low-float threshold. Emits nothing now;
    see the module docstring for when ``float.low`` is emitted."""
    if threshold_minor is not None:
        check_amount(threshold_minor, "threshold_minor")
    agent = parties.get_party(tx, check_id(agent_id, "agent_id"), Kind.AGENT)
    repository.lock_settings(tx, agent.id)
    balance, held = _float_counters(tx, agent)
    armed = threshold_minor is not None and balance - held >= threshold_minor
    repository.update_threshold(tx, agent.id, threshold_minor=threshold_minor, armed=armed)
    return get_float_in(tx, agent_id=agent.id)


set_float_threshold = transactional(set_float_threshold_in)


def set_guarantee_cap_in(tx: Tx, *, agent_id: uuid.UUID, cap_minor: int | None) -> FloatStatus:
    """Set (or, with ``None``, remove) the most the agent's float may hold, the agent's
    collateral (an operator's act); top-ups and incoming float transfers beyond it are
    refused. A change emits ``float.guarantee_cap_changed`` (the cap before and after);
    setting the cap the agent has changes nothing and emits nothing."""
    if cap_minor is not None and (
        type(cap_minor) is not int or not 0 <= cap_minor <= AMOUNT_MAX_MINOR
    ):
        raise Refused("amount_invalid", f"cap_minor must be an integer in 0..{AMOUNT_MAX_MINOR}")
    agent = parties.get_party(tx, check_id(agent_id, "agent_id"), Kind.AGENT)
    before = repository.lock_settings(tx, agent.id).guarantee_cap_minor
    if before != cap_minor:
        repository.update_guarantee_cap(tx, agent.id, cap_minor=cap_minor)
        events.emit(
            tx,
            events.FLOAT_GUARANTEE_CAP_CHANGED,
            {"agent_id": str(agent.id), "from_cap_minor": before, "to_cap_minor": cap_minor},
            party_id=agent.id,
            subject_id=agent.id,
        )
    return get_float_in(tx, agent_id=agent.id)


set_guarantee_cap = transactional(set_guarantee_cap_in)


def check_float_low(tx: Tx, agent_id: uuid.UUID) -> bool:
    """Call at the end of every flow that changes an agent's float: emit ``float.low``
    when the float available just fell below the agent's threshold (once per crossing),
    re-arm the alarm when it is back at or above it. Whether it emitted."""
    found = repository.find_settings(tx, agent_id)
    if found is None or found.low_threshold_minor is None:
        return False
    found = repository.find_settings(tx, agent_id, lock=True)
    assert found is not None  # settings rows are never deleted
    assert found.low_threshold_minor is not None  # a threshold is cleared only under lock
    threshold, armed = found.low_threshold_minor, found.low_armed
    agent = parties.get_party(tx, agent_id, Kind.AGENT)
    balance, held = _float_counters(tx, agent)
    available = balance - held
    low = available < threshold
    if low == (not armed):
        return False  # no crossing: still low and disarmed, or still fine and armed
    repository.update_armed(tx, agent_id, armed=not low)
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
    found = repository.find_settings(tx, agent.id)
    if found is None or found.guarantee_cap_minor is None:
        return
    balance, _ = _float_counters(tx, agent)
    if balance > found.guarantee_cap_minor:
        raise Refused(
            "guarantee_cap_exceeded",
            f"agent {agent.id}'s float would hold {balance},"
            f" above its cap of {found.guarantee_cap_minor}",
        )


# -- top-up -------------------------------------------------------------------------------


def top_up_float_in(
    tx: Tx, *, topup_id: uuid.UUID, agent_id: uuid.UUID, amount_minor: int, provider: str
) -> FloatTopUp:
    """The agent deposited ``amount_minor`` of cash with ``provider``: its float grows by
    that much out of the provider's clearing account. ``guarantee_cap_exceeded`` when the
    float would pass the agent's cap. Idempotent by ``topup_id``."""
    check_id(topup_id, "topup_id")
    check_id(agent_id, "agent_id")
    check_amount(amount_minor)
    parties.provider_role(provider)
    found = repository.find_top_up(tx, topup_id)
    if found is not None:
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
    done = FloatTopUp(
        topup_id, agent_id, provider, agent.currency, amount_minor, transfer.id, tx.now
    )
    repository.insert_top_up(tx, done)
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
    return done


top_up_float = transactional(top_up_float_in)


# -- agent to agent -----------------------------------------------------------------------


def _replayed_transfer(
    tx: Tx, transfer_id: uuid.UUID, request: tuple[uuid.UUID, uuid.UUID, int]
) -> FloatTransfer | None:
    """The stored float transfer of a replayed request; :class:`Conflict` for another."""
    found = repository.find_float_transfer(tx, transfer_id)
    if found is None:
        return None
    if (found.from_agent_id, found.to_agent_id, found.amount_minor) != request:
        raise Conflict("transfer_id_reused", f"float transfer {transfer_id} was another request")
    return found


def _payer_and_payee(
    tx: Tx, from_agent_id: uuid.UUID, to_agent_id: uuid.UUID
) -> tuple[Party, Party]:
    if from_agent_id == to_agent_id:
        raise Refused("agents_must_differ", "an agent cannot transfer float to itself")
    payer = parties.get_party(tx, from_agent_id, Kind.AGENT)
    payee = parties.get_party(tx, to_agent_id, Kind.AGENT)
    if payer.currency != payee.currency:
        raise Refused("currency_mismatch", f"the agents hold {payer.currency} and {payee.currency}")
    return payer, payee


def _emit_transferred(tx: Tx, moved: FloatTransfer) -> None:
    """``float.transferred`` to each of the two agents."""
    payload = {
        "float_transfer_id": str(moved.id),
        "from_agent_id": str(moved.from_agent_id),
        "to_agent_id": str(moved.to_agent_id),
        "currency": moved.currency,
        "amount_minor": moved.amount_minor,
    }
    for party_id in (moved.from_agent_id, moved.to_agent_id):
        events.emit(tx, events.FLOAT_TRANSFERRED, payload, party_id=party_id, subject_id=moved.id)


def transfer_float_in(
    tx: Tx,
    *,
    transfer_id: uuid.UUID,
    from_agent_id: uuid.UUID,
    to_agent_id: uuid.UUID,
    amount_minor: int,
) -> FloatTransfer:
    """Move ``amount_minor`` of float from one agent to another (same currency):
    ``float_short``, ``guarantee_cap_exceeded`` (the receiver's), ``agents_must_differ``,
    ``currency_mismatch``. Idempotent by ``transfer_id``."""
    check_id(transfer_id, "transfer_id")
    check_id(from_agent_id, "from_agent_id")
    check_id(to_agent_id, "to_agent_id")
    check_amount(amount_minor)
    replayed = _replayed_transfer(tx, transfer_id, (from_agent_id, to_agent_id, amount_minor))
    if replayed is not None:
        return replayed
    payer, payee = _payer_and_payee(tx, from_agent_id, to_agent_id)
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
    moved = FloatTransfer(
        transfer_id, from_agent_id, to_agent_id, payer.currency, amount_minor, transfer.id, tx.now
    )
    repository.insert_float_transfer(tx, moved)
    _emit_transferred(tx, moved)
    check_float_low(tx, from_agent_id)
    check_float_low(tx, to_agent_id)
    return moved


transfer_float = transactional(transfer_float_in)
