#!/usr/bin/env bash
# Sign one request to the Village Ledger API with openssl and send it with curl.
#
#   examples/sign.sh METHOD URL KEY_ID KEY_FILE [BODY_FILE]
#   examples/sign.sh GET  http://127.0.0.1:8000/v1/accounts KEY_ID shop.pem
#   examples/sign.sh POST http://127.0.0.1:8000/v1/accounts KEY_ID shop.pem account.json
#
# KEY_FILE is what `vledger keys create` wrote: a PKCS#8 PEM Ed25519 private key, or a
# base64 HMAC secret (--alg hmac-sha256). Needs bash, openssl 3, curl, base64 and od.
# The profile (RFC 9421): one signature labelled and tagged `vledger` covering
# "@method" "@target-uri", plus "content-type" "content-digest" with a body (RFC 9530
# sha-256 of the exact bytes sent), plus "idempotency-key" (every POST carries one: the
# same key and body replay the first answer); parameters created, keyid, alg and tag.
# curl prints the answer; a refusal is problem+json saying why (its "code").
set -euo pipefail

if [[ $# -lt 4 || $# -gt 5 ]]; then
    echo "usage: $0 METHOD URL KEY_ID KEY_FILE [BODY_FILE]" >&2
    exit 2
fi
method="$1" url="$2" key_id="$3" key_file="$4" body_file="${5:-}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

b64() { base64 -w 0; }

if grep -q -- "-----BEGIN" "$key_file"; then
    alg="ed25519"
else
    alg="hmac-sha256"
fi

components='"@method" "@target-uri"'
headers=()
lines="\"@method\": $method"$'\n'"\"@target-uri\": $url"
if [[ -n "$body_file" ]]; then
    digest="sha-256=:$(openssl dgst -sha256 -binary "$body_file" | b64):"
    components+=' "content-type" "content-digest"'
    lines+=$'\n'"\"content-type\": application/json"$'\n'"\"content-digest\": $digest"
    headers+=(-H "Content-Type: application/json" -H "Content-Digest: $digest")
fi
if [[ "$method" == "POST" ]]; then
    # A Structured Field string: the quotes belong to the value.
    idempotency_key="\"$(cat /proc/sys/kernel/random/uuid)\""
    components+=' "idempotency-key"'
    lines+=$'\n'"\"idempotency-key\": $idempotency_key"
    headers+=(-H "Idempotency-Key: $idempotency_key")
fi
params="($components);created=$(date +%s);keyid=\"$key_id\";alg=\"$alg\";tag=\"vledger\""
# The signature base (RFC 9421 section 2.5): one line per component, no final newline.
printf '%s\n"@signature-params": %s' "$lines" "$params" >"$work/base"

if [[ "$alg" == "ed25519" ]]; then
    openssl pkeyutl -sign -inkey "$key_file" -rawin -in "$work/base" -out "$work/sig"
else
    hex_key="$(tr -d ' \n' <"$key_file" | base64 -d | od -An -v -tx1 | tr -d ' \n')"
    openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hex_key" -binary -out "$work/sig" \
        "$work/base"
fi
signature="$(b64 <"$work/sig")"

body_args=()
if [[ -n "$body_file" ]]; then
    body_args=(--data-binary "@$body_file")
fi
exec curl --silent --show-error --max-time 30 --write-out '\n%{http_code}\n' \
    -X "$method" "${headers[@]}" \
    -H "Signature-Input: vledger=$params" \
    -H "Signature: vledger=:$signature:" \
    "${body_args[@]}" "$url"
