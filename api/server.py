"""``vledger serve``: the API under uvicorn, on SQLite by default or PostgreSQL by URL."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from api.observability import configure_logging
from api.settings import Settings
from ledger import open_ledger

HOST_DEFAULT = "127.0.0.1"
PORT_DEFAULT = 8000


def uvicorn_config(app: object, host: str, port: int) -> uvicorn.Config:
    """Uvicorn as the API wants it: our Date header and access log, not uvicorn's."""
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        date_header=False,
        server_header=False,
        access_log=False,
        log_config=None,
        proxy_headers=False,
    )


def serve(
    host: str = HOST_DEFAULT,
    port: int = PORT_DEFAULT,
    database_url: str = "sqlite:///village.db",
    *,
    migrate: bool = True,
    settings: Settings | None = None,
) -> None:
    """Migrate (unless told not to), then serve until interrupted."""
    configure_logging()
    if migrate:
        open_ledger(database_url, migrate=True).close()
    app = create_app(database_url, settings=settings)
    uvicorn.Server(uvicorn_config(app, host, port)).run()
