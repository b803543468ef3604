"""The ``cash-count`` job: an agent's counted cash against the cash-on-hand the ledger
expects, and the variance an operator must approve before anything moves.

Input (``--input FILE``, UTF-8 JSON, at most :data:`INPUT_BYTES_MAX` bytes)::

    {"agent_id": "6f1c...", "counted_at": "2026-06-01T18:00:00+00:00", "currency": "KES",
     "denominations": {"1000": 21, "200": 2, "0.50": 0}, "comment": "one note torn"}

- ``denominations``: note or coin value in MAJOR units of the currency (a decimal string,
  no more fraction digits than ISO 4217 gives the currency: ``"0.50"`` is KES 0.50,
  ``"0.005"`` in KES is refused) -> how many were counted (an integer 0..
  :data:`COUNT_PER_DENOMINATION_MAX`; at most :data:`DENOMINATIONS_MAX` denominations).
  The counted cash is the exact integer sum of value x count in minor units; no float.
- ``counted_at``: an ISO 8601 moment with its offset, not after the ledger's clock.
- ``comment``: required when the count is over or short (else the run is refused with
  :class:`CashCountRefused`, nothing recorded); optional otherwise.
- ``--scope`` (the agent id), when given, must name the file's agent.

Expected cash-on-hand is the posted balance of the agent's ``cash`` account (debits less
credits) as of ``counted_at``, read the way :meth:`ledger.Ledger.balance_at` reads it
(the balances its last transfer at or before that moment recorded) but inside the run's
snapshot. A cash-out the agent has not yet confirmed is a hold, not posted: its cash is
still in the drawer, so it is not subtracted (the summary shows the holds open now).
The report also lists what moved the agent's ``cash`` and ``float`` accounts since the
agent's previous count (or since the start), by transfer code, with the opening balance
then: opening + cash in - cash out must equal the expected cash (a break
``movements_do_not_add_up`` otherwise).

Every count is kept (``recon_cash_counts``, one per agent and moment: running the same
file again answers the same count; another file for the same agent and moment is
refused). A count that is over or short proposes a variance (``recon_variances``,
state ``proposed``) and is one break (kind ``short`` or ``over``); nothing moves until
:func:`approve_variance`, which posts, in one transaction, the transfer
(:data:`CASH_VARIANCE_CODE`, id derived from the variance id, so it is posted once)::

    short by V:   agent cash_control  debit V  ->  agent cash      credit V
    over by V:    agent cash          debit V  ->  agent cash_control credit V

The agent's ``cash``/``cash_control`` pair is the memo of the agent's own physical cash
(every flow moves them together), so the variance stays inside that pair: the expected
cash becomes what was counted and no platform or villager money moves. Charging an
agent for a shortage is a business decision made elsewhere. :func:`reject_variance`
closes a proposal with a reason and moves nothing.

Who decides (maker-checker, both signed callers): an operator proposes the approval
(:func:`propose_approval`, a proposal of kind :data:`VARIANCE_APPROVAL`) and a
**different** operator approves that proposal (``ledger.flows.proposals.approve``),
which applies :func:`approve_variance_in` in the approval's transaction with the
approver's principal id: that id is what ``decided_by`` records. A rejection is one
operator's, with a reason. Deciders are principals (``principals.id``) whose role is
operator, never a typed name; variances decided before that (revision 0030) keep the
name that was typed in ``decided_by_name``, unchecked.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger import Ledger
from ledger.core import currency as iso4217
from ledger.core.ledger import transactional
from ledger.core.store import from_us, to_us
from ledger.core.tx import Row, Tx
from ledger.core.values import Status, Transfer
from ledger.flows import agent_float, cash, fees, offline, orders, parties, proposals
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.parties import Kind, Role
from ledger.flows.principals import Role as PrincipalRole
from ledger.flows.principals import principal_role_in
from ledger.flows.proposals import Proposal
from ledger.limits import LIST_PAGE_SIZE_MAX as VARIANCES_PAGE_MAX
from ledger.limits import REASON_LENGTH_MAX as COMMENT_LENGTH_MAX
from ledger.money import format_money
from reconciliation.errors import InputInvalid
from reconciliation.runs import Findings, snapshot

if TYPE_CHECKING:
    from reconciliation.jobs import JobRequest

__all__ = [
    "CASH_VARIANCE_CODE",
    "DETAIL_HEADER",
    "JOB",
    "RULE_VERSION",
    "CashCount",
    "CashCountRefused",
    "VARIANCE_APPROVAL",
    "Direction",
    "Variance",
    "VarianceState",
    "approve_variance",
    "approve_variance_in",
    "count_file",
    "get_variance",
    "list_variances",
    "parse_count",
    "propose_approval",
    "reject_variance",
    "run",
    "tables",
]

JOB = "cash-count"
RULE_VERSION = 1
DETAIL_HEADER = ("kind", "agent_id", "variance_id", "expected_minor", "counted_minor", "note")

CASH_VARIANCE_CODE = 721
"""Core transfer ``code`` of an approved cash-count variance."""
VARIANCE_APPROVAL = "variance_approval"
"""The proposal kind of a variance's approval (:func:`propose_approval`)."""
COUNT_NAMESPACE = uuid.UUID("0b7e3c52-9d14-4f6a-8e21-5c3a9b7d1e44")
"""Derives a count's id from its agent and moment."""

INPUT_BYTES_MAX = 64 * 1024
DENOMINATIONS_MAX = 64
COUNT_PER_DENOMINATION_MAX = 1_000_000
DENOMINATION_DIGITS_MAX = 12
"""Digits of a denomination's whole part."""

_DENOMINATION = re.compile(rf"^(\d{{1,{DENOMINATION_DIGITS_MAX}}})(?:\.(\d{{1,4}}))?$")

_CODE_NAMES: dict[int, str] = {
    cash.CASH_IN_CODE: "cash-in: float to wallet",
    cash.CASH_RECEIVED_CODE: "cash-in: cash received",
    cash.CASH_OUT_CODE: "cash-out: wallet to float",
    cash.CASH_PAID_CODE: "cash-out: cash paid",
    orders.PAYMENT_CODE: "order paid (float to escrow)",
    orders.CASH_RECEIVED_CODE: "order paid in cash: cash received",
    orders.REFUND_CODE: "order refunded (escrow to float)",
    orders.CASH_RETURNED_CODE: "order refunded: cash returned",
    agent_float.TOP_UP_CODE: "float top-up",
    agent_float.FLOAT_TRANSFER_CODE: "float transfer",
    offline.ALLOWANCE_HOLD_CODE: "offline allowance",
    fees.FEE_CODE: "fee",
    CASH_VARIANCE_CODE: "cash-count variance",
}


class CashCountRefused(InputInvalid):
    """The count file cannot be reconciled (malformed, another agent, no comment on a
    count that is over or short, another count for the same moment); nothing recorded."""

    code = "cash_count_invalid"


@dataclass(frozen=True, slots=True)
class CashCount:
    """A count as handed in; denomination values and the total in minor units."""

    agent_id: uuid.UUID
    counted_at: datetime
    currency: str
    denominations: dict[int, int]
    """Value of a note or coin (minor units) -> how many."""
    comment: str | None

    @property
    def counted_minor(self) -> int:
        return sum(value * count for value, count in self.denominations.items())

    def canonical_denominations(self) -> str:
        return json.dumps(
            {str(v): c for v, c in sorted(self.denominations.items())}, separators=(",", ":")
        )


class Direction(StrEnum):
    """Which way a count differs from the cash the ledger expects."""

    OVER = "over"
    """More cash counted than expected."""
    SHORT = "short"


class VarianceState(StrEnum):
    """A variance is proposed by its count, then approved (its transfer posted) or
    rejected (nothing moves); a decision is final."""

    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Variance:
    """A count over or short: ``amount_minor`` (> 0) of ``currency``."""

    id: uuid.UUID
    count_id: uuid.UUID
    agent_id: uuid.UUID
    currency: str
    direction: Direction
    amount_minor: int
    comment: str
    state: VarianceState
    transfer_id: uuid.UUID | None
    decided_by: uuid.UUID | None
    """The deciding operator's principal (the approval's signed approver, or the
    rejecter); ``None`` while proposed, and on variances decided before revision 0030."""
    decided_by_name: str | None
    """Before revision 0030 only: the name typed at the command line (never checked)."""
    reject_reason: str | None
    created_at: datetime
    decided_at: datetime | None


# -- the input ------------------------------------------------------------------------------


def _minor_of(text: str, digits: int) -> int:
    found = _DENOMINATION.match(text)
    if found is None:
        raise CashCountRefused(f"denomination {text!r} is not a decimal amount in major units")
    whole, fraction = found.group(1), found.group(2) or ""
    if len(fraction.rstrip("0")) > digits:
        raise CashCountRefused(
            f"denomination {text!r} has more fraction digits than the currency's {digits}"
        )
    fraction = fraction.rstrip("0").ljust(digits, "0")
    value = int(whole) * int(10**digits) + (int(fraction) if fraction else 0)
    if value <= 0:
        raise CashCountRefused(f"denomination {text!r} must be more than zero")
    return value


def _json_object(data: bytes) -> dict[str, Any]:
    if len(data) > INPUT_BYTES_MAX:
        raise CashCountRefused(f"a cash count file is at most {INPUT_BYTES_MAX} bytes")
    try:
        raw = json.loads(data.decode("utf-8"), parse_float=_refuse_float)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CashCountRefused(f"a cash count file is UTF-8 JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise CashCountRefused("a cash count file is one JSON object")
    return raw


def count_file(agent_id: uuid.UUID, body: bytes) -> bytes:
    """The count file of a count handed in for ``agent_id`` over the API: ``body`` is the
    file's JSON, its ``agent_id`` left out (or the same agent's); checked by
    :func:`parse_count` exactly as a file is. The bytes the run reads and keeps."""
    raw = _json_object(body)
    given = raw.setdefault("agent_id", str(agent_id))
    try:
        same = uuid.UUID(str(given)) == agent_id
    except ValueError:
        same = False
    if not same:
        raise CashCountRefused(f"the count names agent {given!r}, not {agent_id}")
    data = json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    parse_count(data)
    return data


def parse_count(data: bytes) -> CashCount:
    """The count in ``data`` (the JSON above), or :class:`CashCountRefused`."""
    raw = _json_object(data)
    unknown = set(raw) - {"agent_id", "counted_at", "currency", "denominations", "comment"}
    if unknown:
        raise CashCountRefused(f"unknown fields in the count: {', '.join(sorted(unknown))}")
    try:
        agent_id = uuid.UUID(str(raw["agent_id"]))
    except (KeyError, ValueError):
        raise CashCountRefused("agent_id must be the agent's UUID") from None
    counted_at = _moment(raw.get("counted_at"))
    currency = raw.get("currency")
    if not isinstance(currency, str) or not iso4217.is_supported(currency):
        raise CashCountRefused(f"currency {currency!r} is not an active ISO 4217 code")
    digits = iso4217.minor_digits(currency)
    given = raw.get("denominations")
    if not isinstance(given, dict) or not 1 <= len(given) <= DENOMINATIONS_MAX:
        raise CashCountRefused(
            f"denominations is an object of 1..{DENOMINATIONS_MAX} value: count pairs"
        )
    denominations: dict[int, int] = {}
    for text, count in given.items():
        value = _minor_of(text, digits)
        if type(count) is not int or not 0 <= count <= COUNT_PER_DENOMINATION_MAX:
            raise CashCountRefused(
                f"the count of {text!r} must be an integer 0..{COUNT_PER_DENOMINATION_MAX}"
            )
        if value in denominations:
            raise CashCountRefused(f"denomination {text!r} is given twice")
        denominations[value] = count
    comment = raw.get("comment")
    if comment is not None:
        if not isinstance(comment, str) or len(comment) > COMMENT_LENGTH_MAX:
            raise CashCountRefused(f"comment is text of at most {COMMENT_LENGTH_MAX} characters")
        comment = comment.strip() or None
    return CashCount(agent_id, counted_at, currency, denominations, comment)


def _refuse_float(text: str) -> object:
    raise CashCountRefused(f"{text} is a JSON number with a fraction: give counts as integers")


def _moment(value: object) -> datetime:
    if not isinstance(value, str):
        raise CashCountRefused("counted_at is an ISO 8601 moment with its offset")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CashCountRefused(f"counted_at {value!r} is not an ISO 8601 moment") from None
    if moment.tzinfo is None:
        raise CashCountRefused("counted_at needs its UTC offset (a naive time is ambiguous)")
    return moment


# -- reading the ledger ----------------------------------------------------------------------


def count_id_of(agent_id: uuid.UUID, counted_at_us: int) -> uuid.UUID:
    return uuid.uuid5(COUNT_NAMESPACE, f"{agent_id}:{counted_at_us}")


def variance_id_of(count_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(count_id, "variance")


def _balance_at(tx: Tx, account: uuid.UUID, at_us: int) -> tuple[int, int]:
    """(debits posted, credits posted) as the last transfer at or before ``at_us`` recorded."""
    latest: tuple[int, int, int, int] | None = None
    for side in ("debit", "credit"):
        row = tx.one(
            f"SELECT created_at_us, seq, {side}_account_debits_posted,"
            f" {side}_account_credits_posted FROM journal_transfers"
            f" WHERE {side}_account_id = :a AND created_at_us <= :at"
            " ORDER BY created_at_us DESC, seq DESC LIMIT 1",
            {"a": account, "at": at_us},
        )
        if row is not None:
            found = (int(row[0]), int(row[1]), int(row[2]), int(row[3]))
            if latest is None or found[:2] > latest[:2]:
                latest = found
    return (0, 0) if latest is None else (latest[2], latest[3])


@dataclass(frozen=True, slots=True)
class _Reading:
    expected_minor: int
    float_minor: int
    since_us: int | None
    opening_minor: int
    movements: list[Row]
    cash_pending_out_minor: int
    existing: Row | None


def _read(tx: Tx, count: CashCount, at_us: int) -> _Reading:
    agent = parties.find_party(tx, count.agent_id)
    if agent is None or agent.kind is not Kind.AGENT:
        raise CashCountRefused(f"no agent {count.agent_id}")
    if agent.currency != count.currency:
        raise CashCountRefused(
            f"agent {agent.id} holds {agent.currency}; the count is in {count.currency}"
        )
    cash_account, float_account = agent.account(Role.CASH), agent.account(Role.FLOAT)
    debits, credits = _balance_at(tx, cash_account, at_us)
    float_debits, float_credits = _balance_at(tx, float_account, at_us)
    last = tx.one(
        "SELECT MAX(counted_at_us) FROM recon_cash_counts"
        " WHERE agent_id = :a AND counted_at_us < :at",
        {"a": agent.id, "at": at_us},
    )
    since_us = None if last is None or last[0] is None else int(last[0])
    opening = 0
    if since_us is not None:
        open_debits, open_credits = _balance_at(tx, cash_account, since_us)
        opening = open_debits - open_credits
    movements = tx.execute(
        "SELECT t.code, COUNT(*),"
        " SUM(CASE WHEN t.debit_account_id = :cash THEN t.amount ELSE 0 END),"
        " SUM(CASE WHEN t.credit_account_id = :cash THEN t.amount ELSE 0 END),"
        " SUM(CASE WHEN t.credit_account_id = :float THEN t.amount ELSE 0 END),"
        " SUM(CASE WHEN t.debit_account_id = :float THEN t.amount ELSE 0 END)"
        " FROM posted_transfers t"
        " WHERE (t.debit_account_id IN (:cash, :float) OR t.credit_account_id IN (:cash, :float))"
        " AND t.created_at_us > :since AND t.created_at_us <= :at"
        " GROUP BY t.code ORDER BY t.code",
        {
            "cash": cash_account,
            "float": float_account,
            "since": -1 if since_us is None else since_us,
            "at": at_us,
        },
    )
    [account] = tx.lookup_accounts([cash_account])
    existing = tx.one(
        "SELECT counted_minor, denominations, comment, expected_minor FROM recon_cash_counts"
        " WHERE id = :id",
        {"id": count_id_of(agent.id, at_us)},
    )
    return _Reading(
        expected_minor=debits - credits,
        float_minor=float_credits - float_debits,
        since_us=since_us,
        opening_minor=opening,
        movements=movements,
        cash_pending_out_minor=account.credits_pending,
        existing=existing,
    )


# -- recording the count and its proposal ---------------------------------------------------


def _record_count(
    led: Ledger, count: CashCount, at_us: int, expected: int, input_sha256: str
) -> Variance | None:
    """Keep the count (once) and propose its variance, if any; the proposal as it is now."""
    count_id = count_id_of(count.agent_id, at_us)
    denominations = count.canonical_denominations()

    def work(tx: Tx) -> Variance | None:
        expected_minor = expected
        found = tx.one(
            "SELECT counted_minor, denominations, comment, expected_minor FROM recon_cash_counts"
            " WHERE id = :id",
            {"id": count_id},
        )
        if found is None:
            tx.execute(
                "INSERT INTO recon_cash_counts (id, agent_id, currency, counted_at_us,"
                " counted_minor, expected_minor, denominations, comment, input_sha256,"
                " created_at_us) VALUES (:id, :agent, :currency, :at, :counted, :expected,"
                " :denominations, :comment, :sha, :now)",
                {
                    "id": count_id,
                    "agent": count.agent_id,
                    "currency": count.currency,
                    "at": at_us,
                    "counted": count.counted_minor,
                    "expected": expected_minor,
                    "denominations": denominations,
                    "comment": count.comment,
                    "sha": input_sha256,
                    "now": tx.now_us,
                },
            )
        elif (found[0], found[1], found[2]) != (count.counted_minor, denominations, count.comment):
            raise CashCountRefused(
                f"agent {count.agent_id} already handed in another count at"
                f" {count.counted_at.isoformat()}"
            )
        else:
            expected_minor = int(found[3])
        variance = count.counted_minor - expected_minor
        if variance == 0:
            return None
        variance_id = variance_id_of(count_id)
        if _read_variance(tx, variance_id, lock=False) is None:
            assert count.comment is not None  # checked before the snapshot was read
            tx.execute(
                "INSERT INTO recon_variances (id, count_id, agent_id, currency, direction,"
                " amount_minor, comment, state, transfer_id, decided_by, reject_reason,"
                " created_at_us, decided_at_us) VALUES (:id, :count, :agent, :currency,"
                " :direction, :amount, :comment, 'proposed', NULL, NULL, NULL, :now, NULL)",
                {
                    "id": variance_id,
                    "count": count_id,
                    "agent": count.agent_id,
                    "currency": count.currency,
                    "direction": str(Direction.OVER if variance > 0 else Direction.SHORT),
                    "amount": abs(variance),
                    "comment": count.comment,
                    "now": tx.now_us,
                },
            )
        return _read_variance(tx, variance_id, lock=False)

    return led.transact(work)


# -- the job ----------------------------------------------------------------------------------


def _request_path(request: JobRequest) -> Path:
    path = request.input_path
    if path is None:
        raise CashCountRefused("the cash-count job needs --input FILE (the agent's count)")
    return path


def _moment_us(led: Ledger, request: JobRequest, count: CashCount) -> int:
    """The count's moment in microseconds, once the scope and the clock allow it."""
    if request.scope is not None and request.scope != str(count.agent_id):
        raise CashCountRefused(
            f"the count is agent {count.agent_id}'s, not the scope's {request.scope}"
        )
    at_us = to_us(count.counted_at)
    if at_us > to_us(led.now()):
        raise CashCountRefused(f"counted_at {count.counted_at.isoformat()} is in the future")
    return at_us


def _require_comment(count: CashCount, expected: int) -> None:
    """A count that is over or short needs a comment; else nothing is recorded."""
    difference = count.counted_minor - expected
    if difference == 0 or count.comment is not None:
        return
    direction = "over" if difference > 0 else "short"
    raise CashCountRefused(
        f"the count is {direction} by {format_money(abs(difference), count.currency)}"
        f" (counted {format_money(count.counted_minor, count.currency)}, expected"
        f" {format_money(expected, count.currency)}): a count that is over or short"
        " needs a comment"
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """A run's count, what the ledger expected, and the proposal it made (if any)."""

    count: CashCount
    reading: _Reading
    expected_minor: int
    """What the first run of this count read (the same as the reading's, first time)."""
    variance: Variance | None

    @property
    def cash_in_minor(self) -> int:
        return sum(int(row[2] or 0) for row in self.reading.movements)

    @property
    def cash_out_minor(self) -> int:
        return sum(int(row[3] or 0) for row in self.reading.movements)


def _detail(outcome: _Outcome) -> list[tuple[object, ...]]:
    count, reading, variance = outcome.count, outcome.reading, outcome.variance
    detail: list[tuple[object, ...]] = []
    if variance is not None:
        detail.append(
            (
                str(variance.direction),
                str(count.agent_id),
                str(variance.id),
                outcome.expected_minor,
                count.counted_minor,
                f"{variance.state}: {count.comment}",
            )
        )
    moved = reading.opening_minor + outcome.cash_in_minor - outcome.cash_out_minor
    if moved != reading.expected_minor:
        detail.append(
            (
                "movements_do_not_add_up",
                str(count.agent_id),
                "",
                reading.expected_minor,
                moved,
                "opening + cash in - cash out differs from the balance recorded",
            )
        )
    return detail


def _movements(reading: _Reading) -> list[dict[str, Any]]:
    return [
        {
            "code": int(row[0]),
            "name": _CODE_NAMES.get(int(row[0]), f"code {row[0]}"),
            "transfers": int(row[1]),
            "cash_in_minor": int(row[2] or 0),
            "cash_out_minor": int(row[3] or 0),
            "float_in_minor": int(row[4] or 0),
            "float_out_minor": int(row[5] or 0),
        }
        for row in reading.movements
    ]


def _summary(request: JobRequest, outcome: _Outcome) -> dict[str, Any]:
    count, reading, variance = outcome.count, outcome.reading, outcome.variance
    return {
        "job": JOB,
        "business_date": request.business_date.isoformat(),
        "rule_version": RULE_VERSION,
        "agent_id": str(count.agent_id),
        "currency": count.currency,
        "counted_at": count.counted_at.isoformat(),
        "counted_minor": count.counted_minor,
        "expected_minor": outcome.expected_minor,
        "variance_minor": count.counted_minor - outcome.expected_minor,
        "variance": None
        if variance is None
        else {
            "id": str(variance.id),
            "direction": str(variance.direction),
            "state": str(variance.state),
        },
        "comment": count.comment,
        "denominations": {str(v): c for v, c in sorted(count.denominations.items())},
        "previous_count_at": None
        if reading.since_us is None
        else from_us(reading.since_us).isoformat(),
        "opening_minor": reading.opening_minor,
        "cash_in_minor": outcome.cash_in_minor,
        "cash_out_minor": outcome.cash_out_minor,
        "float_minor": reading.float_minor,
        "cash_pending_out_minor": reading.cash_pending_out_minor,
        "movements": _movements(reading),
    }


def run(led: Ledger, request: JobRequest) -> Findings:
    """Reconcile the count in ``request.input_path``; records the count and any proposal."""
    data = _request_path(request).read_bytes()
    input_sha256 = hashlib.sha256(data).hexdigest()
    count = parse_count(data)
    at_us = _moment_us(led, request, count)
    reading = snapshot(led, lambda tx: _read(tx, count, at_us))
    expected = reading.expected_minor
    if reading.existing is not None:
        expected = int(reading.existing[3])  # what the first run of this count read
    _require_comment(count, expected)
    variance = _record_count(led, count, at_us, expected, input_sha256)
    outcome = _Outcome(count, reading, expected, variance)
    detail = _detail(outcome)
    by_kind: dict[str, int] = {}
    for line in detail:
        by_kind[str(line[0])] = by_kind.get(str(line[0]), 0) + 1
    return Findings(
        job=JOB,
        business_date=request.business_date,
        scope=str(count.agent_id),
        rule_version=RULE_VERSION,
        input_sha256=input_sha256,
        checked=1 + sum(int(row[1]) for row in reading.movements),
        detail_header=DETAIL_HEADER,
        detail=detail,
        summary={**_summary(request, outcome), "breaks_by_kind": by_kind},
    )


def tables(findings: Findings) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The count by denomination, and the movements since the previous count."""
    s = findings.summary
    currency = str(s["currency"])
    count_rows: list[tuple[Any, ...]] = [("denomination", "count", "amount")]
    for value, number in s["denominations"].items():
        count_rows.append(
            (
                format_money(int(value), currency),
                number,
                format_money(int(value) * number, currency),
            )
        )
    count_rows.append(("counted", "", format_money(s["counted_minor"], currency)))
    count_rows.append(("expected", "", format_money(s["expected_minor"], currency)))
    count_rows.append(("variance", "", format_money(s["variance_minor"], currency)))
    since = s["previous_count_at"] or "the start"
    moves: list[tuple[Any, ...]] = [
        ("movement", "transfers", "cash in", "cash out", "float in", "float out"),
        ("opening (previous count)", "", format_money(s["opening_minor"], currency), "", "", ""),
    ]
    for m in s["movements"]:
        moves.append(
            (
                m["name"],
                m["transfers"],
                *(
                    format_money(m[key], currency)
                    for key in (
                        "cash_in_minor",
                        "cash_out_minor",
                        "float_in_minor",
                        "float_out_minor",
                    )
                ),
            )
        )
    moves.append(
        ("expected cash-on-hand", "", format_money(s["expected_minor"], currency), "", "", "")
    )
    return [
        (f"Cash counted ({currency})", count_rows),
        (f"Movements since {since}", moves),
    ]


# -- deciding a variance ----------------------------------------------------------------------

_VARIANCE_COLUMNS = (
    "id, count_id, agent_id, currency, direction, amount_minor, comment, state, transfer_id,"
    " decided_by, decided_by_name, reject_reason, created_at_us, decided_at_us"
)


def _variance(row: Row) -> Variance:
    return Variance(
        id=row[0],
        count_id=row[1],
        agent_id=row[2],
        currency=row[3],
        direction=Direction(row[4]),
        amount_minor=int(row[5]),
        comment=row[6],
        state=VarianceState(row[7]),
        transfer_id=row[8],
        decided_by=row[9],
        decided_by_name=row[10],
        reject_reason=row[11],
        created_at=from_us(int(row[12])),
        decided_at=None if row[13] is None else from_us(int(row[13])),
    )


def _read_variance(tx: Tx, variance_id: uuid.UUID, *, lock: bool) -> Variance | None:
    row = tx.one(
        f"SELECT {_VARIANCE_COLUMNS} FROM recon_variances WHERE id = :id"
        f"{tx.for_update if lock else ''}",
        {"id": variance_id},
    )
    return None if row is None else _variance(row)


def _check_text(value: object, name: str, length_max: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > length_max:
        raise Refused(f"{name}_invalid", f"{name} is 1..{length_max} characters, not blank")
    return value


def _check_operator(tx: Tx, principal_id: uuid.UUID) -> None:
    """A decider is an operator's principal: a typed name or another role is refused."""
    if not isinstance(principal_id, uuid.UUID):
        raise Refused("decider_not_operator", "a decider is an operator's principal id")
    if principal_role_in(tx, principal_id) is not PrincipalRole.OPERATOR:
        raise Refused("decider_not_operator", f"principal {principal_id} is not an operator")


def _locked(tx: Tx, variance_id: uuid.UUID) -> Variance:
    if not isinstance(variance_id, uuid.UUID):
        raise NotFound("variance_not_found", f"no variance {variance_id!r}")
    found = _read_variance(tx, variance_id, lock=True)
    if found is None:
        raise NotFound("variance_not_found", f"no variance {variance_id}")
    return found


def _variance_transfer(found: Variance) -> Transfer:
    """The transfer that books the variance (legs in the module docstring)."""
    cash_account = parties.account_id(found.agent_id, Role.CASH)
    control = parties.account_id(found.agent_id, Role.CASH_CONTROL)
    debit, credit = (
        (control, cash_account) if found.direction is Direction.SHORT else (cash_account, control)
    )
    return Transfer(
        id=uuid.uuid5(found.id, "cash_count:variance"),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=found.amount_minor,
        currency=found.currency,
        code=CASH_VARIANCE_CODE,
        metadata={"variance_id": str(found.id), "direction": str(found.direction)},
    )


def approve_variance_in(tx: Tx, *, variance_id: uuid.UUID, approver: uuid.UUID) -> Variance:
    """Post the variance transfer and mark it approved by ``approver`` (an operator's
    principal id), in ``tx``. Approving an approved variance answers it unchanged (posted
    once); a rejected one is :class:`~ledger.flows.errors.Conflict` ``variance_rejected``;
    a shortage the agent's cash no longer covers (cash promised to open cash-outs) is
    :class:`~ledger.flows.errors.Refused` ``agent_cash_short``, nothing moves. Reached
    through an approved :data:`VARIANCE_APPROVAL` proposal (maker-checker)."""
    _check_operator(tx, approver)
    found = _locked(tx, variance_id)
    if found.state is VarianceState.APPROVED:
        return found
    if found.state is VarianceState.REJECTED:
        raise Conflict("variance_rejected", f"variance {variance_id} was rejected")
    transfer = _variance_transfer(found)
    [result] = tx.create_transfers([transfer])
    if result.status in (Status.EXCEEDS_CREDITS, Status.EXCEEDS_DEBITS):
        raise Refused(
            "agent_cash_short",
            f"agent {found.agent_id}'s cash cannot take a shortage of {found.amount_minor}",
        )
    if result.status is not Status.CREATED:
        raise Conflict("variance_transfer_exists", f"transfer {transfer.id}: {result.status}")
    tx.execute(
        "UPDATE recon_variances SET state = 'approved', transfer_id = :t,"
        " decided_by = :by, decided_at_us = :now WHERE id = :id",
        {"t": transfer.id, "by": approver, "now": tx.now_us, "id": found.id},
    )
    done = _read_variance(tx, found.id, lock=False)
    assert done is not None  # locked above
    return done


approve_variance = transactional(approve_variance_in)


def reject_variance_in(
    tx: Tx, *, variance_id: uuid.UUID, decider: uuid.UUID, reason: str
) -> Variance:
    """Close a proposed variance without moving anything (the count stays on record),
    by ``decider`` (an operator's principal id). Rejecting a rejected variance answers
    it unchanged; an approved one is :class:`~ledger.flows.errors.Conflict`
    ``variance_approved``."""
    _check_text(reason, "reason", COMMENT_LENGTH_MAX)
    _check_operator(tx, decider)
    found = _locked(tx, variance_id)
    if found.state is VarianceState.REJECTED:
        return found
    if found.state is VarianceState.APPROVED:
        raise Conflict("variance_approved", f"variance {variance_id} was approved")
    tx.execute(
        "UPDATE recon_variances SET state = 'rejected', reject_reason = :reason,"
        " decided_by = :by, decided_at_us = :now WHERE id = :id",
        {"reason": reason, "by": decider, "now": tx.now_us, "id": found.id},
    )
    done = _read_variance(tx, found.id, lock=False)
    assert done is not None  # locked above
    return done


reject_variance = transactional(reject_variance_in)


def propose_approval(
    led: Ledger, *, proposal_id: uuid.UUID, variance_id: uuid.UUID, proposed_by: uuid.UUID
) -> tuple[Proposal, Variance]:
    """Propose approving a variance (nothing moves until another operator approves the
    proposal); the proposal and the variance as it is. A variance that is no longer
    proposed is :class:`~ledger.flows.errors.Conflict` (``variance_approved``,
    ``variance_rejected``); the same ``proposal_id`` again answers the same proposal."""

    def check(tx: Tx) -> Variance:
        _check_operator(tx, proposed_by)
        found = _read_variance(tx, variance_id, lock=False)
        if found is None:
            raise NotFound("variance_not_found", f"no variance {variance_id}")
        if found.state is not VarianceState.PROPOSED and not _proposed(tx, proposal_id):
            raise Conflict(f"variance_{found.state}", f"variance {variance_id} was {found.state}")
        return found

    found = led.transact(check)
    made = proposals.propose(
        led,
        proposal_id=proposal_id,
        kind=VARIANCE_APPROVAL,
        payload={"variance_id": str(variance_id)},
        proposed_by=proposed_by,
    )
    return made, found


def _proposed(tx: Tx, proposal_id: uuid.UUID) -> bool:
    """Whether the proposal exists (a replay answers it even once its variance is decided)."""
    try:
        proposals.get_in(tx, proposal_id)
    except NotFound:
        return False
    return True


def _apply_approval(tx: Tx, payload: Mapping[str, Any], approver: uuid.UUID) -> dict[str, Any]:
    """Approve the proposal's variance as ``approver``; what was posted."""
    done = approve_variance_in(
        tx, variance_id=uuid.UUID(str(payload["variance_id"])), approver=approver
    )
    return {
        "variance_id": str(done.id),
        "state": str(done.state),
        "transfer_id": None if done.transfer_id is None else str(done.transfer_id),
        "amount_minor": done.amount_minor,
        "currency": done.currency,
        "direction": str(done.direction),
    }


proposals.register_as(VARIANCE_APPROVAL, _apply_approval)


def get_variance(led: Ledger, *, variance_id: uuid.UUID) -> Variance:
    """The variance, or :class:`~ledger.flows.errors.NotFound`."""

    def read(tx: Tx) -> Variance:
        found = _read_variance(tx, variance_id, lock=False)
        if found is None:
            raise NotFound("variance_not_found", f"no variance {variance_id}")
        return found

    return led.transact(read)


def list_variances(
    led: Ledger,
    *,
    state: str | None = None,
    agent_id: uuid.UUID | None = None,
    limit: int = 100,
    starting_after: uuid.UUID | None = None,
) -> list[Variance]:
    """Variances oldest first, of one state and agent if given, after the variance
    ``starting_after`` (:class:`~ledger.flows.errors.NotFound` if it names none), at most
    ``limit``."""
    if type(limit) is not int or not 1 <= limit <= VARIANCES_PAGE_MAX:
        raise ValueError(f"limit must be 1..{VARIANCES_PAGE_MAX}")
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    if state is not None:
        where.append("state = :state")
        params["state"] = state
    if agent_id is not None:
        where.append("agent_id = :agent")
        params["agent"] = agent_id

    def read(tx: Tx) -> list[Row]:
        if starting_after is not None:
            after = _read_variance(tx, starting_after, lock=False)
            if after is None:
                raise NotFound("variance_not_found", f"no variance {starting_after}")
            where.append(
                "(created_at_us > :after_us OR (created_at_us = :after_us AND id > :after))"
            )
            params.update(after_us=to_us(after.created_at), after=after.id)
        return tx.execute(
            f"SELECT {_VARIANCE_COLUMNS} FROM recon_variances WHERE {' AND '.join(where)}"
            " ORDER BY created_at_us, id LIMIT :limit",
            params,
        )

    return [_variance(row) for row in led.transact(read)]
