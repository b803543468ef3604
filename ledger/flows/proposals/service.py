"""The proposals flow's service: its rules and functions (the package docstring,
:mod:`ledger.flows.proposals`, says what they guarantee; the SQL is in its repository)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ledger.core.errors import MalformedRequest
from ledger.core.ledger import Ledger, transactional
from ledger.core.tx import Tx
from ledger.core.values import Transfer, TransferFlags
from ledger.flows import wallets
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.proposals import repository
from ledger.flows.proposals.repository import Proposal, State
from ledger.limits import REASON_LENGTH_MAX

PROPOSAL_NAMESPACE = uuid.UUID("3b9e4c71-0d2a-4f6e-8a15-7c4d2e9f1b83")
"""Derives a transfers proposal's id from its transfers' ids (a replay finds it)."""

KIND_LENGTH_MAX = 32
PENDING_MATCHES_MAX = 10
"""At most this many pending proposals are answered by :func:`pending_in` (a kind whose
flow refuses a second pending proposal of the same thing has at most one)."""
TRANSFERS = "transfers"
"""The kind of an operator's raw transfers touching a party's account."""

Apply = Callable[[Tx, Mapping[str, Any]], Any]
_APPLY: dict[str, Apply] = {}
ApplyAs = Callable[[Tx, Mapping[str, Any], uuid.UUID], Any]
"""An ``apply`` that is also told the approver (the signed caller's principal id), for
a step that records who approved it (:func:`register_as`)."""
_APPLY_AS: dict[str, ApplyAs] = {}


def register(kind: str, apply: Apply) -> None:
    """Let proposals of ``kind`` be made; ``apply`` runs in the approval's transaction.
    :class:`~ledger.core.errors.MalformedRequest` (nothing registered) for a kind that is
    not 1..:data:`KIND_LENGTH_MAX` characters or an ``apply`` that cannot be called."""
    if not isinstance(kind, str) or not 1 <= len(kind) <= KIND_LENGTH_MAX:
        raise MalformedRequest(f"a kind is 1..{KIND_LENGTH_MAX} characters")
    if not callable(apply):
        raise MalformedRequest("apply must be a function of (tx, payload)")
    _APPLY[kind] = apply


def register_as(kind: str, apply: ApplyAs) -> None:
    """As :func:`register`, for an ``apply(tx, payload, approver)`` that records the
    approving operator's principal id (the signed caller of the approval)."""
    if not callable(apply):
        raise MalformedRequest("apply must be a function of (tx, payload, approver)")
    register(kind, _told_approver_only)
    _APPLY_AS[kind] = apply


def _told_approver_only(tx: Tx, payload: Mapping[str, Any]) -> Any:
    raise AssertionError("a kind registered with register_as is applied with its approver")


def canonical(value: Any) -> str:
    """The one JSON text of a payload or result (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- making, deciding -------------------------------------------------------------------


def propose(
    led: Ledger,
    *,
    proposal_id: uuid.UUID,
    kind: str,
    payload: Mapping[str, Any],
    proposed_by: uuid.UUID,
) -> Proposal:
    """Record a proposal (nothing is applied); the same id, kind, payload and maker
    again answers it as it is now, other details are :class:`Conflict`."""
    if kind not in _APPLY:
        raise Refused("proposal_kind_unknown", f"nothing applies proposals of kind {kind!r}")
    text = canonical(payload)

    def work(tx: Tx) -> Proposal:
        found = repository.select(tx, proposal_id)
        if found is not None:
            if (found.kind, canonical(found.payload), found.proposed_by) != (
                kind,
                text,
                proposed_by,
            ):
                raise Conflict("proposal_exists_different", f"proposal {proposal_id} differs")
            return found
        repository.insert(
            tx, proposal_id=proposal_id, kind=kind, payload_text=text, proposed_by=proposed_by
        )
        return get_in(tx, proposal_id)

    return led.transact(work)


def approve(led: Ledger, *, proposal_id: uuid.UUID, approver: uuid.UUID) -> Proposal:
    """Apply the proposal, once, as ``approver`` (not its maker); an approved proposal
    answers as it is; a rejected one is refused (``proposal_not_pending``)."""

    def work(tx: Tx) -> Proposal:
        found = _locked(tx, proposal_id)
        if found.proposed_by == approver:
            raise Refused("proposal_maker_cannot_decide", "another operator must approve it")
        if found.state is State.APPROVED:
            return found
        if found.state is State.REJECTED:
            raise Refused("proposal_not_pending", f"proposal {proposal_id} was rejected")
        apply = _APPLY.get(found.kind)
        if apply is None:
            raise Refused("proposal_kind_unknown", f"nothing applies proposals of {found.kind!r}")
        apply_as = _APPLY_AS.get(found.kind)
        result = (
            apply(tx, found.payload) if apply_as is None else apply_as(tx, found.payload, approver)
        )
        repository.mark_approved(
            tx, proposal_id=proposal_id, approver=approver, result_text=canonical(result)
        )
        return get_in(tx, proposal_id)

    return led.transact(work)


def reject(led: Ledger, *, proposal_id: uuid.UUID, decider: uuid.UUID, reason: str) -> Proposal:
    """Decide that the proposal is not applied: another operator than its maker (the
    table holds no decision by the maker, ``proposal_maker_cannot_decide``); rejecting
    again with the same reason answers it as it is."""
    if not reason.strip() or len(reason) > REASON_LENGTH_MAX:
        raise Refused("reason_invalid", f"a reason is 1..{REASON_LENGTH_MAX} characters")

    def work(tx: Tx) -> Proposal:
        found = _locked(tx, proposal_id)
        if found.state is State.REJECTED and found.reason == reason:
            return found
        if found.state is not State.PROPOSED:
            raise Refused("proposal_not_pending", f"proposal {proposal_id} is {found.state}")
        if found.proposed_by == decider:
            raise Refused("proposal_maker_cannot_decide", "another operator must reject it")
        repository.mark_rejected(tx, proposal_id=proposal_id, decider=decider, reason=reason)
        return get_in(tx, proposal_id)

    return led.transact(work)


# -- reading ----------------------------------------------------------------------------


def get_in(tx: Tx, proposal_id: uuid.UUID) -> Proposal:
    """The proposal, which must exist (else :class:`NotFound`)."""
    found = repository.select(tx, proposal_id)
    if found is None:
        raise NotFound("proposal_not_found", f"no proposal {proposal_id}")
    return found


get = transactional(get_in)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def pending_in(tx: Tx, *, kind: str, naming: Mapping[str, str]) -> list[Proposal]:
    """The proposals of ``kind`` still waiting for a second operator whose payload has
    every field of ``naming`` with that value (oldest first, at most
    :data:`PENDING_MATCHES_MAX`): for a flow that allows one pending proposal of a thing
    (one return per suspense item). The canonical payload text is searched for each
    ``"field":value`` (a string value's quotes are escaped inside another string, so only
    a field matches), then each payload is checked field by field."""
    patterns = [_like(f"{canonical(k)}:{canonical(v)}") for k, v in naming.items()]
    found = repository.select_pending_like(
        tx, kind=kind, patterns=patterns, limit=PENDING_MATCHES_MAX
    )
    return [p for p in found if all(p.payload.get(k) == v for k, v in naming.items())]


def _locked(tx: Tx, proposal_id: uuid.UUID) -> Proposal:
    found = repository.select(tx, proposal_id, lock=True)
    if found is None:
        raise NotFound("proposal_not_found", f"no proposal {proposal_id}")
    return found


def page(
    led: Ledger, *, state: State | None, starting_after: uuid.UUID | None, limit: int
) -> tuple[list[Proposal], bool] | None:
    """Proposals oldest first (of ``state`` if given), after the cursor; ``None`` for a
    cursor that names no proposal."""

    def work(tx: Tx) -> tuple[list[Proposal], bool] | None:
        after_seq = 0
        if starting_after is not None:
            found = repository.seq_of(tx, starting_after)
            if found is None:
                return None
            after_seq = found
        rows = repository.select_after(tx, after_seq=after_seq, state=state, limit=limit + 1)
        return rows[:limit], len(rows) > limit

    return led.transact(work)


# -- the ``transfers`` kind ---------------------------------------------------------------


def _flag_names(flags: TransferFlags) -> list[str]:
    return [f.name.lower() for f in TransferFlags if f in flags and f.name]


def _id_text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _uuid(value: Any) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


def transfer_json(t: Transfer) -> dict[str, Any]:
    """A transfer as a proposal carries it (the API's field names and flag names)."""
    return {
        "id": str(t.id),
        "debit_account_id": _id_text(t.debit_account_id),
        "credit_account_id": _id_text(t.credit_account_id),
        "amount": t.amount,
        "currency": t.currency,
        "code": t.code,
        "flags": _flag_names(t.flags),
        "pending_id": _id_text(t.pending_id),
        "timeout_s": t.timeout_s,
        "reverses_id": _id_text(t.reverses_id),
        "metadata": t.metadata,
    }


def _transfer(data: Mapping[str, Any]) -> Transfer:
    flags = TransferFlags(0)
    for name in data["flags"]:
        flags |= TransferFlags[str(name).upper()]
    return Transfer(
        id=uuid.UUID(data["id"]),
        debit_account_id=_uuid(data["debit_account_id"]),
        credit_account_id=_uuid(data["credit_account_id"]),
        amount=data["amount"],
        currency=data["currency"],
        code=data["code"],
        flags=flags,
        pending_id=_uuid(data["pending_id"]),
        timeout_s=data["timeout_s"],
        reverses_id=_uuid(data["reverses_id"]),
        metadata=data["metadata"],
    )


def _apply_transfers(tx: Tx, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A correction that credits a villager's wallet past the KYC maximum is refused as a
    whole (``limit_exceeded_balance``: the approval rolls back, the proposal stays
    proposed); every wallet it moves gets its receipts (:mod:`ledger.flows.wallets`)."""
    transfers = [_transfer(t) for t in payload["transfers"]]
    results = tx.create_transfers(transfers)
    reference = wallets.Reference("correction", transfers_proposal_id(transfers))
    wallets.after_transfers_in(tx, transfers, results, reference=reference)
    return [
        {"index": r.index, "id": str(transfers[r.index].id), "status": r.status.value}
        for r in results
    ]


def transfers_proposal_id(transfers: Sequence[Transfer]) -> uuid.UUID:
    """The id of the proposal of these transfers: derived from their ids, in order."""
    digest = hashlib.sha256(",".join(str(t.id) for t in transfers).encode()).hexdigest()
    return uuid.uuid5(PROPOSAL_NAMESPACE, f"{TRANSFERS}:{digest}")


def propose_transfers(
    led: Ledger, *, transfers: Sequence[Transfer], proposed_by: uuid.UUID
) -> Proposal:
    """Propose raw transfers (a correction of party accounts); applied on approval."""
    if not transfers:
        raise Refused("proposal_empty", "a proposal of transfers needs at least one")
    return propose(
        led,
        proposal_id=transfers_proposal_id(transfers),
        kind=TRANSFERS,
        payload={"transfers": [transfer_json(t) for t in transfers]},
        proposed_by=proposed_by,
    )


register(TRANSFERS, _apply_transfers)
