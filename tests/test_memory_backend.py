"""The memory backend: the conformance suite plus what is specific to process memory."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from django.test import override_settings

from prism_storage import MemoryStorageBackend, Registry, storages
from prism_storage.exceptions import InvalidOptionError
from prism_storage.testing import FakeClock, StorageConformanceTests


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


class TestMemoryConformance(StorageConformanceTests):
    @pytest.fixture
    def make_store(self):
        run = unique("conformance")

        def make(namespace="main", **options):
            return MemoryStorageBackend(f"{run}/{namespace}", **options)

        return make


def test_registered_and_exported():
    assert Registry.get_provider("memory") is MemoryStorageBackend
    store = Registry.create("memory", name=unique("x"), ttl=60)
    assert store.default_ttl == 60 and not store.shared_across_processes
    with pytest.raises(InvalidOptionError):
        MemoryStorageBackend("")
    with pytest.raises(InvalidOptionError):
        MemoryStorageBackend(clock=42)  # type: ignore[arg-type]


async def test_aliases_are_isolated_and_an_alias_keeps_its_records():
    setting = {"default": {"BACKEND": "memory"}, "other": {"BACKEND": "memory"}}
    with override_settings(PRISM_STORAGE=setting):
        default, other = storages["default"], storages["other"]
        assert (default.name, other.name) == ("default", "other")
        default.clear()
        other.clear()
        await default.set("k", {"store": "default"})
        assert await other.get("k") is None
    # A new handler (settings changed and back) builds new instances on the same records,
    # as Django's local-memory cache does.
    with override_settings(PRISM_STORAGE=setting):
        again = storages["default"]
        assert again is not default
        assert await again.get("k") == {"store": "default"}
        again.clear()
        assert await default.get("k") is None


async def test_stores_built_by_hand_have_records_of_their_own():
    one, two = MemoryStorageBackend(), MemoryStorageBackend()
    await one.set("k", {"v": 1})
    assert await two.get("k") is None
    name = unique("shared")
    await MemoryStorageBackend(name).set("k", {"v": 2})
    assert await MemoryStorageBackend(name).get("k") == {"v": 2}
    assert "shared" in repr(MemoryStorageBackend(name))


async def test_values_are_copies_not_shared_references():
    store = MemoryStorageBackend()
    value = {"messages": [{"role": "user", "content": "hi"}]}
    await store.set("k", value)
    await store.set_many({"m": value})
    value["messages"][0]["content"] = "changed after set"
    first, second = await store.get("k"), await store.get("k")
    assert first == second == {"messages": [{"role": "user", "content": "hi"}]}
    assert first is not second and first["messages"] is not second["messages"]
    first["messages"].clear()
    assert (await store.get_many(["k", "m"]))["k"] == second
    assert (await store.get("m"))["messages"][0]["content"] == "hi"


async def test_expired_records_are_invisible_until_swept():
    clock = FakeClock()
    store = MemoryStorageBackend(clock=clock)
    await store.set_many({f"k{i}": {"i": i} for i in range(5)}, ttl=10)
    await store.set("keep", {"v": 1})
    clock.advance(10)
    assert list(await store.keys()) == ["keep"]
    assert len(store._space.records) == 6  # still held: sweep frees them
    assert await store.sweep() == 5
    assert len(store._space.records) == 1 and store._space.ordered == ["keep"]


async def test_listing_pages_skip_expired_keys_and_resume_after_the_cursor():
    clock = FakeClock()
    store = MemoryStorageBackend(clock=clock)
    await store.set_many({f"a/{i:02}": {} for i in range(10)})
    await store.set_many({f"a/{i:02}x": {} for i in range(10)}, ttl=1)
    clock.advance(2)
    page = await store.keys("a/", limit=3)
    assert page.keys == ["a/00", "a/01", "a/02"] and page.cursor == "a/02"
    # Keys written before the cursor meanwhile are not returned; the others come once.
    await store.set("a/00a", {})
    await store.delete("a/03")
    rest = await store.keys("a/", limit=100, cursor=page.cursor)
    assert rest.keys == [f"a/{i:02}" for i in range(4, 10)] and rest.cursor is None
    # A cursor before the prefix starts at the prefix.
    assert (await store.keys("a/0", limit=2, cursor="0")).keys == ["a/00", "a/00a"]


def test_threads_and_loops_at_once():
    store = MemoryStorageBackend()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        async def run() -> None:
            for i in range(200):
                await store.set(f"t{n}/{i}", {"n": n, "i": i})
                assert await store.get(f"t{n}/{i}") == {"n": n, "i": i}
                if i % 2:
                    await store.delete(f"t{n}/{i}")

        try:
            asyncio.run(run())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    space = store._space
    assert len(space.records) == 800 and space.ordered == sorted(space.records)


# The fixture docs/memory.md shows, as a project would write it.
@pytest.fixture
def agent_store(settings):
    settings.PRISM_STORAGE = {"default": {"BACKEND": "memory", "OPTIONS": {"name": "agents"}}}
    store = storages["default"]
    yield store
    store.clear()


async def test_the_documented_fixture(agent_store):
    await agent_store.set("agent_1", {"messages": [{"role": "user", "content": "Hello"}]})
    assert (await agent_store.get("agent_1"))["messages"][0]["content"] == "Hello"
    assert storages["default"] is agent_store
