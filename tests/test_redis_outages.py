"""The redis backend when its server goes away: each test runs a server of its own, stops
it mid-run (killed, or frozen so that it accepts connections but never answers), checks
that every call fails fast with the typed error, then brings it back on the same port and
checks that the same store instance works again and, with persistence on, lost nothing."""

from __future__ import annotations

import asyncio
import time

import pytest

from prism_storage import RedisStorageBackend
from prism_storage.exceptions import BackendUnavailableError
from tests.support.redis import RedisClusterNodes, RedisServer

TIMEOUT = 1.0


@pytest.fixture
def server():
    with RedisServer(persistent=True) as server:
        yield server


def operations(store: RedisStorageBackend):
    return {
        "get": lambda: store.get("agent/1"),
        "set": lambda: store.set("agent/1", {"lost": True}),
        "delete": lambda: store.delete("agent/2"),
        "exists": lambda: store.exists("agent/1"),
        "get_many": lambda: store.get_many(["agent/1", "agent/2"]),
        "set_many": lambda: store.set_many({"agent/3": {"lost": True}}),
        "delete_many": lambda: store.delete_many(["agent/1"]),
        "keys": lambda: store.keys(),
        "ping": store.ping,
    }


async def assert_every_call_fails_fast(store: RedisStorageBackend, within: float) -> None:
    for name, operation in operations(store).items():
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as caught:
            await operation()
        elapsed = time.monotonic() - started
        assert elapsed < within, (name, elapsed)
        assert caught.value.__cause__ is not None, name


async def test_killed_server_fails_fast_then_recovers_without_loss(server):
    store = RedisStorageBackend(server.url, prefix="outage:", timeout=TIMEOUT)
    records = {f"agent/{i}": {"i": i, "messages": [{"content": "x" * 100}]} for i in range(50)}
    await store.set_many(records)
    await store.set("single", {"written": "last"})

    server.kill()  # SIGKILL: no shutdown save; the append-only file (fsync always) has it all
    await assert_every_call_fails_fast(store, within=TIMEOUT + 0.5)

    server.start()
    assert await store.get_many(list(records)) == records
    assert await store.get("single") == {"written": "last"}
    await store.set("after", {"v": 1})
    assert await store.get("after") == {"v": 1}
    assert sorted(await store.keys(limit=100)) == sorted([*records, "single", "after"])
    await store.close()


async def test_frozen_server_times_out_then_recovers(server):
    store = RedisStorageBackend(server.url, prefix="frozen:", timeout=TIMEOUT)
    await store.set("k", {"v": 1})
    server.pause()  # SIGSTOP: connections are accepted by the kernel, nothing is answered
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="TimeoutError"):
            await store.get("k")
        assert time.monotonic() - started < TIMEOUT + 0.5
        # Many concurrent callers all get the typed error, none hangs.
        results = await asyncio.gather(
            *(store.set(f"c{i}", {"i": i}) for i in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, BackendUnavailableError) for r in results), results
    finally:
        server.resume()
    assert await store.get("k") == {"v": 1}
    await store.set("k", {"v": 2})
    assert await store.get("k") == {"v": 2}
    await store.close()


async def test_server_down_before_first_use_then_up(server):
    server.kill()
    store = RedisStorageBackend(server.url, prefix="late:", timeout=TIMEOUT)
    with pytest.raises(BackendUnavailableError, match=r"Connection refused|Error"):
        await store.ping()
    server.start()
    await store.ping()
    await store.set("k", {"v": 1})
    assert await store.get("k") == {"v": 1}
    await store.close()


async def test_graceful_restart_is_invisible_to_the_next_call(server):
    store = RedisStorageBackend(server.url, prefix="restart:", timeout=TIMEOUT)
    await asyncio.gather(*(store.set(f"k{i}", {"i": i}) for i in range(10)))  # pool of 10
    server.stop()
    server.start()
    # Pooled connections are stale now; one retry on a fresh connection hides that.
    assert await asyncio.gather(*(store.get(f"k{i}") for i in range(10))) == [
        {"i": i} for i in range(10)
    ]
    await store.close()


async def test_cluster_node_down_fails_fast_then_recovers():
    cluster = RedisClusterNodes(3)
    try:
        cluster.start()
        store = RedisStorageBackend(cluster.url, prefix="cluster-outage:", timeout=TIMEOUT)
        records = {f"agent/{i}": {"i": i} for i in range(60)}
        await store.set_many(records)
        victim = cluster.nodes[1]
        victim.kill()
        # Keys served by the dead node (and batches touching it) fail fast and typed.
        for operation in (
            lambda: store.get_many(list(records)),
            lambda: store.set_many(records),
            lambda: store.keys(limit=1000),
        ):
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError):
                await operation()
            assert time.monotonic() - started < TIMEOUT + 0.5
        victim.start()
        cluster.wait_ok()
        await store.set_many(records)
        assert await store.get_many(list(records)) == records
        await store.close()
    finally:
        cluster.cleanup()
