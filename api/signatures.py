"""RFC 9421 HTTP Message Signatures with the Village Ledger profile.

Every request (GET too) carries ``Signature-Input`` and ``Signature`` with one signature
tagged ``vledger`` that:

* covers ``"@method" "@target-uri"``; plus ``"content-type" "content-digest"`` when the
  request has a body; plus ``"idempotency-key"`` when that header is present;
* has ``created`` (refused when older than 300 s or more than 60 s ahead of the
  server's clock), ``keyid``, ``alg`` equal to the key's registered algorithm
  (``ed25519`` or ``hmac-sha256``) and ``tag="vledger"``; ``nonce`` is allowed (not
  tracked: a replay inside the window is answered from the idempotency records);
* ``Content-Digest`` (RFC 9530) is ``sha-256`` only and is checked against the raw body
  bytes before anything parses them.

The ``http-message-signatures`` library does the RFC 9421 work (structured fields, the
signature base, the algorithms, digest verification), with its defaults tightened here:

* its time window is one symmetric skew around a one-day default age; ours is
  asymmetric (300 s back, 60 s ahead) and on the server's injectable clock, so
  :meth:`_Verifier.validate_created_and_expires` is replaced;
* it accepts ``sha-512`` digests too; :class:`Sha256Digest` accepts only ``sha-256``;
* it picks the algorithm before it sees a key id, while ours depends on the key:
  the key id is read from ``Signature-Input`` first (with ``http_sf``, the library's
  own parser), the key looked up, and a verifier built for that key's algorithm;
* required coverage and the digest are checked before the library runs too, only so
  that each refusal gets its own problem ``code``; the library checks them again.

Nothing here needed ``cryptography`` directly beyond loading keys.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import http_sf
from cryptography.hazmat.primitives.asymmetric import ed25519
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)

from api.principals import Alg, ApiKey
from api.problems import ApiError

ALGORITHMS: dict[Alg, Any] = {
    Alg.ED25519: algorithms.ED25519,
    Alg.HMAC_SHA256: algorithms.HMAC_SHA256,
}
BASE_COMPONENTS = ("@method", "@target-uri")
BODY_COMPONENTS = ("content-type", "content-digest")
IDEMPOTENCY_COMPONENT = "idempotency-key"
SIGNATURE_LABEL = "vledger"
PUBLIC_KEYS_CACHED_MAX = 10_000
"""Ed25519 public keys kept loaded (loading one costs as much as a verification)."""


class Sha256Digest(ContentDigest):
    """RFC 9530 Content-Digest, ``sha-256`` only."""

    algorithm = "sha-256"
    _hashers: ClassVar[dict[str, Any]] = {"sha-256": hashlib.sha256}


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


class _WritableHeaders:
    """A plain header dict (lower-case names) the signer writes into."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields

    def items(self) -> Iterable[tuple[str, str]]:
        return iter(list(self.fields.items()))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.fields))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.fields

    def __setitem__(self, name: str, value: str) -> None:
        self.fields[name.lower()] = value

    def __delitem__(self, name: str) -> None:
        del self.fields[name.lower()]


@dataclass
class _Message:
    method: str
    url: str
    headers: Any


class _Verifier(HTTPMessageVerifier):
    content_digest_class = Sha256Digest

    def __init__(self, alg: Any, key: Any, *, now_s: int, age_max_s: int, ahead_max_s: int):
        super().__init__(
            signature_algorithm=alg,
            key_resolver=MappingKeyResolver(public_keys={"k": key}, private_keys={}),
        )
        self._key = key
        self._now_s = now_s
        self._age_max_s = age_max_s
        self._ahead_max_s = ahead_max_s
        self.key_resolver = _OneKey(key)

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


class _OneKey(MappingKeyResolver):
    def __init__(self, key: Any) -> None:
        super().__init__(public_keys={}, private_keys={})
        self._key = key

    def resolve_public_key(self, key_id: str) -> Any:
        return self._key


@dataclass(frozen=True, slots=True)
class Verified:
    """A request whose signature verified: who signed it, and the signed parameters."""

    key: ApiKey
    created_s: int
    nonce: str | None


def _combined(fields: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v.strip(" \t") for f, v in fields if f.lower() == name]
    return ", ".join(values) if values else None


def _refuse(code: str, detail: str) -> ApiError:
    return ApiError(code, detail)


def _select(fields: Sequence[tuple[str, str]], tag: str) -> tuple[list[str], dict[str, Any]]:
    """The covered component names and parameters of the one signature tagged ``tag``."""
    raw = _combined(fields, "signature-input")
    if raw is None or _combined(fields, "signature") is None:
        raise _refuse("signature_missing", "Signature-Input and Signature are required")
    try:
        parsed = http_sf.parse(raw.encode("latin-1"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise _refuse("signature_invalid", f"malformed Signature-Input: {exc}") from None
    if not isinstance(parsed, dict):
        raise _refuse("signature_invalid", "malformed Signature-Input")
    chosen: list[tuple[list[str], dict[str, Any]]] = []
    for member in parsed.values():
        if not isinstance(member, tuple) or len(member) != 2 or not isinstance(member[0], list):
            raise _refuse("signature_invalid", "a Signature-Input member is not an inner list")
        items, params = member
        if params.get("tag") != tag:
            continue
        names: list[str] = []
        for item in items:
            if not isinstance(item, tuple) or not isinstance(item[0], str) or item[1]:
                raise _refuse("signature_coverage", "covered components must be plain names")
            names.append(item[0])
        chosen.append((names, dict(params)))
    if len(chosen) != 1:
        raise _refuse("signature_invalid", f'expected exactly one signature with tag="{tag}"')
    return chosen[0]


def required_components(fields: Sequence[tuple[str, str]], body: bytes) -> list[str]:
    required = list(BASE_COMPONENTS)
    if body or _combined(fields, "content-type") is not None:
        required += BODY_COMPONENTS
    elif _combined(fields, "content-digest") is not None:
        required.append("content-digest")
    if _combined(fields, IDEMPOTENCY_COMPONENT) is not None:
        required.append(IDEMPOTENCY_COMPONENT)
    return required


def public_key(key: ApiKey) -> Any:
    if key.alg is Alg.ED25519:
        return _ed25519_public(key.material)
    return key.material


@functools.lru_cache(maxsize=PUBLIC_KEYS_CACHED_MAX)
def _ed25519_public(material: bytes) -> ed25519.Ed25519PublicKey:
    return ed25519.Ed25519PublicKey.from_public_bytes(material)


def verify_request(
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
    """Verify the request's ``vledger`` signature; :class:`ApiError` (401) if it fails."""
    names, params = _select(fields, tag)
    key_id = params.get("keyid")
    if not isinstance(key_id, str) or not key_id:
        raise _refuse("signature_invalid", 'the signature needs a "keyid" string')
    missing = [c for c in required_components(fields, body) if c not in names]
    if missing:
        raise _refuse("signature_coverage", f"the signature must cover {', '.join(missing)}")
    digest = _combined(fields, "content-digest")
    if body or digest is not None:
        if digest is None:
            raise _refuse("digest_mismatch", "a body needs a Content-Digest (sha-256)")
        try:
            Sha256Digest.verify(digest, body)
        except InvalidSignature as exc:
            raise _refuse("digest_mismatch", str(exc)) from None
    key = lookup(key_id)
    if key is None or not key.active:
        raise _refuse("key_unknown", "unknown or revoked key id")
    if params.get("alg") != key.alg.value:
        raise _refuse("signature_invalid", f'"alg" must be present and equal "{key.alg.value}"')
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
        raise _refuse("signature_expired", str(exc)) from None
    except (InvalidSignature, HTTPMessageSignaturesException) as exc:
        raise _refuse("signature_invalid", str(exc) or "the signature does not verify") from None
    if len(results) != 1:
        raise _refuse("signature_invalid", "expected exactly one verified signature")
    nonce = params.get("nonce")
    return Verified(key, int(params["created"]), nonce if isinstance(nonce, str) else None)


def sign_request(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    key_id: str,
    alg: Alg,
    private_key: ed25519.Ed25519PrivateKey | bytes,
    created: datetime | None = None,
    nonce: str | None = None,
    tag: str = "vledger",
) -> dict[str, str]:
    """The request's headers (lower-case names) with Content-Digest and the signature.

    ``headers`` holds Content-Type (with a body) and Idempotency-Key (on a POST) already;
    it is not changed.
    """
    fields = {name.lower(): value for name, value in headers.items()}
    covered = list(BASE_COMPONENTS)
    with_body = bool(body) or "content-type" in fields
    if with_body:
        fields["content-digest"] = Sha256Digest.create(body)
        covered += BODY_COMPONENTS
    if IDEMPOTENCY_COMPONENT in fields:
        covered.append(IDEMPOTENCY_COMPONENT)
    signer = HTTPMessageSigner(
        signature_algorithm=ALGORITHMS[alg],
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: private_key}),
    )
    message = _Message(method=method.upper(), url=url, headers=_WritableHeaders(fields))
    signer.sign(
        message,
        key_id=key_id,
        created=created or datetime.fromtimestamp(time.time(), UTC),
        nonce=nonce,
        label=SIGNATURE_LABEL,
        tag=tag,
        covered_component_ids=covered,
        body=body if with_body else None,
        use_existing_digest=with_body,
    )
    return fields
