"""A service answers only to its own names: a request whose Host names another service is
refused before its signature is read (a signature made for that service, replayed here with
its Host, must not verify). ``vledger serve`` on a loopback address knows its three names;
behind a proxy ``public_origin`` decides (tests/test_api_minting.py)."""

from __future__ import annotations

import dataclasses

import pytest
from starlette.requests import Request

from api.context import target_uri
from api.problems import ApiError
from api.server import PUBLIC_ORIGIN_ENV, served_settings
from api.settings import Settings, loopback_hosts


def request_to(host: str, path: str = "/v1/accounts") -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"limit=5",
            "headers": [(b"host", host.encode())],
        }
    )


def test_a_loopback_server_knows_its_three_names_and_port() -> None:
    assert loopback_hosts("127.0.0.1", 8000) == {
        "127.0.0.1:8000",
        "localhost:8000",
        "[::1]:8000",
    }
    assert "localhost" in (loopback_hosts("::1", 80) or set())
    assert "localhost" not in (loopback_hosts("::1", 8080) or set())
    assert loopback_hosts("0.0.0.0", 8000) is None  # reached by names only its deployment knows


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "LOCALHOST:8000", "[::1]:8000"])
def test_a_request_to_one_of_its_names_is_signed_for_that_name(host: str) -> None:
    settings = Settings(allowed_hosts=loopback_hosts("127.0.0.1", 8000))
    assert target_uri(request_to(host), settings) == f"http://{host}/v1/accounts?limit=5"


@pytest.mark.parametrize(
    "host", ["ledger.elsewhere.example", "127.0.0.1:8001", "localhost", "", "127.0.0.1:8000.evil"]
)
def test_a_request_naming_another_host_is_refused(host: str) -> None:
    settings = Settings(allowed_hosts=loopback_hosts("127.0.0.1", 8000))
    with pytest.raises(ApiError) as refused:
        target_uri(request_to(host), settings)
    assert (refused.value.code, refused.value.status) == ("signature_invalid", 401)


def test_without_a_list_any_host_is_signed_for_and_a_public_origin_wins() -> None:
    assert target_uri(request_to("any.example"), Settings()) == (
        "http://any.example/v1/accounts?limit=5"
    )
    behind = dataclasses.replace(Settings(), public_origin="https://ledger.village.example/")
    assert target_uri(request_to("ledger.elsewhere.example"), behind) == (
        "https://ledger.village.example/v1/accounts?limit=5"
    )


def test_a_served_process_takes_its_public_origin_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PUBLIC_ORIGIN_ENV, raising=False)
    assert served_settings("127.0.0.1", 8000).allowed_hosts == loopback_hosts("127.0.0.1", 8000)
    assert served_settings("0.0.0.0", 8000).allowed_hosts is None
    monkeypatch.setenv(PUBLIC_ORIGIN_ENV, "https://ledger.village.example")
    behind = served_settings("0.0.0.0", 8000)
    assert (behind.public_origin, behind.allowed_hosts) == ("https://ledger.village.example", None)
