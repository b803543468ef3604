"""The shape of the house in numbers: SQL lines per package, functions over the length
gate, exception classes outside the one error tree, and which modules name each table.

    python -m tools.shape            # the counts, one per line
    python -m tools.shape --tables   # also: table -> the modules whose SQL names it

A "SQL line" is a line of a string literal that holds a SQL statement (a string whose
text starts with SELECT, INSERT, UPDATE, DELETE, WITH, CREATE, ALTER or DROP), counted
over the whole string. The same rules back ``tests/test_shape.py``'s gates.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import re
import sys
from collections import defaultdict
from collections.abc import Iterator

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("ledger", "api", "reconciliation", "vledger", "webhooks", "sms")
FUNCTION_LINES_MAX = 70
"""The length gate: a function longer than this needs a ``# long:`` comment saying why."""
LONG_MARK = "# long:"

# table -> the module (or package) that owns it; a module owns a table when its dotted
# name is the owner or lies under it.
OWNERS: dict[str, tuple[str, ...]] = {
    "accounts": ("ledger.core",),
    "transfers": ("ledger.core",),
    "pending_holds": ("ledger.core",),
    "transfer_failures": ("ledger.core",),
    "alembic_version": ("ledger.core",),
    "account_owners": ("ledger.flows.ownership.repository",),
    "agent_tills": ("ledger.flows.parties.tills",),
    "agent_float": ("ledger.flows.agent_float",),
    "float_topups": ("ledger.flows.agent_float",),
    "float_transfers": ("ledger.flows.agent_float",),
    "cash_ins": ("ledger.flows.cash",),
    "cash_outs": ("ledger.flows.cash",),
    "consent_codes": ("ledger.flows.consent",),
    "consent_failures": ("ledger.flows.consent",),
    "delivery_methods": ("ledger.flows.orders",),
    "orders": ("ledger.flows.orders",),
    "order_steps": ("ledger.flows.orders",),
    "devices": ("ledger.flows.offline",),
    "offline_records": ("ledger.flows.offline",),
    "events": ("ledger.flows.events",),
    "fee_schedules": ("ledger.flows.fees",),
    "kyc_tiers": ("ledger.flows.limits",),
    "kyc_usage": ("ledger.flows.limits",),
    "parties": ("ledger.flows.parties",),
    "party_accounts": ("ledger.flows.parties",),
    "pickup_codes": ("ledger.flows.pickup",),
    "proposals": ("ledger.flows.proposals",),
    "settlement_windows": ("ledger.flows.settlement",),
    "payouts": ("ledger.flows.settlement",),
    "commission_payouts": ("ledger.flows.commission",),
    "commission_payout_lines": ("ledger.flows.commission",),
    "suspense_items": ("ledger.flows.suspense",),
    "villagers": ("ledger.flows.villagers",),
    "villager_activation_codes": ("ledger.flows.villagers",),
    "ussd_sessions": ("ledger.flows.ussd",),
    "principals": ("ledger.flows.principals.repository",),
    "api_keys": ("ledger.flows.principals.repository",),
    "enrollment_codes": ("ledger.flows.enrollment.repository",),
    "idempotency_records": ("ledger.flows.idempotency.repository",),
    "rate_buckets": ("ledger.flows.rate_buckets",),
    "webhook_endpoints": ("webhooks",),
    "webhook_deliveries": ("webhooks",),
    "webhook_attempts": ("webhooks",),
    "webhook_cursor": ("webhooks",),
    "sms_cursor": ("sms.repository",),
    "sms_contacts": ("sms.repository",),
    "sms_messages": ("sms.repository",),
    "sms_attempts": ("sms.repository",),
    "recon_runs": ("reconciliation.runs",),
    "recon_claims": ("reconciliation.schedule",),
    "recon_cash_counts": ("reconciliation.cash_count",),
    "recon_variances": ("reconciliation.cash_count",),
    "recon_settlement_times": ("reconciliation.ageing",),
    "seal_blocks": ("reconciliation.seal",),
    "seal_keys": ("reconciliation.seal",),
    "seal_state": ("reconciliation.seal",),
}


def owned_by(module: str, table: str) -> bool:
    """Whether ``module`` is the owner of ``table`` (or lies in the owning package)."""
    return any(module == o or module.startswith(o + ".") for o in OWNERS.get(table, ()))


_STATEMENT = re.compile(r"^\s*\(?\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP)\b")
_TABLE = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)
_NOT_TABLES = {"select", "lateral", "unnest", "json_each", "values", "if", "only"}


def sources(package: str) -> Iterator[pathlib.Path]:
    """The Python files of a package, migrations left out (they are the schema's history)."""
    base = ROOT / package
    if not base.is_dir():
        return
    for path in sorted(base.rglob("*.py")):
        if "_alembic" not in path.parts and path.name != "__main__.py":
            yield path


def sql_strings(tree: ast.AST) -> Iterator[str]:
    """Every string literal (f-strings joined) whose text is a SQL statement."""
    for node in ast.walk(tree):
        text = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(
                str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values
            )
        if text is not None and _STATEMENT.match(text):
            yield text


def sql_lines(path: pathlib.Path) -> int:
    """The lines of SQL statements written in one file."""
    tree = ast.parse(path.read_text())
    return sum(len([ln for ln in s.splitlines() if ln.strip()]) for s in sql_strings(tree))


def tables(path: pathlib.Path) -> set[str]:
    """The tables (and views) a file's SQL names."""
    found: set[str] = set()
    for text in sql_strings(ast.parse(path.read_text())):
        found |= {t.lower() for t in _TABLE.findall(text)} - _NOT_TABLES
    return found


def long_functions(path: pathlib.Path) -> Iterator[tuple[str, int, bool]]:
    """(name, lines, marked) of every function longer than the gate."""
    lines = path.read_text().splitlines()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > FUNCTION_LINES_MAX:
                head = lines[max(node.lineno - 2, 0) : node.lineno]
                yield node.name, length, any(LONG_MARK in ln for ln in head)


def module_name(path: pathlib.Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def exceptions_outside_tree() -> list[str]:
    """Public exception classes of the packages that do not descend from LedgerError."""
    from ledger.core.errors import LedgerError

    outside = []
    for package in PACKAGES:
        for path in sources(package):
            module = importlib.import_module(module_name(path))
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == module.__name__
                    and not name.startswith("_")
                    and not issubclass(value, LedgerError)
                ):
                    outside.append(f"{module.__name__}.{name}")
    return sorted(outside)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    by_table: dict[str, set[str]] = defaultdict(set)
    for package in PACKAGES:
        files = list(sources(package))
        if not files:
            continue
        print(f"sql_lines {package} {sum(sql_lines(p) for p in files)}")
        if package == "ledger":
            for part in ("core", "flows"):
                inside = [p for p in files if p.parts[len(ROOT.parts) + 1] == part]
                print(f"sql_lines ledger/{part} {sum(sql_lines(p) for p in inside)}")
        for path in files:
            for table in tables(path):
                by_table[table].add(module_name(path))
    marked = unmarked = 0
    for package in PACKAGES:
        for path in sources(package):
            for name, length, is_marked in long_functions(path):
                marked += is_marked
                unmarked += not is_marked
                print(f"long {module_name(path)}.{name} {length}{' (marked)' if is_marked else ''}")
    print(f"functions_over_{FUNCTION_LINES_MAX}_lines {marked + unmarked} ({marked} marked)")
    outside = exceptions_outside_tree()
    print(f"exceptions_outside_tree {len(outside)} {' '.join(outside)}")
    shared = {t: sorted(m) for t, m in by_table.items() if len(m) > 1}
    print(f"tables_named_by_more_than_one_module {len(shared)}")
    trespasses = sorted(
        f"{m}->{t}" for t, ms in by_table.items() if t in OWNERS for m in ms if not owned_by(m, t)
    )
    print(f"tables_named_outside_their_owner {len(trespasses)} {' '.join(trespasses)}")
    if "--tables" in argv:
        for table, modules in sorted(by_table.items()):
            print(f"  {table}: {', '.join(sorted(modules))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
