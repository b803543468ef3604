"""``vledger serve`` for a walkthrough on one machine: webhooks may go to 127.0.0.1.

    .venv/bin/python examples/local_service.py [--port 8000] [--database URL] &
    .venv/bin/python examples/local_service.py --wait [--port 8000]
    (default database: $VLEDGER_DATABASE, else sqlite:///village.db)

``--wait`` serves nothing: it waits (at most 30 s) until the service on that port answers
``/readyz``, prints ``ready`` and exits 0 (1 if it never did).

The same app, settings and uvicorn configuration as ``vledger serve`` on 127.0.0.1 (it
migrates first), with one difference: webhook endpoints on loopback addresses
(127.0.0.0/8, ::1) are accepted. ``vledger serve`` refuses every private, loopback or
link-local target (422 ``target_refused``: a guard against requests forged to the
service's own network) and has no switch for it, so a receiver on your own machine
(``examples/webhook_receiver.py``) needs this. Never use it for a service others reach.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

try:
    import httpx
    import uvicorn

    from api.app import create_app
    from api.observability import configure_logging
    from api.server import served_settings, uvicorn_config
    from ledger import open_ledger
    from webhooks import WebhookSettings
except ModuleNotFoundError as missing:  # run by an interpreter without the project
    print(
        f"{missing}: run it with the project's interpreter, .venv/bin/python examples/...",
        file=sys.stderr,
    )
    sys.exit(2)

HOST = "127.0.0.1"
WAIT_S = 30.0
"""How long ``--wait`` waits for ``/readyz``."""
LOOPBACK = ("127.0.0.0/8", "::1/128")


def wait_ready(port: int) -> int:
    """Poll ``/readyz`` until it answers 200 (0) or :data:`WAIT_S` has passed (1)."""
    deadline = time.monotonic() + WAIT_S
    url = f"http://{HOST}:{port}/readyz"
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                print("ready")
                return 0
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    print(f"no service answered {url} within {WAIT_S:.0f} s", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local_service.py", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--database", default=os.environ.get("VLEDGER_DATABASE") or "sqlite:///village.db"
    )
    parser.add_argument("--wait", action="store_true", help="wait until it is ready, then exit")
    args = parser.parse_args(argv)
    if args.wait:
        return wait_ready(args.port)
    configure_logging()
    open_ledger(args.database, migrate=True).close()
    app = create_app(
        args.database,
        settings=served_settings(HOST, args.port),
        webhook_settings=WebhookSettings(target_networks_allowed=LOOPBACK),
    )
    uvicorn.Server(uvicorn_config(app, HOST, args.port)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
