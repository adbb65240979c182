"""The redis backend's versioned records, beyond the conformance cases: the stored layout,
records written before versions, scripts the server forgot, large values, the Lua splice
of ``append``/``pop`` against the Python reference on random JSON, and appends from
several processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from prism_storage import RedisStorageBackend
from prism_storage.backends.redis import SEPARATOR
from prism_storage.backends.redis.records import PIPELINE_VALUE_BYTES
from prism_storage.backends.versions import append_to, pop_from
from prism_storage.codec import encode_value
from prism_storage.exceptions import (
    CorruptRecordError,
    InvalidValueError,
    VersionConflictError,
)
from prism_storage.testing.conformance.strategies import any_text, json_like_values
from tests.support.redis import RedisServer

ROOT = Path(__file__).resolve().parents[1]
EPOCH = datetime.fromtimestamp(0, UTC)


@pytest_asyncio.fixture
async def raw(redis_server):
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def store(redis_server):
    made = RedisStorageBackend(redis_server.url, prefix=f"rec-{uuid.uuid4().hex[:10]}:")
    yield made
    await made.close()


def name(store: RedisStorageBackend, key: str) -> str:
    return store.prefix + SEPARATOR + key


# ------------------------------------------------------------------ layout


async def test_a_record_is_one_string_with_its_metadata_first(store, raw):
    await store.set("k", {"a": [1, 2]}, ttl=100)
    record = await store.get_record("k")
    stored = await raw.get(name(store, "k"))
    assert stored.startswith(b"%1|" + record.version.encode() + b"|")
    assert stored.endswith(b'|{"a":[1,2]}')
    created_ms = int(stored[20:35])
    assert record.created_at.timestamp() == pytest.approx(created_ms / 1000)
    assert 99_000 < await raw.pttl(name(store, "k")) <= 100_000
    await store.set("k", {"a": []})  # no ttl: permanent again, as SET always did
    assert await raw.pttl(name(store, "k")) == -1
    again = await store.get_record("k")
    assert again.created_at == record.created_at and again.version != record.version


# ------------------------------------------------------------------ records written before versions


async def test_records_written_before_versions_are_read_and_written(store, raw):
    old = b'{"messages":[{"role":"user"}],"n":1}'
    await raw.set(name(store, "old"), old)
    await raw.set(name(store, "other"), b'{"x":true}')
    assert await store.get("old") == {"messages": [{"role": "user"}], "n": 1}
    assert await store.exists("old")
    assert await store.get_many(["old", "other"]) == {
        "old": {"messages": [{"role": "user"}], "n": 1},
        "other": {"x": True},
    }
    record = await store.get_record("old")
    assert record.created_at == record.updated_at == EPOCH  # unknown
    assert record.version == (await store.get_many_records(["old"]))["old"].version
    # The version is stable while nobody writes, and usable as a condition.
    assert (await store.get_record("old")).version == record.version
    with pytest.raises(VersionConflictError) as absent:
        await store.put("old", {"v": 0}, if_absent=True)
    assert absent.value.current_version == record.version
    with pytest.raises(VersionConflictError):
        await store.put("old", {"v": 0}, if_version="0000000000000000")
    result = await store.put("old", {"v": 1}, if_version=record.version)
    assert result.created is False
    stored = await raw.get(name(store, "old"))
    assert stored.startswith(b"%1|") and stored.endswith(b'{"v":1}')
    converted = await store.get_record("old")
    assert converted.version == result.version and converted.created_at == EPOCH
    assert converted.updated_at > EPOCH

    await raw.set(name(store, "old"), old)
    assert await store.append("old", [{"role": "assistant"}]) == 2
    assert await store.get("old") == {
        "messages": [{"role": "user"}, {"role": "assistant"}],
        "n": 1,
    }
    await raw.set(name(store, "old"), old)
    assert await store.pop("old") == {"role": "user"}
    assert await store.get("old") == {"messages": [], "n": 1}
    await raw.set(name(store, "old"), old)
    await store.set("old", {"plain": "set"})
    assert (await store.get_record("old")).created_at == EPOCH
    await raw.set(name(store, "old"), old)
    await store.set_many({"old": {"batch": True}, "other": {"batch": True}})
    assert await store.get_many(["old", "other"]) == {
        "old": {"batch": True},
        "other": {"batch": True},
    }
    await raw.set(name(store, "old"), old)
    stale = (await store.get_record("old")).version
    assert await store.remove("old", if_version=stale) is True
    assert await store.get("old") is None


# ------------------------------------------------------------------ scripts and large values


async def test_scripts_the_server_forgot_are_loaded_again(store, raw):
    await store.set("k", {"v": 1})
    operations = [
        lambda: store.set("k", {"v": 2}),
        lambda: store.put("k", {"v": 3}, if_absent=False),
        lambda: store.get_record("k"),
        lambda: store.get_many_records(["k", "missing"]),
        lambda: store.set_many({"k": {"v": 4}, "j": {"v": 5}}),
        lambda: store.append("list", [1]),
        lambda: store.pop("list"),
        lambda: store.remove("j", if_version="0000000000000000"),
    ]
    for operation in operations:
        await raw.script_flush()
        with contextlib.suppress(VersionConflictError):
            await operation()
    assert await store.get("k") == {"v": 4}
    await raw.script_flush()
    # Many concurrent callers in one pipeline each learn NOSCRIPT and retry.
    assert sorted(await asyncio.gather(*(store.append("many", [i]) for i in range(30)))) == list(
        range(1, 31)
    )


async def test_large_values_keep_their_metadata(store, raw):
    big = {"blob": "é" * 100_000, "messages": [1]}
    await store.set("big", {"small": True})
    first = await store.get_record("big")
    await store.set("big", big, ttl=50)
    record = await store.get_record("big")
    assert record.value == big and record.created_at == first.created_at
    assert record.version != first.version and record.expires_at is not None
    assert await store.get("big") == big
    # Reads now return large records: get_record reads with MULTI rather than a script.
    assert await store.get_record("big") == record
    await store.set_many({"big": big, "new": big})
    batch = await store.get_many_records(["big", "new"])
    assert batch["big"].created_at == first.created_at and batch["big"].expires_at is None
    assert batch["new"].value == big
    result = await store.put("big", {**big, "messages": [1, 2]}, if_version=batch["big"].version)
    assert result.created is False
    assert await store.append("big", [3]) == 3
    assert await store.pop("big") == 3
    assert (await store.get("big"))["messages"] == [1, 2]


# ------------------------------------------------------------------ expiry times


def unix_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


async def _read_both_ways(store: RedisStorageBackend) -> tuple[datetime, datetime]:
    """The expiries of a small record (read by the READ script) and of a large one (read
    with MULTI, once recent reads were large)."""
    small = await store.get_record("small")
    await store.get("large")
    assert store._read_size > PIPELINE_VALUE_BYTES  # get_record now reads with MULTI
    large = await store.get_record("large")
    return small.expires_at, large.expires_at


async def test_reads_report_the_expiry_the_server_keeps(store, raw):
    await store.set("small", {"v": 1}, ttl=100)
    await store.set("large", {"blob": "x" * 100_000}, ttl=100)
    for _ in range(10):  # the same on every read, by either path
        small, large = await _read_both_ways(store)
        assert unix_ms(small) == await raw.execute_command("PEXPIRETIME", name(store, "small"))
        assert unix_ms(large) == await raw.execute_command("PEXPIRETIME", name(store, "large"))
    assert store._expiry_times


async def test_a_server_before_redis_7_gets_the_expiry_from_its_clock():
    """Without PEXPIRETIME (Redis 6; here renamed away), reads add PTTL to the server's
    clock: the expiry the writes set, to the millisecond (the server shares our clock)."""
    server = RedisServer(extra_args=("--rename-command", "PEXPIRETIME", "")).start()
    store = RedisStorageBackend(server.url, prefix="old:")
    raw = Redis.from_url(server.url)
    try:
        with pytest.raises(ResponseError, match="unknown command"):
            await raw.execute_command("PEXPIRETIME", "any")
        before = unix_ms(datetime.now(UTC))
        await store.set("small", {"v": 1}, ttl=100)
        await store.set("large", {"blob": "x" * 100_000}, ttl=100)
        await store.set("lasting", {"blob": "y" * 100_000})
        small, large = await _read_both_ways(store)
        after = unix_ms(datetime.now(UTC))
        assert not store._expiry_times  # the MULTI read fell back, once
        for expires_at in (small, large):
            assert before + 100_000 - 1 <= unix_ms(expires_at) <= after + 100_000 + 1
        assert (await store.get_record("lasting")).expires_at is None
        assert (await store.get_many_records(["small", "large"])).keys() == {"small", "large"}
    finally:
        await store.close()
        await raw.aclose()
        server.cleanup()


async def test_a_batch_of_small_and_large_records_in_several_scripts(store, raw, monkeypatch):
    from prism_storage.backends.redis import records

    # Small scripts, so that this batch takes several; two records too large for any.
    monkeypatch.setattr(records, "STAMP_MANY_BYTES", 2_000)
    small = {f"s{i:03d}": {"i": i, "text": "x" * 300} for i in range(40)}
    large = {"big1": {"blob": "é" * 70_000}, "big2": {"blob": "e" * 80_000}}
    await store.set("s005", {"before": True})
    created = (await store.get_record("s005")).created_at
    batch = dict(list(small.items())[:20]) | large | dict(list(small.items())[20:])
    await store.set_many(batch, ttl=100)
    stored = await store.get_many_records(list(batch))
    assert {key: record.value for key, record in stored.items()} == batch
    assert len({record.version for record in stored.values()}) == len(batch)
    assert stored["s005"].created_at == created
    assert stored["s006"].created_at == stored["s006"].updated_at
    assert all(record.expires_at is not None for record in stored.values())
    assert sorted(await store.keys(limit=100)) == sorted(batch)
    assert await raw.pttl(name(store, "s039")) > 0


# ------------------------------------------------------------------ what no store of ours wrote


async def test_foreign_values(store, raw):
    await raw.hset(name(store, "hash"), "f", "v")
    for operation in (
        lambda: store.get_record("hash"),
        lambda: store.get_many_records(["hash"]),
        lambda: store.append("hash", [1]),
        lambda: store.pop("hash"),
        lambda: store.put("hash", {"v": 1}, if_absent=True),
        lambda: store.remove("hash", if_version="0000000000000000"),
    ):
        with pytest.raises(CorruptRecordError):
            await operation()
    await store.set("hash", {"v": 1})  # a plain SET always replaced it; still does
    assert await store.get("hash") == {"v": 1}
    for text in (b"not json", b'{"messages": [1, 2', b'["a list"]'):
        await raw.set(name(store, "bad"), text)
        with pytest.raises(CorruptRecordError):
            await store.append("bad", [1])
        with pytest.raises(CorruptRecordError):
            await store.pop("bad")
        assert await raw.get(name(store, "bad")) == text


# ------------------------------------------------------------------ the splice against Python's


def _json_or_reject(value):
    try:
        encode_value({"v": value})
    except InvalidValueError:
        assume(False)
    return value


json_values = json_like_values.map(_json_or_reject)


def _render(value: dict, style: int) -> bytes:
    """Any valid JSON text of ``value``: compact, spaced, indented, ASCII-escaped."""
    if style == 0:
        return encode_value(value).encode()
    if style == 1:
        return json.dumps(value).encode()  # ", " and ": ", \\u escapes
    if style == 2:
        return json.dumps(value, indent=2, ensure_ascii=False).encode()
    return (" \n" + json.dumps(value, indent="\t", separators=(" ,", " : ")) + "\r\n").encode()


@st.composite
def records_and_fields(draw):
    value = draw(st.dictionaries(any_text, json_values, max_size=5).map(_json_or_reject))
    field = draw(st.sampled_from([*value, "messages", 'é\n"\\🤖']))
    assume(field)
    if draw(st.booleans()):
        value[field] = draw(st.lists(json_values, max_size=6))
    return value, field


async def _put_raw(store, raw, key: str, value: dict, style: int, header: bool) -> None:
    text = _render(value, style)
    if header:
        text = (
            b"%1|0123456789abcdef|000000000001000|000000000002000|"
            b"----------------|0000000000|000000000000|" + text
        )
    await raw.set(name(store, key), text)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(
    case=records_and_fields(),
    items=st.lists(json_values, max_size=4),
    max_items=st.none() | st.integers(1, 8),
    style=st.integers(0, 3),
    header=st.booleans(),
)
def test_append_splices_like_python(redis_server, case, items, max_items, style, header):
    value, field = case

    async def check() -> None:
        store = RedisStorageBackend(redis_server.url, prefix=f"splice-{uuid.uuid4().hex[:8]}:")
        raw = Redis.from_url(redis_server.url)
        try:
            await _put_raw(store, raw, "k", value, style, header)
            try:
                expected, length = append_to(json.loads(json.dumps(value)), field, items, max_items)
            except InvalidValueError:
                with pytest.raises(InvalidValueError):
                    await store.append("k", items, field=field, max_items=max_items)
                assert await store.get("k") == value
                return
            if not items and max_items is None:
                return  # answered without a write (the public method's shortcut)
            assert await store.append("k", items, field=field, max_items=max_items) == length
            assert await store.get("k") == expected
            await raw.delete(name(store, "k"))
            created, created_length = append_to(None, field, items, max_items)
            assert await store.append("k", items, field=field, max_items=max_items) == (
                created_length
            )
            assert await store.get("k") == created
        finally:
            await raw.aclose()
            await store.close()

    asyncio.run(check())


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(case=records_and_fields(), style=st.integers(0, 3), header=st.booleans())
def test_pop_splices_like_python(redis_server, case, style, header):
    value, field = case

    async def check() -> None:
        store = RedisStorageBackend(redis_server.url, prefix=f"splice-{uuid.uuid4().hex[:8]}:")
        raw = Redis.from_url(redis_server.url)
        try:
            await _put_raw(store, raw, "k", value, style, header)
            expected = json.loads(json.dumps(value))
            try:
                popped, item = pop_from(expected, field)
            except InvalidValueError:
                with pytest.raises(InvalidValueError):
                    await store.pop("k", field=field)
                assert await store.get("k") == value
                return
            before = await store.get_record("k")
            assert await store.pop("k", field=field) == item
            after = await store.get_record("k")
            assert after.value == expected
            assert (after.version != before.version) is popped
        finally:
            await raw.aclose()
            await store.close()

    asyncio.run(check())


async def test_splice_edge_cases(store, raw):
    # Duplicate members: JSON decoders keep the last, and so does the splice.
    await raw.set(name(store, "dup"), b'{"messages":[1],"x":0,"messages":[2]}')
    assert await store.append("dup", [3]) == 2
    assert await store.get("dup") == {"messages": [2, 3], "x": 0}
    # A field name written with escapes (a surrogate pair, a quote, a control character).
    await raw.set(name(store, "esc"), b'{"\\ud83e\\udd16\\"\\n\\u00e9":[ ] , "m":{"messages":1}}')
    assert await store.append("esc", ["a", "b"], field='🤖"\né') == 2
    assert await store.pop("esc", field='🤖"\né') == "b"
    assert await store.get("esc") == {'🤖"\né': ["a"], "m": {"messages": 1}}
    # Strings holding brackets, quotes and backslashes inside the list.
    tricky = ["]", "[", '"', "\\", '\\"]', "}{", {"a": "]]"}, [[[]]]]
    await store.set("tricky", {"messages": tricky, "after": "]}"})
    assert await store.append("tricky", ["x"], max_items=4) == 4
    assert await store.get("tricky") == {"messages": [*tricky[-3:], "x"], "after": "]}"}
    # null counts as no list: append replaces it, pop finds nothing.
    await store.set("null", {"messages": None})
    assert await store.pop("null") is None
    assert await store.append("null", [1]) == 1
    assert await store.get("null") == {"messages": [1]}
    # Big integers and float digits survive (nothing is decoded in Lua).
    exact = {"messages": [2**70, 0.1 + 0.2, -1e-300, 12345678901234567890]}
    await store.set("exact", exact)
    assert await store.append("exact", [2**64 + 1]) == 5
    assert await store.get("exact") == {"messages": [*exact["messages"], 2**64 + 1]}
    assert await store.pop("exact") == 2**64 + 1


# ------------------------------------------------------------------ processes


_APPENDER = textwrap.dedent(
    """
    import asyncio, sys
    from prism_storage import RedisStorageBackend

    async def main(url, prefix, worker, count):
        store = RedisStorageBackend(url, prefix=prefix)
        for n in range(count):
            await store.append("chat", [{"w": worker, "n": n}])
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    """
)


async def test_appends_from_several_processes_lose_nothing(redis_server, store):
    processes, count = 3, 100
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, redis_server.url, store.prefix, str(w), str(count)],
            env=env,
        )
        for w in range(processes)
    ]
    for worker in workers:
        assert await asyncio.to_thread(worker.wait, 60) == 0
    items = (await store.get("chat"))["messages"]
    assert len(items) == processes * count
    for w in range(processes):
        assert [item["n"] for item in items if item["w"] == w] == list(range(count))


async def test_cluster_nodes_that_forgot_the_scripts(redis_cluster):
    from redis.asyncio.cluster import RedisCluster

    store = RedisStorageBackend(redis_cluster.url, prefix=f"rec-{uuid.uuid4().hex[:8]}:")
    client = RedisCluster.from_url(redis_cluster.url.replace("+cluster", ""))
    try:
        records = {f"agent/{i}": {"i": i} for i in range(30)}  # spread over the nodes
        await store.set_many(records)
        await client.script_flush()
        found = await store.get_many_records(list(records))
        assert {key: record.value for key, record in found.items()} == records
        await client.script_flush()
        await store.set_many({key: {"i": -1} for key in records})
        assert await store.get_many(list(records)) == {key: {"i": -1} for key in records}
        await client.script_flush()
        assert await store.append("agent/0", [1]) == 1
    finally:
        await client.aclose()
        await store.close()


#: Always storable JSON, small: the sequences below should spend their examples on writes.
_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=6)
_small_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=6,
)
_operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("append"),
            st.sampled_from(["messages", "events"]),
            st.lists(_small_json, max_size=3),
            st.none() | st.integers(1, 6),
        ),
        st.tuples(st.just("pop"), st.sampled_from(["messages", "events"])),
        st.tuples(st.just("set"), st.dictionaries(st.sampled_from(["messages", "x"]), _small_json)),
    ),
    max_size=12,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    case=st.dictionaries(_text, _small_json, max_size=3),
    lists=st.dictionaries(
        st.sampled_from(["messages", "events"]), st.lists(_small_json, max_size=3)
    ),
    operations=_operations,
    style=st.integers(0, 3),
)
def test_sequences_of_writes_match_python(redis_server, case, lists, operations, style):
    # Appends after an append or a pop go through the header's hint (no scan): any mix
    # of appends, pops and overwrites must still end where Python's reference does.
    value = {**case, **lists}

    async def check() -> None:
        store = RedisStorageBackend(redis_server.url, prefix=f"seq-{uuid.uuid4().hex[:8]}:")
        raw = Redis.from_url(redis_server.url)
        model = json.loads(json.dumps(value))
        try:
            await _put_raw(store, raw, "k", value, style, True)
            for operation in operations:
                if operation[0] == "set":
                    model = json.loads(json.dumps(operation[1]))
                    await store.set("k", operation[1])
                elif operation[0] == "pop":
                    try:
                        _popped, item = pop_from(model, operation[1])
                    except InvalidValueError:
                        with pytest.raises(InvalidValueError):
                            await store.pop("k", field=operation[1])
                    else:
                        assert await store.pop("k", field=operation[1]) == item
                else:
                    _, field, items, max_items = operation
                    if not items and max_items is None:
                        continue
                    try:
                        model, length = append_to(model, field, items, max_items)
                    except InvalidValueError:
                        with pytest.raises(InvalidValueError):
                            await store.append("k", items, field=field, max_items=max_items)
                    else:
                        assert (
                            await store.append("k", items, field=field, max_items=max_items)
                            == length
                        )
                assert await store.get("k") == model
        finally:
            await raw.aclose()
            await store.close()

    asyncio.run(check())


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
async def test_touch_on_read_slides_on_every_read_path(redis_server, raw, large):
    """Each read path (GETEX, the READ script, the MULTI of large records) moves the key's
    own expiry to the default ttl and leaves the stored string as it was."""
    store = RedisStorageBackend(
        redis_server.url, prefix=f"tor-{uuid.uuid4().hex[:10]}:", ttl=1000, touch_on_read=True
    )
    try:
        if large:  # recent records are large: get_record reads through MULTI, not Lua
            store._read_size = 10**9
        reads = {
            "get": lambda k: store.get(k),
            "get_many": lambda k: store.get_many([k]),
            "get_record": lambda k: store.get_record(k),
            "get_many_records": lambda k: store.get_many_records([k]),
        }
        for name, read in reads.items():
            await store.set(name, {"v": name}, ttl=5)  # a per-call ttl: 5 s, not 1000
            before = await raw.get(f"{store.prefix}{SEPARATOR}{name}")
            assert await raw.pttl(f"{store.prefix}{SEPARATOR}{name}") <= 5000
            await read(name)
            assert await raw.pttl(f"{store.prefix}{SEPARATOR}{name}") > 900_000, name
            assert await raw.get(f"{store.prefix}{SEPARATOR}{name}") == before, name
        record = await store.get_record("get")
        assert record is not None and record.expires_at is not None
        assert (record.expires_at - datetime.now(UTC)).total_seconds() > 900
        # A missing key is not created by a sliding read.
        assert await store.get("missing") is None
        assert await raw.exists(f"{store.prefix}{SEPARATOR}missing") == 0
    finally:
        await store.close()


async def test_touch_leaves_the_stored_string_alone(store, raw):
    await store.set("k", {"v": 1}, ttl=5)
    name = f"{store.prefix}{SEPARATOR}k"
    before = await raw.get(name)
    assert await store.touch("k", 1000) is True
    assert await raw.get(name) == before and await raw.pttl(name) > 900_000
    assert await store.touch("k") is True  # no default ttl: permanent
    assert await raw.pttl(name) == -1
    assert await store.touch("missing") is False
    assert await raw.exists(f"{store.prefix}{SEPARATOR}missing") == 0
