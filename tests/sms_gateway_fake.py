"""A fake Africa's Talking bulk SMS gateway for tests: a real HTTP server on 127.0.0.1
(threaded ``http.server``) that records every request and answers from a script."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from sms.settings import Gateway

API_KEY = "atsk_test_key"
USERNAME = "sandbox"
SENDER = "VLEDGER"


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class FakeGateway:
    """``script[phone]``: answers to give that number in turn, each ``(http status,
    recipient statusCode)``; after the script, ``(201, 101)`` (sent)."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    script: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def gateway(self, sender_id: str | None = SENDER) -> Gateway:
        return Gateway(self.url, USERNAME, API_KEY, sender_id)

    def messages(self, phone: str | None = None) -> list[str]:
        return [s.form["message"] for s in self.seen if phone in (None, s.form["to"])]

    def answer(self, form: dict[str, str]) -> tuple[int, bytes]:
        phone = form.get("to", "")
        with self.lock:
            queue = self.script.get(phone, [])
            http, code = queue.pop(0) if queue else (201, 101)
        if not 200 <= http < 300:
            return http, b'{"error": "refused"}'
        status = {101: "Success", 403: "InvalidPhoneNumber", 500: "InternalServerError"}
        body = {
            "SMSMessageData": {
                "Message": "Sent to 1/1 Total Cost: KES 0.8000",
                "Recipients": [
                    {
                        "statusCode": code,
                        "number": phone,
                        "status": status.get(code, "Failed"),
                        "cost": "KES 0.8000" if code == 101 else "0",
                        "messageId": f"ATXid_{len(self.seen)}" if code == 101 else "None",
                    }
                ],
            }
        }
        return http, json.dumps(body).encode()


def serve(fake: FakeGateway) -> Iterator[FakeGateway]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length).decode()
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            with fake.lock:
                fake.seen.append(Seen(self.path, dict(self.headers.items()), form))
            status, body = fake.answer(form)
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/version1/messaging"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
