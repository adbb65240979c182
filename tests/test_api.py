"""The async JSON API, through Django's AsyncClient, against every store kind."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from urllib.parse import quote, unquote

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser, Permission, User
from django.test import AsyncClient, AsyncRequestFactory
from django.utils.http import http_date

from prism_storage import storages
from prism_storage.testing.conformance import HOSTILE_KEYS
from prism_storage.views import ERROR_STATUS, supports_text_search
from prism_storage.views.conditions import tag
from tests.support.memory_variants import GatedMemoryBackend, memory_variant
from tests.support.stores import STORE_KINDS

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_db_connections"),
]

API = "/prism/api/stores"
KINDS = sorted(STORE_KINDS)


class Client(AsyncClient):
    """AsyncClient that decodes the request path as UTF-8, as ASGI servers do.

    Django's AsyncClient decodes it as ISO-8859-1 (the WSGI convention), which would turn
    every non-ASCII key into mojibake before it reaches the view.
    """

    def _get_path(self, parsed):  # type: ignore[no-untyped-def]
        return unquote(parsed.path)


def key_url(alias: str, key: str) -> str:
    # Every reserved character is escaped, dots too, so no client or proxy can read a key
    # such as ".." as a path segment to normalise away.
    return f"{API}/{alias}/records/" + quote(key, safe="").replace(".", "%2E")


def sample_value(store, i: int = 0) -> dict:
    """A value any store accepts: search stores get an embedding of their dimensions."""
    value = {"messages": [{"role": "user", "content": f"hello {i}"}], "n": i}
    dimensions = getattr(store, "dimensions", None)
    if store.supports_search and type(dimensions) is int:
        value["embedding"] = [float(i == d) + 0.01 for d in range(dimensions)]
    return value


async def put(client, url, value, **extra):
    return await client.put(url, data=json.dumps(value), content_type="application/json", **extra)


def error_code(response) -> str:
    body = json.loads(response.content)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert ERROR_STATUS[body["error"]["code"]] == response.status_code
    return body["error"]["code"]


# ---------------------------------------------------------------------------- fixtures


@pytest_asyncio.fixture(autouse=True)
async def close_stores(settings):
    """Close the stores a test used, on its own loop, before its settings are restored."""
    yield
    await storages.aclose_all()


def _user(name: str, *codenames: str, superuser: bool = False) -> User:
    user = User.objects.create_user(name, password="pw", is_superuser=superuser)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="prism_storage", codename__in=codenames)
    )
    return user


@pytest.fixture
def users(db):
    return {
        "anonymous": None,
        "noperms": _user("noperms"),
        "viewer": _user("viewer", "view_record"),
        "changer": _user("changer", "change_record"),
        "deleter": _user("deleter", "view_record", "delete_record"),
        "superuser": _user("root", superuser=True),
    }


@pytest.fixture
def configure(settings, store_config):
    """``configure(kind)``: PRISM_STORAGE with ``main`` of that kind (and ``other``)."""

    def apply(kind: str, **extra: dict) -> None:
        settings.PRISM_STORAGE = {
            "default": {"BACKEND": "orm"},
            "main": store_config(kind, "main"),
            "other": store_config(kind, "other"),
            **extra,
        }

    return apply


@pytest.fixture
async def admin_client(users):
    client = Client()
    await client.aforce_login(users["superuser"])
    return client


async def stored_keys(alias: str = "main") -> set[str]:
    return {k async for k in storages[alias].iter_keys()}


# ------------------------------------------------------------------------- store list


async def test_store_list_names_backends_and_capabilities_without_options(
    configure, admin_client, store_config
):
    configure("file")
    response = await admin_client.get(f"{API}/")
    assert response.status_code == 200
    stores = {s["alias"]: s for s in response.json()["stores"]}
    assert list(stores) == ["default", "main", "other"]
    assert stores["main"]["backend"] == "file"
    assert stores["default"]["backend"] == "orm"
    assert stores["main"]["capabilities"]["listing"] is True
    assert stores["main"]["capabilities"]["search"] is False
    assert "data_dir" not in response.text and "files" not in response.text
    assert set(stores["main"]) == {"alias", "backend", "capabilities"}


async def test_store_list_marks_a_misconfigured_store(configure, admin_client):
    configure("file", broken={"BACKEND": "file", "OPTIONS": {"no_such_option": 1}})
    response = await admin_client.get(f"{API}/")
    broken = response.json()["stores"][-1]
    assert broken == {
        "alias": "broken",
        "backend": None,
        "capabilities": None,
        "error": "store_misconfigured",
    }


# ---------------------------------------------------------------------- record CRUD


@pytest.mark.parametrize("kind", KINDS)
async def test_put_get_delete(kind, configure, admin_client):
    configure(kind)
    store = storages["main"]
    url = key_url("main", "agent_1")
    first, second = sample_value(store, 1), sample_value(store, 2)
    response = await put(admin_client, url, first)
    assert response.status_code == 201
    assert response.json() == {"key": "agent_1", "value": first}
    assert response["Location"] == f"{API}/main/records/agent_1"
    response = await put(admin_client, url, second)
    assert response.status_code == 200
    assert await store.get("agent_1") == second
    response = await admin_client.get(url)
    assert response.status_code == 200
    assert response.json() == {"key": "agent_1", "value": second}
    assert (await admin_client.delete(url)).status_code == 204
    assert await store.get("agent_1") is None
    assert (await admin_client.delete(url)).status_code == 204  # idempotent
    response = await admin_client.get(url)
    assert response.status_code == 404 and error_code(response) == "record_not_found"
    assert await storages["other"].get("agent_1") is None


@pytest.mark.parametrize("kind", KINDS)
async def test_hostile_keys_in_urls(kind, configure, admin_client):
    configure(kind)
    store = storages["main"]
    for i, key in enumerate(HOSTILE_KEYS):
        response = await put(admin_client, key_url("main", key), sample_value(store, i))
        assert response.status_code == 201, key
        assert response.json()["key"] == key
    assert await stored_keys() == set(HOSTILE_KEYS)
    for i, key in enumerate(HOSTILE_KEYS):
        response = await admin_client.get(key_url("main", key))
        assert response.json() == {"key": key, "value": sample_value(store, i)}, key
    # Unescaped slashes reach the view unchanged as well.
    response = await admin_client.get(f"{API}/main/records/user/42/thread/7")
    assert response.json()["key"] == "user/42/thread/7"
    listed: list[str] = []
    cursor = ""
    while True:
        response = await admin_client.get(f"{API}/main/records/", {"limit": 7, "cursor": cursor})
        page = response.json()
        listed += page["keys"]
        if page["cursor"] is None:
            break
        cursor = page["cursor"]
    assert sorted(listed) == sorted(HOSTILE_KEYS)
    for key in HOSTILE_KEYS:
        assert (await admin_client.delete(key_url("main", key))).status_code == 204
    assert await stored_keys() == set()


@pytest.mark.parametrize("kind", KINDS)
async def test_listing_with_prefix_and_limit(kind, configure, admin_client):
    configure(kind)
    store = storages["main"]
    await store.set_many({f"user/{i:02}": sample_value(store, i) for i in range(12)})
    await store.set("bot/1", sample_value(store))
    response = await admin_client.get(f"{API}/main/records/", {"prefix": "user/", "limit": 5})
    assert response.status_code == 200
    first = response.json()
    assert len(first["keys"]) <= 5 and first["cursor"] is not None
    keys = list(first["keys"])
    cursor = first["cursor"]
    while cursor is not None:
        page = (
            await admin_client.get(
                f"{API}/main/records/", {"prefix": "user/", "limit": 5, "cursor": cursor}
            )
        ).json()
        keys += page["keys"]
        cursor = page["cursor"]
    assert sorted(keys) == [f"user/{i:02}" for i in range(12)]
    for bad in ({"limit": 0}, {"limit": "many"}, {"limit": 10_001}, {"prefix": "a\nb"}):
        response = await admin_client.get(f"{API}/main/records/", bad)
        assert response.status_code == 400 and error_code(response) == "invalid_parameter", bad


# -------------------------------------------------------------------- error statuses


@pytest.mark.parametrize("kind", KINDS)
async def test_bad_requests_are_400_and_write_nothing(kind, configure, admin_client):
    configure(kind)
    store = storages["main"]
    await store.set("keep", sample_value(store, 1))
    url = key_url("main", "keep")
    bodies = {
        "malformed_json": [
            '{"a": ',
            "{'single': 1}",
            '{"a": NaN}',
            '{"a": Infinity}',
            b'{"a": "\xff"}',
            "",
        ],
        "invalid_body": ["[1, 2]", '"text"', "42", "null"],
        "invalid_value": [
            '{"a": "nul\\u0000"}',
            '{"a": ' + "[" * 300 + "]" * 300 + "}",
            '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
        ],
    }
    for code, cases in bodies.items():
        for body in cases:
            response = await admin_client.put(url, data=body, content_type="application/json")
            assert response.status_code == 400, (code, body)
            assert error_code(response) == code, body
    for key in ["x" * 513, "a\nb", "nul\x00", "del\x7f"]:
        response = await put(admin_client, key_url("main", key), sample_value(store))
        assert response.status_code == 400 and error_code(response) == "invalid_key", key
        response = await admin_client.get(key_url("main", key))
        assert response.status_code == 400 and error_code(response) == "invalid_key", key
    assert await stored_keys() == {"keep"}
    assert await store.get("keep") == sample_value(store, 1)


@pytest.mark.parametrize("kind", KINDS)
async def test_body_over_the_limit_is_413_and_writes_nothing(
    kind, configure, admin_client, settings
):
    configure(kind)
    settings.PRISM_STORAGE_API_MAX_BODY = 200
    store = storages["main"]
    big = {"text": "x" * 300}
    response = await put(admin_client, key_url("main", "big"), big)
    assert response.status_code == 413 and error_code(response) == "payload_too_large"
    response = await admin_client.post(
        f"{API}/main/search", data=json.dumps(big), content_type="application/json"
    )
    assert response.status_code in (400, 413)  # unsupported stores refuse before reading
    assert await store.get("big") is None
    # A body sent without Content-Length (chunked) is measured as it is read.
    factory = AsyncRequestFactory()
    request = factory.put(
        key_url("main", "big"), data=json.dumps(big), content_type="application/json"
    )
    del request.META["CONTENT_LENGTH"]
    request._dont_enforce_csrf_checks = True  # as Django's test Client marks its requests
    request.user = await sync_to_async(User.objects.get)(username="root")
    from prism_storage.views import record

    response = await record(request, alias="main", key="big")
    assert response.status_code == 413 and error_code(response) == "payload_too_large"
    assert await store.get("big") is None


async def test_unknown_store_and_method(configure, admin_client):
    configure("file")
    for method in ("get", "delete"):
        response = await getattr(admin_client, method)(key_url("nowhere", "k"))
        assert response.status_code == 404 and error_code(response) == "unknown_store"
    response = await put(admin_client, key_url("nowhere", "k"), {"a": 1})
    assert response.status_code == 404 and error_code(response) == "unknown_store"
    response = await admin_client.get(f"{API}/nowhere/records/")
    assert response.status_code == 404 and error_code(response) == "unknown_store"
    response = await admin_client.post(
        key_url("main", "k"), data="{}", content_type="application/json"
    )
    assert response.status_code == 405 and error_code(response) == "method_not_allowed"
    assert response["Allow"] == "GET, PUT, DELETE"
    assert await stored_keys() == set()


async def test_unsupported_operations_are_400_naming_them(configure, admin_client):
    configure(
        "file",
        minimal={
            "BACKEND": "tests.support.minimal_backend.MinimalBackend",
            "OPTIONS": {"name": "api-unsupported"},
        },
    )
    response = await admin_client.get(f"{API}/minimal/records/")
    assert response.status_code == 400 and error_code(response) == "unsupported_operation"
    assert "Listing" in response.json()["error"]["message"]
    response = await put(admin_client, key_url("minimal", "k") + "?ttl=60", {"a": 1})
    assert response.status_code == 400 and error_code(response) == "unsupported_operation"
    assert "ttl" in response.json()["error"]["message"]
    assert await storages["minimal"].get("k") is None
    # Without a ttl the same store takes the write.
    assert (await put(admin_client, key_url("minimal", "k"), {"a": 1})).status_code == 201
    response = await put(admin_client, key_url("main", "k") + "?ttl=-5", {"a": 1})
    assert response.status_code == 400 and error_code(response) == "invalid_parameter"


@pytest.mark.parametrize("kind", KINDS)
async def test_search(kind, configure, admin_client):
    configure(kind)
    store = storages["main"]
    url = f"{API}/main/search"

    async def post(body):
        return await admin_client.post(url, data=json.dumps(body), content_type="application/json")

    if not store.supports_search:
        response = await post({"embedding": [0.1, 0.2], "limit": 3})
        assert response.status_code == 400 and error_code(response) == "unsupported_operation"
        assert "search" in response.json()["error"]["message"]
        return
    dimensions = store.dimensions
    for i in range(3):
        await store.set(f"doc-{i}", sample_value(store, i))
    response = await post({"embedding": sample_value(store, 1)["embedding"], "limit": 2})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 2 and results[0]["key"] == "doc-1"
    assert results[0]["score"] >= results[1]["score"]
    assert results[0]["value"] == sample_value(store, 1)
    for bad in (
        {"embedding": "nope"},
        {"embedding": []},
        {"embedding": [True] * dimensions},
        {"embedding": [0.1] * (dimensions + 1)},
    ):
        response = await post(bad)
        assert response.status_code == 400 and error_code(response) == "invalid_vector", bad
    for bad in (
        {"embedding": [0.1] * dimensions, "limit": 0},
        {"embedding": [0.1] * dimensions, "limit": "3"},
    ):
        response = await post(bad)
        assert response.status_code == 400 and error_code(response) == "invalid_parameter"
    for bad in (
        {},
        {"embedding": [0.1] * dimensions, "text": "both"},
        {"embedding": [0.1] * dimensions, "filter": [1]},
        {"embedding": [0.1] * dimensions, "colour": "red"},
    ):
        response = await post(bad)
        assert response.status_code == 400 and error_code(response) == "invalid_body", bad
    response = await post({"embedding": [0.0] * dimensions})
    assert response.status_code == 400 and error_code(response) in (
        "invalid_vector",
        "invalid_value",
    )
    if supports_text_search(store):
        await store.set("note", {"text": "the quarterly report"})
        response = await post({"text": "the quarterly report", "limit": 1})
        assert response.status_code == 200
        assert [r["key"] for r in response.json()["results"]] == ["note"]
        response = await post({"text": "", "limit": 1})
        assert response.status_code == 400 and error_code(response) == "invalid_body"
    else:
        response = await post({"text": "hello", "limit": 1})
        assert response.status_code == 400 and error_code(response) == "unsupported_operation"
    assert await store.get("doc-1") == sample_value(store, 1)


# ------------------------------------------------------------------ store failures


@pytest.mark.django_db(transaction=True, databases=["default", "pg", "unreachable"])
async def test_unreachable_stores_are_503_without_details(settings, admin_client, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the store's directory should be")
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm"},
        "files": {"BACKEND": "file", "OPTIONS": {"data_dir": str(blocker / "store")}},
        "db": {"BACKEND": "orm", "OPTIONS": {"using": "unreachable"}},
    }
    for alias in ("files", "db"):
        for response in (
            await admin_client.get(key_url(alias, "k")),
            await put(admin_client, key_url(alias, "k"), {"a": 1}),
            await admin_client.delete(key_url(alias, "k")),
            await admin_client.get(f"{API}/{alias}/records/"),
        ):
            assert response.status_code == 503, alias
            assert error_code(response) == "store_unavailable"
            assert "127.0.0.1" not in response.text and str(tmp_path) not in response.text


async def test_misconfigured_store_is_503(configure, admin_client):
    configure("file", broken={"BACKEND": "file", "OPTIONS": {"no_such_option": 1}})
    response = await admin_client.get(key_url("broken", "k"))
    assert response.status_code == 503 and error_code(response) == "store_misconfigured"


# -------------------------------------------------------------------------- access

# operation -> statuses expected for (anonymous, noperms, viewer, changer, deleter, superuser)
MATRIX = {
    "list_stores": (401, 403, 200, 200, 200, 200),
    "get": (401, 403, 200, 200, 200, 200),
    "list_keys": (401, 403, 200, 200, 200, 200),
    "put": (401, 403, 403, 200, 403, 200),
    "delete": (401, 403, 403, 403, 204, 204),
}
USERS = ("anonymous", "noperms", "viewer", "changer", "deleter", "superuser")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("who", USERS)
async def test_permission_matrix(kind, who, configure, users):
    configure(kind)
    store = storages["main"]
    original = sample_value(store, 1)
    await store.set("k", original)
    client = Client()
    if users[who] is not None:
        await client.aforce_login(users[who])
    calls = {
        "list_stores": lambda: client.get(f"{API}/"),
        "get": lambda: client.get(key_url("main", "k")),
        "list_keys": lambda: client.get(f"{API}/main/records/"),
        "put": lambda: put(client, key_url("main", "k"), sample_value(store, 2)),
        "delete": lambda: client.delete(key_url("main", "k")),
    }
    for operation, call in calls.items():
        expected = MATRIX[operation][USERS.index(who)]
        response = await call()
        assert response.status_code == expected, (operation, response.content)
        if expected >= 400:
            assert error_code(response) in ("not_authenticated", "permission_denied")
    stored = await store.get("k")
    if MATRIX["delete"][USERS.index(who)] == 204:
        assert stored is None
    elif MATRIX["put"][USERS.index(who)] == 200:
        assert stored == sample_value(store, 2)
    else:
        assert stored == original


async def test_access_hook_hides_stores_and_refuses_operations(configure, users, settings):
    configure("file")
    decisions: list[tuple[str, str, str]] = []

    def policy(user, alias, operation):
        decisions.append((user.username, alias, operation))
        if alias == "other":
            return user.is_superuser
        return not (alias == "main" and operation == "delete")

    settings.PRISM_STORAGE_ACCESS = policy
    client = Client()
    await client.aforce_login(users["deleter"])
    response = await client.get(f"{API}/")
    assert [s["alias"] for s in response.json()["stores"]] == ["default", "main"]
    response = await client.get(key_url("other", "k"))
    assert response.status_code == 404 and error_code(response) == "unknown_store"
    await storages["main"].set("k", {"a": 1})
    response = await client.delete(key_url("main", "k"))
    assert response.status_code == 403 and error_code(response) == "permission_denied"
    assert await storages["main"].get("k") == {"a": 1}
    assert ("deleter", "main", "delete") in decisions
    # The hook applies to superusers too, and takes a dotted path.
    settings.PRISM_STORAGE_ACCESS = "tests.test_api.deny_everything"
    await client.aforce_login(users["superuser"])
    assert (await client.get(f"{API}/")).json() == {"stores": []}
    response = await client.get(key_url("main", "k"))
    assert response.status_code == 404


def deny_everything(user, alias, operation) -> bool:
    return False


async def test_csrf_is_enforced_for_session_writes(configure, users, settings):
    configure("file")
    client = Client(enforce_csrf_checks=True)
    await client.aforce_login(users["superuser"])
    await storages["main"].set("k", {"v": 1})
    assert (await client.get(key_url("main", "k"))).status_code == 200
    for response in (
        await put(client, key_url("main", "k"), {"v": 2}),
        await client.delete(key_url("main", "k")),
        await put(client, key_url("main", "new"), {"v": 3}),
    ):
        assert response.status_code == 403
    settings.CSRF_FAILURE_VIEW = "prism_storage.views.csrf_failure"
    response = await put(client, key_url("main", "k"), {"v": 2})
    assert response.status_code == 403 and error_code(response) == "csrf_failed"
    assert await stored_keys() == {"k"} and await storages["main"].get("k") == {"v": 1}
    # With the token from the cookie the same writes go through.
    await client.get("/admin/login/")
    token = client.cookies["csrftoken"].value
    response = await put(client, key_url("main", "k"), {"v": 2}, headers={"X-CSRFToken": token})
    assert response.status_code == 200
    response = await client.delete(key_url("main", "k"), headers={"X-CSRFToken": token})
    assert response.status_code == 204


async def test_inactive_user_is_not_authenticated(configure, users):
    configure("file")
    user = users["superuser"]
    client = Client()
    await client.aforce_login(user)
    user.is_active = False
    await user.asave()
    response = await client.get(f"{API}/")
    assert response.status_code == 401 and error_code(response) == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Session")


async def test_csrf_failure_view_keeps_django_page_outside_the_api(settings, users):
    settings.CSRF_FAILURE_VIEW = "prism_storage.views.csrf_failure"
    client = Client(enforce_csrf_checks=True)
    response = await client.post("/admin/login/", {"username": "root", "password": "pw"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert AnonymousUser().is_authenticated is False


# ------------------------------------------------- versions: ETags and preconditions


def etag_version(response) -> str:
    etag = response["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    return etag[1:-1]


@pytest.fixture
def versioned(configure):
    """``main`` a memory store (versions, conditional writes, atomic lists) and ``plain``
    a store keeping none of them."""
    run = uuid.uuid4().hex[:8]
    configure(
        "memory",
        main=memory_variant("Gated", f"api-main-{run}"),
        plain=memory_variant("Unversioned", f"api-plain-{run}"),
    )
    return storages["main"]


async def test_get_and_writes_carry_the_version_as_etag(versioned, admin_client):
    url = key_url("main", "a/b")
    response = await put(admin_client, url, {"n": 1})
    assert response.status_code == 201
    record = await versioned.get_record("a/b")
    assert etag_version(response) == record.version
    response = await admin_client.get(url)
    assert etag_version(response) == record.version
    assert response["Last-Modified"] == http_date(record.updated_at.timestamp())
    response = await put(admin_client, url, {"n": 2})
    assert response.status_code == 200
    assert etag_version(response) == (await versioned.get_record("a/b")).version != record.version


async def test_get_with_the_current_etag_is_not_modified(versioned, admin_client):
    url = key_url("main", "k")
    etag = (await put(admin_client, url, {"n": 1}))["ETag"]
    response = await admin_client.get(url, headers={"If-None-Match": etag})
    assert response.status_code == 304 and response["ETag"] == etag
    response = await admin_client.get(url, headers={"If-None-Match": '"other"'})
    assert response.status_code == 200 and response.json()["value"] == {"n": 1}


async def test_put_if_match_writes_at_that_version_only(versioned, admin_client):
    url = key_url("main", "k")
    stale = (await put(admin_client, url, {"n": 1}))["ETag"]
    current = (await put(admin_client, url, {"n": 2}))["ETag"]
    response = await put(admin_client, url, {"n": 3}, headers={"If-Match": stale})
    assert response.status_code == 412 and error_code(response) == "precondition_failed"
    record = await versioned.get_record("k")
    assert record.value == {"n": 2} and tag(record.version) == current  # nothing written
    response = await put(admin_client, url, {"n": 3}, headers={"If-Match": current})
    assert response.status_code == 200
    assert etag_version(response) == (await versioned.get_record("k")).version
    assert await versioned.get("k") == {"n": 3}


async def test_if_match_on_an_absent_record_fails(versioned, admin_client):
    url = key_url("main", "k")
    for if_match in ('"0123456789abcdef"', "*"):
        response = await put(admin_client, url, {"n": 1}, headers={"If-Match": if_match})
        assert response.status_code == 412
        response = await admin_client.delete(url, headers={"If-Match": if_match})
        assert response.status_code == 412
    assert await versioned.get_record("k") is None


async def test_if_match_star_and_lists(versioned, admin_client):
    url = key_url("main", "k")
    current = (await put(admin_client, url, {"n": 1}))["ETag"]
    response = await put(admin_client, url, {"n": 2}, headers={"If-Match": "*"})
    assert response.status_code == 200
    current = response["ETag"]
    # Weak tags never match (If-Match compares strongly); a list matches any member.
    response = await put(admin_client, url, {"n": 3}, headers={"If-Match": f"W/{current}"})
    assert response.status_code == 412
    response = await put(admin_client, url, {"n": 3}, headers={"If-Match": f'"x", {current}'})
    assert response.status_code == 200
    response = await put(admin_client, url, {"n": 4}, headers={"If-Match": '"x", "y"'})
    assert response.status_code == 412
    assert await versioned.get("k") == {"n": 3}


async def test_if_none_match_star_creates_only(versioned, admin_client):
    url = key_url("main", "k")
    response = await put(admin_client, url, {"n": 1}, headers={"If-None-Match": "*"})
    assert response.status_code == 201 and response["ETag"]
    response = await put(admin_client, url, {"n": 2}, headers={"If-None-Match": "*"})
    assert response.status_code == 412 and error_code(response) == "precondition_failed"
    assert await versioned.get("k") == {"n": 1}


async def test_delete_if_match(versioned, admin_client):
    url = key_url("main", "k")
    stale = (await put(admin_client, url, {"n": 1}))["ETag"]
    current = (await put(admin_client, url, {"n": 2}))["ETag"]
    response = await admin_client.delete(url, headers={"If-Match": stale})
    assert response.status_code == 412
    assert await versioned.get("k") == {"n": 2}
    assert (await admin_client.delete(url, headers={"If-Match": current})).status_code == 204
    assert await versioned.get_record("k") is None


@pytest.mark.parametrize("condition", [None, "*"])
async def test_twenty_concurrent_creates_answer_one_201(
    condition, versioned, admin_client, monkeypatch
):
    url = key_url("main", "new")
    headers = {} if condition is None else {"If-None-Match": condition}
    # All 20 requests reach the store before any goes on: an exists-then-set would see
    # the key absent 20 times.
    monkeypatch.setattr(GatedMemoryBackend, "gate", asyncio.Barrier(20))
    responses = await asyncio.wait_for(
        asyncio.gather(
            *(put(admin_client, url, {"writer": i}, headers=headers) for i in range(20))
        ),
        timeout=60,  # a safety net against a hang, not a measurement
    )
    monkeypatch.setattr(GatedMemoryBackend, "gate", None)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 200 if condition is None else 412: 19}
    winner = next(r for r in responses if r.status_code == 201)
    if condition == "*":
        assert await versioned.get("new") == winner.json()["value"]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"If-Match": "abc"}, "invalid_header"),  # not quoted
        ({"If-Match": '"a" "b"'}, "invalid_header"),
        ({"If-None-Match": '"abc"'}, "invalid_header"),  # PUT takes only "*"
        ({"If-Match": '"a"', "If-None-Match": "*"}, "invalid_header"),
        ({"If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}, "invalid_header"),
    ],
)
async def test_bad_preconditions_are_400_before_any_write(headers, code, versioned, admin_client):
    response = await put(admin_client, key_url("main", "k"), {"n": 1}, headers=headers)
    assert response.status_code == 400 and error_code(response) == code
    assert await stored_keys() == set()


async def test_delete_takes_no_if_none_match(versioned, admin_client):
    await versioned.set("k", {"n": 1})
    response = await admin_client.delete(key_url("main", "k"), headers={"If-None-Match": "*"})
    assert response.status_code == 400 and error_code(response) == "invalid_header"
    assert await versioned.get("k") == {"n": 1}


async def test_stores_without_versions_keep_their_behaviour(versioned, admin_client):
    url = key_url("plain", "k")
    response = await put(admin_client, url, {"n": 1})
    assert response.status_code == 201 and "ETag" not in response
    response = await admin_client.get(url)
    assert response.json() == {"key": "k", "value": {"n": 1}}
    assert "ETag" not in response and "Last-Modified" not in response
    assert (await put(admin_client, url, {"n": 2})).status_code == 200


@pytest.mark.parametrize(
    "headers", [{"If-Match": '"0123456789abcdef"'}, {"If-Match": "*"}, {"If-None-Match": "*"}]
)
async def test_preconditions_on_a_store_without_conditional_writes_are_501(
    headers, versioned, admin_client
):
    url = key_url("plain", "k")
    await storages["plain"].set("k", {"n": 1})
    response = await put(admin_client, url, {"n": 2}, headers=headers)
    assert response.status_code == 501 and error_code(response) == "precondition_unsupported"
    if "If-Match" in headers:
        response = await admin_client.delete(url, headers=headers)
        assert response.status_code == 501
    assert await storages["plain"].get("k") == {"n": 1}  # never written unconditionally


# ------------------------------------------------------------------ append and pop


def list_url(operation: str, alias: str, key: str) -> str:
    return f"{API}/{alias}/{operation}/" + quote(key, safe="").replace(".", "%2E")


async def post(client, url, body=None, **extra):
    data = "" if body is None else json.dumps(body)
    return await client.post(url, data=data, content_type="application/json", **extra)


async def test_append_and_pop(versioned, admin_client):
    key = "conversations/42/append"  # a key holding "/" and an operation's name
    url = list_url("append", "main", key)
    response = await post(admin_client, url, {"items": [{"m": 1}, {"m": 2}]})
    assert response.status_code == 200 and response.json() == {"length": 2}
    response = await post(admin_client, url, {"items": [3, 4, 5], "field": "log", "max_items": 2})
    assert response.json() == {"length": 2}
    assert await versioned.get(key) == {"messages": [{"m": 1}, {"m": 2}], "log": [4, 5]}
    pop_url = list_url("pop", "main", key)
    assert (await post(admin_client, pop_url)).json() == {"item": {"m": 2}}
    assert (await post(admin_client, pop_url, {"field": "log"})).json() == {"item": 5}
    assert (await post(admin_client, pop_url, {"field": "log"})).json() == {"item": 4}
    response = await post(admin_client, pop_url, {"field": "log"})
    assert response.status_code == 200 and response.json() == {"item": None}
    empty = await post(admin_client, list_url("pop", "main", "absent"))
    assert empty.status_code == 200 and empty.json() == {"item": None}
    assert await versioned.get(key) == {"messages": [{"m": 1}], "log": []}
    assert await versioned.get_record("absent") is None


async def test_concurrent_appends_lose_nothing(versioned, admin_client):
    url = list_url("append", "main", "chat")
    responses = await asyncio.gather(*(post(admin_client, url, {"items": [i]}) for i in range(20)))
    assert sorted(r.json()["length"] for r in responses) == list(range(1, 21))
    assert sorted((await versioned.get("chat"))["messages"]) == list(range(20))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_body"),
        ({"items": [1], "extra": 1}, "invalid_body"),
        ({"items": "abc"}, "invalid_value"),
        ({"items": [1], "field": ""}, "invalid_value"),
        ({"items": [1], "max_items": 0}, "invalid_value"),
        ({"items": [float("nan")]}, "malformed_json"),
        ([1], "invalid_body"),
    ],
)
async def test_bad_appends_are_400_and_write_nothing(body, code, versioned, admin_client):
    response = await post(admin_client, list_url("append", "main", "k"), body)
    assert response.status_code == 400 and error_code(response) == code
    assert await stored_keys() == set()


async def test_append_to_a_field_that_is_not_a_list(versioned, admin_client):
    await versioned.set("k", {"messages": "text"})
    response = await post(admin_client, list_url("append", "main", "k"), {"items": [1]})
    assert response.status_code == 400 and error_code(response) == "invalid_value"
    response = await post(admin_client, list_url("pop", "main", "k"))
    assert response.status_code == 400 and error_code(response) == "invalid_value"
    assert await versioned.get("k") == {"messages": "text"}


async def test_append_and_pop_take_no_preconditions(versioned, admin_client):
    url = list_url("append", "main", "k")
    response = await post(admin_client, url, {"items": [1]}, headers={"If-Match": "*"})
    assert response.status_code == 400 and error_code(response) == "invalid_header"
    assert await stored_keys() == set()


async def test_lists_on_a_store_without_atomic_lists(versioned, admin_client):
    response = await post(admin_client, list_url("append", "plain", "k"), {"items": [1]})
    assert response.status_code == 400 and error_code(response) == "unsupported_operation"
    response = await post(admin_client, list_url("pop", "plain", "k"))
    assert response.status_code == 400 and error_code(response) == "unsupported_operation"
    assert await storages["plain"].get("k") is None


async def test_append_and_pop_need_change_permission(versioned, users):
    client = Client()
    await client.aforce_login(users["viewer"])
    response = await post(client, list_url("append", "main", "k"), {"items": [1]})
    assert response.status_code == 403
    response = await post(client, list_url("pop", "main", "k"))
    assert response.status_code == 403
    response = await client.get(list_url("pop", "main", "k"))
    assert response.status_code == 405
    assert await stored_keys() == set()
