"""The API served by uvicorn in a background thread of this process, on 127.0.0.1 and a
port the system picks: for the end-to-end tests and for ``vledger demo``.

The socket is bound before the thread starts, so :attr:`ServerThread.base_url` is known
at once, and :meth:`ServerThread.start` returns only once uvicorn answers (or raises
:class:`RuntimeError` after :data:`START_TIMEOUT_S`). uvicorn is configured as
``vledger serve`` configures it (:func:`api.server.uvicorn_config`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from api.server import tcp_socket, uvicorn_config

__all__ = ["START_TIMEOUT_S", "STOP_TIMEOUT_S", "ServerThread"]

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
"""How long :meth:`ServerThread.start` waits for uvicorn to answer."""
STOP_TIMEOUT_S = 10.0
"""How long :meth:`ServerThread.stop` waits for the thread to end."""
POLL_S = 0.01


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 in a daemon thread until ``stop()``."""

    def __init__(self, app: Any) -> None:
        self.sock = tcp_socket(HOST, 0)  # TCP_NODELAY on its connections: no 40 ms waits
        self.port: int = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn_config(app, HOST, self.port))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.stop()
                raise RuntimeError("uvicorn did not start")
            time.sleep(POLL_S)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=STOP_TIMEOUT_S)
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
