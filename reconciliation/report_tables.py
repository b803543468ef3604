"""The extra tables a job's HTML report shows, for jobs whose module has none of its own.

A table is ``(title, [header, *rows])`` (:data:`Tables`); :func:`reconciliation.report.render`
renders them. Jobs with a module of their own (statement, cash count ...) keep their
``tables`` function there; :mod:`reconciliation.jobs` wires them to the jobs.
"""

from __future__ import annotations

from typing import Any

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
                t["debits_posted"],
                t["credits_posted"],
                t["debits_pending"],
                t["credits_pending"],
            )
        )
    return [("Trial balance (minor units)", rows)]
