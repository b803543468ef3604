"""Sign one request without our client: RFC 9421 + Content-Digest with ``cryptography``.

    .venv/bin/python examples/sign_without_client.py URL KEY_ID KEY_FILE
    (or VLEDGER_URL, VLEDGER_KEY_ID, VLEDGER_KEY_FILE)

Creates an account (``POST /v1/accounts``) and prints the answer. KEY_FILE is what
``vledger keys create`` wrote: a PKCS#8 PEM Ed25519 key, or a base64 HMAC secret.
The profile: one signature tagged ``vledger`` covering ``"@method" "@target-uri"``,
plus ``"content-type" "content-digest"`` with a body, plus ``"idempotency-key"``;
parameters ``created``, ``keyid``, ``alg`` and ``tag``.

Prints the status and the answer. A refusal is problem+json: the script prints its
``code`` and ``detail`` (``refused: 401 signature_invalid: ...``) and exits 1; missing
arguments or an unreadable key file print the usage and exit 2.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import sys
import time
import urllib.parse
import uuid
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

USAGE = "usage: sign_without_client.py URL KEY_ID KEY_FILE (or $VLEDGER_URL ... in the environment)"


def usage(message: str) -> NoReturn:
    print(f"{USAGE}\nsign_without_client.py: error: {message}", file=sys.stderr)
    sys.exit(2)


names = ("VLEDGER_URL", "VLEDGER_KEY_ID", "VLEDGER_KEY_FILE")
given = sys.argv[1:] or [os.environ.get(n, "") for n in names]
if len(given) != len(names) or not all(given):
    usage("give URL, KEY_ID and KEY_FILE")
base_url, key_id, key_file = given
try:
    with open(key_file, "rb") as f:
        key_bytes = f.read()
except OSError as exc:
    usage(f"cannot read KEY_FILE: {exc}")

url = base_url.rstrip("/") + "/v1/accounts"
body = json.dumps({"id": str(uuid.uuid4()), "currency": "KES", "code": 101}).encode()
headers = {
    "content-type": "application/json",
    # RFC 9530: sha-256 of the exact body bytes, as a Structured Field byte sequence
    "content-digest": "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":",
    # a Structured Field string; the same key and body replay the first answer
    "idempotency-key": '"' + str(uuid.uuid4()) + '"',
}
alg = "ed25519" if key_bytes.startswith(b"-----BEGIN") else "hmac-sha256"
covered = '("@method" "@target-uri" "content-type" "content-digest" "idempotency-key")'
params = f'{covered};created={int(time.time())};keyid="{key_id}";alg="{alg}";tag="vledger"'

# RFC 9421 section 2.5: one line per covered component, then "@signature-params"
lines = ['"@method": POST', f'"@target-uri": {url}']
lines += [f'"{name}": {value}' for name, value in headers.items()]
lines.append(f'"@signature-params": {params}')
signature_base = "\n".join(lines).encode()

try:
    if alg == "ed25519":
        private_key = load_pem_private_key(key_bytes, password=None)
        if not isinstance(private_key, Ed25519PrivateKey):
            usage("KEY_FILE is not an Ed25519 key")
        signature = private_key.sign(signature_base)
    else:
        secret = base64.b64decode(key_bytes.strip(), validate=True)
        signature = hmac.new(secret, signature_base, hashlib.sha256).digest()
except ValueError as exc:  # binascii.Error is one
    usage(f"KEY_FILE is neither a PEM Ed25519 key nor a base64 HMAC secret ({exc})")

headers["signature-input"] = f"vledger={params}"
headers["signature"] = "vledger=:" + base64.b64encode(signature).decode() + ":"

target = urllib.parse.urlsplit(url)
if target.scheme != "http" or not target.netloc:
    usage(f"URL must be http://host:port, not {base_url!r}")
connection = http.client.HTTPConnection(target.netloc, timeout=10)
try:
    connection.request("POST", target.path, body=body, headers=headers)
    answer = connection.getresponse()
    text = answer.read().decode()
except OSError as exc:
    print(f"no answer from {base_url}: {exc}", file=sys.stderr)
    sys.exit(1)
if answer.status >= 400:  # a refusal is problem+json saying why
    try:
        problem = json.loads(text)
    except ValueError:
        problem = {"detail": text}
    print(
        f"refused: {answer.status} {problem.get('code')}: {problem.get('detail')}", file=sys.stderr
    )
    sys.exit(1)
print(answer.status, text)
