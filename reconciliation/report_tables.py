"""The extra tables a job's HTML report shows, for jobs whose module has none of its own.

A table is ``(title, [header, *rows])`` (:data:`Tables`); :func:`reconciliation.report.render`
renders them. Jobs with a module of their own (statement, cash count ...) keep their
``tables`` function there; :mod:`reconciliation.jobs` wires them to the jobs. Amounts
are shown as money (``KES 1,250.00``, :func:`ledger.money.format_money`); the run's
summary.json keeps minor units.
"""

from __future__ import annotations

from typing import Any

from ledger.money import format_money
from reconciliation.runs import Findings

Tables = list[tuple[str, list[tuple[Any, ...]]]]
"""Extra report sections: (title, [header, *rows])."""


def _integrity_tables(findings: Findings) -> Tables:
    header: tuple[Any, ...] = (
        "currency",
        "accounts",
        "debits posted",
        "credits posted",
        "debits pending",
        "credits pending",
    )
    rows: list[tuple[Any, ...]] = [header]
    for currency, t in findings.summary["trial_balance"].items():
        rows.append(
            (
                currency,
                t["accounts"],
                format_money(t["debits_posted"], currency),
                format_money(t["credits_posted"], currency),
                format_money(t["debits_pending"], currency),
                format_money(t["credits_pending"], currency),
            )
        )
    return [("Trial balance", rows)]
