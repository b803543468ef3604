"""The service's Ed25519 key, which signs the journal's checkpoints (and audit packs).

Where the key comes from, first match wins:

1. a ``path`` argument (the CLI's ``--service-key FILE``): loaded if the file exists,
   else generated there once;
2. ``$VLEDGER_SERVICE_KEY``: a PEM file the operator provides; it must exist (a
   production key is never generated silently);
3. the default place, generated there on first use:

   - SQLite ``sqlite:///DIR/NAME.db``: ``DIR/NAME.db.keys/service-key.pem``, next to the
     database file (copy both together, or neither);
   - PostgreSQL: ``$XDG_DATA_HOME/vledger/<digest of host, port, database, options>/
     service-key.pem`` (``~/.local/share`` when ``XDG_DATA_HOME`` is unset). Production
     deployments should set ``$VLEDGER_SERVICE_KEY`` instead.

A generated key is PKCS#8 PEM, unencrypted, mode 0600, in a folder of mode 0700; it is
created with ``O_EXCL``, so two processes racing to create it end with one key. The
public half of every key that ever signed a checkpoint is kept in the ``seal_keys`` table
(rows never change), and ``public-key.pem`` in every audit export.

The key is checked each time it is loaded (``vledger seal``, the pack job, ``vledger
serve``'s sealer): a key file that its group or other users may read or write, or a
folder that they may write (where the file could be swapped or planted), is refused
with :class:`ServiceKeyExposed` and one line saying what to ``chmod``. ``*.db.keys/`` is
in ``.gitignore``: the folder beside a SQLite database is never committed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from reconciliation.errors import InputInvalid

__all__ = [
    "ENV_VAR",
    "ServiceKey",
    "ServiceKeyError",
    "ServiceKeyExposed",
    "check_key_permissions",
    "default_key_path",
    "existing_service_key",
    "load_public_key",
    "load_service_key",
    "public_key_pem",
    "service_key_path",
]

ENV_VAR = "VLEDGER_SERVICE_KEY"
KEY_FILE_NAME = "service-key.pem"
KEY_FILE_SIZE_MAX = 16_384
"""A PEM key file larger than this is refused unread."""


class ServiceKeyError(InputInvalid):
    """The key file is missing (where it must exist), unreadable, or not Ed25519."""

    code = "service_key_invalid"


class ServiceKeyExposed(ServiceKeyError):
    """The key file is readable or writable by its group or other users, or its folder
    is writable by them: the key is refused until the modes are fixed."""

    code = "service_key_exposed"


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """The service's signing key and where it was found."""

    private_key: Ed25519PrivateKey
    path: Path

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_pem(self) -> bytes:
        """The public half as SubjectPublicKeyInfo PEM (what ``public-key.pem`` holds)."""
        return public_key_pem(self.public_key)


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def default_key_path(database_url: str) -> Path:
    """Where the key lives when neither an argument nor the environment names it."""
    if database_url.startswith("sqlite:///"):
        db_file = Path(database_url.removeprefix("sqlite:///").split("?", 1)[0])
        return db_file.with_name(db_file.name + ".keys") / KEY_FILE_NAME
    parts = urlsplit(database_url)
    identity = f"{parts.hostname}:{parts.port}{parts.path}?{parts.query}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "vledger" / digest / KEY_FILE_NAME


def service_key_path(database_url: str, path: str | os.PathLike[str] | None = None) -> Path:
    """The file the service key is (or is to be) in: ``path``, else ``$VLEDGER_SERVICE_KEY``,
    else :func:`default_key_path`."""
    if path is not None:
        return Path(path)
    from_env = os.environ.get(ENV_VAR)
    return Path(from_env) if from_env else default_key_path(database_url)


def load_service_key(database_url: str, path: str | os.PathLike[str] | None = None) -> ServiceKey:
    """The service key for the ledger at ``database_url`` (see the module docstring)."""
    found = service_key_path(database_url, path)
    if path is None and os.environ.get(ENV_VAR):
        if not found.is_file():
            raise ServiceKeyError(f"${ENV_VAR} names {found}, which is not a file")
        return ServiceKey(_read_private(found), found)
    return _load_or_create(found)


def existing_service_key(
    database_url: str, path: str | os.PathLike[str] | None = None
) -> ServiceKey | None:
    """The service key when its file exists (as :func:`load_service_key` finds it), else
    None: for readers and signers that must never create one."""
    if not service_key_path(database_url, path).is_file():
        return None
    return load_service_key(database_url, path)


def check_key_permissions(path: Path) -> None:
    """Refuse a private key file that others may read or write, or whose folder others
    may write; ``ServiceKeyExposed`` with one line saying how to fix it."""
    if os.name != "posix":  # modes are POSIX; elsewhere the folder's ACL decides
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ServiceKeyExposed(
            f"key file {path} has mode {mode:04o}: its group or other users can read or"
            f" write it; run: chmod 600 {path}"
        )
    folder = path.parent
    folder_mode = folder.stat().st_mode & 0o777
    if folder_mode & 0o022:
        raise ServiceKeyExposed(
            f"key folder {folder} has mode {folder_mode:04o}: other users can replace the"
            f" key in it; run: chmod go-w {folder} (or keep the key in a private folder)"
        )


def _load_or_create(path: Path) -> ServiceKey:
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
    return ServiceKey(_read_private(path), path)


def _read_bounded(path: Path) -> bytes:
    try:
        with path.open("rb") as source:
            data = source.read(KEY_FILE_SIZE_MAX + 1)
    except OSError as exc:
        raise ServiceKeyError(f"cannot read key file {path}: {exc}") from exc
    if len(data) > KEY_FILE_SIZE_MAX:
        raise ServiceKeyError(f"key file {path} is larger than {KEY_FILE_SIZE_MAX} bytes")
    return data


def _read_private(path: Path) -> Ed25519PrivateKey:
    """The key in ``path``, once it parses (a junk file is reported as such) and its
    modes protect it (:func:`check_key_permissions`)."""
    try:
        key = load_pem_private_key(_read_bounded(path), password=None)
    except (ValueError, TypeError) as exc:
        raise ServiceKeyError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ServiceKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    check_key_permissions(path)
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (SubjectPublicKeyInfo); a private key given
    in its place is refused, saying so."""
    data = _read_bounded(Path(path))
    if b"PRIVATE KEY-----" in data:
        raise ServiceKeyError(
            f"{path} is a private key: give the public key (public-key.pem, or GET"
            " /v1/service-key), and keep the private key where it was"
        )
    try:
        key = load_pem_public_key(data)
    except ValueError as exc:
        raise ServiceKeyError(f"{path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ServiceKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key
