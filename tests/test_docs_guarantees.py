"""README.md and docs/SCALING.md state each guarantee of issue 18 with the test that shows
it, and every test they name exists.

A test is named as ``tests/<file>.py::<function>``; a file alone as ``tests/<file>.py``.
:data:`GUARANTEES` lists, for each guarantee the issue asks the documents to state, the
document and the tests it must name there; :func:`unknown_tests` reads a document's text
and answers the names that are no module-level test function (or class) of their file.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = "README.md"
SCALING = "docs/SCALING.md"
DOCS = (README, SCALING)
TEST_NAME = re.compile(r"\b(tests/[\w/]+\.py)::(\w+)")
TEST_FILE = re.compile(r"\b(tests/[\w/]+\.py)\b(?!::)")

FAULTS = "tests/test_faults.py"
REPLICA = "tests/test_read_replica.py"
SCHEDULE = "tests/test_recon_schedule.py"
FULL = "tests/test_sqlite_full.py"
CROSS = "tests/test_crossledger_simulation.py"
FUZZ = "tests/test_fuzz_parsers.py"

GUARANTEES: dict[str, tuple[str, tuple[str, ...]]] = {
    "an acknowledged payment is never lost when vledger serve is killed; a replay answers it": (
        README,
        (f"{FAULTS}::test_serve_killed_under_load_loses_no_answer_and_replays_it",),
    ),
    "the serve supervisor killed alone takes its workers with it": (
        README,
        (f"{FAULTS}::test_serve_supervisor_killed_alone_takes_its_workers_with_it",),
    ),
    "the database killed: 503 within the stated time, then reconnected, nothing lost": (
        README,
        (f"{FAULTS}::test_database_killed_under_load_answers_503_then_recovers_by_itself",),
    ),
    "a worker killed mid-delivery: delivered again, at least once, with the same webhook-id": (
        README,
        (
            f"{FAULTS}::test_worker_killed_during_a_delivery_delivers_again_with_the_same_webhook_id",
        ),
    ),
    "a reconciliation run recorded once per date, its claim settled": (
        README,
        (
            f"{FAULTS}::test_worker_killed_during_a_reconciliation_records_each_run_once",
            f"{SCHEDULE}::test_a_claim_left_claimed_after_its_run_was_recorded_is_settled_by_the_next_pass",
            f"{SCHEDULE}::test_two_workers_racing_run_each_date_once_on_postgresql",
        ),
    ),
    "processes killed, on the page past one machine": (
        SCALING,
        (
            f"{FAULTS}::test_serve_killed_under_load_loses_no_answer_and_replays_it",
            f"{FAULTS}::test_database_killed_under_load_answers_503_then_recovers_by_itself",
            f"{FAULTS}::test_worker_killed_during_a_delivery_delivers_again_with_the_same_webhook_id",
            f"{FAULTS}::test_worker_killed_during_a_reconciliation_records_each_run_once",
            f"{SCHEDULE}::test_two_workers_racing_run_each_date_once_on_postgresql",
        ),
    ),
    "replica reads and their snapshot semantics": (
        README,
        (
            f"{REPLICA}::test_a_pack_on_the_replica_holds_what_the_primary_had_at_its_recorded_position",
            f"{REPLICA}::test_a_write_through_the_read_ledger_is_refused",
            f"{REPLICA}::test_a_lagging_replica_makes_the_job_wait_then_read_the_primary",
            f"{REPLICA}::test_a_replica_that_catches_up_within_the_wait_is_read",
            f"{REPLICA}::test_an_open_date_reads_the_primary_at_once",
            f"{REPLICA}::test_auditors_read_runs_on_the_replica_and_start_jobs_that_read_there",
        ),
    ),
    "replica reads, on the page past one machine": (
        SCALING,
        (
            f"{REPLICA}::test_a_pack_on_the_replica_holds_what_the_primary_had_at_its_recorded_position",
            f"{REPLICA}::test_a_write_through_the_read_ledger_is_refused",
            f"{REPLICA}::test_a_lagging_replica_makes_the_job_wait_then_read_the_primary",
        ),
    ),
    "a run shows where it read (API, summary, report, console)": (
        README,
        (
            "tests/test_api_audit.py::test_a_run_says_where_it_read_in_every_answer_and_in_the_openapi_document",
            f"{REPLICA}::test_a_runs_report_and_summary_say_where_it_read",
        ),
    ),
    "disk full: 503 not_ready, nothing committed": (
        README,
        (
            f"{FULL}::test_a_full_file_is_a_storage_error_and_nothing_is_written",
            f"{FULL}::test_a_signed_post_on_a_full_file_answers_503_then_runs_once_there_is_room",
            f"{FULL}::test_concurrent_posts_on_a_full_file_all_answer_503",
        ),
    ),
    "cross-ledger pairs resolve alike on both ledgers, money in flight conserved": (
        SCALING,
        (
            f"{CROSS}::test_cross_transfers_survive_a_crashing_coordinator",
            f"{CROSS}::test_every_crash_point_ends_the_same_way",
            f"{CROSS}::test_coordinators_racing_on_the_same_intents_agree",
        ),
    ),
    "cross-ledger pairs, in the README": (
        README,
        (f"{CROSS}::test_cross_transfers_survive_a_crashing_coordinator",),
    ),
    "parsers never answer 500": (
        README,
        (
            f"{FUZZ}::test_a_mutated_statement_reads_or_is_refused_naming_the_file",
            f"{FUZZ}::test_strict_json_parses_or_answers_invalid_json",
            f"{FUZZ}::test_a_mutated_signed_request_verifies_only_unchanged_or_is_refused_401",
            f"{FUZZ}::test_a_record_decodes_to_exactly_its_bytes_or_is_refused_record_invalid",
            f"{FUZZ}::test_a_mutated_statement_upload_is_never_a_server_error",
            f"{FUZZ}::test_a_mutated_offline_sync_is_never_a_server_error",
        ),
    ),
    "compose: the file validates, no secret in it": (
        README,
        (
            "tests/test_compose.py::test_config_validates_with_the_example_env",
            "tests/test_compose.py::test_no_secret_is_written_in_the_file",
        ),
    ),
}


def text_of(doc: str) -> str:
    return (ROOT / doc).read_text()


@cache
def defined_names(path: str) -> frozenset[str]:
    """The module-level functions and classes of a test file (empty when it is none)."""
    file = ROOT / path
    if not file.is_file():
        return frozenset()
    tree = ast.parse(file.read_text())
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return frozenset(node.name for node in tree.body if isinstance(node, kinds))


def unknown_tests(text: str) -> list[str]:
    """The ``tests/<file>.py::<name>`` in ``text`` whose file does not define ``name``,
    and the ``tests/<file>.py`` that are no file, in the order they appear."""
    unknown = [
        f"{path}::{name}"
        for path, name in TEST_NAME.findall(text)
        if name not in defined_names(path)
    ]
    unknown += [path for path in TEST_FILE.findall(text) if not (ROOT / path).is_file()]
    return unknown


@pytest.mark.parametrize("doc", DOCS)
def test_every_test_a_document_names_exists(doc: str) -> None:
    text = text_of(doc)
    assert TEST_NAME.search(text), f"{doc} names no test"
    assert unknown_tests(text) == []


@pytest.mark.parametrize("guarantee", sorted(GUARANTEES))
def test_each_guarantee_names_the_test_that_shows_it(guarantee: str) -> None:
    doc, tests = GUARANTEES[guarantee]
    named = {f"{path}::{name}" for path, name in TEST_NAME.findall(text_of(doc))}
    assert [test for test in tests if test not in named] == [], f"{doc}: {guarantee}"
    assert [test for test in tests if test.split("::")[1] not in defined_names(
        test.split("::")[0])] == []  # fmt: skip


def test_the_check_finds_a_test_that_is_not_there() -> None:
    real = f"{FAULTS}::test_serve_killed_under_load_loses_no_answer_and_replays_it"
    text = (
        f"shown by `{real}`, `{FAULTS}::test_nothing_of_the_kind`,"
        " `tests/test_no_such_file.py::test_x` and `tests/test_no_such_file.py`"
        f" beside `{FAULTS}`."
    )
    assert unknown_tests(text) == [
        f"{FAULTS}::test_nothing_of_the_kind",
        "tests/test_no_such_file.py::test_x",
        "tests/test_no_such_file.py",
    ]
    assert unknown_tests(f"`{real}`") == []
