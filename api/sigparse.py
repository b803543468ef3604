"""``Signature-Input`` and ``Signature`` (RFC 9421) parsed once, strictly, in our profile.

Two layers, each a plain function (the fuzzing entry points):

* :func:`parse_dictionary` parses an RFC 8941 Dictionary and nothing else: every bare
  item type of RFC 8941 (Integer, Decimal, String, Token, Byte Sequence, Boolean),
  none of RFC 9651's additions (Date, Display String). It fails exactly where RFC 8941
  says "fail parsing" and raises :class:`StructuredFieldError`. A key seen twice keeps
  its first position and its last value, as RFC 8941 section 4.2.2 says ("overwrite its
  value"), for Dictionary members and for Parameters alike; ``refuse_duplicates``
  refuses a repeated Dictionary key instead (Content-Digest, where today's check
  refused one).
* :func:`select_signature` applies the Village Ledger profile to both fields and
  returns the one signature tagged ``tag``; it raises :class:`ApiError` only, with the
  problem codes the service has always used: ``signature_invalid`` for anything
  malformed or ambiguous, ``signature_coverage`` for a covered component that is not a
  plain name.

The profile: each Signature-Input member is an Inner List; where a member carries
``created``/``expires`` they are Integers and ``alg``/``keyid``/``nonce``/``tag`` are
Strings; the Signature field has the same labels, each a Byte Sequence. The selected
member covers only plain component names (Strings without parameters), names no
parameter outside those six and has a non-empty ``keyid``. Both fields are at most
:data:`SIGNATURE_FIELD_LENGTH_MAX` characters.

:func:`signature_params` serialises the selected member again (RFC 8941 section 4.1),
which is the ``"@signature-params"`` value of RFC 9421 section 2.3: the canonical
serialisation of what was parsed, so ``created=01`` is signed as ``created=1``, as
every conforming signer and the ``http-message-signatures`` library build it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from decimal import Decimal

from api.problems import ApiError
from ledger.core.errors import EdgeError

__all__ = [
    "SIGNATURE_FIELD_LENGTH_MAX",
    "SIGNATURE_PARAMETERS",
    "BareItem",
    "InnerList",
    "Item",
    "Member",
    "Selected",
    "StructuredFieldError",
    "Token",
    "parse_dictionary",
    "select_signature",
    "signature_params",
]

SIGNATURE_FIELD_LENGTH_MAX = 4096
"""Characters in the combined Signature-Input (or Signature) field; ours use ~250."""
SIGNATURE_PARAMETERS = frozenset({"alg", "created", "expires", "keyid", "nonce", "tag"})
"""RFC 9421 section 2.3: the signature parameters there are; no other is accepted."""
_INTEGER_PARAMETERS = frozenset({"created", "expires"})
_STRING_PARAMETERS = frozenset({"alg", "keyid", "nonce", "tag"})

_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*")
_NUMBER = re.compile(r"-?([0-9]+)(\.[0-9]*)?")
_STRING_RUN = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/=]*")
_NUMBER_FIRST = frozenset("-0123456789")
_INTEGER_DIGITS_MAX = 15
_DECIMAL_INTEGER_DIGITS_MAX = 12
_DECIMAL_FRACTION_DIGITS_MAX = 3


class StructuredFieldError(EdgeError, ValueError):
    """The text is not an RFC 8941 Dictionary (the message says where and why)."""


@dataclass(frozen=True, slots=True)
class Token:
    """An RFC 8941 Token: a bare word, distinct from a String with the same text."""

    text: str


BareItem = int | Decimal | str | Token | bytes | bool


@dataclass(frozen=True, slots=True)
class Item:
    value: BareItem
    params: dict[str, BareItem]


@dataclass(frozen=True, slots=True)
class InnerList:
    items: tuple[Item, ...]
    params: dict[str, BareItem]


Member = Item | InnerList


class _Cursor:
    """The text and a position in it; every ``fail`` names the position."""

    __slots__ = ("at", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def fail(self, why: str) -> StructuredFieldError:
        return StructuredFieldError(f"{why} at character {self.at}")

    def skip(self, blanks: str) -> None:
        while self.at < len(self.text) and self.text[self.at] in blanks:
            self.at += 1


def parse_dictionary(text: str, *, refuse_duplicates: bool = False) -> dict[str, Member]:
    """RFC 8941 section 4.2 with section 4.2.2 (Dictionary) as the top-level type."""
    if len(text) > SIGNATURE_FIELD_LENGTH_MAX:
        raise StructuredFieldError(f"longer than {SIGNATURE_FIELD_LENGTH_MAX} characters")
    cur = _Cursor(text)
    cur.skip(" ")
    members: dict[str, Member] = {}
    while cur.at < len(text):
        key = _key(cur)
        if refuse_duplicates and key in members:
            raise cur.fail(f"duplicate key {key!r}")
        if cur.peek() == "=":
            cur.at += 1
            members[key] = _inner_list(cur) if cur.peek() == "(" else _item(cur)
        else:
            members[key] = Item(True, _params(cur))
        cur.skip(" \t")
        if cur.at == len(text):
            break
        if cur.peek() != ",":
            raise cur.fail("expected ',' after a member")
        cur.at += 1
        cur.skip(" \t")
        if cur.at == len(text):
            raise cur.fail("trailing ','")
    return members


def _key(cur: _Cursor) -> str:
    match = _KEY.match(cur.text, cur.at)
    if match is None:
        raise cur.fail("expected a key (lcalpha or '*' first)")
    cur.at = match.end()
    return match.group()


def _params(cur: _Cursor) -> dict[str, BareItem]:
    params: dict[str, BareItem] = {}
    while cur.peek() == ";":
        cur.at += 1
        cur.skip(" ")
        key = _key(cur)
        value: BareItem = True
        if cur.peek() == "=":
            cur.at += 1
            value = _bare_item(cur)
        params[key] = value
    return params


def _inner_list(cur: _Cursor) -> InnerList:
    cur.at += 1  # "("
    items: list[Item] = []
    while True:
        cur.skip(" ")
        if cur.peek() == ")":
            cur.at += 1
            return InnerList(tuple(items), _params(cur))
        items.append(_item(cur))
        if cur.peek() not in (" ", ")"):  # "" at the end
            raise cur.fail("expected ' ' or ')' in an inner list")


def _item(cur: _Cursor) -> Item:
    value = _bare_item(cur)
    return Item(value, _params(cur))


def _bare_item(cur: _Cursor) -> BareItem:
    first = cur.peek()
    if first == '"':
        return _string(cur)
    if first == ":":
        return _byte_sequence(cur)
    if first == "?":
        return _boolean(cur)
    if first in _NUMBER_FIRST:
        return _number(cur)
    match = _TOKEN.match(cur.text, cur.at)
    if match is None:
        raise cur.fail("expected an item")
    cur.at = match.end()
    return Token(match.group())


def _number(cur: _Cursor) -> int | Decimal:
    match = _NUMBER.match(cur.text, cur.at)
    if match is None:
        raise cur.fail("expected a digit")
    whole, fraction = match.group(1), match.group(2)
    if fraction is None:
        if len(whole) > _INTEGER_DIGITS_MAX:
            raise cur.fail("integer longer than 15 digits")
        cur.at = match.end()
        return int(match.group())
    if len(whole) > _DECIMAL_INTEGER_DIGITS_MAX:
        raise cur.fail("decimal with more than 12 integer digits")
    if not 1 < len(fraction) <= 1 + _DECIMAL_FRACTION_DIGITS_MAX:
        raise cur.fail("decimal needs 1 to 3 fractional digits")
    cur.at = match.end()
    return Decimal(match.group())


def _string(cur: _Cursor) -> str:
    cur.at += 1  # the opening DQUOTE
    parts: list[str] = []
    while True:
        run = _STRING_RUN.match(cur.text, cur.at)
        if run is not None:
            parts.append(run.group())
            cur.at = run.end()
        char = cur.peek()
        if char == '"':
            cur.at += 1
            return "".join(parts)
        if char != "\\" or cur.text[cur.at + 1 : cur.at + 2] not in ('"', "\\"):
            raise cur.fail('a string holds printable ASCII, with only \\" and \\\\ escaped')
        parts.append(cur.text[cur.at + 1])
        cur.at += 2


def _byte_sequence(cur: _Cursor) -> bytes:
    end = cur.text.find(":", cur.at + 1)
    if end < 0:
        raise cur.fail("unterminated byte sequence")
    content = cur.text[cur.at + 1 : end]
    if _BASE64.fullmatch(content) is None:
        raise cur.fail("a byte sequence holds base64 characters only")
    # RFC 8941 section 4.2.7: missing padding is not a failure; misplaced padding is.
    data = content.rstrip("=")
    if len(content) - len(data) > 2 or "=" in data or (content and not data):
        raise cur.fail("misplaced base64 padding")
    try:
        value = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except binascii.Error:
        raise cur.fail("not base64") from None
    cur.at = end + 1
    return value


def _boolean(cur: _Cursor) -> bool:
    digit = cur.text[cur.at + 1 : cur.at + 2]
    if digit not in ("0", "1"):
        raise cur.fail("a boolean is ?0 or ?1")
    cur.at += 2
    return digit == "1"


# -- the profile ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selected:
    """The one signature of the profile: its label, covered names, parameters, bytes."""

    label: str
    components: tuple[str, ...]
    params: dict[str, int | str]
    signature: bytes

    @property
    def key_id(self) -> str:
        return str(self.params["keyid"])


def _invalid(detail: str) -> ApiError:
    return ApiError("signature_invalid", detail)


def select_signature(signature_input: str, signature: str, *, tag: str) -> Selected:
    """The one signature tagged ``tag`` in the combined field values, checked against
    the profile; :class:`ApiError` (``signature_invalid``/``signature_coverage``)."""
    inputs = _parse_field(signature_input, "Signature-Input")
    signatures = _parse_field(signature, "Signature")
    if inputs.keys() != signatures.keys():
        raise _invalid("Signature-Input and Signature name different labels")
    chosen: list[tuple[str, InnerList, bytes]] = []
    for label, member in inputs.items():
        checked, signed = _checked(label, member, signatures[label])
        if checked.params.get("tag") == tag:
            chosen.append((label, checked, signed))
    if len(chosen) != 1:
        raise _invalid(f'expected exactly one signature with tag="{tag}"')
    label, member, signed = chosen[0]
    return Selected(label, _plain_names(member), _profile_params(member), signed)


def _parse_field(value: str, name: str) -> dict[str, Member]:
    try:
        return parse_dictionary(value)
    except StructuredFieldError as exc:
        raise _invalid(f"malformed {name}: {exc}") from None


def _checked(label: str, member: Member, signature: Member) -> tuple[InnerList, bytes]:
    """RFC 9421 section 4: every member, ours or not, is an inner list whose known
    parameters have their types, with a byte sequence under the same label."""
    if not isinstance(member, InnerList):
        raise _invalid(f'Signature-Input member "{label}" is not an inner list')
    if not isinstance(signature, Item) or not isinstance(signature.value, bytes):
        raise _invalid(f'Signature member "{label}" is not a byte sequence')
    for name, value in member.params.items():
        if name in _INTEGER_PARAMETERS and type(value) is not int:
            raise _invalid(f'"{name}" must be an integer')
        if name in _STRING_PARAMETERS and not isinstance(value, str):
            raise _invalid(f'"{name}" must be a string')
    return member, signature.value


def _plain_names(member: InnerList) -> tuple[str, ...]:
    names: list[str] = []
    for item in member.items:
        if not isinstance(item.value, str) or item.params:
            raise ApiError("signature_coverage", "covered components must be plain names")
        names.append(item.value)
    return tuple(names)


def _profile_params(member: InnerList) -> dict[str, int | str]:
    params: dict[str, int | str] = {}
    for name, value in member.params.items():
        if name not in SIGNATURE_PARAMETERS or not isinstance(value, int | str):
            raise _invalid(f'unexpected signature parameter "{name}"')
        params[name] = value
    keyid = params.get("keyid")
    if not isinstance(keyid, str) or not keyid:
        raise _invalid('the signature needs a "keyid" string')
    return params


def signature_params(components: tuple[str, ...], params: dict[str, int | str]) -> str:
    """RFC 8941 section 4.1.1.1 (Inner List) of the selected member: the value of
    ``"@signature-params"``."""
    names = " ".join(_serialise(name) for name in components)
    return f"({names})" + "".join(f";{k}={_serialise(v)}" for k, v in params.items())


def _serialise(value: int | str) -> str:
    if isinstance(value, int):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
