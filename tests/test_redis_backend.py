"""The redis backend against real servers: the conformance suite on a standalone server and
on a 3-node Redis Cluster, plus what is specific to Redis (key layout, URLs, TLS, cluster
batches, outages and recovery)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from urllib.parse import quote

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from prism_storage import RedisStorageBackend, Registry
from prism_storage.backends.redis import SEPARATOR
from prism_storage.backends.redis.backend import INDEX_SUFFIX
from prism_storage.exceptions import (
    BackendPermissionError,
    BackendUnavailableError,
    CorruptRecordError,
    InvalidOptionError,
    InvalidValueError,
)
from prism_storage.testing import StorageConformanceTests
from tests.support.redis import HOST, RedisServer, free_port


def unique_prefix(namespace: str) -> str:
    return f"test-{uuid.uuid4().hex[:10]}:{namespace}:"


class TestRedisStandaloneConformance(StorageConformanceTests):
    # Enough keys to cross several powers of two: Redis resizes its hash table mid-listing.
    churn_fixed_keys = 5_000
    churn_keys = 30_000
    churn_passes = 4
    # Small pages: a listing over SCAN would take many steps across each resize.
    churn_page_size = 13
    churn_rest = 0.3  # Redis shrinks its table in its periodic task (10 times a second)

    @pytest.fixture
    def make_store(self, redis_server):
        def make(namespace="main", **options):
            return RedisStorageBackend(redis_server.url, prefix=unique_prefix(namespace), **options)

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        # Nothing listens there: connections are refused at once.
        url = f"redis://{HOST}:{free_port()}/0"
        return lambda: RedisStorageBackend(url, timeout=2)


class TestRedisClusterConformance(StorageConformanceTests):
    @pytest.fixture
    def make_store(self, redis_cluster):
        def make(namespace="main", **options):
            return RedisStorageBackend(
                redis_cluster.url, prefix=unique_prefix(namespace), **options
            )

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        url = f"redis+cluster://{HOST}:{free_port()}"
        return lambda: RedisStorageBackend(url, timeout=2)


class TestRedisClusterHashTagConformance(StorageConformanceTests):
    """A cluster store whose prefix has a hash tag: one slot, so it keeps a key index."""

    churn_fixed_keys = 2_000
    churn_keys = 12_000
    churn_page_size = 13
    churn_rest = 0.3

    @pytest.fixture
    def make_store(self, redis_cluster):
        def make(namespace="main", **options):
            prefix = "{" + unique_prefix(namespace) + "}:"
            return RedisStorageBackend(redis_cluster.url, prefix=prefix, **options)

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        url = f"redis+cluster://{HOST}:{free_port()}"
        return lambda: RedisStorageBackend(url, prefix="{tenant}:", timeout=2)


# ------------------------------------------------------------------ helpers


@pytest_asyncio.fixture
async def raw(redis_server):
    """A plain redis.asyncio client on the session's standalone server (to look behind)."""
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def closing():
    """Register stores to be closed at the end of the test."""
    made: list[RedisStorageBackend] = []
    yield made.append
    for store in made:
        await store.close()


# ------------------------------------------------------------------ key layout


async def test_prefixes_that_are_string_prefixes_never_collide(redis_server, raw, closing):
    run = uuid.uuid4().hex[:8]
    outer = RedisStorageBackend(redis_server.url, prefix=f"{run}:prism:")
    inner = RedisStorageBackend(redis_server.url, prefix=f"{run}:prism:x:")
    closing(outer)
    closing(inner)
    # Plain concatenation would make these the same Redis key.
    await outer.set("x:foo", {"store": "outer"})
    await inner.set("foo", {"store": "inner"})
    assert await outer.get("x:foo") == {"store": "outer"}
    assert await inner.get("foo") == {"store": "inner"}
    assert await outer.get("foo") is None
    assert await inner.get("x:foo") is None
    assert list(await outer.keys()) == ["x:foo"]
    assert list(await inner.keys()) == ["foo"]
    assert list(await outer.keys("x:")) == ["x:foo"]
    stored = sorted(await raw.keys(f"{run}:*"))
    assert stored == sorted(
        [
            f"{run}:prism:{SEPARATOR}x:foo".encode(),
            f"{run}:prism:x:{SEPARATOR}foo".encode(),
            # Each store's key index (a sorted set, see docs/redis.md).
            f"{run}:prism:{INDEX_SUFFIX}".encode(),
            f"{run}:prism:x:{INDEX_SUFFIX}".encode(),
        ]
    )
    await inner.delete_many(["foo", "x:foo"])
    assert await outer.get("x:foo") == {"store": "outer"}


async def test_glob_characters_are_literal(redis_server, closing):
    store = RedisStorageBackend(redis_server.url, prefix=unique_prefix("glob[*?]\\"))
    other = RedisStorageBackend(redis_server.url, prefix=unique_prefix("glob"))
    closing(store)
    closing(other)
    keys = ["a*", "a*b", "a?", "ab", "a[b]", "a[", "ab]", "a\\b", "a\\*", "b"]
    await store.set_many({k: {"k": k} for k in keys})
    await other.set_many({k: {"other": True} for k in keys})
    assert sorted(await store.keys(limit=100)) == sorted(keys)
    assert sorted(await store.keys("a*")) == ["a*", "a*b"]
    assert sorted(await store.keys("a?")) == ["a?"]
    assert sorted(await store.keys("a[")) == ["a[", "a[b]"]
    assert sorted(await store.keys("a\\")) == ["a\\*", "a\\b"]
    assert sorted(await store.keys("ab")) == ["ab", "ab]"]
    assert await store.get_many(keys) == {k: {"k": k} for k in keys}


@pytest.mark.parametrize("prefix", ["bad\nprefix", "tab\t", "x" * 600, "nul\x00"])
def test_a_prefix_with_control_characters_is_refused(prefix):
    with pytest.raises(InvalidOptionError, match="prefix"):
        RedisStorageBackend("redis://127.0.0.1:6379/0", prefix=prefix)


async def test_an_empty_prefix_is_still_isolated(redis_server, closing):
    bare = RedisStorageBackend(redis_server.url, prefix="")
    named = RedisStorageBackend(redis_server.url, prefix=unique_prefix("named"))
    closing(bare)
    closing(named)
    key = f"k-{uuid.uuid4().hex}"
    await named.set(key, {"v": 1})
    assert await bare.get(key) is None
    await bare.set(key, {"v": 2})
    assert await named.get(key) == {"v": 1}
    await bare.delete(key)


async def test_ttl_has_millisecond_precision(redis_server, raw, closing):
    prefix = unique_prefix("ttl")
    store = RedisStorageBackend(redis_server.url, prefix=prefix, ttl=3600)
    closing(store)
    await store.set("short", {"v": 1}, ttl=0.25)
    await store.set("default", {"v": 1})
    await store.set_many({"batch": {"v": 1}}, ttl=1.5)
    assert 0 < await raw.pttl(f"{prefix}{SEPARATOR}short") <= 250
    assert 3_590_000 < await raw.pttl(f"{prefix}{SEPARATOR}default") <= 3_600_000
    assert 1_000 < await raw.pttl(f"{prefix}{SEPARATOR}batch") <= 1_500


async def test_foreign_data_is_a_corrupt_record_not_none(redis_server, raw, closing):
    prefix = unique_prefix("foreign")
    store = RedisStorageBackend(redis_server.url, prefix=prefix)
    closing(store)
    await raw.set(f"{prefix}{SEPARATOR}text", b"not json")
    await raw.set(f"{prefix}{SEPARATOR}list", b"[1, 2]")
    await raw.hset(f"{prefix}{SEPARATOR}hash", "field", "value")
    for key in ("text", "list", "hash"):
        with pytest.raises(CorruptRecordError):
            await store.get(key)
    with pytest.raises(CorruptRecordError):
        await store.get_many(["text"])


# ------------------------------------------------------------------ pipelining


async def connections_received(raw: Redis) -> int:
    return int((await raw.info("stats"))["total_connections_received"])


async def test_concurrent_calls_share_one_pipeline(redis_server, raw, closing):
    store = RedisStorageBackend(redis_server.url, prefix=unique_prefix("pipe"))
    closing(store)
    await store.set("warm", {"v": 0})  # connected; a lone caller goes straight out
    before = await connections_received(raw)
    await asyncio.gather(*(store.set(f"k{i}", {"i": i}) for i in range(64)))
    assert await asyncio.gather(*(store.get(f"k{i}") for i in range(64))) == [
        {"i": i} for i in range(64)
    ]
    assert await asyncio.gather(*(store.exists(f"k{i}") for i in range(64))) == [True] * 64
    await asyncio.gather(*(store.delete(f"k{i}") for i in range(0, 64, 2)))
    assert await store.get_many([f"k{i}" for i in range(64)]) == {
        f"k{i}": {"i": i} for i in range(1, 64, 2)
    }
    # 256 concurrent calls on one or two connections (a separate client call per caller
    # would have opened 64).
    assert await connections_received(raw) - before <= 2


async def test_large_values_go_on_their_own_connections(redis_server, raw, closing):
    prefix = unique_prefix("pipe-large")
    store = RedisStorageBackend(redis_server.url, prefix=prefix)
    closing(store)
    big = {"blob": "x" * 100_000}
    await asyncio.gather(*(store.set(f"warm{i}", {}) for i in range(3)))  # calls overlap
    before = await connections_received(raw)
    await asyncio.gather(*(store.set(f"big{i}", big) for i in range(16)))
    # Separate calls, as a plain client makes them (pipelined: one or two connections).
    assert await connections_received(raw) - before >= 8
    reader = RedisStorageBackend(redis_server.url, prefix=prefix)
    closing(reader)
    # Reads that return large records: the next ones go alone too, but at most two at a
    # time (the pipeliner's LARGE_AT_ONCE): 16 callers share two connections.
    await asyncio.gather(*(reader.get(f"big{i}") for i in range(3)))
    before = await connections_received(raw)
    assert await asyncio.gather(*(reader.get(f"big{i}") for i in range(16))) == [big] * 16
    assert await connections_received(raw) - before <= 2


async def test_an_error_reply_fails_only_its_own_caller(redis_server, raw, closing):
    prefix = unique_prefix("pipe-error")
    store = RedisStorageBackend(redis_server.url, prefix=prefix)
    closing(store)
    await store.set_many({f"k{i}": {"i": i} for i in range(10)})
    await raw.hset(f"{prefix}{SEPARATOR}hash", "field", "value")  # GET on it: WRONGTYPE
    results = await asyncio.gather(
        *(store.get(f"k{i}") for i in range(5)),
        store.get("hash"),
        *(store.get(f"k{i}") for i in range(5, 10)),
        return_exceptions=True,
    )
    assert isinstance(results[5], CorruptRecordError)
    assert results[:5] + results[6:] == [{"i": i} for i in range(10)]


async def test_cancelled_callers_do_not_disturb_a_pipeline(redis_server, raw, closing):
    prefix = unique_prefix("pipe-cancel")
    store = RedisStorageBackend(redis_server.url, prefix=prefix)
    closing(store)
    await asyncio.gather(*(store.set(f"warm{i}", {}) for i in range(3)))  # calls overlap
    tasks = [asyncio.create_task(store.set(f"c{i}", {"i": i})) for i in range(40)]
    await asyncio.sleep(0)  # every caller has queued its command; the pipeline is not sent
    for task in tasks[:10]:
        task.cancel()
    await asyncio.sleep(0)  # the pipeline is on its way
    for task in tasks[10:20]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results[:20])
    assert results[20:] == [None] * 20
    # In flight when cancelled, or not cancelled: written. Cancelled before its command left:
    # not written, except that the first caller may have gone out on its own at once (a
    # caller that finds nothing in flight sends a plain call), so c0-c9 may hold a record.
    # Whatever is stored is the caller's own value.
    stored = await store.get_many([f"c{i}" for i in range(40)])
    assert {f"c{i}" for i in range(10, 40)} <= stored.keys()
    assert all(value == {"i": int(key[1:])} for key, value in stored.items())


async def test_close_waits_for_pipelines_in_flight(redis_server, raw, closing):
    prefix = unique_prefix("pipe-close")
    store = RedisStorageBackend(redis_server.url, prefix=prefix)
    await asyncio.gather(*(store.set(f"warm{i}", {}) for i in range(3)))
    writes = asyncio.gather(*(store.set(f"w{i}", {"i": i}) for i in range(30)))
    await asyncio.sleep(0)
    await store.close()
    assert await writes == [None] * 30
    assert await raw.exists(*(f"{prefix}{SEPARATOR}w{i}" for i in range(30))) == 30
    # The store opens a new client on its next use.
    assert await store.get("w0") == {"i": 0}
    await store.close()


async def test_listing_cursors_are_tied_to_their_listing(redis_server, closing):
    one = RedisStorageBackend(redis_server.url, prefix=unique_prefix("one"))
    two = RedisStorageBackend(redis_server.url, prefix=unique_prefix("two"))
    closing(one)
    closing(two)
    await one.set_many({f"k{i}": {} for i in range(20)})
    page = await one.keys(limit=3)
    assert len(page) == 3 and page.cursor is not None
    for bad in ("garbage", page.cursor[:-4], "eyJ4IjoxfQ"):
        with pytest.raises(InvalidValueError, match="cursor"):
            await one.keys(limit=3, cursor=bad)
    with pytest.raises(InvalidValueError, match="cursor"):
        await two.keys(limit=3, cursor=page.cursor)
    with pytest.raises(InvalidValueError, match="cursor"):
        await one.keys("k1", limit=3, cursor=page.cursor)


async def index_members(raw: Redis, prefix: str) -> set[str]:
    return {m.decode() for m in await raw.zrange(prefix + INDEX_SUFFIX, 0, -1)}


async def test_every_write_and_delete_keeps_the_key_index_in_step(redis_server, raw, closing):
    prefix = unique_prefix("index")
    store = RedisStorageBackend(redis_server.url, prefix=prefix)
    closing(store)
    await store.set("set", {})
    await store.set("large", {"blob": "x" * 100_000})  # the MULTI path (STAMP + APPEND)
    await store.set_many({"many1": {}, "many2": {}})
    await store.put("put", {})
    await store.append("appended", ["a"])
    await store.set_many({"gone1": {}, "gone2": {}, "gone3": {}, "gone4": {}})
    written = await index_members(raw, prefix)
    assert written == {"set", "large", "many1", "many2", "put", "appended"} | {
        f"gone{i}" for i in range(1, 5)
    }
    await store.delete("gone1")
    await store.delete_many(["gone2", "gone3"])
    version = (await store.get_record("gone4")).version
    assert await store.remove("gone4", if_version=version)
    assert await store.remove("put")
    assert await store.pop("appended") == "a"  # the record stays, with an empty list
    assert await index_members(raw, prefix) == {"set", "large", "many1", "many2", "appended"}
    assert list(await store.keys()) == ["appended", "large", "many1", "many2", "set"]
    assert await store.delete_prefix("many") == 2  # the entries go with the records
    assert await index_members(raw, prefix) - {""} == {"set", "large", "appended"}


async def test_data_written_before_the_index_is_indexed_by_the_first_listing(
    redis_server, raw, closing
):
    prefix = unique_prefix("migrate")
    store = RedisStorageBackend(redis_server.url, prefix=prefix)
    closing(store)
    # Records as a version without the index left them: the JSON alone, no index.
    keys = [f"old/{i:04d}" for i in range(2_500)]
    await raw.mset({f"{prefix}{SEPARATOR}{k}": b'{"old": true}' for k in keys})
    await raw.set(f"{prefix}{SEPARATOR}\xff-not-a-key".encode("latin-1"), b"{}")
    assert not await raw.exists(prefix + INDEX_SUFFIX)
    listed = [key async for key in store.iter_keys(page_size=100)]
    assert listed == keys  # every one, in order; the foreign key left out
    assert await raw.zscore(prefix + INDEX_SUFFIX, "") == 0  # marked complete
    assert await raw.zcard(prefix + INDEX_SUFFIX) == len(keys) + 1
    # An index lost later (evicted, deleted by hand) is built again the same way.
    await raw.delete(prefix + INDEX_SUFFIX)
    await store.set("new", {})
    assert len([key async for key in store.iter_keys(page_size=1_000)]) == len(keys) + 1


async def test_erasure_pages_through_the_key_index(redis_server, raw, closing):
    """delete_prefix reads the index range of its prefix, whatever else the database
    holds: data written before the index existed is indexed first, expired entries are
    not counted, and another store's keys (even under a longer prefix) stay."""
    prefix = unique_prefix("erase")
    store = RedisStorageBackend(redis_server.url, prefix=prefix)
    other = RedisStorageBackend(redis_server.url, prefix=prefix + "x")
    closing(store)
    closing(other)
    old = [f"u/1/old{i:04d}" for i in range(1_500)]
    await raw.mset({f"{prefix}{SEPARATOR}{k}": b'{"old": true}' for k in old})
    assert not await raw.exists(prefix + INDEX_SUFFIX)
    await store.set_many({"u/1/a": {}, "u/10": {}, "u/1": {}})
    await store.set_many({f"u/1/brief{i}": {} for i in range(20)}, ttl=0.05)
    await other.set("u/1/theirs", {})
    await asyncio.sleep(0.2)
    assert await store.delete_prefix("u/1/") == len(old) + 1
    assert list(await store.keys()) == ["u/1", "u/10"]
    assert await index_members(raw, prefix) == {"", "u/1", "u/10"}
    assert list(await other.keys()) == ["u/1/theirs"]


async def test_entries_of_expired_keys_are_dropped(redis_server, raw, closing):
    prefix = unique_prefix("expired")
    store = RedisStorageBackend(redis_server.url, prefix=prefix)
    closing(store)
    await store.set("kept", {})
    await store.set_many({f"brief{i}": {} for i in range(50)}, ttl=0.05)
    await asyncio.sleep(0.2)
    assert list(await store.keys(limit=10)) == ["kept"]  # the page script drops them
    assert await index_members(raw, prefix) == {"", "kept"}
    # Never listed: writes with a TTL drop entries of expired keys a few at a time, so
    # the index stays about the size of the live keys.
    for round_ in range(5):
        await store.set_many({f"r{round_}-{i}": {} for i in range(200)}, ttl=0.05)
        await asyncio.sleep(0.1)
    await asyncio.gather(*(store.set(f"late{i}", {}, ttl=60) for i in range(600)))
    assert await raw.zcard(prefix + INDEX_SUFFIX) < 600 + 1_000 / 2


async def test_listings_are_sorted_by_code_point(redis_server, closing):
    store = RedisStorageBackend(redis_server.url, prefix=unique_prefix("sorted"))
    closing(store)
    keys = ["b", "a", "ab", "a/b", "Z", "é", "日本", "𝄞", "a\u00ff", "~"]
    await store.set_many({k: {} for k in keys})
    assert [key async for key in store.iter_keys(page_size=3)] == sorted(keys)
    assert [key async for key in store.iter_keys("a", page_size=1)] == sorted(
        k for k in keys if k.startswith("a")
    )


async def test_a_cluster_store_keeps_a_key_index_only_with_a_hash_tag(redis_cluster, closing):
    tagged_prefix = "{" + unique_prefix("tagged") + "}:"
    tagged = RedisStorageBackend(redis_cluster.url, prefix=tagged_prefix)
    plain_prefix = unique_prefix("plain")
    plain = RedisStorageBackend(redis_cluster.url, prefix=plain_prefix)
    closing(tagged)
    closing(plain)
    raw = RedisCluster.from_url(redis_cluster.url.replace("redis+cluster://", "redis://"))
    try:
        keys = [f"k{i:03d}" for i in range(60)]
        for store in (tagged, plain):
            await store.set_many({k: {} for k in keys})
            await store.delete("k000")
            await store.delete_many(["k001", "k002"])
            assert await store.remove("k003")
        assert [key async for key in tagged.iter_keys(page_size=7)] == keys[4:]  # sorted
        assert sorted([key async for key in plain.iter_keys(page_size=7)]) == keys[4:]
        index = await raw.zrange(tagged_prefix + INDEX_SUFFIX, 0, -1)
        assert [m.decode() for m in index] == ["", *keys[4:]]
        assert not await raw.exists(plain_prefix + INDEX_SUFFIX)
        # Built again from the keys when it is lost, on the store's one node.
        await raw.delete(tagged_prefix + INDEX_SUFFIX)
        assert [key async for key in tagged.iter_keys(page_size=100)] == keys[4:]
    finally:
        await raw.aclose()


@pytest.mark.parametrize(
    ("prefix", "tagged"),
    [
        ("{t}:", True),
        ("a{t}b:", True),
        ("{}:", False),
        ("{t:", False),
        ("t}{:", False),
        ("", False),
    ],
)
def test_which_prefixes_hold_a_hash_tag(prefix, tagged):
    from prism_storage.backends.redis.index import has_hash_tag

    assert has_hash_tag(prefix) is tagged


# ------------------------------------------------------------------ URLs, TLS, credentials


def test_check_reports_bad_urls_without_io():
    for url, fragment in [
        ("http://localhost:6379", "'http'"),
        ("localhost:6379", "expected one of"),
        ("redis://", "no host"),
        ("redis://localhost:99999/0", "port"),
        ("redis://localhost:6379/zero", "database number"),
        ("redis+cluster://localhost:7000/2", "only database 0"),
        ("unix://", "socket path"),
    ]:
        store = RedisStorageBackend(url)
        messages = store.check()
        assert [m.id for m in messages] == ["prism_storage.E101"], url
        assert fragment in messages[0].msg, (url, messages[0].msg)
    assert RedisStorageBackend("redis://localhost:6379/0").check() == []
    assert RedisStorageBackend("rediss+cluster://u:p@h:7000").check() == []
    insecure = RedisStorageBackend("rediss://h:6380/0?ssl_cert_reqs=none")
    assert [m.id for m in insecure.check()] == ["prism_storage.W101"]


async def test_a_bad_url_is_a_configuration_error_on_use_before_io():
    store = RedisStorageBackend("http://user:hunter2-secret@localhost:6379")
    with pytest.raises(InvalidOptionError, match="not usable") as caught:
        await store.get("k")
    assert "hunter2-secret" not in str(caught.value)
    with pytest.raises(InvalidOptionError):
        await store.set("k", {"v": 1})
    unknown_option = RedisStorageBackend("redis://localhost:6379/0?no_such_option=1")
    with pytest.raises(InvalidOptionError, match="no_such_option"):
        await unknown_option.get("k")
    await store.close()


@pytest.mark.parametrize(
    "options",
    [
        {"url": 42},
        {"url": ""},
        {"prefix": 3},
        {"ttl": 0},
        {"ttl": "60"},
        {"timeout": 0},
        {"timeout": float("nan")},
        {"cluster": "yes"},
        {"max_connections": 0},
    ],
)
def test_bad_option_values_are_refused(options):
    arguments = {"url": "redis://localhost:6379/0", **options}
    with pytest.raises((InvalidOptionError, InvalidValueError)):
        RedisStorageBackend(**arguments)


def test_cluster_is_chosen_by_scheme_or_option():
    assert RedisStorageBackend("redis://h:7000").cluster is False
    assert RedisStorageBackend("redis+cluster://h:7000").cluster is True
    assert RedisStorageBackend("rediss+cluster://h:7000").cluster is True
    assert RedisStorageBackend("redis://h:7000", cluster=True).cluster is True


def test_passwords_never_show_in_repr_or_describe():
    for url in (
        "redis://agent:pa55-word%2Fx@host:6379/3",
        "rediss://:pa55-word%2Fx@host:6380/0",
        "redis://host:6379/0?password=pa55-word%2Fx",
        "redis+cluster://agent:pa55-word%2Fx@host:7000",
    ):
        store = RedisStorageBackend(url)
        for text in (repr(store), store.describe()):
            assert "pa55" not in text, text
            assert "***" in text
        assert "host" in repr(store)


def _make_certificates(directory) -> dict[str, str]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with openssl."""

    def openssl(*args: str) -> None:
        subprocess.run(
            ["openssl", *args],
            cwd=directory,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    # The extensions strict X.509 verification (Python 3.13's default) insists on.
    (directory / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=prism-storage test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-addext",
        "subjectKeyIdentifier=hash",
    )
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    )
    return {
        "ca": str(directory / "ca.crt"),
        "server": str(directory / "server.crt"),
        "key": str(directory / "server.key"),
    }


PASSWORD = "s3cret/pa55:word"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A TLS-only-for-clients server with an ACL user (the default user is disabled)."""
    directory = tmp_path_factory.mktemp("tls")
    certs = _make_certificates(directory)
    tls_port = free_port()
    server = RedisServer(
        extra_args=(
            "--tls-port",
            str(tls_port),
            "--tls-cert-file",
            certs["server"],
            "--tls-key-file",
            certs["key"],
            "--tls-ca-cert-file",
            certs["ca"],
            "--tls-auth-clients",
            "no",
            "--user",
            "default",
            "off",
            "--user",
            "agent",
            "on",
            f">{PASSWORD}",
            "~*",
            "&*",
            "+@all",
        )
    )
    server.start()
    server.tls_port = tls_port
    server.ca = certs["ca"]
    try:
        yield server
    finally:
        server.cleanup()


async def test_tls_with_username_password_and_db(tls_server, closing):
    password = quote(PASSWORD, safe="")
    url = (
        f"rediss://agent:{password}@127.0.0.1:{tls_server.tls_port}/3"
        f"?ssl_ca_certs={quote(tls_server.ca)}"
    )
    store = RedisStorageBackend(url, prefix="tls:")
    closing(store)
    await store.ping()
    await store.set("agent_1", {"over": "tls"})
    assert await store.get("agent_1") == {"over": "tls"}
    assert PASSWORD not in repr(store) and password not in repr(store)
    # The record is in database 3 of that server, and nowhere else.
    plain = Redis(host="127.0.0.1", port=tls_server.port, username="agent", password=PASSWORD)
    try:
        assert await plain.execute_command("SELECT", 3)
        stored = await plain.get(f"tls:{SEPARATOR}agent_1")
        assert stored.startswith(b"%1|") and stored.endswith(b'|{"over":"tls"}')
        assert await plain.execute_command("SELECT", 0)
        assert await plain.get(f"tls:{SEPARATOR}agent_1") is None
    finally:
        await plain.aclose()


async def test_tls_verifies_the_server_certificate(tls_server, closing):
    password = quote(PASSWORD, safe="")
    # No CA given: the system's CAs do not know our test CA, so the handshake fails.
    store = RedisStorageBackend(
        f"rediss://agent:{password}@127.0.0.1:{tls_server.tls_port}/0", timeout=3
    )
    closing(store)
    with pytest.raises(BackendUnavailableError) as caught:
        await store.get("k")
    assert PASSWORD not in str(caught.value) and password not in str(caught.value)


async def test_wrong_password_is_a_permission_error_without_the_password(tls_server, closing):
    wrong = "wrong-pa55word-xyz"
    url = (
        f"rediss://agent:{wrong}@127.0.0.1:{tls_server.tls_port}/0"
        f"?ssl_ca_certs={quote(tls_server.ca)}"
    )
    store = RedisStorageBackend(url, timeout=3)
    closing(store)
    for operation in (lambda: store.get("k"), lambda: store.set("k", {}), store.ping):
        with pytest.raises(BackendPermissionError) as caught:
            await operation()
        text = f"{caught.value} {caught.value!r} {caught.value.__cause__!r}"
        assert wrong not in text
        assert caught.value.__context__ is None
    plain_text = RedisStorageBackend(f"redis://agent:{wrong}@127.0.0.1:{tls_server.port}/0")
    closing(plain_text)
    with pytest.raises(BackendPermissionError):
        await plain_text.get("k")


# ------------------------------------------------------------------ the specification


async def test_the_specification_usage_example(redis_server, raw):
    url = redis_server.url  # the specification says redis://localhost:6379/0
    await raw.delete(f"prism:{SEPARATOR}agent_1")

    redis_storage = RedisStorageBackend(url=url)
    await redis_storage.set("agent_1", {"messages": [{"role": "user", "content": "Hello"}]})
    data = await redis_storage.get("agent_1")

    storage = Registry.create(provider_type="redis", url=url)

    assert data == {"messages": [{"role": "user", "content": "Hello"}]}
    assert isinstance(storage, RedisStorageBackend)
    assert await storage.get("agent_1") == data
    assert Registry.get_provider("redis") is RedisStorageBackend
    assert await raw.get(f"prism:{SEPARATOR}agent_1") is not None
    await storage.delete("agent_1")
    await redis_storage.close()
    await storage.close()
    with pytest.raises(InvalidOptionError, match="prefixes"):
        Registry.create(provider_type="redis", url=url, prefixes="typo")


# ------------------------------------------------------------------ cluster


async def test_cluster_batches_span_slots_and_nodes(redis_cluster, closing):
    store = RedisStorageBackend(redis_cluster.url, prefix=unique_prefix("slots"))
    closing(store)
    # Keys of one length that differ in many bits: CRC16 is affine in the key's bytes, so
    # for same-length keys the number of distinct slots does not depend on the random
    # prefix (short numeric suffixes of mixed lengths can collide heavily for some prefixes).
    records = {f"agent/{uuid.uuid5(uuid.NAMESPACE_URL, str(i)).hex}": {"i": i} for i in range(200)}
    names = [store._key_prefix + k for k in records]
    assert len({key_slot(n.encode()) for n in names}) > 190
    await store.set_many(records, ttl=60)
    assert await store.get_many([*records, "missing"]) == records
    # The keys really are spread over the three primaries.
    client = RedisCluster.from_url(redis_cluster.url.replace("+cluster", ""))
    try:
        await client.initialize()
        primaries = client.get_primaries()
        sizes = [await client.execute_command("DBSIZE", target_nodes=node) for node in primaries]
        assert len(sizes) == 3 and all(size > 0 for size in sizes), sizes
    finally:
        await client.aclose()
    listed = [k async for k in store.iter_keys(page_size=33)]
    assert sorted(listed) == sorted(records)
    await store.delete_many(list(records)[:150])
    assert await store.get_many(list(records)) == dict(list(records.items())[150:])


async def test_a_hash_tag_prefix_keeps_a_store_in_one_slot(redis_cluster, closing):
    store = RedisStorageBackend(redis_cluster.url, prefix="{tenant-" + uuid.uuid4().hex + "}:")
    closing(store)
    await store.set_many({f"k{i}": {"i": i} for i in range(20)})
    assert len({key_slot((store._key_prefix + f"k{i}").encode()) for i in range(20)}) == 1
    assert len(await store.get_many([f"k{i}" for i in range(20)])) == 20
