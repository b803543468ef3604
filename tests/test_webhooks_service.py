"""The webhooks package below the HTTP API, on both engines: the sender's outcomes with a
scripted transport (no receiver, no patching), the error length and the endpoints-per-
principal limits on both sides, the fan-out's audience, and the edges' errors in the
one tree."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

import webhooks
from ledger import Ledger
from ledger.core.errors import EdgeError, LedgerError
from ledger.flows import events, parties
from ledger.flows.errors import Refused
from ledger.flows.parties import Kind
from ledger.flows.principals import Alg, Role, add_key
from tests.conftest import Clock
from vledger.cli import UsageError
from vledger.demo import StepRefused, UnexpectedAnswer
from webhooks import DeliveryState, EndpointState, WebhookSettings

TARGET = "http://127.0.0.1:9/hooks"
HOOKS = WebhookSettings(worker_enabled=False, target_networks_allowed=("127.0.0.0/8",))


@dataclass
class Transport:
    """An ``HttpPost`` that answers scripted statuses (an exception is raised instead)."""

    answers: list[int | Exception]
    sent: list[Mapping[str, str]] = field(default_factory=list)

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        self.sent.append(headers)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def principal(led: Ledger, role: Role = Role.STOREFRONT) -> uuid.UUID:
    """A storefront's or an agent's principal and its party (the same id, as the API makes)."""
    name = f"{role}-{uuid.uuid4()}"
    key = add_key(led, role=role, name=name, alg=Alg.ED25519, material=bytes(32))
    parties.onboard(
        led, party_id=key.principal_id, kind=Kind(role.value), name=name, currency="KES"
    )
    return key.principal_id


def endpoint(led: Ledger, owner: uuid.UUID, types: tuple[str, ...] = ("*",)) -> webhooks.Endpoint:
    made, _secret = webhooks.create_endpoint(
        led, principal_id=owner, url=TARGET, event_types=types, description=None, settings=HOOKS
    )
    return made


def paid(led: Ledger, party_id: uuid.UUID | None) -> uuid.UUID:
    return led.transact(lambda tx: events.emit(tx, events.ORDER_PAID, {}, party_id=party_id))


def deliveries(led: Ledger, found: webhooks.Endpoint) -> list[webhooks.Delivery]:
    page = webhooks.list_deliveries(
        led, endpoint_id=found.id, principal_id=None, after=None, limit=10
    )
    assert page is not None
    return page[0]


def deliver(led: Ledger, clock: Clock, transport: Transport) -> int:
    return webhooks.deliver_due(
        led, now=clock(), http_post=transport, settings=HOOKS, rand=lambda: 0.5
    )


def test_a_refused_answer_is_retried_after_the_backoff_then_succeeds(
    ledger: Ledger, clock: Clock
) -> None:
    shop = principal(ledger)
    hook = endpoint(ledger, shop)
    event_id = paid(ledger, shop)
    transport = Transport([500, 200])

    assert deliver(ledger, clock, transport) == 1
    [first] = deliveries(ledger, hook)
    assert (first.event_id, first.state, first.attempts) == (event_id, DeliveryState.PENDING, 1)
    assert (first.last_status_code, first.last_error) == (500, "HTTP 500")
    assert first.next_attempt_at == clock() + timedelta(seconds=HOOKS.backoff_base_s)

    clock.advance(HOOKS.backoff_base_s - 1)
    assert deliver(ledger, clock, transport) == 0  # not due yet
    clock.advance(1)
    assert deliver(ledger, clock, transport) == 1
    [done] = deliveries(ledger, hook)
    assert (done.state, done.attempts, done.next_attempt_at) == (DeliveryState.SUCCEEDED, 2, None)
    assert [h["webhook-id"] for h in transport.sent] == [str(event_id)] * 2


def test_410_fails_the_delivery_and_disables_the_endpoint(ledger: Ledger, clock: Clock) -> None:
    shop = principal(ledger)
    hook = endpoint(ledger, shop)
    paid(ledger, shop)
    deliver(ledger, clock, Transport([410]))

    [gone] = deliveries(ledger, hook)
    assert (gone.state, gone.last_status_code) == (DeliveryState.FAILED, 410)
    found = webhooks.get_endpoint(ledger, endpoint_id=hook.id, principal_id=shop)
    assert found is not None
    assert (found.state, found.disabled_reason) == (
        EndpointState.DISABLED,
        "the target answered 410 Gone",
    )


@pytest.mark.parametrize("extra", [0, 1])
def test_an_error_is_kept_up_to_its_length_limit(ledger: Ledger, clock: Clock, extra: int) -> None:
    shop = principal(ledger)
    hook = endpoint(ledger, shop)
    paid(ledger, shop)
    prefix = "OSError: "
    text = "x" * (webhooks.ERROR_LENGTH_MAX - len(prefix) + extra)
    deliver(ledger, clock, Transport([OSError(text)]))

    [failed] = deliveries(ledger, hook)
    assert failed.last_error == (prefix + text)[: webhooks.ERROR_LENGTH_MAX]
    assert failed.last_error is not None
    assert len(failed.last_error) == webhooks.ERROR_LENGTH_MAX


def test_a_principal_has_at_most_its_endpoints(ledger: Ledger) -> None:
    shop = principal(ledger)
    for _ in range(HOOKS.endpoints_per_principal_max):
        endpoint(ledger, shop)
    with pytest.raises(webhooks.EndpointRefused) as refused:
        endpoint(ledger, shop)
    assert refused.value.code == "validation_failed"
    assert (
        str(refused.value) == f"at most {HOOKS.endpoints_per_principal_max} endpoints per principal"
    )
    assert isinstance(refused.value, Refused) and isinstance(refused.value, ValueError)
    page = webhooks.list_endpoints(ledger, principal_id=shop, after=None, limit=100)
    assert page is not None
    assert len(page[0]) == HOOKS.endpoints_per_principal_max


def test_an_event_goes_to_its_party_and_one_of_no_party_to_storefronts(
    ledger: Ledger, clock: Clock
) -> None:
    shop, other, agent = principal(ledger), principal(ledger), principal(ledger, Role.AGENT)
    mine, theirs, agents = endpoint(ledger, shop), endpoint(ledger, other), endpoint(ledger, agent)
    ours = paid(ledger, shop)
    nobodys = paid(ledger, None)
    deliver(ledger, clock, Transport([200, 200, 200]))

    def seen(hook: webhooks.Endpoint) -> list[uuid.UUID]:
        return [d.event_id for d in deliveries(ledger, hook)]

    assert seen(mine) == [ours, nobodys]
    assert seen(theirs) == [nobodys]
    assert seen(agents) == []


def test_the_edges_errors_are_in_the_one_tree() -> None:
    for edge in (UsageError, StepRefused, UnexpectedAnswer):
        assert issubclass(edge, EdgeError)
    assert issubclass(webhooks.EndpointRefused, LedgerError)
