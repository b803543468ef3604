"""Enrollment codes: how a key made on a phone or in a browser becomes a principal's key.

An operator issues a one-time code for one principal (an agent for the station app; an
auditor or operator for the console): 20 characters of Crockford base32 shown as
``XXXX-XXXX-XXXX-XXXX-XXXX`` (and as a QR code by the edges). The first 4 characters are
a lookup prefix stored in clear; the other 16 are 80 random bits. The database keeps
only the SHA-256 of the whole code (80 random bits make a salt unnecessary: nothing can
be guessed offline faster than online). A code is valid :data:`CODE_TTL_S` (15 minutes:
redeemable at 899 s, expired at 900 s, on the ledger's clock), is used once, and is void
after :data:`TRIES_WRONG_MAX` wrong codes that share its lookup prefix; issuing a new code
for a principal voids its older open ones.

Redeeming a code with a new raw Ed25519 public key registers that key as the principal's
API key (:func:`ledger.flows.principals.add_key_for_in`) and, for an agent, as its
offline device key with a zero allowance (:func:`ledger.flows.offline.register_device_in`;
the app raises the allowance later), in one transaction with the code's use.

Proof of possession (checked by the API, ``api/routes/enrollment.py``): the redeem
request is signed with RFC 9421 in the service's usual profile by the NEW private key,
with ``keyid`` equal to :func:`thumbprint` of the public key in the body
(``enroll-`` + unpadded base64url of SHA-256 over the 32 raw public-key bytes), which a
browser computes with ``crypto.subtle.digest``. The server verifies the signature with
the public key carried in the body before the code is looked at; the key id it assigns
(``k_...``) is in the answer, and every later request is signed with that.

Events (no code in any payload): ``enrollment.issued``, ``enrollment.redeemed``,
``enrollment.failed`` (with ``reason``).
"""

from ledger.flows.enrollment.repository import CodeState
from ledger.flows.enrollment.service import (
    ALPHABET,
    CODE_LENGTH,
    CODE_TTL_S,
    ENROLLABLE,
    TRIES_WRONG_MAX,
    Enrolled,
    Issued,
    issue,
    issue_in,
    normalise,
    redeem,
    thumbprint,
    void_codes,
)

__all__ = [
    "ALPHABET",
    "CODE_LENGTH",
    "CODE_TTL_S",
    "ENROLLABLE",
    "TRIES_WRONG_MAX",
    "CodeState",
    "Enrolled",
    "Issued",
    "issue",
    "issue_in",
    "normalise",
    "redeem",
    "thumbprint",
    "void_codes",
]
