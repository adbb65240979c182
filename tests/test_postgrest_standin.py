"""The PostgREST test stand-in, exercised with the real supabase-py client and raw httpx:
the wire behaviour the supabase backend relies on must be PostgREST's."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions

from tests.support.supabase import ANON_KEY, SERVICE_KEY


@pytest.fixture
def server(postgrest_standin):
    postgrest_standin.reset()
    yield postgrest_standin
    postgrest_standin.reset()


@pytest.fixture
async def http(server):
    async with httpx.AsyncClient(
        base_url=server.url + "/rest/v1", headers={"apikey": SERVICE_KEY}
    ) as client:
        yield client


@pytest.fixture
async def client(server):
    http = httpx.AsyncClient()
    yield AsyncClient(
        server.url, SERVICE_KEY, AsyncClientOptions(httpx_client=http, postgrest_client_retry=False)
    )
    await http.aclose()


@pytest.fixture
def table(supabase_table, client):
    return supabase_table()


async def test_upsert_select_filters_and_order(client, table):
    rows = [{"key": k, "data": {"n": i}} for i, k in enumerate(["b", "a", "c", "a_b", "a%c"])]
    await client.table(table).upsert(rows, on_conflict="key").execute()
    everything = await client.table(table).select("key").order("key").execute()
    assert [r["key"] for r in everything.data] == ["a", "a%c", "a_b", "b", "c"]
    page = (
        await client.table(table).select("key,data").order("key", desc=True).range(1, 2).execute()
    )
    assert page.data == [{"key": "b", "data": {"n": 0}}, {"key": "a_b", "data": {"n": 3}}]
    ranged = (
        await client.table(table)
        .select("key")
        .gte("key", "a")
        .lt("key", "b")
        .neq("key", "a")
        .execute()
    )
    assert sorted(r["key"] for r in ranged.data) == ["a%c", "a_b"]
    liked = await client.table(table).select("key").like("key", "a*").execute()
    assert len(liked.data) == 3  # like's * is PostgREST's wildcard
    # merge-duplicates overwrites only the sent columns.
    await client.table(table).upsert({"key": "a", "data": {"n": 99}}, on_conflict="key").execute()
    got = await client.table(table).select("data").eq("key", "a").execute()
    assert got.data == [{"data": {"n": 99}}]


async def test_in_lists_quote_and_bind_values(client, table):
    keys = [" lead", "plain", "com,ma", "(paren)", 'quote"d', "back\\slash", "' OR 1=1 --"]
    await client.table(table).upsert([{"key": k, "data": {}} for k in keys]).execute()
    found = await client.table(table).select("key").in_("key", keys).execute()
    # supabase-py leaves " lead" unquoted, and PostgREST drops the spaces after "(" ...
    assert {r["key"] for r in found.data} == set(keys) - {" lead"}
    quoted = await client.table(table).select("key").filter("key", "in", '(" lead")').execute()
    assert [r["key"] for r in quoted.data] == [" lead"]  # ... unless it is quoted


async def test_or_is_and_count(client, table):
    await (
        client.table(table)
        .upsert(
            [
                {"key": "never", "data": {}, "expires_at": None},
                {"key": "past", "data": {}, "expires_at": "2000-01-01T00:00:00Z"},
                {"key": "future", "data": {}, "expires_at": "2999-01-01T00:00:00Z"},
            ]
        )
        .execute()
    )
    alive = (
        await client.table(table)
        .select("key", count="exact")
        .or_("expires_at.is.null,expires_at.gt.2024-01-01T00:00:00.000000Z")
        .order("key")
        .limit(1)
        .execute()
    )
    assert [r["key"] for r in alive.data] == ["future"]
    assert alive.count == 2
    deleted = (
        await client.table(table)
        .delete(count="exact")
        .lte("expires_at", "2024-01-01T00:00:00Z")
        .execute()
    )
    assert deleted.count == 1
    assert [r["key"] for r in deleted.data] == ["past"]


async def test_single_and_conflict_errors(client, table):
    with pytest.raises(APIError) as missing:
        await client.table(table).select("*").eq("key", "absent").single().execute()
    assert missing.value.code == "PGRST116"
    await client.table(table).insert({"key": "k", "data": {}}).execute()
    one = await client.table(table).select("key").eq("key", "k").single().execute()
    assert one.data == {"key": "k"}
    with pytest.raises(APIError) as duplicate:
        await client.table(table).insert({"key": "k", "data": {}}).execute()
    assert duplicate.value.code == "23505"


async def test_error_shapes_and_statuses(http, table):
    missing = await http.get("/no_such_table", params={"select": "*"})
    assert missing.status_code == 404
    assert set(missing.json()) == {"code", "message", "details", "hint"}
    assert missing.json()["code"] == "PGRST205"
    column = await http.get(f"/{table}", params={"select": "nope"})
    assert (column.status_code, column.json()["code"]) == (400, "42703")
    body_column = await http.post(f"/{table}", json={"key": "k", "nope": 1})
    assert (body_column.status_code, body_column.json()["code"]) == (400, "PGRST204")
    single = await http.get(f"/{table}", headers={"Accept": "application/vnd.pgrst.object+json"})
    assert (single.status_code, single.json()["code"]) == (406, "PGRST116")
    minimal = await http.post(
        f"/{table}", json=[{"key": "m", "data": {}}], headers={"Prefer": "return=minimal"}
    )
    assert (minimal.status_code, minimal.content) == (201, b"")


async def test_keys_are_checked(server, table):
    async with httpx.AsyncClient(base_url=server.url + "/rest/v1") as raw:
        assert (await raw.get(f"/{table}")).status_code == 401
        wrong = await raw.get(f"/{table}", headers={"apikey": "wrong"})
        assert wrong.status_code == 401
        assert "wrong" not in wrong.text
        anon = await raw.get(
            f"/{table}", headers={"apikey": ANON_KEY, "Authorization": f"Bearer {ANON_KEY}"}
        )
        assert (anon.status_code, anon.json()["code"]) == (401, "42501")  # RLS + revoke
        service = await raw.get(f"/{table}", headers={"apikey": SERVICE_KEY})
        assert service.status_code == 200


async def test_fault_injection(server, http, table):
    server.fail_next(503, code="PGRST000")
    failed = await http.get(f"/{table}")
    assert (failed.status_code, failed.json()["code"]) == (503, "PGRST000")
    assert (await http.get(f"/{table}")).status_code == 200
    server.drop_next()
    with pytest.raises(httpx.TransportError):
        await http.get(f"/{table}")
    server.delay_next(0.3)
    started = time.monotonic()
    assert (await http.get(f"/{table}")).status_code == 200
    assert time.monotonic() - started >= 0.3
    assert [r.method for r in server.requests] == ["GET"] * 4


async def test_sequential_requests_are_not_held_by_nagle(http, table):
    """Headers and body go out in separate writes: without TCP_NODELAY each waits ~40 ms."""
    await http.get(f"/{table}")
    started = time.monotonic()
    for _ in range(20):
        await http.post(
            f"/{table}",
            json={"key": "k", "data": {"x": "y" * 2000}},
            params={"on_conflict": "key"},
            headers={"Prefer": "resolution=merge-duplicates,return=minimal"},
        )
    assert time.monotonic() - started < 0.6


async def test_each_recorded_request_names_its_connection(server, http, table):
    await http.get(f"/{table}")
    await http.get(f"/{table}")  # the same kept-alive connection
    async with httpx.AsyncClient(
        base_url=server.url + "/rest/v1", headers={"apikey": SERVICE_KEY}
    ) as other:
        await other.get(f"/{table}")
    first, second, third = (request.client_port for request in server.requests[-3:])
    assert first == second != third
    assert first > 0 and third > 0


# ---------------------------------------------------------------------- functions (RPC)


@pytest.fixture
def functions(supabase_admin):
    """``make(sql)``: create functions from ``sql`` (``{p}`` is a fresh name prefix)."""

    def make(text: str) -> str:
        prefix = f"f_{uuid.uuid4().hex[:10]}"
        supabase_admin.execute(text.format(p=prefix))
        return prefix

    return make


_SHAPES = """
create function {p}_add(a integer, b integer default 10) returns integer
    language sql as $$ select a + b $$;
create function {p}_series(n integer) returns setof integer
    language sql as $$ select generate_series(1, n) $$;
create function {p}_rows(n integer) returns table (i integer, doc jsonb)
    language sql as $$ select i, jsonb_build_object('i', i) from generate_series(1, n) i $$;
create function {p}_one(doc jsonb, at timestamptz, flag boolean, out got jsonb, out year integer)
    language sql as $$ select doc, extract(year from at at time zone 'UTC')::integer $$;
create function {p}_nothing(n integer) returns void language sql as $$ select $$;
create function {p}_fail(n integer) returns integer language plpgsql as $$
    begin raise exception 'refused %', n; end $$;
revoke execute on function {p}_add(integer, integer) from public;
grant execute on function {p}_add(integer, integer) to service_role;
"""


async def test_rpc_answers_in_the_shape_of_the_return_type(client, functions):
    p = functions(_SHAPES)
    assert (await client.rpc(f"{p}_add", {"a": 1, "b": 2}).execute()).data == 3
    assert (await client.rpc(f"{p}_add", {"a": 1}).execute()).data == 11  # a default
    assert (await client.rpc(f"{p}_series", {"n": 3}).execute()).data == [1, 2, 3]
    assert (await client.rpc(f"{p}_series", {"n": 0}).execute()).data == []
    rows = await client.rpc(f"{p}_rows", {"n": 2}).execute()
    assert rows.data == [{"i": 1, "doc": {"i": 1}}, {"i": 2, "doc": {"i": 2}}]
    doc = {"nested": [1, "two", None, {"x": 1.5}]}
    one = await client.rpc(
        f"{p}_one", {"doc": doc, "at": "2031-05-01T12:00:00Z", "flag": True}
    ).execute()
    assert one.data == {"got": doc, "year": 2031}  # one row: an object, not a list


async def test_rpc_void_is_204_and_errors_have_postgrest_codes(http, functions):
    p = functions(_SHAPES)
    nothing = await http.post(f"/rpc/{p}_nothing", json={"n": 1})
    assert (nothing.status_code, nothing.content) == (204, b"")
    failed = await http.post(f"/rpc/{p}_fail", json={"n": 7})
    assert failed.status_code == 400
    assert failed.json()["code"] == "P0001" and failed.json()["message"] == "refused 7"
    for name, body in [
        ("no_such_function", {"n": 1}),
        (f"{p}_add", {"b": 1}),  # "a" has no default
        (f"{p}_add", {"a": 1, "c": 1}),  # no argument "c"
    ]:
        missing = await http.post(f"/rpc/{name}", json=body)
        assert missing.status_code == 404
        assert set(missing.json()) == {"code", "message", "details", "hint"}
        assert missing.json()["code"] == "PGRST202"
        assert name in missing.json()["message"]
    wrong_type = await http.post(f"/rpc/{p}_add", json={"a": "x"})
    assert (wrong_type.status_code, wrong_type.json()["code"]) == (400, "22P02")


async def test_rpc_runs_in_the_role_of_the_key(server, functions):
    p = functions(_SHAPES)
    async with httpx.AsyncClient(base_url=server.url + "/rest/v1") as raw:
        anon = await raw.post(
            f"/rpc/{p}_add",
            json={"a": 1},
            headers={"apikey": ANON_KEY, "Authorization": f"Bearer {ANON_KEY}"},
        )
        assert (anon.status_code, anon.json()["code"]) == (401, "42501")
        service = await raw.post(f"/rpc/{p}_add", json={"a": 1}, headers={"apikey": SERVICE_KEY})
        assert (service.status_code, service.json()) == (200, 11)
        assert (await raw.post(f"/rpc/{p}_add", json={"a": 1})).status_code == 401
