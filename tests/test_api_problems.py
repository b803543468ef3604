"""One renderer for the whole error tree (``api.problems.problem_of``), and a POST that
stores and replays every expected refusal by itself (``api.context.run_post``): a
route calls its flow or job plainly, and whatever of the tree it raises is the answer.

The pipeline is driven over HTTP on a bare FastAPI app with the API's error handlers and
a real ledger on each engine (no signatures: the caller is handed in); ``/readyz`` runs
on the real app.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from api.app import _install_errors, create_app
from api.context import Context, json_response, run_post
from api.local_server import ServerThread
from api.principals import Alg, ApiKey, Role, add_key
from api.problems import STORAGE_RETRY_AFTER_S, ApiError, problem_of, refusal_of
from api.settings import Settings
from ledger import Ledger
from ledger.core import migrations
from ledger.core.errors import InvariantViolation, LedgerError, MalformedRequest, StorageError
from ledger.flows.errors import Conflict, NotFound, Refused
from reconciliation.errors import InputInvalid, JobFailed, JobRefused
from webhooks import WebhookSettings

QUIET = Settings(sweep_interval_s=None, seal_interval_s=None, reconcile_interval_s=None)

# -- the one renderer ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ApiError("forbidden", "no"), 403, "forbidden"),
        (NotFound("order_not_found", "no order"), 404, "order_not_found"),
        (Conflict("step_id_reused", "again"), 409, "step_id_reused"),
        (Refused("order_not_payable", "paid"), 409, "order_not_payable"),  # a state
        (Refused("float_short", "short"), 422, "float_short"),
        (Refused("signature_invalid", "record"), 422, "record_signature_invalid"),
        (MalformedRequest("amount out of range"), 422, "validation_failed"),
        (InputInvalid("not a storefront id"), 422, "job_refused"),
        (JobRefused("another run holds the period"), 409, "job_refused"),
        (StorageError("locked"), 503, "not_ready"),
    ],
)
def test_every_refusal_of_the_tree_has_one_problem(
    error: LedgerError, status: int, code: str
) -> None:
    problem = problem_of(error)
    assert problem is not None
    assert (problem.status, problem.code) == (status, code)
    assert refusal_of(error) == (problem if status < 500 else None)


def test_a_storage_error_waits_and_a_bug_is_not_a_refusal() -> None:
    storage = problem_of(StorageError("gone"))
    assert storage is not None
    assert storage.headers == {"Retry-After": str(STORAGE_RETRY_AFTER_S)}
    assert "gone" not in storage.detail  # the cause goes to the log, not to the client
    for bug in (InvariantViolation("a CHECK fired"), JobFailed("could not finish")):
        assert problem_of(bug) is None
        assert refusal_of(bug) is None


def test_the_apis_own_errors_are_in_the_tree() -> None:
    from api.client import ProblemError
    from api.principals import KeyRefused
    from api.server import ServeRefused
    from ledger.core.errors import EdgeError

    for edge in (ApiError, ProblemError, ServeRefused):
        assert issubclass(edge, EdgeError)
    assert issubclass(ServeRefused, ValueError)  # ``vledger serve`` catches it so
    assert issubclass(KeyRefused, Refused) and issubclass(KeyRefused, ValueError)
    assert str(KeyRefused("agents sign with Ed25519 only")) == "agents sign with Ed25519 only"


# -- a POST answers every refusal once, and replays it --------------------------------


class Pipeline:
    """A bare app whose ``POST /try`` runs ``handle`` through :func:`run_post`."""

    def __init__(self, led: Ledger, caller: ApiKey) -> None:
        self.calls = 0
        self.base_url = ""
        self.raises: Callable[[], LedgerError] | None = None
        self.app = FastAPI()
        self.app.state.ctx = Context(ledger=led, settings=QUIET)
        _install_errors(self.app)

        @self.app.post("/try")
        async def attempt(request: Request) -> Response:
            body = await request.body()
            return run_post(request, caller, body, self.handle)

    def handle(self) -> Response:
        self.calls += 1
        if self.raises is not None:
            raise self.raises()
        return json_response(201, {"ok": True})

    def post(self, key: str) -> httpx.Response:
        return httpx.post(
            self.base_url + "/try",
            content=b'{"a":1}',
            headers={"idempotency-key": f'"{key}"', "content-type": "application/json"},
        )


@pytest.fixture
def pipeline(ledger: Ledger) -> Iterator[Pipeline]:
    caller = add_key(
        ledger,
        role=Role.OPERATOR,
        name=f"op-{uuid.uuid4().hex[:8]}",
        alg=Alg.ED25519,
        material=bytes(32),
    )
    served = Pipeline(ledger, caller)
    with ServerThread(served.app) as server:
        served.base_url = server.base_url
        yield served


@pytest.mark.parametrize(
    ("raised", "status", "code"),
    [
        (lambda: Refused("float_short", "the float is short"), 422, "float_short"),
        (lambda: NotFound("order_not_found", "no such order"), 404, "order_not_found"),
        (lambda: InputInvalid("--scope 'x' is not a storefront id"), 422, "job_refused"),
        (lambda: JobRefused("another run holds the period"), 409, "job_refused"),
        (lambda: MalformedRequest("amount out of range"), 422, "validation_failed"),
        (lambda: ApiError("forbidden", "not you"), 403, "forbidden"),
    ],
)
def test_a_refusal_raised_by_the_handler_is_stored_and_replayed(
    pipeline: Pipeline, raised: Callable[[], LedgerError], status: int, code: str
) -> None:
    pipeline.raises = raised
    first = pipeline.post("k-1")
    assert (first.status_code, first.json()["code"]) == (status, code)
    assert first.headers["content-type"] == "application/problem+json"
    again = pipeline.post("k-1")
    assert again.status_code == status
    assert again.headers["idempotency-replayed"] == "true"
    assert again.content == first.content
    assert pipeline.calls == 1  # answered once, replayed after


def test_a_storage_error_or_a_bug_releases_the_key(pipeline: Pipeline) -> None:
    pipeline.raises = lambda: StorageError("locked")
    busy = pipeline.post("k-2")
    assert (busy.status_code, busy.json()["code"]) == (503, "not_ready")
    assert busy.headers["retry-after"] == str(STORAGE_RETRY_AFTER_S)
    pipeline.raises = lambda: InvariantViolation("a guard fired")
    broken = pipeline.post("k-2")  # the key was released: the request runs again
    assert (broken.status_code, broken.json()["code"]) == (500, "internal_error")
    pipeline.raises = None
    done = pipeline.post("k-2")  # released again: it runs, and is answered
    assert done.status_code == 201
    assert "idempotency-replayed" not in done.headers
    assert pipeline.calls == 3


# -- /readyz ---------------------------------------------------------------------------


def _set_revision(led: Ledger, revision: str) -> None:
    led.transact(
        lambda tx: tx.execute("UPDATE alembic_version SET version_num = :v", {"v": revision})
    )


def test_readyz_answers_503_with_retry_after_when_the_schema_is_not_at_head(
    ledger: Ledger, db_url: str
) -> None:
    app = create_app(db_url, settings=QUIET, webhook_settings=WebhookSettings(worker_enabled=False))
    with ServerThread(app) as server:
        readyz = server.base_url + "/readyz"
        ready = httpx.get(readyz)
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert "retry-after" not in ready.headers
        head = migrations.head_revision()
        _set_revision(ledger, "0001")  # as if a deploy ran ahead of its migration
        try:
            behind = httpx.get(readyz)
        finally:
            _set_revision(ledger, head)
        assert behind.status_code == 503
        assert behind.json()["code"] == "not_ready"
        assert behind.json()["detail"] == f"schema is at 0001, not {head}"
        assert behind.headers["retry-after"] == str(STORAGE_RETRY_AFTER_S)
        assert httpx.get(readyz).status_code == 200
