"""How long ``verify_request`` takes per signed request: the library path it replaced
against the one that parses once (:mod:`api.sigparse`).

    python -m bench.sigverify [--requests 10000] [--runs 3] [--json]

One signed ``POST /v1/transfers`` (a JSON body of one transfer, Content-Digest,
Idempotency-Key, Ed25519, signed by :func:`api.signatures.sign_request`) is verified
``--requests`` times in a row by each path, the paths alternating, ``--runs`` times; the
figure is the median run's microseconds per verification (``time.perf_counter``). The
same is done for a signed ``GET`` with an HMAC-SHA256 key. Both paths must accept every
request (checked once before timing); the public key is loaded and cached before timing,
as a server has it.

The old path, :func:`library_verify_request`, is kept here (and only here; the
cross-check tests import it too): ``http_sf`` reads the key id from
``Signature-Input``, then ``http-message-signatures``' ``HTTPMessageVerifier`` parses both
fields again, builds the signature base and verifies, with this service's time window.
It is the code ``api/signatures.py`` had until the parser replaced it, unchanged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import http_sf
from cryptography.hazmat.primitives.asymmetric import ed25519
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
)

from api.principals import Alg, ApiKey, Role
from api.problems import ApiError
from api.signatures import (
    ALGORITHMS,
    Sha256Digest,
    Verified,
    public_key,
    required_components,
    sign_request,
    verify_request,
)
from bench.w1 import machine, warn_if_busy

REQUESTS_DEFAULT = 10_000
RUNS_DEFAULT = 3
AGE_MAX_S = 300
AHEAD_MAX_S = 60
TAG = "vledger"


# -- the old path (api/signatures.py before api/sigparse.py) ----------------------------


class _Expired(InvalidSignature):
    pass


class _Headers:
    """Read-only field lines, in wire order, for the library's component resolver."""

    def __init__(self, fields: Sequence[tuple[str, str]]) -> None:
        self._fields = list(fields)

    def items(self) -> Iterable[tuple[str, str]]:
        return iter(self._fields)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._fields))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(f.lower() == name.lower() for f, _ in self._fields)

    def __setitem__(self, name: str, value: str) -> None:
        raise TypeError("read-only")

    def __delitem__(self, name: str) -> None:
        raise TypeError("read-only")


@dataclass
class _Message:
    method: str
    url: str
    headers: Any


class _OneKey(MappingKeyResolver):
    def __init__(self, key: Any) -> None:
        super().__init__(public_keys={}, private_keys={})
        self._key = key

    def resolve_public_key(self, key_id: str) -> Any:
        return self._key


class _Verifier(HTTPMessageVerifier):
    content_digest_class = Sha256Digest

    def __init__(self, alg: Any, key: Any, *, now_s: int, age_max_s: int, ahead_max_s: int):
        super().__init__(signature_algorithm=alg, key_resolver=_OneKey(key))
        self._now_s = now_s
        self._age_max_s = age_max_s
        self._ahead_max_s = ahead_max_s

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        created = sig_input.params.get("created")
        if type(created) is not int:
            raise _Expired('the signature needs an integer "created" parameter')
        if created < self._now_s - self._age_max_s:
            raise _Expired(f"created is more than {self._age_max_s} s old")
        if created > self._now_s + self._ahead_max_s:
            raise _Expired(f"created is more than {self._ahead_max_s} s in the future")
        expires = sig_input.params.get("expires")
        if expires is not None and (type(expires) is not int or expires < self._now_s):
            raise _Expired("the signature has expired")


def _combined(fields: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v.strip(" \t") for f, v in fields if f.lower() == name]
    return ", ".join(values) if values else None


def _select(fields: Sequence[tuple[str, str]], tag: str) -> tuple[list[str], dict[str, Any]]:
    raw = _combined(fields, "signature-input")
    if raw is None or _combined(fields, "signature") is None:
        raise ApiError("signature_missing", "Signature-Input and Signature are required")
    try:
        parsed = http_sf.parse(raw.encode("latin-1"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ApiError("signature_invalid", f"malformed Signature-Input: {exc}") from None
    if not isinstance(parsed, dict):
        raise ApiError("signature_invalid", "malformed Signature-Input")
    chosen: list[tuple[list[str], dict[str, Any]]] = []
    for member in parsed.values():
        if not isinstance(member, tuple) or len(member) != 2 or not isinstance(member[0], list):
            raise ApiError("signature_invalid", "a Signature-Input member is not an inner list")
        items, params = member
        if params.get("tag") != tag:
            continue
        names: list[str] = []
        for item in items:
            if not isinstance(item, tuple) or not isinstance(item[0], str) or item[1]:
                raise ApiError("signature_coverage", "covered components must be plain names")
            names.append(item[0])
        chosen.append((names, dict(params)))
    if len(chosen) != 1:
        raise ApiError("signature_invalid", f'expected exactly one signature with tag="{tag}"')
    return chosen[0]


def library_verify_request(
    *,
    method: str,
    url: str,
    fields: Sequence[tuple[str, str]],
    body: bytes,
    lookup: Callable[[str], ApiKey | None],
    now: datetime,
    tag: str,
    age_max_s: int,
    ahead_max_s: int,
) -> Verified:
    """The old ``verify_request``: the same arguments, answers and problem codes."""
    names, params = _select(fields, tag)
    key_id = params.get("keyid")
    if not isinstance(key_id, str) or not key_id:
        raise ApiError("signature_invalid", 'the signature needs a "keyid" string')
    missing = [c for c in required_components(fields, body) if c not in names]
    if missing:
        raise ApiError("signature_coverage", f"the signature must cover {', '.join(missing)}")
    digest = _combined(fields, "content-digest")
    if body or digest is not None:
        if digest is None:
            raise ApiError("digest_mismatch", "a body needs a Content-Digest (sha-256)")
        try:
            Sha256Digest.verify(digest, body)
        except InvalidSignature as exc:
            raise ApiError("digest_mismatch", str(exc)) from None
    key = lookup(key_id)
    if key is None or not key.active:
        raise ApiError("key_unknown", "unknown or revoked key id")
    if params.get("alg") != key.alg.value:
        raise ApiError("signature_invalid", f'"alg" must be present and equal "{key.alg.value}"')
    verifier = _Verifier(
        ALGORITHMS[key.alg],
        public_key(key),
        now_s=int(now.timestamp()),
        age_max_s=age_max_s,
        ahead_max_s=ahead_max_s,
    )
    message = _Message(method=method, url=url, headers=_Headers(fields))
    try:
        results = verifier.verify(
            message,
            max_age=None,
            expect_tag=tag,
            require_components=required_components(fields, body),
            body=body,
        )
    except _Expired as exc:
        raise ApiError("signature_expired", str(exc)) from None
    except (InvalidSignature, HTTPMessageSignaturesException) as exc:
        raise ApiError("signature_invalid", str(exc) or "the signature does not verify") from None
    if len(results) != 1:
        raise ApiError("signature_invalid", "expected exactly one verified signature")
    nonce = params.get("nonce")
    return Verified(key, int(params["created"]), nonce if isinstance(nonce, str) else None)


# -- the measurement --------------------------------------------------------------------

Verify = Callable[..., Verified]


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    request: dict[str, Any]


def _cases() -> list[Case]:
    now = datetime.now(UTC)
    private = ed25519.Ed25519PrivateKey.generate()
    ed_key = ApiKey(
        key_id="k_bench_ed",
        principal_id=uuid.uuid4(),
        role=Role.STOREFRONT,
        alg=Alg.ED25519,
        material=private.public_key().public_bytes_raw(),
        active=True,
    )
    secret = b"s" * 32
    hmac_key = ApiKey(
        key_id="k_bench_hmac",
        principal_id=uuid.uuid4(),
        role=Role.STOREFRONT,
        alg=Alg.HMAC_SHA256,
        material=secret,
        active=True,
    )
    url = "http://127.0.0.1:8000/v1/transfers"
    body = json.dumps(
        {
            "transfers": [
                {
                    "id": str(uuid.uuid4()),
                    "debit_account_id": str(uuid.uuid4()),
                    "credit_account_id": str(uuid.uuid4()),
                    "amount_minor": 1,
                    "currency": "KES",
                    "code": 1,
                }
            ]
        }
    ).encode()
    post = sign_request(
        method="POST",
        url=url,
        headers={"content-type": "application/json", "idempotency-key": f'"{uuid.uuid4()}"'},
        body=body,
        key_id=ed_key.key_id,
        alg=Alg.ED25519,
        private_key=private,
        created=now,
    )
    get = sign_request(
        method="GET",
        url=url + "?limit=10",
        headers={},
        body=b"",
        key_id=hmac_key.key_id,
        alg=Alg.HMAC_SHA256,
        private_key=secret,
        created=now,
    )
    common = {"now": now, "tag": TAG, "age_max_s": AGE_MAX_S, "ahead_max_s": AHEAD_MAX_S}
    return [
        Case(
            "POST ed25519",
            {
                "method": "POST",
                "url": url,
                "fields": list(post.items()),
                "body": body,
                "lookup": {ed_key.key_id: ed_key}.get,
                **common,
            },
        ),
        Case(
            "GET hmac-sha256",
            {
                "method": "GET",
                "url": url + "?limit=10",
                "fields": list(get.items()),
                "body": b"",
                "lookup": {hmac_key.key_id: hmac_key}.get,
                **common,
            },
        ),
    ]


def _time_us(verify: Verify, request: dict[str, Any], requests: int) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        verify(**request)
    return (time.perf_counter() - start) / requests * 1e6


PATHS: dict[str, Verify] = {"library": library_verify_request, "sigparse": verify_request}


def measure(requests: int, runs: int) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    for case in _cases():
        for verify in PATHS.values():
            verify(**case.request)  # accepted by both, and the key loaded
        timings: dict[str, list[float]] = {name: [] for name in PATHS}
        for _ in range(runs):
            for name, verify in PATHS.items():
                timings[name].append(_time_us(verify, case.request, requests))
        medians = {name: statistics.median(t) for name, t in timings.items()}
        report[case.name] = {
            "us_per_request_runs": timings,
            "us_per_request": medians,
            "speedup": medians["library"] / medians["sigparse"],
        }
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sigverify", description=__doc__)
    parser.add_argument("--requests", type=int, default=REQUESTS_DEFAULT)
    parser.add_argument("--runs", type=int, default=RUNS_DEFAULT)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    warn_if_busy(lambda line: print(line, file=sys.stderr, flush=True))
    before = machine()
    report = measure(args.requests, args.runs)
    if args.json:
        print(
            json.dumps(
                {
                    "machine": before,
                    "load_after": machine()["load_average_1m"],
                    "requests": args.requests,
                    "runs": args.runs,
                    "cases": report,
                },
                indent=2,
            )
        )
        return 0
    print(
        f"{args.requests} verifications per run, median of {args.runs} runs; "
        f"load average {before['load_average_1m']} before"
    )
    for name, row in report.items():
        runs = " / ".join(
            f"{a:.0f}:{b:.0f}" for a, b in zip(*row["us_per_request_runs"].values(), strict=True)
        )
        us = row["us_per_request"]
        print(
            f"{name:16} library {us['library']:7.1f} us  sigparse {us['sigparse']:6.1f} us"
            f"  x{row['speedup']:.1f}  (runs library:sigparse {runs})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
