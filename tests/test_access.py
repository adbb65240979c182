"""CSRF protection of the JSON API: enforced for session writes exactly as Django's
``CsrfViewMiddleware`` enforces it (the project's own class and settings), with the token
taken from the ``X-CSRFToken`` header only and the body never parsed as a form."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.test import Client

from tests.support.minimal_backend import MinimalBackend

pytestmark = pytest.mark.django_db

API = "/prism/api/stores"
CSRF = "django.middleware.csrf.CsrfViewMiddleware"


class SearchingStore(MinimalBackend):
    """A store that searches (it answers every record), so a POST reaches the body."""

    backend_name = "searching"
    supports_search = True
    dimensions = 2

    async def search(self, embedding: Any, limit: int = 5, *, filter: Any = None) -> list[Any]:
        return [
            {"key": k, "score": 1.0, "value": json.loads(v)}
            for k, v in sorted(self._records().items())
        ][:limit]


class TeapotCsrfMiddleware(CsrfViewMiddleware):
    """A project's own CSRF middleware: it refuses unsafe requests its own way."""

    def process_view(self, request, callback, callback_args, callback_kwargs):  # type: ignore[no-untyped-def]
        if getattr(callback, "csrf_exempt", False) or request.method == "GET":
            return None
        return HttpResponse("refused by the project's middleware", status=418)


@pytest.fixture(autouse=True)
def stores(settings, tmp_path):
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path)}},
        "searching": {
            "BACKEND": "tests.test_access.SearchingStore",
            "OPTIONS": {"name": "csrf-searching"},
        },
    }
    SearchingStore._data.pop("csrf-searching", None)


def login(enforce: bool = True) -> Client:
    user = User.objects.create_user("root", password="pw", is_superuser=True)
    client = Client(enforce_csrf_checks=enforce)
    client.force_login(user)
    return client


def token_of(client: Client) -> str:
    client.get("/admin/login/")  # a page that sets the CSRF cookie
    return client.cookies["csrftoken"].value


def put(client: Client, key: str, value: dict[str, Any], **extra: Any) -> HttpResponse:
    return client.put(
        f"{API}/default/records/{key}",
        data=json.dumps(value),
        content_type="application/json",
        **extra,
    )


def search(
    client: Client, body: str, content_type: str = "application/json", **extra: Any
) -> HttpResponse:
    return client.post(f"{API}/searching/search", data=body, content_type=content_type, **extra)


def error_code(response: HttpResponse) -> str:
    return json.loads(response.content)["error"]["code"]


def test_unsafe_methods_need_the_token_and_get_does_not():
    client = login()
    assert put(client, "k", {"v": 1}).status_code == 403
    assert client.delete(f"{API}/default/records/k").status_code == 403
    assert search(client, '{"embedding": [1, 0]}').status_code == 403
    # Refused with Django's own failure page unless the API's failure view is configured.
    assert put(client, "k", {"v": 1})["Content-Type"].startswith("text/html")
    for path in ("/", "/default/records/", "/default/records/k"):
        assert client.get(API + path).status_code in (200, 404)
    assert client.get(f"{API}/default/records/").status_code == 200
    token = token_of(client)
    assert put(client, "k", {"v": 1}, headers={"X-CSRFToken": token}).status_code == 201
    assert (
        search(client, '{"embedding": [1, 0]}', headers={"X-CSRFToken": token}).status_code == 200
    )
    assert (
        client.delete(f"{API}/default/records/k", headers={"X-CSRFToken": token}).status_code == 204
    )


def test_the_api_failure_view_answers_in_the_api_shape(settings):
    settings.CSRF_FAILURE_VIEW = "prism_storage.views.csrf_failure"
    client = login()
    response = put(client, "k", {"v": 1})
    assert response.status_code == 403 and error_code(response) == "csrf_failed"
    token_of(client)
    response = put(client, "k", {"v": 1}, headers={"X-CSRFToken": "x" * 32})
    assert response.status_code == 403 and "incorrect" in response.json()["error"]["message"]


def test_a_wrong_method_is_405_before_the_csrf_check():
    client = login()
    response = client.post(f"{API}/default/records/k", data="{}", content_type="application/json")
    assert response.status_code == 405 and error_code(response) == "method_not_allowed"


def test_the_token_is_read_from_the_header_only():
    client = login()
    token = token_of(client)
    response = client.post(
        f"{API}/searching/search", {"csrfmiddlewaretoken": token, "embedding": "[1, 0]"}
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=BoUnDaRy",
        "multipart/form-data",  # no boundary: Django's form parser would fail with an HTML 400
        "application/x-www-form-urlencoded",
    ],
)
def test_a_form_content_type_leaves_the_body_to_the_api(content_type):
    client = login()
    token = token_of(client)
    response = search(
        client, '{"embedding": [1, 0], "limit": 1}', content_type, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 200 and response.json() == {"results": []}
    response = search(client, "not json", content_type, headers={"X-CSRFToken": token})
    assert response.status_code == 400 and error_code(response) == "malformed_json"


def test_the_project_settings_apply_referer_and_trusted_origins(settings):
    client = login()
    token = token_of(client)
    # Over HTTPS the middleware also requires a same-origin Referer or a trusted Origin.
    response = put(client, "k", {"v": 1}, secure=True, headers={"X-CSRFToken": token})
    assert response.status_code == 403
    response = put(
        client,
        "k",
        {"v": 1},
        secure=True,
        headers={"X-CSRFToken": token, "Origin": "https://elsewhere.example"},
    )
    assert response.status_code == 403
    settings.CSRF_TRUSTED_ORIGINS = ["https://elsewhere.example"]
    response = put(
        client,
        "k",
        {"v": 1},
        secure=True,
        headers={"X-CSRFToken": token, "Origin": "https://elsewhere.example"},
    )
    assert response.status_code == 201


def test_the_projects_own_middleware_class_runs_the_check(settings):
    settings.MIDDLEWARE = [
        m if m != CSRF else "tests.test_access.TeapotCsrfMiddleware" for m in settings.MIDDLEWARE
    ]
    client = login()
    response = put(client, "k", {"v": 1})
    assert response.status_code == 418
    assert client.get(f"{API}/default/records/").status_code == 200


def test_without_csrf_middleware_the_api_does_not_check(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != CSRF]
    client = login()
    assert put(client, "k", {"v": 1}).status_code == 201
    assert search(client, '{"embedding": [1, 0]}').status_code == 200


def test_requests_marked_exempt_by_the_test_client_pass():
    client = login(enforce=False)
    assert put(client, "k", {"v": 1}).status_code == 201
    assert client.delete(f"{API}/default/records/k").status_code == 204


def test_a_fresh_cookie_still_reaches_the_response():
    """The middleware's cookie handling is left to the middleware: a request with a
    malformed cookie gets a new one, from the API as from any page."""
    client = login()
    client.cookies["csrftoken"] = "malformed!"
    response = client.get(f"{API}/default/records/")
    assert response.status_code == 200
    assert response.cookies["csrftoken"].value not in ("", "malformed!")
    client.cookies["csrftoken"] = "malformed!"
    response = put(client, "k", {"v": 1}, headers={"X-CSRFToken": "malformed!"})
    assert response.status_code == 403
    assert response.cookies["csrftoken"].value not in ("", "malformed!")
