"""The OpenAPI description of the JSON API: served, complete, and true of the live API.

The live check runs schemathesis (property-based: requests generated from the
description) against the API served by a real uvicorn process, on a file, an orm and a
redis store, and checks every answer against the description: documented status code,
content type, headers and body, and never a server error.
"""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import quote

import httpx
import pytest
import requests
import schemathesis
from django.test import AsyncClient, RequestFactory
from django.urls import URLPattern
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from prism_storage import urls as api_urls
from prism_storage.views import ERROR_STATUS
from prism_storage.views.openapi import openapi_document
from tests.support.uvicorn import admin_login, uvicorn_server

PASSWORD = "openapi-test-pw"
ALIASES = ("file", "orm", "redis")
#: Records present before the run, so reads, appends and pops also meet existing keys.
SEEDED = ("agent/1", "thread 7", "émoji-🤖")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 25


def _django_path(pattern: URLPattern) -> str:
    """``api/x/<str:alias>/<prism_key:key>`` -> ``/api/x/{alias}/{key}``"""
    route = str(pattern.pattern)
    for converter in ("str:", "prism_key:"):
        route = route.replace(f"<{converter}", "<")
    return "/" + route.replace("<", "{").replace(">", "}")


def test_every_api_url_is_described_and_nothing_else():
    patterns = [p for p in api_urls.urlpatterns if isinstance(p, URLPattern)]
    assert len(patterns) == len(api_urls.urlpatterns)
    described = set(openapi_document()["paths"])
    assert {_django_path(p) for p in patterns} == described
    # Each path's methods are exactly the ones its view takes.
    document = openapi_document()
    for pattern in patterns:
        methods = {m for m in document["paths"][_django_path(pattern)] if m != "parameters"}
        taken = {"get"} if pattern.name == "api-schema" else _view_methods(pattern)
        assert methods == taken, pattern.name


def _view_methods(pattern: URLPattern) -> set[str]:
    """The methods an ``@endpoint`` view answers (others get 405), read from its Allow."""
    request = RequestFactory().generic("TRACE", "/")
    response = asyncio.run(pattern.callback(request, alias="x", key="k"))
    assert response.status_code == 405
    return {m.strip().lower() for m in response["Allow"].split(",")}


def test_error_codes_and_statuses_are_the_views_own():
    document = openapi_document()
    codes = document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    assert codes["code"]["enum"] == list(ERROR_STATUS)
    for path in document["paths"].values():
        for method, operation in path.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    name = response["$ref"].rsplit("/", 1)[1]
                    content = document["components"]["responses"][name]["content"]
                    enum = content["application/json"]["schema"]["properties"]["error"]
                    for code in enum["properties"]["code"]["enum"]:
                        assert ERROR_STATUS[code] == int(status)


def test_the_document_is_valid_openapi_3_1():
    document = openapi_document()
    assert document["openapi"].startswith("3.1.")
    loaded = schemathesis.openapi.from_dict(document)
    loaded.validate()  # against the OpenAPI 3.1 meta-schema; raises if it breaks it
    labels = {result.ok().label for result in loaded.get_all_operations()}
    assert len(labels) == 9
    # Every $ref names a component that exists.
    refs = re.findall(r'"\$ref": "#/components/(\w+)/(\w+)"', json.dumps(document))
    assert refs and all(name in document["components"][kind] for kind, name in refs)


@pytest.mark.django_db
async def test_schema_is_public_json_and_names_where_the_api_is_mounted(async_client):
    response = await async_client.get("/prism/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.oai.openapi+json"
    document = json.loads(response.content)
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "/prism"}]
    assert (await async_client.head("/prism/api/schema/")).status_code == 200
    # It changes nothing, so it is exempt from CSRF: any other method is a JSON 405.
    refused = await AsyncClient(enforce_csrf_checks=True).post("/prism/api/schema/")
    assert refused.status_code == 405 and refused["Allow"] == "GET, HEAD"
    assert json.loads(refused.content)["error"]["code"] == "method_not_allowed"
    # Public (no session), and the same whatever the stores: it names none of them.
    assert document == openapi_document(server="/prism", session_cookie="sessionid")


# ----------------------------------------------------------------- the live API


def _takes_query_or_body(method: str, path: str) -> bool:
    """Whether an operation has a query or a body to break (its path parameters are set
    by the test and its headers are plain strings, so there is nothing else)."""
    document = openapi_document()
    operation = document["paths"][path][method.lower()]
    names = {ref["$ref"].rsplit("/", 1)[1] for ref in operation.get("parameters", [])}
    in_query = {
        name for name, p in document["components"]["parameters"].items() if p["in"] == "query"
    }
    return "requestBody" in operation or bool(names & in_query)


@pytest.fixture
def live_api(tmp_path, redis_server):
    stores = {
        "default": {"BACKEND": "orm"},
        "file": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path / "files")}},
        "orm": {"BACKEND": "orm", "OPTIONS": {"namespace": "openapi"}},
        "redis": {
            "BACKEND": "redis",
            "OPTIONS": {"url": redis_server.url, "prefix": f"openapi-{tmp_path.name}:"},
        },
    }
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.support.api_server_settings",
        "PRISM_API_SERVER_DB": str(tmp_path / "server.sqlite3"),
        "PRISM_API_SERVER_PASSWORD": PASSWORD,
        "PRISM_API_SERVER_STORES": json.dumps(stores),
    }
    with uvicorn_server(
        "tests.support.api_server:application", env, ready_path="/admin/login/"
    ) as base:
        yield base


class LiveRun:
    """Generated requests against the live API, each answer checked against the description."""

    def __init__(self, base_url: str, session: requests.Session, csrf: dict[str, str]):
        self.base_url = base_url
        self.session = session
        # The session's credentials, in place of the values schemathesis would draw for
        # the described cookie and header.
        self.cookies = dict(session.cookies)
        self.headers = csrf
        #: "<mode> <operation>" -> the statuses met.
        self.statuses: dict[str, set[int]] = {}

    def run(self, operation: APIOperation, mode: GenerationMode) -> None:
        @given(
            case=operation.as_strategy(mode, cookies=self.cookies, headers=self.headers),
            alias=st.sampled_from(ALIASES),
            seeded_key=st.none() | st.sampled_from(SEEDED),
        )
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: Case, alias: str, seeded_key: str | None) -> None:
            # The stores under test, and now and then a key that holds a record.
            if "alias" in (case.path_parameters or {}):
                case.path_parameters["alias"] = alias
                if "key" in case.path_parameters and seeded_key is not None:
                    case.path_parameters["key"] = quote(seeded_key, safe="")
            response = case.call_and_validate(
                base_url=self.base_url, session=self.session, checks=CHECKS
            )
            self.statuses.setdefault(f"{mode} {operation.label}", set()).add(response.status_code)

        try:
            conforms()
        except Unsatisfiable as exc:
            raise AssertionError(f"no {mode} case for {operation.label}") from exc

    def call(
        self, operation: APIOperation, expected: int, http: requests.Session | None = None, **parts
    ):
        """One given request to the key ``checked/1`` of the orm store, checked as the
        generated ones are."""
        where = {"alias": "orm", "key": quote("checked/1", safe="")}
        case = operation.Case(path_parameters=where, **parts)
        response = case.call_and_validate(
            base_url=self.base_url, session=http or self.session, checks=CHECKS
        )
        assert response.status_code == expected, response.text
        return response


def test_the_live_api_conforms_to_its_description(live_api):
    with httpx.Client(base_url=live_api, timeout=30) as client:
        csrf = admin_login(client, "admin", PASSWORD)
        for alias in ALIASES:
            for key in SEEDED:
                url = f"/prism/api/stores/{alias}/records/{quote(key, safe='')}"
                value = {"messages": [{"role": "user", "content": key}]}
                assert client.put(url, json=value, headers=csrf).status_code == 201
        cookies = dict(client.cookies)
    schema = schemathesis.openapi.from_url(f"{live_api}/prism/api/schema/")
    operations = {result.ok().label: result.ok() for result in schema.get_all_operations()}
    # schemathesis leaves out the operation that serves the description itself.
    assert len(operations) == 8
    with requests.Session() as session, requests.Session() as anonymous:
        session.cookies.update(cookies)
        session.headers.update(csrf)
        live = LiveRun(f"{live_api}/prism", session, csrf)
        for operation in operations.values():
            # Requests as described, and requests that break the description where there
            # is an input to break (a query or a body).
            live.run(operation, GenerationMode.POSITIVE)
            if _takes_query_or_body(operation.method, operation.path):
                live.run(operation, GenerationMode.NEGATIVE)

        # The run reached the operations' successes, not only their refusals.
        statuses = live.statuses
        assert 200 in statuses["positive GET /api/stores/"]
        assert 200 in statuses["positive GET /api/stores/{alias}/records/{key}"]
        assert {200, 201} <= statuses["positive PUT /api/stores/{alias}/records/{key}"]
        assert 204 in statuses["positive DELETE /api/stores/{alias}/records/{key}"]
        assert 200 in statuses["positive GET /api/stores/{alias}/records/"]
        assert 200 in statuses["positive POST /api/stores/{alias}/append/{key}"]
        assert 200 in statuses["positive POST /api/stores/{alias}/pop/{key}"]
        # None of these stores searches: the description's 400 unsupported_operation.
        assert statuses["positive POST /api/stores/{alias}/search"] == {400}

        # Answers a random run meets only by chance.
        get = operations["GET /api/stores/{alias}/records/{key}"]
        put = operations["PUT /api/stores/{alias}/records/{key}"]
        value = {"messages": []}
        created = live.call(put, 201, cookies=cookies, body=value)
        assert created.headers["location"] == ["/prism/api/stores/orm/records/checked/1"]
        etag = live.call(get, 200, cookies=cookies).headers["etag"][0]
        assert created.headers["etag"] == [etag]
        not_modified = live.call(get, 304, cookies=cookies, headers={"If-None-Match": etag})
        assert not_modified.headers["etag"] == [etag] and not_modified.content == b""
        stale = live.call(put, 412, cookies=cookies, headers={"If-Match": '"stale"'}, body=value)
        assert stale.json()["error"]["code"] == "precondition_failed"
        live.call(put, 200, cookies=cookies, headers={"If-Match": etag}, body=value)
        refused = live.call(get, 401, anonymous)
        assert refused.headers["www-authenticate"]
        # A session without the CSRF header: refused in the API's JSON shape.
        anonymous.cookies.update(cookies)
        csrf_failed = live.call(put, 403, anonymous, body=value)
        assert csrf_failed.json()["error"]["code"] == "csrf_failed"
