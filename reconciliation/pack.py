"""The ``pack`` job: an auditor pack for a period, signed with the service key.

The period is the business date (one UTC day), or ``--option from=YYYY-MM-DD --option
to=YYYY-MM-DD`` (inclusive, each defaulting to the business date, at most
:data:`PERIOD_DAYS_MAX` days): every moment from midnight UTC starting ``from`` to
midnight UTC after ``to``. One snapshot is read; the run's folder gets, besides its
``summary.json``, ``detail.csv`` and ``report.html``, a ``pack/`` folder
(``vledger-audit-pack/1``):

- ``accounts.csv``: every account opened before the period ends: its identity, its
  party and role (if a flow opened it), its Beancount name, and its counters at the end
  of the period (posted: from the balances its last transfer recorded, as ``balance_at``
  reads them; pending: the holds open then);
- ``transfers.csv``: every transfer created in the period, in commit order: the
  canonical fields of the sealed journal (:data:`reconciliation.seal.FIELDS`, amounts in
  integer minor units), its ``kind`` (``transfer``, ``hold``, ``post``, ``void``) and
  time;
- ``balances.csv``: per account, the posted counters at the start and at the end of the
  period and the period's posted movements; ``ties`` says whether
  ``opening + movements = closing`` on both sides (a break when not);
- ``runs.csv``: the reconciliation runs whose business date is in the period, each with
  where it read (``read_source``: primary or replica; ``read_lsn``, ``close_lsn``: the
  WAL positions its row records, empty when there are none);
- ``checkpoints.csv`` and ``checkpoints/NNNNNNNNNN.txt``: the sealed blocks holding a
  transfer of the period, each with its signed checkpoint note, byte for byte;
- ``summary.json``: the period, counts, totals per currency, the trial balance at the
  end of the period, the fingerprint of the signing key;
- ``ledger.beancount``: the period as Beancount text (see below);
- ``MANIFEST.sha256``: ``<sha256>  <path>`` per file above, sorted by path
  (``sha256sum -c`` reads it); ``MANIFEST.sha256.sig``: the Ed25519 signature of the
  manifest's bytes by the service key, base64; ``service-key.pem``: its public half.

The pack is deterministic: the same ledger and period give the same bytes (nothing in
it says when it was made; the run row does). The run's ``input_sha256`` is the SHA-256
of ``MANIFEST.sha256``, so the immutable run row anchors the pack.

Breaks (one line each in ``detail.csv``; the run is ``ok`` without any): ``balance_tie``
(an account whose closing counters are not its opening counters plus the period's
movements), ``trial_balance`` (debits and credits of a currency differ at the end of
the period), ``counters`` (when nothing was created after the period: an account whose
counters differ from the period's end figures). The run's summary and report list each
file of the pack with its rows and SHA-256 (what was checked).

The Beancount export. Written as text: the ``beancount`` package (GPL) is not imported.
Each transfer that moves posted money (a transfer, or the post of a hold) is a
transaction of two postings: ``+amount`` on the debit account, ``-amount`` on the credit
account (Beancount's sign: debits positive), so each sums to zero; an account's
Beancount balance is ``debits_posted - credits_posted``. Amounts are the minor units
written as decimals by the currency's ISO 4217 exponent (integer arithmetic: KES
``1200.00``, UGX ``1500``). Holds and voids move no posted money: they are ``note``
directives on the hold's debit account, not postings. Each account is opened on the day
it was created (at or before its first use), named
``<Root>:<Owner>:<Role>:<ACCOUNT ID IN HEX>`` from its code (:data:`BEANCOUNT_NAMES`;
``Assets:Code<N>:<HEX>`` for codes no flow uses). Non-zero opening balances come from
``Equity:Opening-Balances`` on the first day; a ``balance`` assertion per account on the
day after the period checks its closing balance.

How an auditor checks a pack, with the service's public key from a trusted channel
(``GET /v1/service-key``), in the ``pack/`` folder::

    sha256sum -c MANIFEST.sha256
    python3 - <<'EOF'
    import base64
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    key = load_pem_public_key(open("trusted-service-key.pem", "rb").read())
    key.verify(base64.b64decode(open("MANIFEST.sha256.sig", "rb").read()),
               open("MANIFEST.sha256", "rb").read())  # raises InvalidSignature if forged
    EOF

(:func:`verify_pack` does both and also refuses files the manifest does not list.)
``bean-check ledger.beancount`` checks the Beancount text.

The signing key is the service key that seals the journal, found as ``vledger seal``
finds it (``$VLEDGER_SERVICE_KEY``, else beside the database); this job never creates
one: without a key the run is refused.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger import Ledger
from ledger.core import currency as iso4217
from ledger.core.store import from_us, to_us
from ledger.core.tx import Row, Tx
from ledger.flows.parties import AccountCode
from ledger.limits import US_PER_S
from reconciliation.checkpoint import public_key_raw
from reconciliation.errors import InputInvalid
from reconciliation.export import checkpoint_file_name
from reconciliation.runs import Findings, Run, runs_of_period, snapshot
from reconciliation.seal import (
    FIELD_NAMES,
    SELECT_TRANSFERS,
    BlockRow,
    Fields,
    blocks_created_in,
    sealed_extent,
    transfer_fields,
)
from reconciliation.service_key import (
    ENV_VAR,
    ServiceKey,
    existing_service_key,
    load_public_key,
    public_key_pem,
    service_key_path,
)

if TYPE_CHECKING:
    from reconciliation.jobs import JobRequest

__all__ = [
    "BEANCOUNT_NAMES",
    "DETAIL_HEADER",
    "JOB",
    "PACK_DIR",
    "PACK_FORMAT",
    "PACK_ROWS_MAX",
    "PERIOD_DAYS_MAX",
    "RULE_VERSION",
    "PackRefused",
    "PackReport",
    "Period",
    "beancount_amount",
    "run",
    "tables",
    "verify_pack",
]

JOB = "pack"
RULE_VERSION = 1
PACK_FORMAT = "vledger-audit-pack/1"
PACK_DIR = "pack"
DETAIL_HEADER = ("kind", "currency", "object_id", "expected", "actual", "note")
PERIOD_DAYS_MAX = 366
"""The longest period one pack covers, in days."""
PACK_ROWS_MAX = 250_000
"""The most accounts, and the most transfers, one pack holds (it is built in memory)."""
OPTIONS = frozenset({"from", "to"})

MANIFEST = "MANIFEST.sha256"
SIGNATURE = "MANIFEST.sha256.sig"
PUBLIC_KEY = "service-key.pem"
UNLISTED = frozenset({MANIFEST, SIGNATURE, PUBLIC_KEY})
"""The pack's files the manifest does not list (it is what they vouch for)."""
CHECKPOINTS_DIR = "checkpoints"
OPENING_ACCOUNT = "Equity:Opening-Balances"
DAY_US = 86_400 * US_PER_S

_PENDING, _POST, _VOID = 2, 4, 8

BEANCOUNT_NAMES: dict[int, str] = {
    AccountCode.WALLET: "Liabilities:Villager:Wallet",
    AccountCode.AGENT_FLOAT: "Liabilities:Agent:Float",
    AccountCode.AGENT_CASH: "Assets:Agent:Cash",
    AccountCode.AGENT_CASH_CONTROL: "Liabilities:Agent:CashControl",
    AccountCode.AGENT_COMMISSION: "Liabilities:Agent:Commission",
    AccountCode.AGENT_OFFLINE_ALLOWANCE: "Liabilities:Agent:OfflineAllowance",
    AccountCode.ESCROW: "Liabilities:Storefront:Escrow",
    AccountCode.SELLER_PROCEEDS: "Liabilities:Storefront:Proceeds",
    AccountCode.FEE_INCOME: "Income:Platform:Fees",
    AccountCode.COMMISSION_EXPENSE: "Expenses:Platform:Commission",
    AccountCode.TAX_PAYABLE: "Liabilities:Platform:Tax",
    AccountCode.ROUNDING: "Income:Platform:Rounding",
    AccountCode.SUSPENSE: "Liabilities:Platform:Suspense",
    AccountCode.SETTLEMENT: "Assets:Platform:Settlement",
    AccountCode.PROVIDER_CLEARING: "Assets:Platform:Clearing",
}
"""The Beancount account of each flow's account code; the account's id (hex, upper
case) is the last component."""

ACCOUNTS_HEADER = (
    "account_id",
    "currency",
    "code",
    "flags",
    "party_id",
    "party_kind",
    "role",
    "beancount_account",
    "created_at",
    "debits_posted",
    "credits_posted",
    "debits_pending",
    "credits_pending",
)
TRANSFERS_HEADER = (*FIELD_NAMES, "kind", "created_at")
BALANCES_HEADER = (
    "account_id",
    "currency",
    "opening_debits_posted",
    "opening_credits_posted",
    "period_debits_minor",
    "period_credits_minor",
    "closing_debits_posted",
    "closing_credits_posted",
    "opening_balance_minor",
    "closing_balance_minor",
    "ties",
)
RUNS_HEADER = (
    "run_id",
    "job",
    "business_date",
    "scope",
    "attempt",
    "rule_version",
    "status",
    "checked",
    "breaks",
    "input_sha256",
    "started_at",
    "finished_at",
    "read_source",
    "read_lsn",
    "close_lsn",
)
CHECKPOINTS_HEADER = (
    "block",
    "first_seq",
    "last_seq",
    "tree_size",
    "first_created_at",
    "last_created_at",
    "sealed_at",
    "root_hash",
    "chain_head",
    "key_name",
    "key_id",
    "checkpoint_file",
)


class PackRefused(InputInvalid):
    """The pack cannot be made: a bad option or period, too many rows, no service key.
    Nothing was written."""

    code = "pack_refused"


# -- the period ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """UTC days ``first`` .. ``last``, both included."""

    first: date
    last: date

    @property
    def start_us(self) -> int:
        return to_us(datetime.combine(self.first, time(0), tzinfo=UTC))

    @property
    def end_us(self) -> int:
        """Midnight UTC after ``last`` (excluded)."""
        return to_us(datetime.combine(self.last + timedelta(days=1), time(0), tzinfo=UTC))

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def text(self) -> str:
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


def _day_option(options: dict[str, str], name: str, default: date) -> date:
    text = options.get(name)
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PackRefused(f"--option {name}= takes a date (YYYY-MM-DD), not {text!r}") from None


def period_of(request: JobRequest) -> Period:
    """The period a request asks for; :class:`PackRefused` when it is not one."""
    unknown = sorted(set(request.options) - OPTIONS)
    if unknown:
        raise PackRefused(f"the pack job takes --option from= and to=, not {', '.join(unknown)}")
    if request.scope not in (None, "all"):
        raise PackRefused("the pack job covers the whole ledger: no --scope")
    period = Period(
        _day_option(request.options, "from", request.business_date),
        _day_option(request.options, "to", request.business_date),
    )
    if period.first > period.last:
        raise PackRefused(
            f"the period starts after it ends: from {period.first} > to {period.last}"
        )
    if period.days > PERIOD_DAYS_MAX:
        raise PackRefused(f"a pack covers at most {PERIOD_DAYS_MAX} days, not {period.days}")
    return period


# -- the service key ----------------------------------------------------------------------


def signing_key(database_url: str, given: Path | None = None) -> ServiceKey:
    """The service key at ``given``, else as ``vledger seal`` finds it; never created
    here."""
    key = existing_service_key(database_url, given)
    if key is None:
        path = service_key_path(database_url, given)
        raise PackRefused(
            f"no service key at {path}: `vledger seal` makes one there, or set ${ENV_VAR}"
        )
    return key


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex."""
    return hashlib.sha256(public_key_raw(key)).hexdigest()


# -- reading the snapshot -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Account:
    id: uuid.UUID
    currency: str
    code: int
    flags: int
    created_at_us: int
    party_id: uuid.UUID | None
    party_kind: str | None
    role: str | None
    now: tuple[int, int, int, int]
    """Its counters now: debits posted, credits posted, debits pending, credits pending."""


@dataclass(frozen=True, slots=True)
class _Reading:
    accounts: list[_Account]
    opening: dict[uuid.UUID, tuple[int, int]]
    closing: dict[uuid.UUID, tuple[int, int]]
    pending: dict[uuid.UUID, tuple[int, int]]
    transfers: list[Fields]
    created_after: int
    runs: list[Run]
    blocks: list[BlockRow]
    sealed_seq: int


def _last_recorded(side: str, column: str) -> str:
    """A scalar subquery: ``column`` of the last transfer before ``:at`` on the ``side``
    (``debit`` or ``credit``) of account ``a``."""
    return (
        f"(SELECT {column} FROM journal_transfers WHERE {side}_account_id = a.id"
        " AND created_at_us < :at ORDER BY created_at_us DESC, seq DESC LIMIT 1)"
    )


_COUNTERS_BEFORE = (
    "SELECT a.id, "
    + ", ".join(
        _last_recorded(side, column)
        for side in ("debit", "credit")
        for column in (
            "created_at_us",
            "seq",
            f"{side}_account_debits_posted",
            f"{side}_account_credits_posted",
        )
    )
    + " FROM ledger_accounts a WHERE a.created_at_us < :end"
)
"""Per account: the posted counters the last transfer before ``:at`` recorded, on each
side (what ``balance_at`` reads, as :data:`ledger.core.store.LAST_BALANCES_QUERY` does),
from the core's published views."""

_PENDING_AT_END = (
    "WITH held AS (SELECT h.debit_account_id AS debit_id,"
    " h.credit_account_id AS credit_id, h.amount AS amount FROM journal_transfers h"
    f" WHERE (h.flags & {_PENDING}) <> 0 AND h.created_at_us < :end"
    " AND NOT EXISTS (SELECT 1 FROM journal_transfers r WHERE r.pending_id = h.id"
    " AND r.created_at_us < :end))"
    " SELECT account_id, SUM(debits), SUM(credits) FROM ("
    " SELECT debit_id AS account_id, amount AS debits, 0 AS credits FROM held"
    " UNION ALL SELECT credit_id, 0, amount FROM held) sides GROUP BY account_id"
)
"""Per account: the holds created before ``:end`` and not posted or voided before it."""

_ACCOUNTS = (
    "SELECT a.id, a.currency, a.code, a.flags, a.created_at_us, r.party_id, r.party_kind,"
    " r.role, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending"
    " FROM ledger_accounts a LEFT JOIN party_account_roles r ON r.account_id = a.id"
    " WHERE a.created_at_us < :end"
)
"""Every account opened before ``:end``, with its party and role if a flow opened it."""


def _counters(rows: Iterable[Row]) -> dict[uuid.UUID, tuple[int, int]]:
    out: dict[uuid.UUID, tuple[int, int]] = {}
    for row in rows:
        account_id, d_at, d_seq, d_dp, d_cp, c_at, c_seq, c_dp, c_cp = row
        if d_at is None and c_at is None:
            out[account_id] = (0, 0)
        elif c_at is None or (d_at is not None and (d_at, d_seq) > (c_at, c_seq)):
            out[account_id] = (int(d_dp), int(d_cp))
        else:
            out[account_id] = (int(c_dp), int(c_cp))
    return out


def _count(tx: Tx, sql: str, params: dict[str, Any]) -> int:
    row = tx.one(sql, params)
    return int(row[0]) if row and row[0] is not None else 0


def _check_size(tx: Tx, span: dict[str, Any]) -> None:
    """:class:`PackRefused` when the period holds more than :data:`PACK_ROWS_MAX`
    accounts or transfers."""
    accounts_count = _count(
        tx, "SELECT COUNT(*) FROM ledger_accounts WHERE created_at_us < :end", span
    )
    transfers_count = _count(
        tx,
        "SELECT COUNT(*) FROM journal_transfers"
        " WHERE created_at_us >= :start AND created_at_us < :end",
        span,
    )
    if max(accounts_count, transfers_count) > PACK_ROWS_MAX:
        raise PackRefused(
            f"the period has {accounts_count} accounts and {transfers_count} transfers; a"
            f" pack holds at most {PACK_ROWS_MAX} of each: ask for a shorter period"
        )


def _account(row: Row) -> _Account:
    return _Account(
        id=row[0],
        currency=str(row[1]),
        code=int(row[2]),
        flags=int(row[3]),
        created_at_us=int(row[4]),
        party_id=row[5],
        party_kind=None if row[6] is None else str(row[6]),
        role=None if row[7] is None else str(row[7]),
        now=(int(row[8]), int(row[9]), int(row[10]), int(row[11])),
    )


def _read(tx: Tx, period: Period) -> _Reading:
    span = {"start": period.start_us, "end": period.end_us}
    _check_size(tx, span)
    accounts = [_account(row) for row in tx.execute(_ACCOUNTS, span)]
    accounts.sort(key=lambda a: (a.currency, a.code, str(a.id)))
    opening = _counters(tx.execute(_COUNTERS_BEFORE, {"at": period.start_us, **span}))
    closing = _counters(tx.execute(_COUNTERS_BEFORE, {"at": period.end_us, **span}))
    pending = {row[0]: (int(row[1]), int(row[2])) for row in tx.execute(_PENDING_AT_END, span)}
    transfers = [
        transfer_fields(row)
        for row in tx.execute(
            f"{SELECT_TRANSFERS} WHERE created_at_us >= :start AND created_at_us < :end"
            " ORDER BY seq",
            span,
        )
    ]
    created_after = _count(
        tx, "SELECT COUNT(*) FROM journal_transfers WHERE created_at_us >= :end", span
    )
    return _Reading(
        accounts,
        opening,
        closing,
        pending,
        transfers,
        created_after,
        runs=runs_of_period(tx, period.first, period.last),
        blocks=blocks_created_in(tx, period.start_us, period.end_us),
        sealed_seq=sealed_extent(tx).last_seq,
    )


# -- writing the pack ---------------------------------------------------------------------


def _iso(moment_us: int) -> str:
    return from_us(moment_us).isoformat()


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return out.getvalue().encode("utf-8")


def transfer_kind(flags: int) -> str:
    """``hold``, ``post`` (of a hold), ``void`` (of a hold) or ``transfer``."""
    if flags & _PENDING:
        return "hold"
    if flags & _POST:
        return "post"
    if flags & _VOID:
        return "void"
    return "transfer"


def beancount_amount(amount_minor: int, currency: str) -> str:
    """Minor units as a Beancount decimal: ``(120000, "KES") -> "1200.00"``, ``(1500,
    "UGX") -> "1500"`` (integer arithmetic; the exponent is ISO 4217's)."""
    digits = iso4217.minor_digits(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}" if digits else f"{sign}{whole}"


def beancount_account(code: int, account_id: uuid.UUID) -> str:
    base = BEANCOUNT_NAMES.get(code, f"Assets:Code{code}")
    return f"{base}:{account_id.hex.upper()}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _day(moment_us: int) -> str:
    return from_us(moment_us).date().isoformat()


@dataclass(slots=True)
class _Pack:
    period: Period
    reading: _Reading
    detail: list[tuple[object, ...]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, data: bytes, rows: int | None = None) -> None:
        self.files[name] = data
        if rows is not None:
            self.rows[name] = rows


def _movements(transfers: list[Fields]) -> dict[uuid.UUID, tuple[int, int]]:
    """Per account: the posted debits and credits the period's transfers moved."""
    out: dict[uuid.UUID, tuple[int, int]] = {}
    for t in transfers:
        if t["flags"] & (_PENDING | _VOID):
            continue
        debit, credit = uuid.UUID(t["debit_account_id"]), uuid.UUID(t["credit_account_id"])
        d = out.get(debit, (0, 0))
        out[debit] = (d[0] + t["amount"], d[1])
        c = out.get(credit, (0, 0))
        out[credit] = (c[0], c[1] + t["amount"])
    return out


_ZERO = (0, 0)
_TRIAL_KEYS = ("accounts", "debits_posted", "credits_posted", "debits_pending", "credits_pending")


def _write_tables(pack: _Pack) -> dict[str, dict[str, int]]:
    """The CSVs; the balance ties and trial balance checked on the way (into ``detail``)."""
    _write_accounts(pack)
    _write_transfers(pack)
    trial = _write_balances(pack)
    pack.detail.extend(_trial_balance_breaks(trial))
    _write_runs(pack)
    _write_checkpoints(pack)
    return trial


def _write_accounts(pack: _Pack) -> None:
    r = pack.reading
    account_rows = [
        (
            a.id, a.currency, a.code, a.flags, a.party_id, a.party_kind, a.role,
            beancount_account(a.code, a.id), _iso(a.created_at_us),
            *r.closing.get(a.id, _ZERO), *r.pending.get(a.id, _ZERO),
        )
        for a in r.accounts
    ]  # fmt: skip
    pack.add("accounts.csv", _csv(ACCOUNTS_HEADER, account_rows), len(account_rows))


def _transfer_row(t: Fields) -> list[object]:
    return [
        *(
            json.dumps(t[n], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            if n == "metadata" and t[n] is not None
            else t[n]
            for n in FIELD_NAMES
        ),
        transfer_kind(t["flags"]),
        _iso(t["created_at_us"]),
    ]


def _write_transfers(pack: _Pack) -> None:
    transfers = pack.reading.transfers
    pack.add(
        "transfers.csv",
        _csv(TRANSFERS_HEADER, (_transfer_row(t) for t in transfers)),
        len(transfers),
    )


def _write_balances(pack: _Pack) -> dict[str, dict[str, int]]:
    """``balances.csv``; per account, whether opening + movements = closing and (when
    nothing was created after the period) whether the counters are the period-end figures,
    into ``detail``; the trial balance at the end of the period."""
    r = pack.reading
    movements = _movements(r.transfers)
    balance_rows = []
    trial: dict[str, dict[str, int]] = {}
    for a in r.accounts:
        closing = r.closing.get(a.id, _ZERO)
        pending = r.pending.get(a.id, _ZERO)
        balance_rows.append(_balance_row(pack, a, movements.get(a.id, _ZERO)))
        totals = trial.setdefault(a.currency, dict.fromkeys(_TRIAL_KEYS, 0))
        for key, value in zip(_TRIAL_KEYS, (1, *closing, *pending), strict=True):
            totals[key] += value
        if r.created_after == 0 and (*closing, *pending) != a.now:
            pack.detail.append(
                (
                    "counters", a.currency, str(a.id), " ".join(map(str, (*closing, *pending))),
                    " ".join(map(str, a.now)),
                    "period-end figures != counters (debits, credits posted; pending)",
                )
            )  # fmt: skip
    pack.add("balances.csv", _csv(BALANCES_HEADER, balance_rows), len(balance_rows))
    return trial


def _balance_row(pack: _Pack, a: _Account, moved: tuple[int, int]) -> tuple[object, ...]:
    """The account's line of ``balances.csv``; a ``balance_tie`` break into ``detail``
    when its closing counters are not its opening counters plus ``moved``."""
    opening = pack.reading.opening.get(a.id, _ZERO)
    closing = pack.reading.closing.get(a.id, _ZERO)
    expected = (opening[0] + moved[0], opening[1] + moved[1])
    ties = expected == closing
    if not ties:
        pack.detail.append(
            (
                "balance_tie", a.currency, str(a.id), f"{expected[0]} {expected[1]}",
                f"{closing[0]} {closing[1]}",
                "opening + period movements != closing (debits, credits posted)",
            )
        )  # fmt: skip
    return (
        a.id, a.currency, *opening, *moved, *closing, opening[0] - opening[1],
        closing[0] - closing[1], "yes" if ties else "no",
    )  # fmt: skip


def _trial_balance_breaks(trial: dict[str, dict[str, int]]) -> list[tuple[object, ...]]:
    """A ``trial_balance`` break per currency and side whose debits and credits differ."""
    return [
        (
            "trial_balance", currency, "", t[f"debits_{kind}"],
            t[f"credits_{kind}"], f"debits {kind} != credits {kind} at period end",
        )
        for currency, t in sorted(trial.items())
        for kind in ("posted", "pending")
        if t[f"debits_{kind}"] != t[f"credits_{kind}"]
    ]  # fmt: skip


def _write_runs(pack: _Pack) -> None:
    runs = pack.reading.runs
    rows = (
        (
            run.id, run.job, run.business_date, run.scope, run.attempt, run.rule_version,
            run.status, run.checked, run.breaks, run.input_sha256, _iso(run.started_at_us),
            _iso(run.finished_at_us), run.reads.source, run.reads.read_lsn, run.reads.close_lsn,
        )
        for run in runs
    )  # fmt: skip
    pack.add("runs.csv", _csv(RUNS_HEADER, rows), len(runs))


def _write_checkpoints(pack: _Pack) -> None:
    block_rows = []
    for b in pack.reading.blocks:
        note = f"{CHECKPOINTS_DIR}/{checkpoint_file_name(b.number)}"
        pack.add(note, b.checkpoint.encode("utf-8"))
        block_rows.append(
            (
                b.number, b.first_seq, b.last_seq, b.tree_size, _iso(b.first_created_at_us),
                _iso(b.last_created_at_us), _iso(b.sealed_at_us),
                base64.b64encode(bytes.fromhex(b.root_hash)).decode("ascii"), b.chain_head,
                b.key_name, b.key_id, note,
            )
        )  # fmt: skip
    pack.add("checkpoints.csv", _csv(CHECKPOINTS_HEADER, block_rows), len(block_rows))


def _totals(transfers: list[Fields]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for t in transfers:
        per = totals.setdefault(
            t["currency"],
            {
                "transfers": 0,
                "posted_minor": 0,
                "held_minor": 0,
                "hold_posted_minor": 0,
                "voided_minor": 0,
            },
        )
        per["transfers"] += 1
        kind = transfer_kind(t["flags"])
        if kind == "hold":
            per["held_minor"] += t["amount"]
        elif kind == "void":
            per["voided_minor"] += t["amount"]
        else:
            per["posted_minor"] += t["amount"]
            if kind == "post":
                per["hold_posted_minor"] += t["amount"]
    return dict(sorted(totals.items()))


def _beancount(pack: _Pack) -> bytes:
    r, period = pack.reading, pack.period
    currencies = sorted({a.currency for a in r.accounts})
    names = {a.id: beancount_account(a.code, a.id) for a in r.accounts}
    lines = [
        f"; Village Ledger auditor pack ({PACK_FORMAT}), period {period.text()} (UTC days).",
        "; Debits are positive: an account's balance is debits posted - credits posted.",
        "; Amounts: integer minor units written with the currency's ISO 4217 exponent.",
        "; Holds and voids move no posted money: they are notes, not postings.",
        f"option {_quoted('title')} {_quoted('Village Ledger ' + period.text())}",
    ]
    lines += [f"option {_quoted('operating_currency')} {_quoted(c)}" for c in currencies]
    lines.append("")
    first_day = period.first.isoformat()
    lines.append(f"{first_day} open {OPENING_ACCOUNT}")
    for a in sorted(r.accounts, key=lambda a: (a.created_at_us, names[a.id])):
        lines.append(f"{_day(a.created_at_us)} open {names[a.id]} {a.currency}")
        lines.append(f"  account_id: {_quoted(str(a.id))}")
        lines.append(f"  code: {_quoted(str(a.code))}")
        if a.role is not None:
            lines.append(f"  role: {_quoted(a.role)}")
        if a.party_id is not None:
            lines.append(f"  party_id: {_quoted(str(a.party_id))}")
    lines.append("")
    for a in r.accounts:
        dp, cp = r.opening.get(a.id, (0, 0))
        if dp == cp:
            continue
        amount = beancount_amount(dp - cp, a.currency)
        minus = beancount_amount(cp - dp, a.currency)
        lines.append(f"{first_day} * {_quoted('opening balance')}")
        lines.append(f"  {names[a.id]}  {amount} {a.currency}")
        lines.append(f"  {OPENING_ACCOUNT}  {minus} {a.currency}")
        lines.append("")
    for t in r.transfers:
        kind = transfer_kind(t["flags"])
        debit = uuid.UUID(t["debit_account_id"])
        credit = uuid.UUID(t["credit_account_id"])
        day, currency = _day(t["created_at_us"]), t["currency"]
        amount = beancount_amount(t["amount"], currency)
        if kind in ("hold", "void"):
            what = f"hold {t['id']}" if kind == "hold" else f"void of hold {t['pending_id']}"
            text = (
                f"{what}: {amount} {currency} from {names[debit]} to {names[credit]},"
                f" seq {t['seq']}, transfer {t['id']}; not posted"
            )
            lines.append(f"{day} note {names[debit]} {_quoted(text)}")
            lines.append("")
            continue
        narration = f"post of hold {t['pending_id']}" if kind == "post" else "transfer"
        narration += f" code {t['code']}"
        lines.append(f"{day} * {_quoted(narration)}")
        lines.append(f"  transfer_id: {_quoted(t['id'])}")
        lines.append(f"  seq: {_quoted(str(t['seq']))}")
        lines.append(f"  {names[debit]}  {amount} {currency}")
        lines.append(f"  {names[credit]}  -{amount} {currency}")
        lines.append("")
    after = (period.last + timedelta(days=1)).isoformat()
    for a in r.accounts:
        dp, cp = r.closing.get(a.id, (0, 0))
        lines.append(
            f"{after} balance {names[a.id]}  {beancount_amount(dp - cp, a.currency)} {a.currency}"
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


def manifest_bytes(files: dict[str, bytes]) -> bytes:
    """``<sha256>  <path>`` per file, sorted by path (``sha256sum -c`` reads it)."""
    return "".join(
        f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(files)
    ).encode("ascii")


def build(period: Period, reading: _Reading, key: ServiceKey) -> _Pack:
    """The pack's files (paths relative to ``pack/``) and the breaks found making them."""
    pack = _Pack(period, reading)
    trial = _write_tables(pack)
    r = reading
    kinds: dict[str, int] = {}
    for t in r.transfers:
        kinds[transfer_kind(t["flags"])] = kinds.get(transfer_kind(t["flags"]), 0) + 1
    summary = {
        "format": PACK_FORMAT,
        "period": {
            "from": period.first.isoformat(),
            "to": period.last.isoformat(),
            "start": _iso(period.start_us),
            "end": _iso(period.end_us),
            "days": period.days,
        },
        "counts": {
            "accounts": len(r.accounts),
            "transfers": len(r.transfers),
            "transfers_by_kind": dict(sorted(kinds.items())),
            "transfers_sealed": sum(1 for t in r.transfers if t["seq"] <= r.sealed_seq),
            "runs": len(r.runs),
            "checkpoints": len(r.blocks),
        },
        "totals": _totals(r.transfers),
        "trial_balance": trial,
        "balances_not_tied": sum(1 for d in pack.detail if d[0] == "balance_tie"),
        "counters_checked": r.created_after == 0,
        "service_key_sha256": key_fingerprint(key.public_key),
        "beancount": {
            "sign": "debits positive; balance = debits posted - credits posted",
            "holds_and_voids": "notes, not postings",
        },
    }
    pack.add("summary.json", (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())
    pack.add("ledger.beancount", _beancount(pack))
    manifest = manifest_bytes(pack.files)
    signature = key.private_key.sign(manifest)
    pack.files[MANIFEST] = manifest
    pack.files[SIGNATURE] = base64.b64encode(signature) + b"\n"
    pack.files[PUBLIC_KEY] = key.public_pem()
    return pack


def run(led: Ledger, request: JobRequest) -> Findings:
    """Make the pack of the requested period from one snapshot (see the module)."""
    period = period_of(request)
    key = signing_key(led.url, request.service_key_path)
    progress = request.progress
    progress.step(f"reading accounts and transfers of {period.text()}")
    reading = snapshot(led, lambda tx: _read(tx, period))
    progress.step(f"writing and signing the pack ({len(reading.transfers):,} transfers)")
    pack = build(period, reading, key)
    manifest = pack.files[MANIFEST]
    files = {
        name: {"rows": pack.rows.get(name), "sha256": hashlib.sha256(pack.files[name]).hexdigest()}
        for name in sorted(pack.files)
    }
    by_kind: dict[str, int] = {}
    for line in pack.detail:
        by_kind[str(line[0])] = by_kind.get(str(line[0]), 0) + 1
    return Findings(
        job=JOB,
        business_date=request.business_date,
        scope=period.text(),
        rule_version=RULE_VERSION,
        input_sha256=hashlib.sha256(manifest).hexdigest(),
        checked=len(reading.accounts) + len(reading.transfers),
        detail_header=DETAIL_HEADER,
        detail=pack.detail,
        summary={
            "job": JOB,
            "business_date": request.business_date.isoformat(),
            "rule_version": RULE_VERSION,
            "format": PACK_FORMAT,
            "period": {"from": period.first.isoformat(), "to": period.last.isoformat()},
            "accounts": len(reading.accounts),
            "transfers": len(reading.transfers),
            "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
            "service_key_sha256": key_fingerprint(key.public_key),
            "files": {f"{PACK_DIR}/{name}": facts for name, facts in files.items()},
            "breaks_by_kind": by_kind,
        },
        files={f"{PACK_DIR}/{name}": data for name, data in pack.files.items()},
    )


def tables(findings: Findings) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The pack's files with their rows and digests (what was checked)."""
    rows: list[tuple[Any, ...]] = [("file", "rows", "SHA-256")]
    for name, facts in findings.summary["files"].items():
        rows.append((name, "" if facts["rows"] is None else facts["rows"], facts["sha256"]))
    return [("Pack files", rows)]


# -- verifying ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackReport:
    """What :func:`verify_pack` found; ``ok`` when nothing."""

    problems: list[str]
    files: int

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_pack(
    folder: str | os.PathLike[str], public_key: Ed25519PublicKey | str | os.PathLike[str]
) -> PackReport:
    """Check a ``pack/`` folder against a trusted public key: the manifest's signature,
    the ``service-key.pem`` beside it, every listed file's SHA-256, and that no file is
    there unlisted."""
    root = Path(folder)
    key = public_key if isinstance(public_key, Ed25519PublicKey) else load_public_key(public_key)
    problems: list[str] = []
    try:
        manifest = (root / MANIFEST).read_bytes()
        signature_text = (root / SIGNATURE).read_bytes()
        pem = (root / PUBLIC_KEY).read_bytes()
    except OSError as exc:
        return PackReport([f"cannot read the manifest, its signature or the key: {exc}"], 0)
    try:
        key.verify(base64.b64decode(signature_text.strip(), validate=True), manifest)
    except (InvalidSignature, binascii.Error):
        problems.append(f"{MANIFEST}: the signature does not verify with the key given")
    if pem != public_key_pem(key):
        problems.append(f"{PUBLIC_KEY}: not the key given")
    listed: set[str] = set()
    for number, line in enumerate(manifest.decode("utf-8", "replace").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        parts = Path(name).parts
        if not sep or len(digest) != 64 or not name or Path(name).is_absolute() or ".." in parts:
            problems.append(f"{MANIFEST} line {number}: not '<sha256>  <relative path>'")
            continue
        listed.add(name)
        try:
            data = (root / name).read_bytes()
        except OSError:
            problems.append(f"{name}: listed but missing")
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            problems.append(f"{name}: SHA-256 differs from the manifest")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    problems.extend(f"{name}: not in the manifest" for name in sorted(present - listed - UNLISTED))
    return PackReport(problems, len(listed))
