"""A window's report: its payouts beside the core's transfers for them, and whether they
tie (see :class:`WindowReport`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.core.ledger import Ledger
from ledger.core.tx import Tx
from ledger.core.values import Transfer, TransferFlags
from ledger.flows.agent_float.checks import check_id
from ledger.flows.settlement import repository
from ledger.flows.settlement.model import Payout, PayoutState, Window, WindowState, leg_id
from ledger.flows.settlement.service import get_window_in

LOOKUP_CHUNK = 1000
"""Transfers looked up per core call while a report reads a window's legs."""
REPORT_ATTEMPTS_MAX = 5
"""Reads of a window's rows around the core's transfers until two agree."""

_EXPECTED_LEGS = {
    PayoutState.PENDING: (False, False),
    PayoutState.PAID: (True, False),
    PayoutState.FAILED: (False, True),
}
"""Whether a payout in each state has a post and a void."""


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One storefront's payout in a window report, beside what the core holds of it."""

    storefront_id: uuid.UUID
    payout_id: uuid.UUID
    state: PayoutState
    provider_reference: str | None
    proceeds_before_minor: int
    amount_minor: int
    held_minor: int
    """The hold the core has for this payout (0 when it has none)."""
    posted_minor: int
    """What the core posted of the hold (paid out)."""
    voided_minor: int
    """What the core released of the hold (back in proceeds)."""
    proceeds_after_minor: int
    """``proceeds_before - posted``: what of it the storefront still holds or will be
    paid by a later window (a pending payout's amount included, until it resolves)."""
    ties: bool


@dataclass(frozen=True, slots=True)
class WindowReport:
    """A window's payouts and the ledger figures they must equal.

    ``ties`` holds when every line ties (the core holds each payout's hold on the
    storefront's proceeds towards the clearing account for exactly the payout amount; a
    paid payout's hold is posted in full and not voided, a failed one voided and not
    posted, a pending one neither; each payout nets all of the proceeds available at
    close), the totals equal the window's recorded count and total, ``paid_total =
    ledger_posted = clearing_movement`` (what the window's posts credited to the
    provider's clearing account), ``failed_total = ledger_voided``, and a window is
    settled exactly when no payout is pending. ``problems`` says what did not tie."""

    window: Window
    clearing_account_id: uuid.UUID | None
    lines: tuple[ReportLine, ...]
    proceeds_before_total_minor: int
    payouts_total_minor: int
    paid_total_minor: int
    failed_total_minor: int
    pending_total_minor: int
    ledger_held_minor: int
    ledger_posted_minor: int
    ledger_voided_minor: int
    clearing_movement_minor: int
    proceeds_after_total_minor: int
    ties: bool
    problems: tuple[str, ...]


def window_report(led: Ledger, *, window_id: uuid.UUID) -> WindowReport:
    """The window's payouts beside the core's transfers for them, and whether they tie
    (see :class:`WindowReport`).

    There is no ``_in`` twin: the core's transfers are read through the ledger, outside
    a flow transaction. The window's rows are read before and after them until both
    reads agree, so that a payout confirmed meanwhile cannot make a false break."""
    check_id(window_id, "window_id")

    def read(tx: Tx) -> tuple[Window, list[Payout]]:
        return get_window_in(tx, window_id=window_id), repository.payouts_of(tx, window_id)

    rows = led.transact(read)
    for attempt in range(REPORT_ATTEMPTS_MAX):
        found = _legs_of(led, rows[1])
        again = led.transact(read)
        if again == rows or attempt == REPORT_ATTEMPTS_MAX - 1:
            break  # after that many changes in a row, report what the last read saw
        rows = again
    window, payouts = rows
    return _report(window, payouts, found)


def _legs_of(led: Ledger, payouts: Sequence[Payout]) -> dict[uuid.UUID, Transfer]:
    """The core's hold, post and void of each payout that exist, by id."""
    ids: list[uuid.UUID] = []
    for p in payouts:
        ids += [p.hold_transfer_id, leg_id(p.id, "post"), leg_id(p.id, "void")]
    found: dict[uuid.UUID, Transfer] = {}
    for start in range(0, len(ids), LOOKUP_CHUNK):
        found.update((t.id, t) for t in led.lookup_transfers(ids[start : start + LOOKUP_CHUNK]))
    return found


def _wrong_legs(
    p: Payout, hold: Transfer | None, post: Transfer | None, void: Transfer | None
) -> list[str]:
    """How the core's legs of one payout differ from its row."""
    wrong: list[str] = []
    if (
        hold is None
        or hold.flags != TransferFlags.PENDING
        or hold.debit_account_id != p.proceeds_account_id
        or hold.credit_account_id != p.clearing_account_id
        or hold.amount != p.amount_minor
    ):
        wrong.append("the hold differs from the payout")
    if post is not None and (
        post.pending_id != p.hold_transfer_id or post.amount != p.amount_minor
    ):
        wrong.append("the post differs from the payout")
    if void is not None and void.pending_id != p.hold_transfer_id:
        wrong.append("the void differs from the payout")
    if (post is not None, void is not None) != _EXPECTED_LEGS[p.state]:
        wrong.append(f"a {p.state} payout has post={post is not None} void={void is not None}")
    resolved = post or void
    if (resolved.id if resolved else None) != p.resolve_transfer_id:
        wrong.append("the payout names another resolving transfer")
    return wrong


def _line(
    p: Payout, found: dict[uuid.UUID, Transfer], clearing: uuid.UUID | None
) -> tuple[ReportLine, list[str], int]:
    """One payout's report line, what did not tie, and what its post moved into the
    clearing account."""
    hold = found.get(p.hold_transfer_id)
    post = found.get(leg_id(p.id, "post"))
    void = found.get(leg_id(p.id, "void"))
    wrong = _wrong_legs(p, hold, post, void)
    if p.amount_minor != p.proceeds_before_minor:
        wrong.append("the payout is not all of the available proceeds")
    if p.clearing_account_id != clearing:
        wrong.append("the payout went to another clearing account")
    posted = (post.amount or 0) if post is not None else 0
    voided = (void.amount or 0) if void is not None else 0
    moved = posted if post is not None and post.credit_account_id == clearing else 0
    line = ReportLine(
        storefront_id=p.storefront_id,
        payout_id=p.id,
        state=p.state,
        provider_reference=p.provider_reference,
        proceeds_before_minor=p.proceeds_before_minor,
        amount_minor=p.amount_minor,
        held_minor=(hold.amount or 0) if hold is not None else 0,
        posted_minor=posted,
        voided_minor=voided,
        proceeds_after_minor=p.proceeds_before_minor - posted,
        ties=not wrong,
    )
    return line, [f"payout {p.id} ({p.storefront_id}): {w}" for w in wrong], moved


def _total(payouts: Sequence[Payout], state: PayoutState | None = None) -> int:
    return sum(p.amount_minor for p in payouts if state is None or p.state is state)


def _report(
    window: Window, payouts: list[Payout], found: dict[uuid.UUID, Transfer]
) -> WindowReport:
    clearing = payouts[0].clearing_account_id if payouts else None
    problems: list[str] = []
    lines: list[ReportLine] = []
    clearing_movement = 0
    for p in payouts:
        line, wrong, moved = _line(p, found, clearing)
        lines.append(line)
        problems += wrong
        clearing_movement += moved
    payouts_total = _total(payouts)
    paid, failed, pending = (
        _total(payouts, PayoutState.PAID),
        _total(payouts, PayoutState.FAILED),
        _total(payouts, PayoutState.PENDING),
    )
    held = sum(line.held_minor for line in lines)
    posted_total = sum(line.posted_minor for line in lines)
    voided_total = sum(line.voided_minor for line in lines)
    checks = {
        "payouts count and total equal the window's": (
            len(payouts) == window.payouts_count and payouts_total == window.payouts_total_minor
        ),
        "the core holds every payout": held == payouts_total,
        "paid = posted = clearing movement": paid == posted_total == clearing_movement,
        "failed = voided": failed == voided_total,
        "settled exactly when nothing is pending": window.state is WindowState.OPEN
        or (window.state is WindowState.SETTLED) == (pending == 0),
    }
    problems += [f"window {window.id}: not {name}" for name, ok in checks.items() if not ok]
    return WindowReport(
        window=window,
        clearing_account_id=clearing,
        lines=tuple(lines),
        proceeds_before_total_minor=sum(p.proceeds_before_minor for p in payouts),
        payouts_total_minor=payouts_total,
        paid_total_minor=paid,
        failed_total_minor=failed,
        pending_total_minor=pending,
        ledger_held_minor=held,
        ledger_posted_minor=posted_total,
        ledger_voided_minor=voided_total,
        clearing_movement_minor=clearing_movement,
        proceeds_after_total_minor=sum(line.proceeds_after_minor for line in lines),
        ties=not problems,
        problems=tuple(problems),
    )
