"""The ``integrity`` job: the ledger agrees with itself, in one snapshot.

Checks, each a finding kind in the detail CSV:

- ``trial_balance``: per currency, debits posted = credits posted and debits pending =
  credits pending over all accounts;
- one kind per rule of the core's integrity queries: every account's counters equal the
  sums over its transfers (pending totals equal its open holds), no account outside its
  limit flags with pending amounts counted, every open hold indexed once, every post or
  void matching its hold, every transfer in its accounts' currency;
- ``last_balance``: every account's counters equal the balances its last transfer
  recorded (what ``balance_at`` answers from);
- ``seal``: every sealed block's chain, Merkle root and signed checkpoint recompute
  from the transfers (:func:`reconciliation.seal.integrity_check`; sealed rows never
  change, so this part needs no snapshot of its own).

The run's ``input_sha256`` is the SHA-256 of the trial balance it read (canonical JSON),
so two runs over the same state say so. Rule version :data:`RULE_VERSION` changes when a
check is added or changed.
"""

from __future__ import annotations

import json
from datetime import date

from ledger import Ledger
from ledger.core import store
from ledger.core.tx import Tx
from reconciliation import seal
from reconciliation.progress import SILENT, Progress
from reconciliation.runs import SCOPE_ALL, Findings, sha256_of, snapshot

JOB = "integrity"
RULE_VERSION = 1
DETAIL_HEADER = ("kind", "currency", "object_id", "expected", "actual", "note")

_RULE_KINDS = {
    "account counters differ from the sums over its transfers": "counters",
    "account outside its limit flags (pending counted)": "limits",
    "open hold missing from pending_holds, or pending_holds row not an open hold": "open_holds",
    "post or void that does not match its hold": "resolutions",
    "reversal that does not move back posted money of its target, accounts swapped": "reversals",
    "transfer reversed by more than it posted": "reversed_amounts",
    "transfer in a currency its accounts do not hold": "currency",
}


def _trial_balance(tx: Tx) -> dict[str, dict[str, int]]:
    """Per currency, the account count and the sums of the four counters: the core's
    published ``trial_balance`` view."""
    rows = tx.execute(
        "SELECT currency, accounts, debits_posted, credits_posted, debits_pending,"
        " credits_pending FROM trial_balance ORDER BY currency"
    )
    return {
        str(row[0]): {
            "accounts": int(row[1]),
            "debits_posted": int(row[2]),
            "credits_posted": int(row[3]),
            "debits_pending": int(row[4]),
            "credits_pending": int(row[5]),
        }
        for row in rows
    }


def _trial_balance_breaks(balance: dict[str, dict[str, int]]) -> list[tuple[object, ...]]:
    """A ``trial_balance`` line per currency and side (posted, pending) whose debits and
    credits differ."""
    return [
        ("trial_balance", currency, "", t[f"debits_{kind}"], t[f"credits_{kind}"],
         f"debits {kind} != credits {kind}")
        for currency, t in balance.items()
        for kind in ("posted", "pending")
        if t[f"debits_{kind}"] != t[f"credits_{kind}"]
    ]  # fmt: skip


def _core_breaks(tx: Tx, progress: Progress = SILENT) -> list[tuple[object, ...]]:
    """A line per row the core's integrity queries and its last-balance check find."""
    detail: list[tuple[object, ...]] = []
    queries = len(store.INTEGRITY_QUERIES) + 1
    for done, (rule, sql) in enumerate(store.INTEGRITY_QUERIES):
        kind = _RULE_KINDS.get(rule, rule)
        progress.step(f"checking {kind}")
        progress.advance(done, queries)
        detail.extend((kind, "", str(row[0]), "", "", rule) for row in tx.execute(sql))
    progress.step("checking last balances")
    progress.advance(queries - 1, queries)
    detail.extend(
        ("last_balance", "", str(row[0]), row[2], row[1], "counters (debits, credits)")
        for row in tx.execute(store.LAST_BALANCES_QUERY)
        if store.last_balance_problem(row)
    )
    return detail


def _transfer_count(tx: Tx) -> int:
    row = tx.one("SELECT COUNT(*) FROM journal_transfers")
    return int(row[0]) if row else 0


def examine(
    tx: Tx, business_date: date, seal_faults: list[str], progress: Progress = SILENT
) -> Findings:
    """The integrity findings of the snapshot ``tx`` reads, and of the seal."""
    progress.step("reading the trial balance")
    balance = _trial_balance(tx)
    detail = _trial_balance_breaks(balance) + _core_breaks(tx, progress)
    detail.extend(("seal", "", "", "", "", fault) for fault in seal_faults)
    extent = seal.sealed_extent(tx)
    sealed = {"blocks": extent.blocks, "last_seq": extent.last_seq, "faults": len(seal_faults)}
    transfers = _transfer_count(tx)
    accounts = sum(t["accounts"] for t in balance.values())
    by_kind: dict[str, int] = {}
    for line in detail:
        by_kind[str(line[0])] = by_kind.get(str(line[0]), 0) + 1
    state = json.dumps(
        {"trial_balance": balance, "transfers": transfers}, sort_keys=True, separators=(",", ":")
    )
    return Findings(
        job=JOB,
        business_date=business_date,
        scope=SCOPE_ALL,
        rule_version=RULE_VERSION,
        input_sha256=sha256_of([state.encode()]),
        checked=accounts + transfers,
        detail_header=DETAIL_HEADER,
        detail=detail,
        summary={
            "job": JOB,
            "business_date": business_date.isoformat(),
            "rule_version": RULE_VERSION,
            "accounts": accounts,
            "transfers": transfers,
            "trial_balance": balance,
            "breaks_by_kind": by_kind,
            "seal": sealed,
        },
    )


def run_checks(led: Ledger, business_date: date, progress: Progress = SILENT) -> Findings:
    """Check the seal, then read one snapshot; the findings (nothing is recorded).
    ``progress`` is told each check as it starts."""
    progress.step("checking the seal chain")
    faults = seal.integrity_check(led)
    return snapshot(led, lambda tx: examine(tx, business_date, faults, progress))
