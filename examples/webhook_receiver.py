"""A storefront's webhook receiver: an HTTP server on 127.0.0.1 that checks each POST's
Standard Webhooks signature and prints the event.

    .venv/bin/python examples/webhook_receiver.py SECRET_FILE [--port 8001]

SECRET_FILE holds the endpoint's ``whsec_...`` secret (the ``secret`` field of the answer
to ``POST /v1/webhook-endpoints``; it is shown only then). Every POST is verified with the
``standardwebhooks`` library (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``;
5 minutes of tolerance): a good one answers 204 and prints one line,
``<type> <order id> <state>`` (``order.paid 3f... paid``); a bad one answers 400, prints
``rejected: <why>`` and is retried by the service (which is the point: only the ledger
knows the secret). The file is read again on each request, so a rotated secret is used
at once. Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

try:
    from standardwebhooks import Webhook, WebhookVerificationError
except ModuleNotFoundError as missing:  # run by an interpreter without the project
    print(
        f"{missing}: run it with the project's interpreter, .venv/bin/python examples/...",
        file=sys.stderr,
    )
    sys.exit(2)

HOST = "127.0.0.1"
BODY_BYTES_MAX = 1_000_000
"""A larger POST is refused unread (413)."""


def event_line(event: dict[str, object]) -> str:
    """``type subject state`` of one verified event (an order's id and state for the
    ``order.*`` events)."""
    data = event.get("data")
    fields = data if isinstance(data, dict) else {}
    subject = fields.get("order_id") or fields.get("id") or "-"
    shown = [str(event.get("type", "?")), str(subject)]
    if "state" in fields:
        shown.append(str(fields["state"]))
    return " ".join(shown)


class Receiver(BaseHTTPRequestHandler):
    secret_file: Path

    def do_POST(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        if not 0 < size <= BODY_BYTES_MAX:
            self._answer(413, "rejected: no body or too large")
            return
        body = self.rfile.read(size)
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            secret = self.secret_file.read_text().strip()
            event = Webhook(secret).verify(body, headers)
        except (OSError, WebhookVerificationError, ValueError) as exc:
            self._answer(400, f"rejected: {exc or type(exc).__name__}")
            return
        self._answer(204, event_line(event if isinstance(event, dict) else {}))

    def _answer(self, status: int, line: str) -> None:
        print(line, flush=True)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per event is printed by :meth:`_answer`."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="webhook_receiver.py", description=__doc__.split("\n")[0])
    parser.add_argument("secret_file", type=Path, metavar="SECRET_FILE", help="whsec_... file")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    if not args.secret_file.is_file():
        parser.error(f"no secret file {args.secret_file}")
    Receiver.secret_file = args.secret_file
    server = ThreadingHTTPServer((HOST, args.port), Receiver)
    print(f"listening on http://{HOST}:{args.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
