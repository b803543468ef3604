"""RFC 9421 HTTP Message Signatures with the Village Ledger profile.

Every request (GET too) carries ``Signature-Input`` and ``Signature`` with one signature
tagged ``vledger`` that:

* covers ``"@method" "@target-uri"``; plus ``"content-type" "content-digest"`` when the
  request has a body; plus ``"idempotency-key"`` when that header is present (other
  plain components may be covered too: any header field present, ``"@authority"``,
  ``"@scheme"``, ``"@path"``, ``"@query"``, ``"@request-target"``);
* has ``created`` (refused when older than 300 s or more than 60 s ahead of the
  server's clock), ``keyid``, ``alg`` equal to the key's registered algorithm
  (``ed25519`` or ``hmac-sha256``) and ``tag="vledger"``; ``nonce`` is allowed (not
  tracked: a replay inside the window is answered from the idempotency records), and
  ``expires``, when present, must not have passed;
* ``Content-Digest`` (RFC 9530) is ``sha-256`` only and is checked against the raw body
  bytes before anything parses them.

Verification parses the two fields once (:mod:`api.sigparse`, strict RFC 8941 and the
profile), builds the signature base of RFC 9421 section 2.5 here and checks it with
``cryptography`` (Ed25519) or :func:`hmac.compare_digest` (HMAC-SHA256). The
``http-message-signatures`` library is not on this path; it still signs
(:func:`sign_request`, the client side) and is the independent cross-check of every
test vector (``tests/test_signature_parser.py``). Where the two differ on purpose:

* a label repeated in ``Signature-Input`` or ``Signature`` keeps its last value
  (RFC 8941 section 4.2.2); the library refuses the field;
* a field longer than :data:`api.sigparse.SIGNATURE_FIELD_LENGTH_MAX` is refused;
* RFC 9651 Dates and Display Strings are not RFC 8941: refused anywhere in the fields.

Each refusal is an :class:`ApiError` (401) whose ``code`` says why: ``signature_missing``,
``signature_invalid``, ``signature_coverage``, ``digest_mismatch``, ``key_unknown``,
``signature_expired``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSigner,
    MappingKeyResolver,
    algorithms,
)

from api import sigparse
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
DIGEST_ALGORITHM = "sha-256"


class Sha256Digest(ContentDigest):
    """RFC 9530 Content-Digest, ``sha-256`` only (the signing side, and tests)."""

    algorithm = DIGEST_ALGORITHM
    _hashers: ClassVar[dict[str, Any]] = {DIGEST_ALGORITHM: hashlib.sha256}


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


@dataclass(frozen=True, slots=True)
class Verified:
    """A request whose signature verified: who signed it, and the signed parameters."""

    key: ApiKey
    created_s: int
    nonce: str | None


def _refuse(code: str, detail: str) -> ApiError:
    return ApiError(code, detail)


# -- field values (RFC 9421 section 2.1) ------------------------------------------------

_OBS_FOLD = re.compile(r"(?:(?<![ \t])[ \t]+)?\r\n[ \t]+")


def _normalised(value: str) -> str:
    """Outer whitespace trimmed, obsolete line folding replaced by one space."""
    if "\r\n" in value:
        value = _OBS_FOLD.sub(" ", value)
    return value.strip(" \t")


def combined_fields(fields: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Each field name (lower case) and its field lines, normalised, joined by ", "."""
    lines: dict[str, list[str]] = {}
    for name, value in fields:
        lines.setdefault(name.lower(), []).append(_normalised(value))
    return {name: ", ".join(values) for name, values in lines.items()}


def required_components(fields: Sequence[tuple[str, str]], body: bytes) -> list[str]:
    return _required(combined_fields(fields), body)


def _required(combined: Mapping[str, str], body: bytes) -> list[str]:
    required = list(BASE_COMPONENTS)
    if body or "content-type" in combined:
        required += BODY_COMPONENTS
    elif "content-digest" in combined:
        required.append("content-digest")
    if IDEMPOTENCY_COMPONENT in combined:
        required.append(IDEMPOTENCY_COMPONENT)
    return required


# -- the target URI and the derived components (RFC 9421 section 2.2) -------------------

# RFC 3986 section 3: an absolute URI with an authority (RFC 6874 zone ids allowed in an
# IPv6 literal); userinfo and a fragment are allowed by the grammar and are not part of
# the request target (dropped below). Nothing is decoded, lowered or completed here.
_UNRESERVED = r"A-Za-z0-9._~\-"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_IP_LITERAL = (
    rf"\[(?:[0-9A-Fa-f:.]+(?:%25(?:[{_UNRESERVED}]|{_PCT})+)?"
    rf"|[vV][0-9A-Fa-f]+\.[{_UNRESERVED}{_SUB_DELIMS}:]+)\]"
)
_URI = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://"
    rf"(?:(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*@)?"
    rf"(?P<host>{_IP_LITERAL}|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})+)"
    r"(?::(?P<port>[0-9]*))?"
    rf"(?P<path>(?:/{_PCHAR}*)*)"
    rf"(?:\?(?P<query>(?:{_PCHAR}|[/?])*))?"
    rf"(?:\#(?:{_PCHAR}|[/?])*)?"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


@dataclass(frozen=True, slots=True)
class _Target:
    method: str
    scheme: str
    host: str
    port: str | None
    path: str
    query: str | None

    def derived(self, name: str) -> str:
        """The value of derived component ``name``; KeyError when it is not one."""
        return _DERIVED[name](self)

    @property
    def authority(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def query_suffix(self) -> str:
        return "" if self.query is None else "?" + self.query

    @property
    def path_or_root(self) -> str:
        return self.path or "/"


def _target(method: str, url: str) -> _Target:
    if method != method.upper():
        raise _refuse("signature_invalid", "the method must be upper case")
    match = _URI.fullmatch(url)
    if match is None or not _ipv6_valid(match["host"]):
        raise _refuse("signature_invalid", "the target URI is not an absolute URI")
    return _Target(
        method, match["scheme"], match["host"], match["port"], match["path"], match["query"]
    )


def _ipv6_valid(host: str) -> bool:
    if not host.startswith("[") or host[1] in "vV":
        return True
    try:
        ipaddress.IPv6Address(host[1:-1].partition("%25")[0])
    except ValueError:
        return False
    return True


def _normal_authority(t: _Target) -> str:
    port: str | None = t.port
    if port and port.lstrip("0") == _DEFAULT_PORTS.get(t.scheme.lower()):
        port = None
    return f"{t.host.lower()}:{port}" if port else t.host.lower()


_DERIVED: dict[str, Callable[[_Target], str]] = {
    "@method": lambda t: t.method,
    "@target-uri": lambda t: (
        f"{t.scheme}://{t.authority}"
        f"{t.path if t.method == 'OPTIONS' else t.path_or_root}{t.query_suffix}"
    ),
    "@authority": _normal_authority,
    "@scheme": lambda t: t.scheme.lower(),
    "@request-target": lambda t: (
        t.authority if t.method == "CONNECT" else t.path_or_root + t.query_suffix
    ),
    "@path": lambda t: t.path_or_root,
    "@query": lambda t: "?" + (t.query or ""),
}


# -- the signature base (RFC 9421 section 2.5) ------------------------------------------


def signature_base(
    *,
    method: str,
    url: str,
    combined: Mapping[str, str],
    components: Sequence[str],
    params: str,
) -> bytes:
    """The bytes signed: one line per covered component, then ``"@signature-params"``
    with ``params`` (the serialised inner list, :func:`api.sigparse.signature_params`).

    ``combined`` is :func:`combined_fields` of the request; a component that is
    repeated, unknown, absent or whose value cannot be put on one ASCII line is
    refused (``signature_invalid``).
    """
    target = _target(method, url)
    if len(set(components)) != len(components):
        raise _refuse("signature_invalid", "a component is covered twice")
    lines = [f'"{name}": {_component_value(name, target, combined)}' for name in components]
    lines.append(f'"@signature-params": {params}')
    base = "\n".join(lines)
    if not base.isascii():
        raise _refuse("signature_invalid", "the signature base is not ASCII")
    return base.encode("ascii")


def _component_value(name: str, target: _Target, combined: Mapping[str, str]) -> str:
    if name != name.lower() or '"' in name or "\\" in name:
        raise _refuse("signature_invalid", f'component "{name}" is not a lower-case name')
    if name.startswith("@"):
        try:
            value = target.derived(name)
        except KeyError:
            raise _refuse("signature_invalid", f"{name} is not a request component") from None
        if value and (not value.isprintable() or value != value.strip(" ")):
            raise _refuse("signature_invalid", f"{name} is not one printable line")
        return value
    field = combined.get(name)
    if field is None:
        raise _refuse("signature_invalid", f'covered field "{name}" is not in the request')
    if "\r" in field or "\n" in field or not field.replace("\t", " ").isprintable():
        raise _refuse("signature_invalid", f'covered field "{name}" has control characters')
    return field


# -- verification -----------------------------------------------------------------------


def public_key(key: ApiKey) -> Any:
    if key.alg is Alg.ED25519:
        return _ed25519_public(key.material)
    return key.material


@functools.lru_cache(maxsize=PUBLIC_KEYS_CACHED_MAX)
def _ed25519_public(material: bytes) -> ed25519.Ed25519PublicKey:
    return ed25519.Ed25519PublicKey.from_public_bytes(material)


def _signature_verifies(key: ApiKey, signature: bytes, base: bytes) -> bool:
    if key.alg is Alg.ED25519:
        try:
            _ed25519_public(key.material).verify(signature, base)
        except CryptoInvalidSignature:
            return False
        return True
    expected = hmac.new(key.material, base, hashlib.sha256).digest()
    return hmac.compare_digest(expected, signature)


def _check_digest(combined: Mapping[str, str], body: bytes) -> None:
    """RFC 9530 Content-Digest: ``sha-256`` members only, each the digest of ``body``."""
    value = combined.get("content-digest")
    if value is None:
        raise _refuse("digest_mismatch", "a body needs a Content-Digest (sha-256)")
    try:
        members = sigparse.parse_dictionary(value, refuse_duplicates=True)
    except sigparse.StructuredFieldError as exc:
        raise _refuse("digest_mismatch", f"malformed Content-Digest: {exc}") from None
    if not members:
        raise _refuse("digest_mismatch", "Content-Digest must contain a digest")
    actual = hashlib.sha256(body).digest()
    for algorithm, member in members.items():
        if algorithm != DIGEST_ALGORITHM:
            raise _refuse("digest_mismatch", f"unsupported digest algorithm {algorithm!r}")
        if not isinstance(member, sigparse.Item) or not isinstance(member.value, bytes):
            raise _refuse("digest_mismatch", "a digest is a byte sequence")
        if not hmac.compare_digest(member.value, actual):
            raise _refuse("digest_mismatch", "Content-Digest does not match the body")


def _check_window(
    params: Mapping[str, int | str], *, now_s: int, age_max_s: int, ahead_max_s: int
) -> int:
    """``created`` (and ``expires``) against the server's clock; ``created``."""
    created = params.get("created")
    if type(created) is not int:
        raise _refuse("signature_expired", 'the signature needs an integer "created" parameter')
    if created < now_s - age_max_s:
        raise _refuse("signature_expired", f"created is more than {age_max_s} s old")
    if created > now_s + ahead_max_s:
        raise _refuse("signature_expired", f"created is more than {ahead_max_s} s in the future")
    expires = params.get("expires")
    if expires is not None and (type(expires) is not int or expires < now_s):
        raise _refuse("signature_expired", "the signature has expired")
    return created


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
    combined = combined_fields(fields)
    signature_input = combined.get("signature-input")
    signature = combined.get("signature")
    if signature_input is None or signature is None:
        raise _refuse("signature_missing", "Signature-Input and Signature are required")
    chosen = sigparse.select_signature(signature_input, signature, tag=tag)
    required = _required(combined, body)
    missing = [c for c in required if c not in chosen.components]
    if missing:
        raise _refuse("signature_coverage", f"the signature must cover {', '.join(missing)}")
    if body or "content-digest" in combined:
        _check_digest(combined, body)
    key = lookup(chosen.key_id)
    if key is None or not key.active:
        raise _refuse("key_unknown", "unknown or revoked key id")
    if chosen.params.get("alg") != key.alg.value:
        raise _refuse("signature_invalid", f'"alg" must be present and equal "{key.alg.value}"')
    created_s = _check_window(
        chosen.params, now_s=int(now.timestamp()), age_max_s=age_max_s, ahead_max_s=ahead_max_s
    )
    base = signature_base(
        method=method,
        url=url,
        combined=combined,
        components=chosen.components,
        params=sigparse.signature_params(chosen.components, chosen.params),
    )
    if not _signature_verifies(key, chosen.signature, base):
        raise _refuse("signature_invalid", "the signature does not verify")
    nonce = chosen.params.get("nonce")
    return Verified(key, created_s, nonce if isinstance(nonce, str) else None)


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
