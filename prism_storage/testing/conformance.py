"""The shared semantics of every storage backend, written once.

Subclass :class:`StorageConformanceTests` in a test module (its name must start with
``Test`` for pytest to collect it) and provide a ``make_store`` fixture::

    class TestMyBackend(StorageConformanceTests):
        @pytest.fixture
        def make_store(self, tmp_path):
            def make(namespace="main", **options):
                return MyBackend(root=tmp_path / namespace, **options)
            return make

``make_store(namespace, **options)`` returns a new, empty store; stores made with
different namespaces must be isolated from each other. ``options`` may contain ``ttl``
(a default expiry) and, for backends whose ``ttl_uses_clock`` is true, ``clock``.

Optionally provide ``make_unavailable_store``: a factory of a store whose server cannot be
reached. Without it the outage tests are reported as skipped (never as passed).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import pytest
import pytest_asyncio
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..backends.base import BaseStorageBackend
from ..codec import MAX_KEY_LENGTH, validate_key
from ..exceptions import (
    BackendUnavailableError,
    InvalidKeyError,
    InvalidValueError,
    UnsupportedOperationError,
)
from ..protocol import MemoryProvider
from ..sync import SyncStore

__all__ = ["HOSTILE_KEYS", "INVALID_KEYS", "INVALID_VALUES", "FakeClock", "StorageConformanceTests"]


class FakeClock:
    """A clock for TTL tests: ``clock()`` returns a time that only ``advance`` moves."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


#: Valid keys that must round-trip exactly and never name a path outside the store.
HOSTILE_KEYS = [
    "agent_1",
    "a",
    "A",
    "user/42/thread/7",
    "../../etc/passwd",
    "/etc/passwd",
    "..",
    ".",
    "...",
    ".hidden",
    "C:\\Windows\\System32",
    "\\\\server\\share",
    "with space",
    " leading and trailing ",
    "100%",
    "%2e%2e%2f",
    "under_score",
    "star*",
    "question?",
    "[brackets]",
    "{hash}tag",
    "a:b:c",
    "quote'\"`",
    "semi;colon--",
    "' OR 1=1 --",
    "emoji-🤖-agent",
    "日本語のキー",
    "ÅNGSTRÖM",
    "ångström",
    "CON",
    "nul",
    "com1.txt",
    "LPT9",
    "tab\u00a0nbsp",
    "zero\u200bwidth",
    "rtl\u202eoverride",
    "x" * MAX_KEY_LENGTH,
    "🤖" * MAX_KEY_LENGTH,
    "k" + "_" * 300,
]

#: Values that are not keys: (description, key).
INVALID_KEYS: list[tuple[str, Any]] = [
    ("empty", ""),
    ("too long", "x" * (MAX_KEY_LENGTH + 1)),
    ("NUL", "a\x00b"),
    ("newline", "a\nb"),
    ("tab", "a\tb"),
    ("DEL", "a\x7fb"),
    ("C1 control", "a\x85b"),
    ("lone surrogate", "a\ud800b"),
    ("int", 42),
    ("None", None),
    ("bytes", b"agent"),
    ("list", ["agent"]),
]


class _Opaque:
    pass


#: Values that must be refused: (description, value, path of the offending item).
INVALID_VALUES: list[tuple[str, Any, str]] = [
    ("list", [1, 2], "$"),
    ("str", "hello", "$"),
    ("None", None, "$"),
    ("int", 3, "$"),
    ("NaN", {"score": math.nan}, "$['score']"),
    ("infinity", {"a": [1, {"b": math.inf}]}, "$['a'][1]['b']"),
    ("set", {"tags": {"a", "b"}}, "$['tags']"),
    ("tuple", {"pair": (1, 2)}, "$['pair']"),
    ("bytes", {"blob": b"\x00\x01"}, "$['blob']"),
    ("object", {"o": _Opaque()}, "$['o']"),
    ("int dict key", {"counts": {1: "one"}}, "$['counts']"),
    ("NUL in string", {"text": "a\x00b"}, "$['text']"),
    ("NUL among escaped characters", {"text": 'line\n"quoted"\\ \x00'}, "$['text']"),
    ("lone surrogate", {"text": "a\udc80b"}, "$['text']"),
    ("lone surrogate in a dict key", {"meta": {"\ud800": 1}}, "$['meta']"),
]


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for level in range(depth):
        value = {"level": level, "child": value}
    return value


AGENT_RECORD: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "You are a helpful agent."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi! How can I help?", "tool_calls": []},
    ],
    "state": {"step": 3, "done": False, "score": 0.75, "notes": None},
}

ROUND_TRIP_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("agent record", AGENT_RECORD),
    ("empty", {}),
    ("empty containers", {"d": {}, "l": [], "s": "", "nested": [[], [{}], {"x": []}]}),
    (
        "unicode",
        {"text": "héllo wörld — 日本語 — 🤖🧠", "rtl": "שלום", "escapes": '"\\/\b\f\n\r\t'},
    ),
    ("big ints", {"big": 2**100, "neg": -(2**70), "max64": 2**63 - 1, "zero": 0}),
    ("floats", {"pi": math.pi, "tiny": 5e-324, "neg": -0.5, "small": 1e-7, "third": 1 / 3}),
    ("bools and null", {"t": True, "f": False, "n": None, "list": [True, None, 0, ""]}),
    ("key-like strings", {"../x": 1, "": "empty key", "a.b": {"c/d": 2}, "%_*": 3}),
    ("deep nesting", {"root": _deep(100)}),
    ("escape spelled out, no NUL", {"path": "C:\\u0000\\dir"}),
]


# Any character at all, lone surrogates and NUL included.
_any_char = st.characters(exclude_categories=())
_any_text = st.text(_any_char, max_size=40)
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats()
    | _any_text
)
#: Mostly JSON data, sometimes with items no store can take (tuples, sets, bytes, int keys).
_values = st.recursive(
    _json_scalars | st.binary(max_size=4) | st.frozensets(st.integers(), max_size=2),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_any_text, children, max_size=4)
        | st.tuples(children)
        | st.dictionaries(st.integers(), children, max_size=2)
    ),
    max_leaves=12,
)
_keys = st.one_of(
    st.text(_any_char, min_size=0, max_size=MAX_KEY_LENGTH + 2),
    st.sampled_from(HOSTILE_KEYS),
)


def _expected_refusal(store: BaseStorageBackend, key: Any, value: Any) -> type[Exception] | None:
    """The typed error the store must raise for ``set(key, value)``, or None if it must take it."""
    try:
        validate_key(key)
    except InvalidKeyError:
        return InvalidKeyError
    try:
        store._encode(value)
    except InvalidValueError:
        return InvalidValueError
    return None


class StorageConformanceTests:
    """The shared semantics of DESIGN §2, run against the store ``make_store`` builds."""

    #: Seconds within which an unreachable store must raise BackendUnavailableError.
    unavailable_within: float = 15.0

    # ---------------------------------------------------------------- fixtures

    @pytest_asyncio.fixture
    async def stores(self, make_store: Callable[..., BaseStorageBackend]):  # type: ignore[no-untyped-def]
        """A factory that closes every store it made when the test ends."""
        made: list[BaseStorageBackend] = []

        def factory(namespace: str = "main", **options: Any) -> BaseStorageBackend:
            store = make_store(namespace, **options)
            made.append(store)
            return store

        yield factory
        for store in made:
            await store.close()

    @pytest_asyncio.fixture
    async def store(self, stores):  # type: ignore[no-untyped-def]
        return stores("main")

    # ---------------------------------------------------------------- protocol

    async def test_satisfies_the_protocol(self, store: BaseStorageBackend) -> None:
        assert isinstance(store, MemoryProvider)
        assert set(store.capabilities) >= {"ttl", "listing", "search", "sweep"}
        assert type(store).__name__ in repr(store)

    async def test_get_of_missing_key_is_none(self, store: BaseStorageBackend) -> None:
        assert await store.get("never-written") is None
        assert await store.exists("never-written") is False

    async def test_delete_of_missing_key_is_a_no_op(self, store: BaseStorageBackend) -> None:
        await store.delete("never-written")
        await store.delete_many(["never-written", "nor-this"])
        assert await store.get("never-written") is None

    async def test_set_then_get_then_delete(self, store: BaseStorageBackend) -> None:
        await store.set("agent_1", {"messages": [{"role": "user", "content": "Hello"}]})
        assert await store.get("agent_1") == {"messages": [{"role": "user", "content": "Hello"}]}
        assert await store.exists("agent_1") is True
        await store.delete("agent_1")
        assert await store.get("agent_1") is None
        assert await store.exists("agent_1") is False

    async def test_set_overwrites(self, store: BaseStorageBackend) -> None:
        await store.set("k", {"v": 1, "old": True})
        await store.set("k", {"v": 2})
        assert await store.get("k") == {"v": 2}

    @pytest.mark.parametrize(
        ("label", "value"), ROUND_TRIP_VALUES, ids=[v[0] for v in ROUND_TRIP_VALUES]
    )
    async def test_round_trip(
        self, store: BaseStorageBackend, label: str, value: dict[str, Any]
    ) -> None:
        await store.set("record", value)
        assert await store.get("record") == value
        assert await store.get_many(["record"]) == {"record": value}

    async def test_large_floats_round_trip_or_are_refused(
        self, store: BaseStorageBackend
    ) -> None:
        """Stores that keep numbers as decimals may refuse huge floats, never alter them."""
        for value in ({"avogadro": 6.02214076e23}, {"huge": -1e300}, {"big": 1e16},
                      {"max": 1.7976931348623157e308}):
            await store.set("k", {"sentinel": True})
            try:
                await store.set("k", value)
            except InvalidValueError as exc:
                assert exc.path is not None and exc.path.startswith("$[")
                assert await store.get("k") == {"sentinel": True}
            else:
                got = await store.get("k")
                assert got == value
                assert all(type(v) is float for v in got.values())

    async def test_large_value(self, store: BaseStorageBackend) -> None:
        value = {"blob": "x" * (5 * 1024 * 1024), "messages": [AGENT_RECORD] * 10}
        limit = store.max_value_bytes
        if limit is not None and limit < 5 * 1024 * 1024:
            with pytest.raises(InvalidValueError, match=str(limit)):
                await store.set("large", value)
            assert await store.get("large") is None
            fitting = {"blob": "y" * (limit - 1024)}
            await store.set("large", fitting)
            assert await store.get("large") == fitting
        else:
            await store.set("large", value)
            assert await store.get("large") == value

    async def test_get_returns_a_new_object(self, store: BaseStorageBackend) -> None:
        original = {"messages": [{"role": "user", "content": "Hello"}]}
        await store.set("k", original)
        original["messages"].append({"role": "user", "content": "mutated after set"})
        first = await store.get("k")
        assert first == {"messages": [{"role": "user", "content": "Hello"}]}
        assert first is not original
        first["messages"].clear()
        assert await store.get("k") == {"messages": [{"role": "user", "content": "Hello"}]}

    # ---------------------------------------------------------------- keys

    async def test_hostile_keys_round_trip(self, store: BaseStorageBackend) -> None:
        for index, key in enumerate(HOSTILE_KEYS):
            await store.set(key, {"key": key, "index": index})
        for index, key in enumerate(HOSTILE_KEYS):
            assert await store.get(key) == {"key": key, "index": index}, key
        assert await store.get_many(HOSTILE_KEYS) == {
            key: {"key": key, "index": i} for i, key in enumerate(HOSTILE_KEYS)
        }
        if store.supports_listing:
            listed = [k async for k in store.iter_keys(page_size=7)]
            assert sorted(listed) == sorted(HOSTILE_KEYS)
        for key in HOSTILE_KEYS:
            await store.delete(key)
            assert await store.get(key) is None

    async def test_keys_differing_only_in_case_are_distinct(
        self, store: BaseStorageBackend
    ) -> None:
        for key in ("Agent", "agent", "AGENT", "ÅNGSTRÖM", "ångström"):
            await store.set(key, {"key": key})
        for key in ("Agent", "agent", "AGENT", "ÅNGSTRÖM", "ångström"):
            assert await store.get(key) == {"key": key}

    @pytest.mark.parametrize(("label", "key"), INVALID_KEYS, ids=[k[0] for k in INVALID_KEYS])
    async def test_invalid_key_is_refused(
        self, store: BaseStorageBackend, label: str, key: Any
    ) -> None:
        with pytest.raises(InvalidKeyError):
            await store.get(key)
        with pytest.raises(InvalidKeyError):
            await store.set(key, {"v": 1})
        with pytest.raises(InvalidKeyError):
            await store.delete(key)
        with pytest.raises(InvalidKeyError):
            await store.exists(key)
        with pytest.raises(InvalidKeyError):
            await store.get_many(["fine", key])
        if isinstance(key, str | int | bytes | None):  # hashable: can be a mapping key
            with pytest.raises(InvalidKeyError):
                await store.set_many({"fine": {"v": 1}, key: {"v": 2}})  # type: ignore[dict-item]
        with pytest.raises(InvalidKeyError):
            await store.delete_many(["fine", key])
        assert issubclass(InvalidKeyError, ValueError)
        # The valid half of the refused batch was not written either.
        assert await store.get("fine") is None

    async def test_batch_arguments_must_be_collections_of_keys(
        self, store: BaseStorageBackend
    ) -> None:
        with pytest.raises(InvalidKeyError):
            await store.get_many("agent")  # a str is not a list of keys
        with pytest.raises(InvalidValueError):
            await store.set_many([("k", {"v": 1})])  # type: ignore[arg-type]

    # ---------------------------------------------------------------- values

    @pytest.mark.parametrize(
        ("label", "value", "path"), INVALID_VALUES, ids=[v[0] for v in INVALID_VALUES]
    )
    async def test_invalid_value_is_refused_and_nothing_is_lost(
        self, store: BaseStorageBackend, label: str, value: Any, path: str
    ) -> None:
        await store.set("k", {"previous": True})
        with pytest.raises(InvalidValueError) as caught:
            await store.set("k", value)
        assert caught.value.path == path
        assert path in str(caught.value)
        with pytest.raises(InvalidValueError):
            await store.set_many({"other": {"ok": 1}, "k": value})
        assert await store.get("k") == {"previous": True}
        assert await store.get("other") is None

    async def test_cyclic_value_is_refused(self, store: BaseStorageBackend) -> None:
        cyclic: dict[str, Any] = {"a": []}
        cyclic["a"].append(cyclic)
        with pytest.raises(InvalidValueError, match="cycle"):
            await store.set("k", cyclic)

    async def test_too_deep_value_is_refused(self, store: BaseStorageBackend) -> None:
        with pytest.raises(InvalidValueError, match="deeper"):
            await store.set("k", _deep(400))

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            # One method runs for several backend subclasses; each gets its own store.
            HealthCheck.differing_executors,
        ],
    )
    @given(key=_keys, value=st.one_of(_values, st.dictionaries(_any_text, _values, max_size=5)))
    async def test_any_key_and_value_round_trips_or_is_refused(
        self, store: BaseStorageBackend, key: Any, value: Any
    ) -> None:
        """Property: a write either round-trips exactly or is refused, typed, losing nothing."""
        refusal = _expected_refusal(store, key, value)
        if refusal is InvalidKeyError:
            with pytest.raises(InvalidKeyError):
                await store.set(key, value)
            return
        await store.set(key, {"sentinel": True})
        if refusal is None:
            await store.set(key, value)
            assert await store.get(key) == value
        else:
            with pytest.raises(refusal):
                await store.set(key, value)
            assert await store.get(key) == {"sentinel": True}

    # ---------------------------------------------------------------- batches

    async def test_batch_operations(self, store: BaseStorageBackend) -> None:
        records = {
            f"agent:{i:03}": {"i": i, "messages": [{"content": "x" * i}]} for i in range(120)
        }
        await store.set_many(records)
        wanted = [*list(records)[::3], "missing-1", "agent:000", "missing-2"]
        got = await store.get_many(wanted)
        assert got == {k: records[k] for k in wanted if k in records}
        assert await store.get_many([]) == {}
        await store.set_many({})
        await store.delete_many(list(records)[:60])
        remaining = await store.get_many(list(records))
        assert remaining == {k: v for k, v in list(records.items())[60:]}
        await store.delete_many([])

    async def test_set_many_overwrites(self, store: BaseStorageBackend) -> None:
        await store.set_many({"a": {"v": 1}, "b": {"v": 1}})
        await store.set_many({"a": {"v": 2}, "c": {"v": 2}})
        assert await store.get_many(["a", "b", "c"]) == {
            "a": {"v": 2},
            "b": {"v": 1},
            "c": {"v": 2},
        }

    # ---------------------------------------------------------------- listing

    async def test_listing_visits_every_key_once(self, store: BaseStorageBackend) -> None:
        if not store.supports_listing:
            with pytest.raises(UnsupportedOperationError):
                await store.keys()
            return
        groups = {
            "agents/": [f"agents/{i}" for i in range(45)],
            "agents_v2/": [f"agents_v2/{i}" for i in range(30)],
            "Agents/": [f"Agents/{i}" for i in range(5)],
            "agent%": ["agent%1", "agent%2"],
            "agent_": ["agent_x"],
            "agent*": ["agent*1", "agent?1"],
        }
        every = sorted({k for keys in groups.values() for k in keys})
        await store.set_many({k: {"k": k} for k in every})

        async def list_all(prefix: str, page_size: int) -> list[str]:
            seen: list[str] = []
            cursor = None
            for _ in range(10_000):
                page = await store.keys(prefix, limit=page_size, cursor=cursor)
                assert len(page.keys) <= page_size
                seen.extend(page.keys)
                cursor = page.cursor
                if cursor is None:
                    return seen
            raise AssertionError("listing did not terminate")

        for page_size in (1, 7, 1000):
            listed = await list_all("", page_size)
            assert sorted(listed) == every, page_size
            assert len(listed) == len(set(listed))
        assert sorted(await list_all("agents/", 4)) == sorted(groups["agents/"])
        assert sorted(await list_all("agents_", 4)) == sorted(groups["agents_v2/"])
        assert sorted(await list_all("Agents/", 2)) == sorted(groups["Agents/"])
        assert sorted(await list_all("agent%", 10)) == sorted(groups["agent%"])
        assert sorted(await list_all("agent*", 10)) == ["agent*1"]
        assert await list_all("nothing-here", 10) == []

    async def test_listing_arguments_are_validated(self, store: BaseStorageBackend) -> None:
        if not store.supports_listing:
            return
        for bad in (
            {"limit": 0},
            {"limit": -1},
            {"limit": "5"},
            {"prefix": 3},
            {"prefix": "a\x00"},
            {"cursor": ""},
            # No store hands out a cursor with a control character or a lone surrogate.
            {"cursor": "a\x00b"},
            {"cursor": "\ud800"},
        ):
            with pytest.raises(ValueError):
                await store.keys(**bad)

    async def test_iter_keys(self, store: BaseStorageBackend) -> None:
        if not store.supports_listing:
            return
        keys = {f"thread/{i:04}" for i in range(230)}
        await store.set_many({k: {} for k in keys})
        listed = [k async for k in store.iter_keys("thread/", page_size=50)]
        assert sorted(listed) == sorted(keys)

    # ---------------------------------------------------------------- isolation

    async def test_stores_are_isolated(self, stores) -> None:  # type: ignore[no-untyped-def]
        one, two = stores("agents"), stores("agents_v2")
        three = stores("agents%")
        await one.set("shared_key%*", {"store": 1})
        await two.set("shared_key%*", {"store": 2})
        await one.set("only-one", {"store": 1})
        assert await one.get("shared_key%*") == {"store": 1}
        assert await two.get("shared_key%*") == {"store": 2}
        assert await three.get("shared_key%*") is None
        assert await two.get("only-one") is None
        assert await two.get_many(["only-one", "shared_key%*"]) == {"shared_key%*": {"store": 2}}
        if one.supports_listing:
            assert sorted(await one.keys()) == ["only-one", "shared_key%*"]
            assert list(await two.keys()) == ["shared_key%*"]
            assert list(await three.keys()) == []
        await two.delete_many(["only-one", "shared_key%*"])
        assert await one.get("only-one") == {"store": 1}
        assert await one.get("shared_key%*") == {"store": 1}

    # ---------------------------------------------------------------- concurrency

    async def test_concurrent_writers_to_one_key(self, store: BaseStorageBackend) -> None:
        values = [
            {"writer": i, "messages": [{"role": "user", "content": f"w{i} " * 200}]}
            for i in range(64)
        ]
        await asyncio.gather(*(store.set("contended", v) for v in values))
        final = await store.get("contended")
        assert final in values

    async def test_concurrent_mixed_operations(self, store: BaseStorageBackend) -> None:
        async def worker(i: int) -> None:
            key = f"worker/{i}"
            await store.set(key, {"i": i})
            assert await store.get(key) == {"i": i}
            await store.set(key, {"i": i, "second": True})
            if i % 2:
                await store.delete(key)

        await asyncio.gather(*(worker(i) for i in range(64)))
        got = await store.get_many([f"worker/{i}" for i in range(64)])
        assert got == {f"worker/{i}": {"i": i, "second": True} for i in range(0, 64, 2)}

    async def test_cancelled_callers_leave_the_others_intact(
        self, store: BaseStorageBackend
    ) -> None:
        keys = [f"cancel/{i}" for i in range(48)]
        still = [f"cancel/still/{j}" for j in range(12)]  # read, never written meanwhile
        await store.set_many({key: {"i": -1} for key in keys}
                             | {key: {"j": j} for j, key in enumerate(still)})
        writers = [asyncio.create_task(store.set(key, {"i": i})) for i, key in enumerate(keys)]
        readers = [asyncio.create_task(store.get(key)) for key in still]
        cancelled = set(range(0, 48, 3))
        for step in range(3):  # callers cancelled before, while and after their call starts
            await asyncio.sleep(0)
            for i in sorted(cancelled)[step::3]:
                writers[i].cancel()
        for reader in readers[::2]:
            reader.cancel()
        results = await asyncio.gather(*writers, return_exceptions=True)
        read = await asyncio.gather(*readers, return_exceptions=True)
        for i, result in enumerate(results):
            if i not in cancelled:
                assert result is None, (i, result)
        for j in range(1, 12, 2):  # the readers not cancelled get their value
            assert read[j] == {"j": j}, (j, read[j])
        stored = await store.get_many(keys)
        for i, key in enumerate(keys):
            # A cancelled write either happened whole or not at all; the others all did.
            expected = [{"i": -1}, {"i": i}] if i in cancelled else [{"i": i}]
            assert stored.get(key) in expected, (key, stored.get(key))
        # The store still serves calls afterwards.
        await store.set("cancel/after", {"ok": True})
        assert await store.get("cancel/after") == {"ok": True}

    # ---------------------------------------------------------------- expiry

    async def test_ttl(self, stores) -> None:  # type: ignore[no-untyped-def]
        store = stores("ttl")
        if not store.supports_ttl:
            with pytest.raises(UnsupportedOperationError):
                await store.set("k", {"v": 1}, ttl=10)
            assert await store.get("k") is None
            return
        if store.ttl_uses_clock:
            clock = FakeClock()
            store = stores("ttl-clock", clock=clock)
            await store.set("short", {"v": 1}, ttl=10)
            await store.set("long", {"v": 2}, ttl=1000)
            await store.set("forever", {"v": 3})
            await store.set_many({"batch": {"v": 4}}, ttl=10)
            clock.advance(5)
            assert await store.get("short") == {"v": 1}
            clock.advance(6)
            await self._assert_expired(store, ["short", "batch"], ["long", "forever"])
            if store.supports_sweep:
                assert await store.sweep() >= 2
                assert await store.sweep() == 0
                assert await store.get("long") == {"v": 2}
            # A default ttl applies to every write; a per-call ttl overrides it.
            defaulted = stores("ttl-default", clock=clock, ttl=10)
            await defaulted.set("d", {"v": 1})
            await defaulted.set("o", {"v": 1}, ttl=100)
            clock.advance(11)
            await self._assert_expired(defaulted, ["d"], ["o"])
            # Overwriting without ttl makes a record permanent again.
            await store.set("long", {"v": 5})
            clock.advance(2000)
            assert await store.get("long") == {"v": 5}
        else:
            await store.set("short", {"v": 1}, ttl=1)
            await store.set("forever", {"v": 3})
            assert await store.get("short") == {"v": 1}
            await asyncio.sleep(1.3)
            await self._assert_expired(store, ["short"], ["forever"])

    async def _assert_expired(
        self, store: BaseStorageBackend, expired: list[str], alive: list[str]
    ) -> None:
        for key in expired:
            assert await store.get(key) is None, key
            assert await store.exists(key) is False, key
        for key in alive:
            assert await store.get(key) is not None, key
        assert set(await store.get_many(expired + alive)) == set(alive)
        if store.supports_listing:
            assert set(await store.keys(limit=100)) == set(alive)

    @pytest.mark.parametrize("ttl", [0, -1, math.nan, math.inf, "10", True, 1e300, 10**400])
    async def test_invalid_ttl_is_refused(self, store: BaseStorageBackend, ttl: Any) -> None:
        if not store.supports_ttl:
            return
        with pytest.raises(InvalidValueError):
            await store.set("k", {"v": 1}, ttl=ttl)
        assert await store.get("k") is None

    # ---------------------------------------------------------------- capabilities

    async def test_search_capability(self, store: BaseStorageBackend) -> None:
        if store.supports_search:
            return  # the vector tests cover search itself
        with pytest.raises(UnsupportedOperationError):
            await store.search([0.1, 0.2], limit=3)

    async def test_sweep_capability(self, store: BaseStorageBackend) -> None:
        if store.supports_sweep:
            assert await store.sweep() == 0
        else:
            with pytest.raises(UnsupportedOperationError):
                await store.sweep()

    async def test_ping_close_and_reuse(self, store: BaseStorageBackend) -> None:
        await store.ping()
        await store.set("k", {"v": 1})
        await store.close()
        assert await store.get("k") == {"v": 1}
        await store.close()
        await store.close()

    async def test_sync_facade_from_a_worker_thread(self, store: BaseStorageBackend) -> None:
        facade = SyncStore(store)

        def sync_caller() -> dict[str, Any] | None:
            try:
                facade.set("sync", {"from": "thread"})
                facade.set_many({"sync2": {"n": 2}})
                assert facade.get_many(["sync", "sync2"]) == {
                    "sync": {"from": "thread"},
                    "sync2": {"n": 2},
                }
                return facade.get("sync")
            finally:
                # As at the end of a request or task: this thread's database connections.
                connections.close_all()

        assert await asyncio.to_thread(sync_caller) == {"from": "thread"}
        assert await store.get("sync") == {"from": "thread"}

    # ---------------------------------------------------------------- outages

    @pytest.fixture
    def unavailable_store(self, request):  # type: ignore[no-untyped-def]
        try:
            factory = request.getfixturevalue("make_unavailable_store")
        except pytest.FixtureLookupError:
            pytest.skip("this backend's tests provide no unreachable store")
        return factory()

    async def test_unreachable_store_raises_typed_error(self, unavailable_store) -> None:  # type: ignore[no-untyped-def]
        store = unavailable_store
        started = time.monotonic()
        try:
            operations = [
                lambda: store.get("k"),
                lambda: store.set("k", {"v": 1}),
                lambda: store.delete("k"),
                lambda: store.get_many(["a", "b"]),
                lambda: store.set_many({"a": {"v": 1}}),
                lambda: store.ping(),
            ]
            if store.supports_listing:
                operations.append(lambda: store.keys())
            for operation in operations:
                with pytest.raises(BackendUnavailableError) as caught:
                    await operation()
                assert caught.value.__cause__ is not None
        finally:
            await store.close()
        assert time.monotonic() - started < self.unavailable_within * len(operations)

    async def test_bad_input_is_refused_before_io(self, unavailable_store) -> None:  # type: ignore[no-untyped-def]
        store = unavailable_store
        try:
            with pytest.raises(InvalidKeyError):
                await store.get("")
            with pytest.raises(InvalidValueError):
                await store.set("k", {"bad": math.nan})
            with pytest.raises(InvalidKeyError):
                await store.set_many({"ok": {}, "bad\n": {}})
        finally:
            await store.close()
