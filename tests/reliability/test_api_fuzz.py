"""Fuzzing the JSON API: every endpoint, real stores of every kind, hostile requests.

Each request, whatever it holds, must answer a status docs/api.md lists for its endpoint
(never a 5xx: the stores are healthy), in JSON of the documented shape (Django's own CSRF
page excepted, where the documentation says so), and no failing request may write: after
each one the stores hold exactly what they held before, read back through the backend API.

The requests go through a client that enforces CSRF (with a valid token unless a test says
otherwise), as a real deployment does. ``-s`` prints the number of requests sent.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urlencode

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prism_storage import storages
from prism_storage.backends.base import MAX_TTL
from prism_storage.views import supports_text_search
from tests.reliability.api_fuzz_support import (
    API,
    REQUESTS,
    STATUSES,
    Body,
    Fuzzer,
    KeyPath,
    Query,
    bodies,
    check_response,
    content_types,
    decoded_query_value,
    documented_outcome,
    error_code,
    finite,
    key_is_valid,
    key_paths,
    key_url,
    limit_outcome,
    percent_encode,
    queries,
    sample_value,
    search_bodies,
    search_body_bytes,
    session_client,
    snapshot,
)
from tests.support.stores import STORE_KINDS

pytestmark = [
    # Long-running: left out of the default run, run by CI (`bash scripts/test.sh -m slow`).
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_db_connections"),
]

KINDS = sorted(STORE_KINDS)
#: The strategies that send thousands of large bodies run on the local stores and one
#: network store; the rest run on every kind.
HEAVY_KINDS = ["file", "orm", "redis"]

#: Keys the stores hold before each test (hostile ones included), shared prefixes for listing.
SEEDED = [
    "user/1",
    "user/2",
    "user/10",
    "user/20/x",
    "u",
    "bot/1",
    "../../etc/passwd",
    "..",
    "100%",
    "%2e%2e%2f",
    "emoji-🤖-agent",
    "USER/3",
    "user_1",
    "question?",
]


def fuzz_settings(examples: int):  # type: ignore[no-untyped-def]
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture(scope="module", autouse=True)
def report_requests():
    yield
    total = sum(REQUESTS.values())
    endpoints = sorted({endpoint for _, endpoint in REQUESTS})
    kinds = sorted({kind for kind, _ in REQUESTS})
    print(f"\nAPI fuzzing: {total} requests over {len(endpoints)} endpoints x {len(kinds)} stores")
    for kind in kinds:
        print(f"  {kind:9}", {e: REQUESTS[(kind, e)] for e in endpoints})


def _user(name: str, *codenames: str, superuser: bool = False, active: bool = True) -> User:
    user = User.objects.create_user(name, password="pw", is_superuser=superuser, is_active=active)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="prism_storage", codename__in=codenames)
    )
    return user


@pytest_asyncio.fixture
async def world(settings, store_config):
    """``world(kind)``: stores ``main`` and ``other`` of that kind seeded, a superuser's
    CSRF-enforcing client, and the seeded snapshot. Stores are closed on the test's loop."""
    made: dict[str, Any] = {}

    async def build(kind: str) -> dict[str, Any]:
        if made:
            await restore(made["seed"])  # an example that failed may have left a write
            return made
        settings.PRISM_STORAGE = {
            "default": {"BACKEND": "orm"},
            "main": store_config(kind, "main"),
            "other": store_config(kind, "other"),
        }
        main = storages["main"]
        await main.set_many({key: sample_value(main, i) for i, key in enumerate(SEEDED)})
        await storages["other"].set("user/1", sample_value(storages["other"], 99))
        root = await sync_to_async(_user)("root", superuser=True)
        client = session_client()
        await client.aforce_login(root)
        seed = await snapshot()
        assert set(seed["main"]) == set(SEEDED) and list(seed["other"]) == ["user/1"]
        made.update(kind=kind, fuzzer=Fuzzer(kind, client), seed=seed, main=main)
        return made

    yield build
    await storages.aclose_all()


async def restore(seed: dict[str, dict]) -> None:
    current = await snapshot()
    for alias, records in seed.items():
        store = storages[alias]
        extra = set(current[alias]) - set(records)
        if extra:
            await store.delete_many(extra)
        changed = {k: v for k, v in records.items() if current[alias].get(k) != v}
        if changed:
            await store.set_many(changed)


async def assert_unchanged(seed: dict, context: Any) -> None:
    assert await snapshot() == seed, context


# ------------------------------------------------------------------------ PUT bodies


@pytest.mark.parametrize("kind", HEAVY_KINDS)
@fuzz_settings(150)
@given(body=bodies(), content_type=content_types, existing=st.booleans())
async def test_put_bodies(kind, world, body: Body, content_type: str, existing: bool):
    """Any PUT body: stored exactly as documented, or refused with its code, writing nothing."""
    w = await world(kind)
    key = SEEDED[0] if existing else "fuzz-target"
    status, answer = await w["fuzzer"].send("PUT", key_url("main", key), body.data, content_type)
    outcome = body.expect or documented_outcome(body.data)
    context = (body, content_type, status, answer)
    if isinstance(outcome, str):
        assert status == 400 and error_code(answer) == outcome, context
        await assert_unchanged(w["seed"], context)
        return
    if status == 400:  # a store may have rules of its own: the backend must agree
        assert error_code(answer) == "invalid_value", context
        await assert_unchanged(w["seed"], context)
        with pytest.raises(ValueError):
            await w["main"].set(key, outcome)
        return
    assert status == (200 if existing else 201), context
    assert answer == {"key": key, "value": outcome}, context
    assert await w["main"].get(key) == outcome, context


@pytest.mark.parametrize("kind", HEAVY_KINDS)
@fuzz_settings(60)
@given(
    size=st.integers(0, 2_000),
    length=st.sampled_from(
        ["truthful", None, "0", "1", "-5", "abc", "99999999999999999999", "513", "1e3", " 600 "]
    ),
    where=st.sampled_from(["put", "search"]),
)
async def test_body_size_limit(kind, world, settings, size: int, length: str | None, where: str):
    """PRISM_STORAGE_API_MAX_BODY holds whatever Content-Length says (or if it is absent)."""
    w = await world(kind)
    settings.PRISM_STORAGE_API_MAX_BODY = 512
    value = {"pad": "x" * size}
    data = json.dumps(value).encode()
    client = w["fuzzer"].client
    client.content_length = length
    try:
        if where == "put":
            url, method = key_url("main", "fuzz-big"), "PUT"
        else:
            url, method = f"{API}/main/search", "POST"
        status, answer = await w["fuzzer"].send(method, url, data)
    finally:
        client.content_length = "truthful"
    context = (size, len(data), length, where, status, answer)
    declared = len(data) if length == "truthful" else length
    if where == "search":  # no search on these kinds: refused before the body is read
        assert status == 400 and error_code(answer) == "unsupported_operation", context
    elif length in ("abc", "1e3"):  # not a length at all: refused, as too large or as bad
        assert error_code(answer) in ("invalid_body", "payload_too_large"), context
    elif len(data) > 512 or (type(declared) is str and int(declared) > 512):
        assert status == 413 and error_code(answer) == "payload_too_large", context
    else:
        assert status in (200, 201), context
        assert await w["main"].get("fuzz-big") == value
        return
    await assert_unchanged(w["seed"], context)


@pytest.mark.parametrize("kind", HEAVY_KINDS)
async def test_default_body_limit_with_and_without_content_length(kind, world):
    """A body one byte over the default 10 MiB is refused, announced or not."""
    w = await world(kind)
    limit = 10 * 1024 * 1024
    data = b'{"pad": "' + b"x" * (limit - 10) + b'"}'
    assert len(data) == limit + 1
    client = w["fuzzer"].client
    for length in ("truthful", None, "100"):
        client.content_length = length
        try:
            status, answer = await w["fuzzer"].send("PUT", key_url("main", "huge"), data)
        finally:
            client.content_length = "truthful"
        assert status == 413 and error_code(answer) == "payload_too_large", length
    # Exactly at the limit, the body is read and stored.
    status, _ = await w["fuzzer"].send("PUT", key_url("main", "huge"), data[:-3] + b'"}')
    assert status == 201
    assert len((await w["main"].get("huge"))["pad"]) == limit - 11


# ------------------------------------------------------------------------ keys in paths


@pytest.mark.parametrize("kind", KINDS)
@fuzz_settings(80)
@given(path=key_paths())
async def test_keys_in_paths(kind, world, path: KeyPath):
    """PUT, GET, DELETE of any URL tail: the decoded key round-trips, or 400 invalid_key."""
    w = await world(kind)
    fuzzer, main, key = w["fuzzer"], w["main"], path.key
    url = f"{API}/main/records/{path.tail}"
    value = sample_value(main, 7)
    if not key_is_valid(key):
        for method, body in (("PUT", json.dumps(value)), ("GET", b""), ("DELETE", b"")):
            status, answer = await fuzzer.send(method, url, body)
            assert status == 400 and error_code(answer) == "invalid_key", (path, method)
        await assert_unchanged(w["seed"], path)
        return
    seeded = key in w["seed"]["main"]
    status, answer = await fuzzer.send("PUT", url, json.dumps(value))
    assert status == (200 if seeded else 201), (path, key, answer)
    assert answer == {"key": key, "value": value}
    assert await main.get(key) == value
    assert key in [k async for k in main.iter_keys(key)]
    status, answer = await fuzzer.send("GET", url)
    assert (status, answer) == (200, {"key": key, "value": value}), path
    status, _ = await fuzzer.send("DELETE", url)
    assert status == 204 and await main.get(key) is None, path
    status, answer = await fuzzer.send("GET", url)
    assert status == 404 and error_code(answer) == "record_not_found", path


@pytest.mark.parametrize("kind", ["file", "orm"])
@fuzz_settings(30)
@given(
    alias=st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
    method=st.sampled_from(["GET", "PUT", "DELETE", "POST", "PATCH"]),
)
async def test_unknown_aliases(kind, world, alias: str, method: str):
    """Any alias that is not configured is a JSON 404 unknown_store, never a 500."""
    w = await world(kind)
    if alias in ("main", "other", "default") or "/" in alias:
        return
    base = f"{API}/{percent_encode(alias)}"
    for url in (f"{base}/records/k", f"{base}/records/", f"{base}/search"):
        status, answer = await w["fuzzer"].send(method, url, b'{"a": 1}')
        assert status in (404, 405), (alias, url)
        if status == 404:
            assert error_code(answer) == "unknown_store"
    await assert_unchanged(w["seed"], alias)


METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE", "TRACE", "BREW"]
ALLOWED = {"stores": "GET", "record": "GET, PUT, DELETE", "listing": "GET", "search": "POST"}


@pytest.mark.parametrize("kind", KINDS)
async def test_methods(kind, world):
    """Every method on every endpoint: what it is for, or 405 naming the allowed ones."""
    w = await world(kind)
    urls = {
        "stores": f"{API}/",
        "record": key_url("main", "fuzz-method"),
        "listing": f"{API}/main/records/",
        "search": f"{API}/main/search",
    }
    for name, url in urls.items():
        for method in METHODS:
            response = await w["fuzzer"].client.generic(
                method,
                url,
                b"{}",
                "application/json",
                headers={"X-CSRFToken": w["fuzzer"].client.csrf_token},
            )
            endpoint = f"record {method}" if name == "record" else name
            if endpoint not in STATUSES:
                endpoint = "record other"
            REQUESTS[(kind, endpoint)] += 1
            if method != "HEAD":  # a HEAD answer carries no body
                check_response(response, endpoint)
            if method not in ALLOWED[name]:
                assert response.status_code == 405, (url, method)
                assert response["Allow"] == ALLOWED[name]
    await restore(w["seed"])


# ---------------------------------------------------------------------- listing


@pytest.mark.parametrize("kind", KINDS)
@fuzz_settings(80)
@given(query=queries())
async def test_listing_parameters(kind, world, query: Query):
    """Any prefix, cursor and limit: the documented page, or 400 invalid_parameter."""
    w = await world(kind)
    fuzzer = w["fuzzer"]
    url = f"{API}/main/records/?{query.query_string()}"
    status, answer = await fuzzer.send("GET", url)
    context = (query, status, answer)
    prefix = decoded_query_value(query.prefix or "")
    cursor = decoded_query_value(query.cursor or "")
    limit = limit_outcome(
        None if query.effective_limit is None else decoded_query_value(query.effective_limit)
    )
    wanted = sorted(k for k in w["seed"]["main"] if k.startswith(prefix))
    await assert_unchanged(w["seed"], context)
    if limit == 0 or (prefix and not key_is_valid(prefix)) or not key_is_valid(cursor[:512] or "x"):
        assert status == 400 and error_code(answer) == "invalid_parameter", context
        return
    if status == 400:  # a cursor the store did not hand out, or an odd limit like "1.5"
        assert (cursor or limit is None) and error_code(answer) == "invalid_parameter", context
        return
    assert status == 200 and set(answer) == {"keys", "cursor"}, context
    assert limit is None or len(answer["keys"]) <= limit, context
    assert set(answer["keys"]) <= set(wanted), context
    if cursor or limit is None:
        return
    # From the first page on, following the cursors lists each wanted key exactly once.
    listed, next_cursor = list(answer["keys"]), answer["cursor"]
    for _ in range(len(wanted) + 2):
        if next_cursor is None:
            break
        status, page = await fuzzer.send(
            "GET",
            f"{API}/main/records/",
            query_params={"prefix": prefix, "limit": limit, "cursor": next_cursor},
        )
        assert status == 200, (context, page)
        listed += page["keys"]
        next_cursor = page["cursor"]
    assert next_cursor is None and sorted(listed) == wanted, context


@pytest.mark.parametrize("kind", KINDS)
@fuzz_settings(25)
@given(
    ttl=st.one_of(
        st.sampled_from(
            [
                "0",
                "-1",
                "nan",
                "inf",
                "-inf",
                "1e309",
                "1e300",
                "1e18",
                "abc",
                "",
                "0.0001",
                "3600",
                " 60",
                "0x10",
                "1_000",
                "\x00",
                "9" * 400,
                "-0",
            ]
        ),
        st.floats().map(repr),
        st.integers(-(10**20), 10**20).map(str),
    )
)
async def test_ttl_parameter(kind, world, ttl: str):
    """Any ``?ttl=``: stored (with an expiry where supported), or 400, writing nothing."""
    w = await world(kind)
    main = w["main"]
    url = key_url("main", "fuzz-ttl") + "?" + urlencode({"ttl": ttl})
    status, answer = await w["fuzzer"].send("PUT", url, json.dumps({"v": 1}))
    context = (ttl, status, answer)
    try:
        number = float(ttl)
    except ValueError:
        number = math.nan
    if ttl and not 0 < number <= MAX_TTL:
        assert status == 400 and error_code(answer) == "invalid_parameter", context
    elif ttl and not main.supports_ttl:
        assert status == 400 and error_code(answer) == "unsupported_operation", context
    if status == 400:
        await assert_unchanged(w["seed"], context)
        return
    assert status == 201, context
    if number > 1:  # a short ttl may already have expired
        assert await main.get("fuzz-ttl") == {"v": 1}, context


# ------------------------------------------------------------------------ search


@pytest.mark.parametrize("kind", KINDS)
@fuzz_settings(60)
@given(data=st.data())
async def test_search_bodies(kind, world, data):
    """Any search body: results of the documented shape, or a documented 400."""
    w = await world(kind)
    main = w["main"]
    dimensions = main.dimensions or 8  # a store that does not search has none
    body = data.draw(search_bodies(dimensions))
    content_type = data.draw(content_types)
    raw = search_body_bytes(body)
    status, answer = await w["fuzzer"].send("POST", f"{API}/main/search", raw, content_type)
    context = (body, content_type, status, answer)
    await assert_unchanged(w["seed"], context)
    if not main.supports_search:
        assert status == 400 and error_code(answer) == "unsupported_operation", context
        return
    must, may = search_refusals(body, raw, dimensions, supports_text_search(main))
    if status == 400:
        assert error_code(answer) in must | may, context
        return
    assert not must, context
    assert status == 200 and set(answer) == {"results"}, context
    results = answer["results"]
    assert len(results) <= body.get("limit", 5), context
    for result in results:
        assert set(result) == {"key", "score", "value"}, context
        assert type(result["score"]) in (int, float), context
        assert result["value"] == w["seed"]["main"][result["key"]], context
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True), context


def search_refusals(
    body: dict, raw: bytes, dimensions: int, text_search: bool
) -> tuple[set[str], set[str]]:
    """The documented reasons to refuse ``body``: those that must refuse it, and those that
    may (the filter language, vectors beyond what float32 norms hold, odd texts). A
    refusal names one of them."""
    must: set[str] = set()
    may: set[str] = set()
    if b"NaN" in raw or b"Infinity" in raw:
        must.add("malformed_json")
    if set(body) - {"embedding", "text", "limit", "filter"}:
        must.add("invalid_body")
    if ("embedding" in body) == ("text" in body):
        must.add("invalid_body")
    limit = body.get("limit", 5)
    if type(limit) is not int or not 1 <= limit <= 100:
        must.add("invalid_parameter")
    if body.get("filter") is not None and type(body["filter"]) is not dict:
        must.add("invalid_body")
    if type(body.get("filter")) is dict:
        may.update({"invalid_value", "unsupported_operation"})
    if "embedding" in body:
        vector = body["embedding"]
        if (
            type(vector) is not list
            or len(vector) != dimensions
            or not all(finite(x) and type(x) is not bool for x in vector)
        ):
            must.add("invalid_vector")
        elif any(abs(x) > 1e18 or 0 < abs(x) < 1e-18 for x in vector):
            may.update({"invalid_vector", "invalid_value"})
    if "text" in body:
        if not text_search:
            must.add("unsupported_operation")
        elif type(body["text"]) is not str or not body["text"].strip():
            must.add("invalid_body")
        else:
            may.add("invalid_value")  # texts with NUL or lone surrogates
    return must, may


# ------------------------------------------------------------------------ access


OPERATIONS = ["stores", "get", "put", "delete", "list", "search"]
NEEDS = {
    "stores": "view",
    "get": "view",
    "list": "view",
    "search": "view",
    "put": "change",
    "delete": "delete",
}
USERS = {
    # name -> (permission codenames, superuser, active)
    "anonymous": None,
    "noperms": ((), False, True),
    "viewer": (("view_record",), False, True),
    "changer": (("change_record",), False, True),
    "deleter": (("view_record", "delete_record"), False, True),
    "superuser": ((), True, True),
    "inactive": ((), True, False),
}
GRANTS = {
    "view": {"view_record", "change_record"},
    "change": {"change_record"},
    "delete": {"delete_record"},
}
POLICIES = {
    "none": None,
    "read-only": lambda user, alias, operation: operation == "view",
    "no-delete": lambda user, alias, operation: operation != "delete",
    "hide-main": lambda user, alias, operation: alias != "main",
    "superusers-only": lambda user, alias, operation: user.is_superuser,
}


def expected_access(who: str, operation: str, policy: str, csrf: str) -> int | str:
    """The documented answer to ``who`` doing ``operation`` on store ``main``: a status of
    success (0) or the refusal's code."""
    writes = operation in ("put", "delete", "search")
    if writes and csrf != "valid":
        return "csrf"
    if USERS[who] is None or not USERS[who][2]:
        return "not_authenticated"
    codenames, superuser, _ = USERS[who]
    need = NEEDS[operation]
    if not superuser and not GRANTS[need] & set(codenames):
        return "permission_denied"
    allows = POLICIES[policy] or (lambda user, alias, op: True)

    class _User:
        is_superuser = superuser

    if operation == "stores":
        return 0
    if not allows(_User, "main", "view"):
        return "unknown_store"
    if need != "view" and not allows(_User, "main", need):
        return "permission_denied"
    return 0


@pytest_asyncio.fixture
async def clients(db):
    made: dict[tuple[str, str], Any] = {}
    users: dict[str, User] = {}

    async def get(who: str, csrf: str):
        if (who, csrf) not in made:
            token = {"valid": None, "missing": "", "wrong": "x" * 32}[csrf]
            client = session_client(csrf=token) if token is not None else session_client()
            if USERS[who] is not None:
                if who not in users:
                    codenames, superuser, active = USERS[who]
                    users[who] = await sync_to_async(_user)(
                        who, *codenames, superuser=superuser, active=active
                    )
                await client.aforce_login(users[who])
            made[(who, csrf)] = client
        return made[(who, csrf)]

    return get


@pytest.mark.parametrize("kind", KINDS)
@fuzz_settings(100)
@given(
    who=st.sampled_from(list(USERS)),
    operation=st.sampled_from(OPERATIONS),
    policy=st.sampled_from(list(POLICIES)),
    csrf=st.sampled_from(["valid", "missing", "wrong"]),
    json_csrf=st.booleans(),
)
async def test_access(kind, world, clients, settings, who, operation, policy, csrf, json_csrf):
    """Who may do what, with and without CSRF tokens and an access policy: as documented,
    and a refused request writes nothing."""
    w = await world(kind)
    settings.PRISM_STORAGE_ACCESS = POLICIES[policy]
    settings.CSRF_FAILURE_VIEW = (
        "prism_storage.views.csrf_failure" if json_csrf else "django.views.csrf.csrf_failure"
    )
    client = await clients(who, csrf)
    main, key = w["main"], SEEDED[1]
    value = sample_value(main, 50)
    method, url, body = {
        "stores": ("GET", f"{API}/", b""),
        "get": ("GET", key_url("main", key), b""),
        "put": ("PUT", key_url("main", key), json.dumps(value)),
        "delete": ("DELETE", key_url("main", key), b""),
        "list": ("GET", f"{API}/main/records/", b""),
        "search": (
            "POST",
            f"{API}/main/search",
            json.dumps({"embedding": value.get("embedding", [1.0] * 8)}),
        ),
    }[operation]
    status, answer = await w["fuzzer"].send(
        method, url, body, client=client, csrf_page=not json_csrf
    )
    expected = expected_access(who, operation, policy, csrf)
    context = (who, operation, policy, csrf, status, answer)
    if expected == "csrf":
        assert status == 403, context
        assert answer is None if not json_csrf else error_code(answer) == "csrf_failed", context
    elif expected != 0:
        assert error_code(answer) == expected, context
    elif operation == "search" and not main.supports_search:
        assert status == 400 and error_code(answer) == "unsupported_operation", context
    else:
        assert status in (200, 204), context
    if operation == "stores" and status == 200:
        hidden = {"hide-main": {"main"}}.get(policy, set())
        if policy == "superusers-only" and not USERS[who][1]:
            hidden = {"default", "main", "other"}
        aliases = [s["alias"] for s in answer["stores"]]
        assert aliases == [a for a in ("default", "main", "other") if a not in hidden], context
    if status in (200, 204) and operation == "put":
        assert await main.get(key) == value, context
    elif status == 204:
        assert await main.get(key) is None, context
    else:
        await assert_unchanged(w["seed"], context)


# ------------------------------------------------- regressions found by this fuzzing pass


@pytest.mark.parametrize("kind", ["file", "vector"])
async def test_regression_bodies_must_be_utf8(kind, world):
    """UTF-16/32 bodies were accepted (json.loads guesses the encoding from bytes), and a
    UTF-8-encoded lone surrogate was answered as invalid_value instead of malformed_json."""
    w = await world(kind)
    for data in (
        '{"v": 1}'.encode("utf-16"),
        '{"v": 1}'.encode("utf-16-le"),
        '{"v": 1}'.encode("utf-32"),
        b'{"v": "\xed\xa0\x80"}',
    ):
        status, answer = await w["fuzzer"].send("PUT", key_url("main", "k"), data)
        assert (status, error_code(answer)) == (400, "malformed_json"), data
    await assert_unchanged(w["seed"], "utf-16")
    status, answer = await w["fuzzer"].send("PUT", key_url("main", "k"), b'\xef\xbb\xbf{"v": 1}')
    assert status == 201 and answer["value"] == {"v": 1}  # RFC 8259 lets a BOM be ignored


async def test_regression_embedding_with_an_int_too_large_for_a_float(world):
    """``[10**400, ...]`` raised OverflowError (a 500) in the search view and in the vector
    backend's write path."""
    w = await world("vector")
    huge = "1" + "0" * 400
    body = f'{{"embedding": [{huge}, 1, 1, 1, 1, 1, 1, 1]}}'.encode()
    status, answer = await w["fuzzer"].send("POST", f"{API}/main/search", body)
    assert (status, error_code(answer)) == (400, "invalid_vector")
    status, answer = await w["fuzzer"].send("PUT", key_url("main", "k"), body)
    assert (status, error_code(answer)) == (400, "invalid_value")
    assert "embedding" in answer["error"]["message"]
    await assert_unchanged(w["seed"], "huge int")


@pytest.mark.parametrize("kind", ["file", "orm", "redis", "supabase"])
async def test_regression_ttl_beyond_the_maximum(kind, world):
    """``?ttl=1e300`` overflowed the file backend's timestamps (a 500 from os.utime)."""
    w = await world(kind)
    for ttl in ("1e300", str(MAX_TTL + 1), "9" * 400):
        status, answer = await w["fuzzer"].send(
            "PUT", key_url("main", "k") + f"?ttl={ttl}", b'{"v": 1}'
        )
        assert (status, error_code(answer)) == (400, "invalid_parameter"), ttl
    await assert_unchanged(w["seed"], "ttl")
    status, _ = await w["fuzzer"].send("PUT", key_url("main", "k") + f"?ttl={MAX_TTL}", b'{"v": 1}')
    assert status == 201 and await w["main"].get("k") == {"v": 1}


@pytest.mark.parametrize("kind", KINDS)
async def test_regression_cursor_with_a_control_character(kind, world):
    """``?cursor=%00`` reached PostgREST on the supabase store: a 503 "unavailable"."""
    w = await world(kind)
    for cursor in ("%00", "a%0Ab", "%ED%A0%80x%7F"):
        status, answer = await w["fuzzer"].send("GET", f"{API}/main/records/?cursor={cursor}")
        assert (status, error_code(answer)) == (400, "invalid_parameter"), cursor


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"],
)
async def test_regression_search_with_a_form_content_type(world, settings, content_type):
    """A POST with a form content type was parsed by CsrfViewMiddleware before the view:
    Django's HTML 400 page for a malformed multipart body, and a consumed (empty) body
    otherwise. CSRF is still enforced."""
    w = await world("vector")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = json.dumps({"embedding": sample_value(w["main"], 3)["embedding"], "limit": 1})
    status, answer = await w["fuzzer"].send("POST", f"{API}/main/search", body, content_type)
    assert status == 200 and answer["results"][0]["key"] == SEEDED[3], answer
    status, answer = await w["fuzzer"].send("POST", f"{API}/main/search", "--x\r\n", content_type)
    assert (status, error_code(answer)) == (400, "malformed_json")
    settings.CSRF_FAILURE_VIEW = "prism_storage.views.csrf_failure"
    tokenless = session_client(csrf=None)
    await tokenless.aforce_login(await User.objects.aget(username="root"))
    status, answer = await w["fuzzer"].send(
        "POST", f"{API}/main/search", body, content_type, client=tokenless
    )
    assert (status, error_code(answer)) == (403, "csrf_failed")


async def test_embedding_components_beyond_float32_scores_are_refused(world):
    """Engines score in float32: a huge component would make every later score NaN."""
    w = await world("vector")
    for embedding in ([1e300] + [0.5] * 7, [2e9] + [0.5] * 7):
        status, answer = await w["fuzzer"].send(
            "PUT", key_url("main", "big"), json.dumps({"embedding": embedding})
        )
        assert (status, error_code(answer)) == (400, "invalid_value")
        status, answer = await w["fuzzer"].send(
            "POST", f"{API}/main/search", json.dumps({"embedding": embedding})
        )
        assert (status, error_code(answer)) == (400, "invalid_vector")
