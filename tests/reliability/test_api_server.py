"""Keys survive a real ASGI server: uvicorn serving the API, httpx as the client.

The server decodes the request path itself (Django's test clients only imitate that), so
this checks that percent-encoded hostile keys reach the store exactly and come back intact,
through a session login and CSRF tokens as a browser would use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from prism_storage.testing.conformance import HOSTILE_KEYS
from tests.support.uvicorn import admin_login, uvicorn_server

KEYS = [
    "../../etc/passwd",
    "..",
    ".",
    "...",
    "/etc/passwd",
    "user/42/thread/7",
    "100%",
    "%2e%2e%2f",
    "question?",
    "hash#tag",
    "[brackets]",
    "with space",
    "a+b",
    "C:\\Windows\\System32",
    "\\\\server\\share",
    "quote'\"`",
    "emoji-🤖-agent",
    "日本語のキー",
    "rtl\u202eoverride",
    "🤖" * 512,
]


def encoded(key: str) -> str:
    return quote(key, safe="").replace(".", "%2E")


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.support.api_server_settings",
        "PRISM_API_SERVER_DB": str(tmp_path / "server.sqlite3"),
        "PRISM_API_SERVER_PASSWORD": "server-test-pw",
        "PRISM_API_SERVER_STORES": (
            '{"default": {"BACKEND": "orm"}, "files": {"BACKEND": "file", "OPTIONS": '
            f'{{"data_dir": "{tmp_path / "files"}"}}}}}}'
        ),
    }
    with uvicorn_server(
        "tests.support.api_server:application", env, ready_path="/admin/login/"
    ) as base:
        yield base


def login(client: httpx.Client) -> dict[str, str]:
    """Log in through the admin's login form; return the CSRF header for API writes."""
    return admin_login(client, "admin", "server-test-pw")


@pytest.mark.parametrize("alias", ["files", "default"])
def test_hostile_keys_round_trip_through_uvicorn(server, alias):
    assert set(KEYS) - set(HOSTILE_KEYS) <= {"hash#tag", "a+b"}  # the suite's keys, mostly
    with httpx.Client(base_url=server, timeout=10) as client:
        headers = login(client)
        api = f"/prism/api/stores/{alias}/records/"
        for i, key in enumerate(KEYS):
            response = client.put(api + encoded(key), json={"i": i, "key": key}, headers=headers)
            assert response.status_code == 201, (key, response.text)
            assert response.json() == {"key": key, "value": {"i": i, "key": key}}
        listed = client.get(api, params={"limit": 1000}).json()["keys"]
        assert sorted(listed) == sorted(KEYS)
        for i, key in enumerate(KEYS):
            response = client.get(api + encoded(key))
            assert response.json() == {"key": key, "value": {"i": i, "key": key}}, key
        # Without the token a write is refused, in the API's JSON shape.
        response = client.delete(api + encoded(KEYS[0]))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "csrf_failed"
        for key in KEYS:
            assert client.delete(api + encoded(key), headers=headers).status_code == 204
            assert client.get(api + encoded(key)).status_code == 404
        assert client.get(api).json() == {"keys": [], "cursor": None}
