"""Key management for the command line: ``vledger keys create`` and ``vledger keys revoke``.

``create_key`` writes the private half to a new file readable by its owner only
(mode 0600, refused if the file exists) and registers the public half (or, for HMAC,
the secret) with the principal. Nothing secret is printed or logged.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from api.principals import Alg, Role, add_key, revoke_key
from ledger import open_ledger
from ledger.flows.principals.operators import add_command_line_key

HMAC_SECRET_BYTES = 32


def _claim_file(path: Path) -> int:
    """``path`` created empty with mode 0600 whatever the umask (refused if it exists),
    before the key is registered, so that a key is never registered without its file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def create_key(
    ledger_url: str,
    role: str,
    name: str,
    alg: str = "ed25519",
    out_path: str | Path = "",
    *,
    setup_rules: bool = True,
) -> dict[str, str]:
    """Create the principal (role, name) if new, add a key, write its private half.

    Answers ``{"key_id", "principal_id", "role"}``. Raises ``ValueError`` for an unknown
    role or algorithm, an agent with HMAC, an existing ``out_path``, or an operator the
    command line may not make or add a key to (the first two only, at setup: see
    :mod:`ledger.flows.principals.operators`). ``setup_rules=False`` skips that rule: for
    tests' harnesses, which play many operators on a throwaway database.
    """
    role_ = Role(role)
    alg_ = Alg(alg)
    path = Path(out_path)
    if not str(out_path) or path.exists():
        raise ValueError(f"--out must name a new file: {out_path!r}")
    if alg_ is Alg.ED25519:
        private = ed25519.Ed25519PrivateKey.generate()
        material = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        secret_file = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    else:
        material = secrets.token_bytes(HMAC_SECRET_BYTES)
        secret_file = base64.b64encode(material) + b"\n"
    fd = _claim_file(path)
    try:
        with open_ledger(ledger_url) as led:
            add = add_command_line_key if setup_rules else add_key
            key = add(led, role=role_, name=name, alg=alg_, material=material)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    _write_all(fd, secret_file)
    return {"key_id": key.key_id, "principal_id": str(key.principal_id), "role": role_.value}


def revoke(ledger_url: str, key_id: str) -> bool:
    """Revoke ``key_id``; False when no active key has that id."""
    with open_ledger(ledger_url) as led:
        return revoke_key(led, key_id)
