"""The pages' files answered gzip-encoded (issue 15's 2G budget): every listed file of the
station app, the console and ``/web/shared``, and the JSON documents, is gzip-encoded when
the request accepts gzip and identical after decoding; sent as stored when it does not
(no header, ``identity``, ``gzip;q=0``, a malformed or oversized header); ``Vary:
Accept-Encoding`` and the security headers either way. The station page preloads exactly
the modules its app imports (a missing one costs a 2G round trip, an unlisted one a 404).
Against a served app on each engine (``tests/test_api_harness.py``'s server)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx
import pytest

from api.web import (
    ACCEPT_ENCODING_LENGTH_MAX,
    CURRENCIES_PATH,
    FILES,
    I18N_PATH,
    SHARED_PATH,
    accepts_gzip,
)
from api.web.console import CONSOLE_PATH
from api.web.console import FILES as CONSOLE_FILES
from api.web.station import FILES as STATION_FILES
from api.web.station import STATION_PATH
from ledger.i18n import DOMAINS, LANGUAGES
from tests.test_api_harness import Harness, api, api_server

__all__ = ["api", "api_server"]  # the fixtures, used by name

WEB = Path(__file__).resolve().parents[1] / "api" / "web"
SMALLEST_GAIN_BYTES = 1024
"""A file this large or larger must come smaller gzip-encoded."""
PATHS = (
    [f"{STATION_PATH}/{name}" for name in (*STATION_FILES, "")]
    + [f"{CONSOLE_PATH}/{name}" for name in (*CONSOLE_FILES, "")]
    + [f"{SHARED_PATH}/{name}" for name in FILES]
    + [CURRENCIES_PATH]
    + [f"{I18N_PATH}/{domain}/{language}.json" for domain in DOMAINS for language in LANGUAGES]
)
REFUSING = ("", "identity", "gzip;q=0", "gzip;q=0, *;q=1", "br, zstd", "gzip;q=abc", "gzip;q=2")
ACCEPTING = ("gzip", "gzip, deflate, br, zstd", "GZIP;q=0.5", "*", "x-gzip", "br;q=1, gzip;q=0.1")
IMPORT = re.compile(r'^import\s(?:[^;"]*?\sfrom\s*)?"([^"]+)";', re.MULTILINE)
"""A static import (``import { a } from "./a.js";``, on one line or several)."""
PRELOAD = re.compile(r'<link rel="modulepreload" href="([^"]+)">')


def raw(base: str, path: str, accept_encoding: str) -> tuple[httpx.Headers, bytes]:
    """The answer's headers and its bytes as sent (not decoded)."""
    with httpx.stream("GET", base + path, headers={"Accept-Encoding": accept_encoding}) as got:
        assert got.status_code == 200, path
        return got.headers, b"".join(got.iter_raw())


def assert_guarded(headers: httpx.Headers) -> None:
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert "accept-encoding" in headers["vary"].lower()
    assert "set-cookie" not in headers


def test_every_listed_file_is_gzip_encoded_when_asked_and_the_same_after_decoding(
    api: Harness,
) -> None:
    gained = 0
    for path in PATHS:
        plain_headers, plain = raw(api.base_url, path, "identity")
        assert "content-encoding" not in plain_headers, path
        assert_guarded(plain_headers)
        headers, sent = raw(api.base_url, path, "gzip, deflate, br, zstd")
        assert_guarded(headers)
        assert headers["content-type"] == plain_headers["content-type"], path
        assert int(headers["content-length"]) == len(sent), path
        if headers.get("content-encoding") == "gzip":
            assert gzip.decompress(sent) == plain, path
            assert len(sent) < len(plain), path
            gained += len(plain) - len(sent)
        else:
            assert "content-encoding" not in headers and sent == plain, path
            assert len(plain) < SMALLEST_GAIN_BYTES, path  # only tiny files go as stored
    assert gained > 0


@pytest.mark.parametrize("accept_encoding", REFUSING)
def test_a_request_that_refuses_gzip_gets_the_file_as_stored(
    api: Harness, accept_encoding: str
) -> None:
    path = f"{SHARED_PATH}/keys.js"
    headers, sent = raw(api.base_url, path, accept_encoding)
    assert "content-encoding" not in headers
    assert sent == (WEB / "shared" / "keys.js").read_bytes()
    assert_guarded(headers)


@pytest.mark.parametrize("accept_encoding", ACCEPTING)
def test_a_request_that_accepts_gzip_gets_it(api: Harness, accept_encoding: str) -> None:
    headers, sent = raw(api.base_url, f"{SHARED_PATH}/keys.js", accept_encoding)
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(sent) == (WEB / "shared" / "keys.js").read_bytes()


def test_an_oversized_accept_encoding_is_not_read() -> None:
    padding = " " * (ACCEPT_ENCODING_LENGTH_MAX - len("gzip"))
    assert accepts_gzip(padding + "gzip")
    assert not accepts_gzip(padding + " gzip")


def test_the_service_workers_version_is_filled_in_before_compression(api: Harness) -> None:
    headers, sent = raw(api.base_url, f"{STATION_PATH}/sw.js", "gzip")
    worker = gzip.decompress(sent) if headers.get("content-encoding") == "gzip" else sent
    assert b"__SHELL_VERSION__" not in worker and b"station-shell-" in worker
    assert headers["cache-control"] == "no-cache"


def imported_by(start: str) -> set[str]:
    """Every module ``start`` imports, directly or not, as absolute paths."""
    found: set[str] = set()
    waiting = [start]
    while waiting:
        path = waiting.pop()
        folder = path.rsplit("/", 1)[0]
        text = (WEB / path.removeprefix("/").removeprefix("web/")).read_text()
        for target in IMPORT.findall(text):
            absolute = folder + "/" + target.removeprefix("./") if target[0] == "." else target
            if absolute not in found:
                found.add(absolute)
                waiting.append(absolute)
    return found


def test_the_station_page_preloads_exactly_the_shell_and_its_first_screen() -> None:
    """The shell's static imports and the enrollment screen's graph (a new phone's first
    screen; the other screens are imported when shown), and the two documents fetched
    before the first screen, with the credentials mode their fetch uses."""
    page = (WEB / "station" / "index.html").read_text()
    preloaded = PRELOAD.findall(page)
    assert len(preloaded) == len(set(preloaded))
    first = f"{STATION_PATH}/enroll.js"
    wanted = imported_by(f"{STATION_PATH}/app.js") | imported_by(first)
    assert set(preloaded) == wanted | {f"{STATION_PATH}/app.js", first}
    listed = {f"{STATION_PATH}/{name}" for name in STATION_FILES} | {
        f"{SHARED_PATH}/{name}" for name in FILES
    }
    assert set(preloaded) <= listed
    fetched = re.findall(r'<link rel="preload" href="([^"]+)" as="fetch" crossorigin>', page)
    assert fetched == [f"{I18N_PATH}/station/en.json", CURRENCIES_PATH]
    for module in ("i18n.js", "money.js"):
        assert 'credentials: "same-origin"' in (WEB / "shared" / module).read_text()
