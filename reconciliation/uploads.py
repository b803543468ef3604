"""Outside records handed in over the API, reconciled by their job and kept as the run's
input: a provider's statement (the ``statement`` job) and an agent's cash count (the
``cash-count`` job).

Each is read by the job's own parsers (:mod:`reconciliation.statement_formats`,
:func:`reconciliation.cash_count.parse_count`), exactly as ``vledger reconcile JOB
--input FILE`` reads a file. A record is staged beside where it is kept, the job runs on
it, and only then is it kept, content-addressed, as
``<reports>/inputs/<job>/<sha256><suffix>`` (the run's ``input_sha256`` names it; the
same bytes again are the same file). A record the job refuses (a malformed statement, a
count of another agent, options that do not fit) is deleted with its staging copy and no
run is recorded: :class:`~reconciliation.errors.InputInvalid`, nothing kept.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import replace
from datetime import UTC, date
from pathlib import Path

from ledger import Ledger
from reconciliation import cash_count
from reconciliation.cash_count import Variance
from reconciliation.errors import InputInvalid
from reconciliation.jobs import JOBS, JobRequest, JobResult, job_problems, run_job
from reconciliation.statement_formats import FORMATS

__all__ = [
    "FORMAT_OF_SUFFIX",
    "INPUTS_FOLDER",
    "STATEMENT_SUFFIXES",
    "submit_count",
    "upload_statement",
]

INPUTS_FOLDER = "inputs"
"""Where, under the reports folder, the records handed in are kept (one folder a job)."""
STATEMENT_SUFFIXES = {"csv": ".csv", "camt053": ".xml", "mt940": ".sta"}
"""The suffix a kept statement gets by its format."""
FORMAT_OF_SUFFIX = {
    **{suffix: fmt for fmt, suffix in STATEMENT_SUFFIXES.items()},
    ".mt940": "mt940",
}
"""A statement's format by its file name's suffix (as ``vledger reconcile`` tells it)."""
STATEMENT_OPTIONS = frozenset(
    option.name for option in JOBS["statement"].options if option.name != "mapping"
)
"""The statement job's options a request may give (``mapping`` names a server file: no)."""


def _run_kept(
    led: Ledger, job: str, data: bytes, request: JobRequest, *, out: Path, suffix: str
) -> JobResult:
    """Run ``job`` on ``data``; keep ``data`` as the run's input only if the run is
    recorded (module docstring)."""
    folder = out / INPUTS_FOLDER / job
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()
    staging = folder / f".{digest}.{uuid.uuid4().hex}.part{suffix}"
    staging.write_bytes(data)
    try:
        problems = job_problems(
            JOBS[job], input_path=staging, scope=request.scope, options=request.options
        )
        if problems:
            raise InputInvalid("; ".join(problems))
        try:
            done = run_job(led, job, replace(request, input_path=staging), out=out)
        except ValueError as exc:  # the parsers name the line that is wrong
            if staging.name not in str(exc) and isinstance(exc, InputInvalid):
                raise
            shown = str(exc).replace(str(staging), "the file").replace(staging.name, "the file")
            raise InputInvalid(shown) from None
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    os.replace(staging, folder / f"{digest}{suffix}")
    return done


def upload_statement(
    led: Ledger,
    *,
    data: bytes,
    provider: str,
    business_date: date,
    fmt: str,
    options: dict[str, str],
    out: Path,
) -> JobResult:
    """Reconcile a provider's statement in ``fmt`` (one of
    :data:`~reconciliation.statement_formats.FORMATS`) for ``business_date``; the run."""
    if fmt not in FORMATS:
        raise InputInvalid(f"statement format {fmt!r} unknown: {', '.join(FORMATS)}")
    unknown = sorted(set(options) - STATEMENT_OPTIONS)
    if unknown:
        raise InputInvalid(f"the statement job takes no option {', '.join(unknown)} here")
    request = JobRequest(business_date, scope=provider, options={**options, "format": fmt})
    return _run_kept(led, "statement", data, request, out=out, suffix=STATEMENT_SUFFIXES[fmt])


def submit_count(
    led: Ledger, *, agent_id: uuid.UUID, body: bytes, out: Path
) -> tuple[JobResult, Variance | None]:
    """Reconcile an agent's count (the count file's JSON, its agent the path's): the run,
    dated the day it was counted (UTC), and the variance it proposed, if any."""
    data = cash_count.count_file(agent_id, body)
    counted = cash_count.parse_count(data)
    day = counted.counted_at.astimezone(UTC).date()
    request = JobRequest(day, scope=str(agent_id))
    done = _run_kept(led, cash_count.JOB, data, request, out=out, suffix=".json")
    proposed = done.run.summary.get("variance")
    if not isinstance(proposed, dict):
        return done, None
    return done, cash_count.get_variance(led, variance_id=uuid.UUID(proposed["id"]))
