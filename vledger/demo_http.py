"""`vledger demo`: the village day of :mod:`vledger.demo`, taken through the signed API.

:func:`run_demo_http` migrates the database, serves the API on it from a thread of this
process (127.0.0.1, a port the system picks: :class:`api.local_server.ServerThread`),
registers an Ed25519 key for an operator and an auditor, and one for each storefront and
agent as it is onboarded (the private halves stay in memory), and then tells
:class:`vledger.demo.VillageDay` at an :class:`HttpDesk`: every step it can is one
request of :class:`api.client.Client`, signed (RFC 9421), with an Idempotency-Key on
each POST, its clock corrected from the server's ``Date`` and retried when safe.

Who acts: the operator onboards, tops up float (the bank's deposit confirmed by the
platform), pays from a villager's wallet, resolves the dispute and runs settlement; each
storefront creates, dispatches and cancels its own orders; each agent takes cash-ins and
cash-outs, passes float, pays in cash, delivers, releases, disputes and syncs its phone;
the auditor reads what the story checks (orders, balances, windows, payouts, reports).
A second operator approves what the first proposes, each through the signed routes
(maker-checker: ``POST /v1/kyc/villagers/{id}/tier`` raising Amina and Baraka to tier1,
``POST /v1/fee-schedules`` for each schedule, a suspense return, a variance, the
commission payout; then ``POST /v1/proposals/{id}/approve`` by the second). The steps
without a route (parking suspense, which has none on purpose: :mod:`vledger.demo` says
why; the timers' sweeps, the webhook fan-out) and reading the outbox run on the ledger,
and the story says so. A refusal is the API's
problem+json ``code``. The last lines count the requests and say ``integrity: ok``.
"""

from __future__ import annotations

import base64
import json
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from api import principals
from api.app import create_app
from api.client import Client, ProblemError
from api.local_server import ServerThread
from api.settings import Settings
from ledger import Ledger, open_ledger
from ledger.flows import commission, offline
from ledger.flows.parties import Kind, Party
from ledger.limits import API_PAGE_SIZE_MAX as PAGE_SIZE
from vledger.demo import (
    CURRENCY,
    DEMO_WEBHOOKS,
    PARTY_ROLES,
    PROVIDER,
    WEBHOOK_URL,
    CashOutSeen,
    CommissionSeen,
    FloatSeen,
    OrderSeen,
    PayoutSeen,
    ReportSeen,
    StepRefused,
    SyncSeen,
    UnexpectedAnswer,
    count_body,
    new_id,
    run_day,
)

__all__ = ["DEMO_SETTINGS", "DEMO_WEBHOOKS", "HttpDesk", "Traffic", "run_demo_http"]

DEMO_USSD_SECRET = "demo-aggregator-" + uuid.uuid4().hex
"""The aggregator's secret for this demo's USSD callback (a fresh one per run)."""
DEMO_SETTINGS = Settings(
    sweep_interval_s=None,
    seal_interval_s=None,
    reconcile_interval_s=None,
    ussd_secrets=(DEMO_USSD_SECRET,),
    ussd_source_networks=("127.0.0.1/32",),
)
"""The API as ``vledger serve`` runs it, less its background threads: the demo runs the
timers itself *as of* later moments, and sealing and scheduled reconciliation (which
writes a service key and report files) belong to the service."""


@dataclass
class Traffic:
    """What went over the wire, counted by :class:`CountingTransport`."""

    requests: int = 0
    """Signed requests sent (a retry counts again)."""
    posts: int = 0
    """Of them POSTs, each with an Idempotency-Key."""
    replayed: int = 0
    """Answers the API replayed from its idempotency store (``Idempotency-Replayed``)."""
    problems: int = 0
    """Answers that were problem+json."""

    def line(self) -> str:
        return (
            f"over HTTP: {self.requests} signed requests ({self.posts} POSTs with an"
            f" Idempotency-Key, {self.replayed} answered from the idempotency store,"
            f" {self.problems} refusals as problem+json)"
        )


class CountingTransport(httpx.BaseTransport):
    """An httpx transport that counts into :class:`Traffic` what ``inner`` carries."""

    def __init__(self, inner: httpx.BaseTransport, traffic: Traffic) -> None:
        self.inner = inner
        self.traffic = traffic

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.traffic.requests += 1
        self.traffic.posts += request.method == "POST"
        self.traffic.replayed += response.headers.get("idempotency-replayed") == "true"
        self.traffic.problems += "problem+json" in response.headers.get("content-type", "")
        return response

    def close(self) -> None:
        self.inner.close()


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _cash_out(answer: Mapping[str, Any]) -> CashOutSeen:
    return CashOutSeen(
        uuid.UUID(answer["id"]), answer["state"], answer["fee_minor"], _time(answer["expires_at"])
    )


def _order(answer: Mapping[str, Any]) -> OrderSeen:
    return OrderSeen(
        answer["state"], answer["paid_minor"], answer["released_minor"], answer["refunded_minor"]
    )


class HttpDesk:
    """The day's steps as signed requests to the API at ``base_url`` (see the module).

    ``led`` is the same database, used only to register the day's keys (as ``vledger
    keys create`` does); every principal's name carries this run's tag, so each run has
    principals of its own."""

    over_http = True

    def __init__(self, led: Ledger, base_url: str) -> None:
        self.led = led
        self.base_url = base_url
        self.traffic = Traffic()
        self.tag = uuid.uuid4().hex[:8]
        self._clients: list[Client] = []
        self._actors: dict[uuid.UUID, Client] = {}
        """The client of each storefront and agent, by its party (= principal) id."""
        _, self.operator = self._principal(principals.Role.OPERATOR, "operator")
        _, self.checker = self._principal(principals.Role.OPERATOR, "second operator")
        """The second operator, who approves what the first proposes."""
        _, self.auditor = self._principal(principals.Role.AUDITOR, "auditor")

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()

    # -- keys and requests ------------------------------------------------------------

    def _principal(self, role: principals.Role, name: str) -> tuple[uuid.UUID, Client]:
        """A new principal with an Ed25519 key (kept in memory) and its client."""
        private = Ed25519PrivateKey.generate()
        key = principals.add_key(
            self.led,
            role=role,
            name=f"demo {self.tag} {name}",
            alg=principals.Alg.ED25519,
            material=private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        )
        client = Client(
            self.base_url,
            key_id=key.key_id,
            alg=principals.Alg.ED25519,
            private_key=private,
            transport=CountingTransport(httpx.HTTPTransport(), self.traffic),
        )
        self._clients.append(client)
        return key.principal_id, client

    def _as(self, party_id: uuid.UUID | None) -> Client:
        """The client of a storefront or agent of the day; the operator's for None."""
        return self.operator if party_id is None else self._actors[party_id]

    def _call(
        self,
        client: Client,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        try:
            return client.call(
                method, path, json_body=body, params=params, idempotency_key=idempotency_key
            )
        except ProblemError as exc:
            detail = str(exc.problem.get("detail", ""))
            raise StepRefused(exc.code, detail, status=exc.status) from exc
        except httpx.HTTPError as exc:
            raise UnexpectedAnswer(f"{method} {path}: the API did not answer ({exc!r})") from exc

    def _pages(self, client: Client, path: str, params: Mapping[str, str]) -> list[Any]:
        """Every item of a list, page after page."""
        return self._pages_by(client, path, params, cursor="id")

    def _pages_by(
        self, client: Client, path: str, params: Mapping[str, str], *, cursor: str
    ) -> list[Any]:
        """Every item of a list paged by the field ``cursor`` of its last item."""
        found: list[Any] = []
        after: str | None = None
        while True:
            page_params = {**params, "limit": str(PAGE_SIZE)}  # the API's largest page
            if after is not None:
                page_params["starting_after"] = after
            page = self._call(client, "GET", path, params=page_params)
            found += page["data"]
            if not page["has_more"] or not page["data"]:
                return found
            after = str(page["data"][-1][cursor])

    # -- the desk ---------------------------------------------------------------------

    def onboard(self, *, kind: Kind, name: str, kyc_tier: str | None) -> Party:
        if kind in PARTY_ROLES:
            party_id, client = self._principal(PARTY_ROLES[kind], name)
            self._actors[party_id] = client
        else:
            party_id = new_id()  # a villager is no principal: it acts through its agent
        body: dict[str, Any] = {"id": party_id, "kind": kind.value, "name": name}
        body["currency"] = CURRENCY
        if kyc_tier is not None:
            body["kyc_tier"] = kyc_tier
        answer = self._call(self.operator, "POST", "/v1/parties", body)
        return Party(
            id=uuid.UUID(answer["id"]),
            kind=Kind(answer["kind"]),
            name=answer["name"],
            currency=answer["currency"],
            kyc_tier=answer["kyc_tier"],
            accounts={role: uuid.UUID(a) for role, a in answer["accounts"].items()},
        )

    def ussd(self, *, session_id: str, phone: str, text: str) -> str:
        """A step of the villager's phone, as the aggregator posts it to the callback."""
        form = {
            "sessionId": session_id,
            "serviceCode": "*384*55#",
            "phoneNumber": phone,
            "networkCode": "63902",
            "text": text,
        }
        answered = httpx.post(
            f"{self.base_url}/ussd/africastalking/{DEMO_USSD_SECRET}", data=form, timeout=30
        )
        answered.raise_for_status()
        return answered.text

    def register_villager(self, *, agent_id: uuid.UUID, name: str, phone: str) -> uuid.UUID:
        body = {"id": new_id(), "phone": phone, "name": name, "currency": CURRENCY}
        body["language"] = "sw"
        answer = self._call(self._as(agent_id), "POST", "/v1/villagers", body)
        return uuid.UUID(answer["id"])

    def top_up_float(self, *, agent_id: uuid.UUID, amount_minor: int) -> None:
        body = {"id": new_id(), "amount_minor": amount_minor, "provider": PROVIDER}
        self._call(self.operator, "POST", f"/v1/agents/{agent_id}/float-topups", body)

    def set_float_threshold(self, *, agent_id: uuid.UUID, threshold_minor: int) -> None:
        path = f"/v1/agents/{agent_id}/float-threshold"
        self._call(self._as(agent_id), "POST", path, {"threshold_minor": threshold_minor})

    def float_of(self, agent_id: uuid.UUID) -> FloatSeen:
        answer = self._call(self._as(agent_id), "GET", f"/v1/agents/{agent_id}/float")
        return FloatSeen(answer["available_minor"], answer["low_armed"])

    def transfer_float(
        self, *, from_agent_id: uuid.UUID, to_agent_id: uuid.UUID, amount_minor: int
    ) -> None:
        body = {"id": new_id(), "to_agent_id": to_agent_id, "amount_minor": amount_minor}
        path = f"/v1/agents/{from_agent_id}/float-transfers"
        self._call(self._as(from_agent_id), "POST", path, body)

    def cash_in(self, *, agent_id: uuid.UUID, villager_id: uuid.UUID, amount_minor: int) -> int:
        body = {"id": new_id(), "villager_id": villager_id, "amount_minor": amount_minor}
        answer = self._call(self._as(agent_id), "POST", f"/v1/agents/{agent_id}/cash-ins", body)
        commission: int = answer["commission_minor"]
        return commission

    def create_order(
        self,
        *,
        storefront_id: uuid.UUID,
        villager_id: uuid.UUID,
        amount_minor: int,
        delivery_method: str,
        agent_id: uuid.UUID | None,
    ) -> uuid.UUID:
        order_id = new_id()
        body: dict[str, Any] = {
            "id": order_id,
            "currency": CURRENCY,
            "amount_minor": amount_minor,
            "delivery_method": delivery_method,
            "villager_id": villager_id,
        }
        if agent_id is not None:
            body["agent_id"] = agent_id
        self._call(self._as(storefront_id), "POST", "/v1/orders", body)
        return order_id

    def order_step(
        self,
        step: str,
        order_id: uuid.UUID,
        *,
        by: uuid.UUID | None,
        step_id: uuid.UUID | None = None,
        **fields: Any,
    ) -> OrderSeen:
        # A step with its own id is sent with that id as its Idempotency-Key: sending it
        # again is the same request, answered from the API's idempotency store.
        body = dict(fields) if step_id is None else {"step_id": step_id, **fields}
        key = None if step_id is None else str(step_id)
        path = f"/v1/orders/{order_id}/{step}"
        return _order(self._call(self._as(by), "POST", path, body, idempotency_key=key))

    def get_order(self, order_id: uuid.UUID) -> OrderSeen:
        return _order(self._call(self.auditor, "GET", f"/v1/orders/{order_id}"))

    def request_cash_out(
        self,
        *,
        agent_id: uuid.UUID,
        villager_id: uuid.UUID,
        amount_minor: int,
        consent_code: str | None,
    ) -> CashOutSeen:
        body = {"id": new_id(), "villager_id": villager_id, "amount_minor": amount_minor}
        if consent_code is not None:
            body["consent_code"] = consent_code
        path = f"/v1/agents/{agent_id}/cash-outs"
        return _cash_out(self._call(self._as(agent_id), "POST", path, body))

    def confirm_cash_out(self, cash_out_id: uuid.UUID, *, agent_id: uuid.UUID) -> CashOutSeen:
        path = f"/v1/cash-outs/{cash_out_id}/confirm"
        return _cash_out(self._call(self._as(agent_id), "POST", path, {}))

    def cancel_cash_out(
        self, cash_out_id: uuid.UUID, *, agent_id: uuid.UUID, reason: str
    ) -> CashOutSeen:
        path = f"/v1/cash-outs/{cash_out_id}/cancel"
        return _cash_out(self._call(self._as(agent_id), "POST", path, {"reason": reason}))

    def get_cash_out(self, cash_out_id: uuid.UUID, *, agent_id: uuid.UUID) -> CashOutSeen:
        return _cash_out(self._call(self._as(agent_id), "GET", f"/v1/cash-outs/{cash_out_id}"))

    def register_device(
        self,
        *,
        device_id: uuid.UUID,
        agent_id: uuid.UUID,
        public_key: bytes,
        allowance_minor: int,
    ) -> None:
        body = {
            "id": device_id,
            "public_key": base64.b64encode(public_key).decode("ascii"),
            "allowance_minor": allowance_minor,
        }
        self._call(self._as(agent_id), "POST", "/v1/devices", body)

    def sync(
        self,
        *,
        device_id: uuid.UUID,
        agent_id: uuid.UUID,
        records: Sequence[offline.SignedRecord],
    ) -> SyncSeen:
        # The exact bytes the phone signed travel as they are; each sync is a new request
        # (a new Idempotency-Key), so a re-sent batch reaches the ledger's own replay.
        body = {
            "records": [
                {
                    "payload": offline.canonical_bytes(r.record).decode("ascii"),
                    "signature": base64.b64encode(r.signature).decode("ascii"),
                }
                for r in records
            ]
        }
        path = f"/v1/devices/{device_id}/sync"
        answer = self._call(self._as(agent_id), "POST", path, body)
        reasons = tuple(r["reason"] for r in answer["records"] if r["reason"])
        return SyncSeen(
            answer["applied"],
            answer["exceptions"],
            answer["stored_now"],
            answer["replayed"],
            reasons,
        )

    def open_windows(self) -> list[uuid.UUID]:
        params = {"currency": CURRENCY, "state": "open"}
        found = self._pages(self.auditor, "/v1/settlement-windows", params)
        return [uuid.UUID(w["id"]) for w in found]

    def open_window(self, window_id: uuid.UUID) -> None:
        body = {"id": window_id, "currency": CURRENCY}
        self._call(self.operator, "POST", "/v1/settlement-windows", body)

    def close_window(self, window_id: uuid.UUID) -> None:
        path = f"/v1/settlement-windows/{window_id}/close"
        self._call(self.operator, "POST", path, {"provider": PROVIDER})

    def payouts(self, window_id: uuid.UUID) -> list[PayoutSeen]:
        found = self._pages(self.auditor, f"/v1/settlement-windows/{window_id}/payouts", {})
        return [
            PayoutSeen(uuid.UUID(p["id"]), uuid.UUID(p["storefront_id"]), p["amount_minor"])
            for p in found
        ]

    def fail_payout(self, payout_id: uuid.UUID, *, reason: str) -> None:
        self._call(self.operator, "POST", f"/v1/payouts/{payout_id}/fail", {"reason": reason})

    def confirm_payout(self, payout_id: uuid.UUID, *, provider_reference: str) -> None:
        body = {"provider_reference": provider_reference}
        self._call(self.operator, "POST", f"/v1/payouts/{payout_id}/confirm", body)

    def window_report(self, window_id: uuid.UUID) -> ReportSeen:
        path = f"/v1/settlement-windows/{window_id}/report"
        answer = self._call(self.auditor, "GET", path)
        return ReportSeen(
            answer["window"]["state"],
            len(answer["lines"]),
            answer["paid_total_minor"],
            answer["ties"],
        )

    def posted(self, account_id: uuid.UUID) -> tuple[int, int]:
        answer = self._call(self.auditor, "GET", f"/v1/accounts/{account_id}")
        return answer["debits_posted"], answer["credits_posted"]

    def propose_tier(self, villager_id: uuid.UUID, *, tier: str) -> uuid.UUID:
        path = f"/v1/kyc/villagers/{villager_id}/tier"
        return uuid.UUID(self._call(self.operator, "POST", path, {"tier": tier})["proposal"]["id"])

    def fee_schedule_in_effect(self, product: str) -> bool:
        params = {"product": product, "currency": CURRENCY}
        versions = self._pages_by(self.auditor, "/v1/fee-schedules", params, cursor="version")
        now = datetime.now(UTC)
        return any(datetime.fromisoformat(v["effective_from"]) <= now for v in versions)

    def propose_fee_schedule(self, *, product: str, rules: dict[str, Any]) -> uuid.UUID:
        body = {"product": product, "currency": CURRENCY, "rules": rules}
        answer = self._call(self.operator, "POST", "/v1/fee-schedules", body)
        return uuid.UUID(answer["proposal"]["id"])

    def register_webhook(self, *, storefront_id: uuid.UUID, event_types: Sequence[str]) -> None:
        body = {"url": WEBHOOK_URL, "event_types": list(event_types)}
        body["description"] = "the demo's shop system"
        self._call(self._as(storefront_id), "POST", "/v1/webhook-endpoints", body)

    def reassign_suspense(self, suspense_id: uuid.UUID, *, villager_id: uuid.UUID) -> str:
        path = f"/v1/suspense/{suspense_id}/reassign"
        answer = self._call(self.operator, "POST", path, {"to_villager_id": villager_id})
        return str(answer["state"])

    def propose_return(self, suspense_id: uuid.UUID, *, reason: str) -> uuid.UUID:
        path = f"/v1/suspense/{suspense_id}/return"
        answer = self._call(self.operator, "POST", path, {"reason": reason})
        return uuid.UUID(answer["proposal"]["id"])

    def approve(self, proposal_id: uuid.UUID, *, as_maker: bool = False) -> Any:
        who = self.operator if as_maker else self.checker
        return self._call(who, "POST", f"/v1/proposals/{proposal_id}/approve")["result"]

    def count_cash(
        self, *, agent_id: uuid.UUID, denominations: dict[str, int], comment: str
    ) -> uuid.UUID | None:
        body = json.loads(count_body(datetime.now(UTC), denominations, comment))
        path = f"/v1/agents/{agent_id}/cash-counts"
        variance = self._call(self._as(agent_id), "POST", path, body)["variance"]
        return None if variance is None else uuid.UUID(variance["id"])

    def propose_variance_approval(self, variance_id: uuid.UUID) -> uuid.UUID:
        path = f"/v1/variances/{variance_id}/approval"
        return uuid.UUID(self._call(self.operator, "POST", path, {})["proposal"]["id"])

    def request_commission_payout(self, *, month: str) -> uuid.UUID | None:
        body = {"month": month, "currency": CURRENCY, "to": "provider", "provider": PROVIDER}
        answer = self._call(self.operator, "POST", "/v1/commission-payouts", body)
        return uuid.UUID(answer["proposal"]["id"]) if "proposal" in answer else None

    def commission_payout(self, *, month: str) -> CommissionSeen:
        path = f"/v1/commission-payouts/{commission.payout_id_of(month, CURRENCY)}"
        found = self._call(self.auditor, "GET", path, params={"limit": "1"})
        return CommissionSeen(
            found["to"], found["provider"], found["lines_count"], found["total_minor"]
        )

    def summary(self) -> list[str]:
        return [self.traffic.line()]


def run_demo_http(url: str, out: TextIO | None = None) -> int:
    """Migrate the ledger at ``url``, serve the API on it from a thread, and tell the
    village day through it; the exit code of :func:`vledger.demo.run_day`."""
    out = out or sys.stdout
    led = open_ledger(url, migrate=True)
    try:
        app = create_app(url, settings=DEMO_SETTINGS, webhook_settings=DEMO_WEBHOOKS)
        with ServerThread(app) as server:
            print(
                f"Village Ledger demo: one village day on {led.dialect},"
                f" through the signed API at {server.base_url}",
                file=out,
            )
            desk = HttpDesk(led, server.base_url)
            try:
                print(
                    "keys: an operator and an auditor, then one per storefront and agent as"
                    " it is onboarded (Ed25519, kept in memory); villagers act through agents",
                    file=out,
                )
                return run_day(led, desk, out)
            finally:
                desk.close()
    finally:
        led.close()
