"""The orm backend's batching: call order, per-caller errors, cancellation, loops and
threads, and sync callers inside ``transaction.atomic``, on a real PostgreSQL (both the
psycopg fast path and the ORM path) and on SQLite.

The ``-large`` variants run the same tests with the ORM path in its large-record mode from
the first write and read (capped write batches, two in the thread's queue, reads one by
one): the thresholds are lowered so that every record counts as large."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import IntegrityError, connections, transaction

from prism_storage import ORMStorageBackend
from prism_storage.backends.orm import LargeRecords
from prism_storage.exceptions import BackendUnavailableError, InvalidValueError
from prism_storage.models import Record
from prism_storage.sync import SyncStore
from prism_storage.testing import FakeClock

TABLE = Record._meta.db_table
VARIANTS = {
    "pg-fast-path": {"using": "pg"},
    "pg-orm": {"using": "pg", "fast_path": False},
    "sqlite": {"using": "default"},
    "pg-orm-large": {"using": "pg", "fast_path": False},
    "sqlite-large": {"using": "default"},
}
LARGE = {"pg-orm-large", "sqlite-large"}
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "pg"])


def _sql(alias: str, statement: str, params: tuple = ()) -> list[tuple]:
    with connections[alias].cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


async def sql(alias: str, statement: str, params: tuple = ()) -> list[tuple]:
    """Run SQL on Django's own connection (closed by ``close_db_connections``)."""
    return await sync_to_async(_sql)(alias, statement, params)


async def fast_path_sessions(expected: int) -> int:
    """The fast-path connections open to the test database, once they reach ``expected``
    (a closed connection's server process leaves a moment later) or after 3 s."""
    name = connections["pg"].settings_dict["NAME"]
    for _ in range(30):
        rows = await sql(
            "pg",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND application_name = 'prism-storage'",
            (name,),
        )
        if rows[0][0] == expected:
            break
        await asyncio.sleep(0.1)
    return int(rows[0][0])


def large_record_mode(monkeypatch) -> None:
    """Every record counts as large; a write batch holds one or two small records."""
    monkeypatch.setattr(
        ORMStorageBackend, "large_records", LargeRecords(write=1, read=1, write_batch=40)
    )


@pytest.fixture(params=list(VARIANTS))
def variant(request, monkeypatch) -> str:
    if request.param in LARGE:
        large_record_mode(monkeypatch)
    return request.param


@pytest.fixture
async def stores(variant, close_db_connections):
    made: list[ORMStorageBackend] = []

    def make(namespace: str = "batch", **options) -> ORMStorageBackend:
        store = ORMStorageBackend(namespace, **{**VARIANTS[variant], **options})
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def test_concurrent_calls_share_one_statement(stores, variant):
    store = stores()
    await asyncio.gather(*(store.set(f"k{i}", {"i": i}) for i in range(64)))
    got = await asyncio.gather(*(store.get(f"k{i}") for i in range(64)))
    assert got == [{"i": i} for i in range(64)]
    if variant in ("pg-fast-path", "pg-orm"):
        # Rows written by one statement share the transaction id that wrote them: two
        # halves on the fast path's two connections; on the ORM path the first caller,
        # finding the store idle, goes alone and the 63 that queued behind it go together.
        rows = await sql(
            "pg", f"SELECT count(DISTINCT xmin::text) FROM \"{TABLE}\" WHERE namespace = 'batch'"
        )
        assert rows[0][0] <= 2


async def test_call_order_holds_within_a_batch(stores):
    store = stores()
    await asyncio.gather(*(store.set("same", {"writer": i}) for i in range(64)))
    assert await store.get("same") == {"writer": 63}

    results = await asyncio.gather(
        store.set("k", {"v": "a"}),
        store.get("k"),
        store.delete("k"),
        store.exists("k"),
        store.get("k"),
        store.set("k", {"v": "b"}),
        store.get_many(["k", "same"]),
        store.set_many({"k": {"v": "c"}, "other": {"v": 1}}),
        store.set("k", {"v": "d"}),
    )
    assert results == [
        None,
        {"v": "a"},
        None,
        False,
        None,
        None,
        {"k": {"v": "b"}, "same": {"writer": 63}},
        None,
        None,
    ]
    assert await store.get_many(["k", "other"]) == {"k": {"v": "d"}, "other": {"v": 1}}


async def test_readers_of_one_key_get_their_own_objects(stores):
    store = stores()
    await store.set("shared", {"messages": ["hello"]})
    first, second, many = await asyncio.gather(
        store.get("shared"), store.get("shared"), store.get_many(["shared"])
    )
    first["messages"].append("mutated")
    assert second == {"messages": ["hello"]}
    assert many == {"shared": {"messages": ["hello"]}}


@pytest.fixture
async def poison(variant, close_db_connections):
    """Make the database itself refuse records whose key starts with ``poison``."""
    alias = VARIANTS[variant]["using"]
    if alias == "pg":
        add = [
            f'ALTER TABLE "{TABLE}" ADD CONSTRAINT prism_test_poison '
            "CHECK (key NOT LIKE 'poison%%') NOT VALID"
        ]
        drop = [f'ALTER TABLE "{TABLE}" DROP CONSTRAINT prism_test_poison']
    else:
        add = [
            f'CREATE TRIGGER prism_test_poison_{event} BEFORE {event} ON "{TABLE}" '
            f"WHEN NEW.key LIKE 'poison%%' BEGIN SELECT RAISE(ABORT, 'poisoned key'); END"
            for event in ("INSERT", "UPDATE")
        ]
        drop = [f"DROP TRIGGER prism_test_poison_{event}" for event in ("INSERT", "UPDATE")]
    for statement in add:
        await sql(alias, statement)
    yield
    for statement in drop:
        await sql(alias, statement)


async def test_a_failed_write_fails_only_its_caller(stores, poison):
    store = stores()
    await store.set("k", {"v": "before"})

    def call(i: int):  # type: ignore[no-untyped-def]
        if i == 5:
            return store.set("poison-1", {"bad": True})
        if i == 9:
            return store.set_many({"ok-in-bad-many": {"v": 1}, "poison-2": {"v": 2}})
        if i == 12:
            return store.set("k", {"v": "a"})
        if i == 20:
            return store.set("k", {"v": "b"})
        return store.set(f"ok{i}", {"i": i})

    results = await asyncio.gather(*(call(i) for i in range(21)), return_exceptions=True)
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [5, 9]
    assert all(isinstance(results[i], IntegrityError) for i in failed)
    expected = {f"ok{i}": {"i": i} for i in range(20) if i not in (5, 9, 12)}
    assert await store.get_many([*expected, "poison-1", "poison-2"]) == expected
    # The whole set_many of the failed caller is refused; the last writer of "k" won.
    assert await store.get("ok-in-bad-many") is None
    assert await store.get("k") == {"v": "b"}
    # A batch with no bad record is back to one statement for everyone.
    await asyncio.gather(*(store.set(f"after{i}", {"i": i}) for i in range(10)))
    assert len(await store.get_many([f"after{i}" for i in range(10)])) == 10


async def test_cancelled_callers_do_not_disturb_the_others(stores, variant):
    store = stores()
    # Connected, and callers have overlapped (so the first caller below does not go
    # straight out alone, as one finding an idle store after lone callers would): the
    # batch below goes out in the next tick.
    await asyncio.gather(*(store.set(f"warm{i}", {"i": i}) for i in range(3)))
    tasks = [asyncio.create_task(store.set(f"c{i}", {"i": i})) for i in range(64)]
    await asyncio.sleep(0)  # every caller has queued its write; the batch is not sent yet
    for task in tasks[:10]:
        task.cancel()
    await asyncio.sleep(0)  # the batch is formed...
    await asyncio.sleep(0)  # ...and on its way
    for task in tasks[10:20]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results[:20])
    assert results[20:] == [None] * 44
    stored = await store.get_many([f"c{i}" for i in range(64)])
    # Cancelled before the batch left: not written. Cancelled in flight: the batch, and so
    # the write, went on. Everyone else: written, intact.
    if variant in LARGE:
        # Batches of one or two records: the later cancellations found some writes in
        # flight and some still queued.
        assert all(stored.get(f"c{i}") in (None, {"i": i}) for i in range(10, 20))
        assert {f"c{i}": stored[f"c{i}"] for i in range(20, 64)} == {
            f"c{i}": {"i": i} for i in range(20, 64)
        }
        assert not any(f"c{i}" in stored for i in range(10))
    else:
        assert sorted(stored, key=lambda k: int(k[1:])) == [f"c{i}" for i in range(10, 64)]
        assert all(stored[f"c{i}"] == {"i": i} for i in range(10, 64))
    assert await store.get("c0") is None


@pytest.mark.parametrize("variant", ["pg-orm", "sqlite"])
async def test_a_lone_caller_on_the_orm_path_goes_straight_out(stores, variant):
    store = stores()
    await store.set("warm", {"v": 0})  # a lone caller: the store stays in lone mode
    # A lone caller cancelled in flight (its call may or may not have reached the
    # database, as with Django's own async ORM calls): the callers that queued behind it
    # are served, and the store goes on working.
    task = asyncio.create_task(store.set("lone", {"v": 1}))
    await asyncio.sleep(0)
    behind = [asyncio.create_task(store.set(f"behind{i}", {"i": i})) for i in range(5)]
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.gather(*behind) == [None] * 5
    assert await store.get_many([f"behind{i}" for i in range(5)]) == {
        f"behind{i}": {"i": i} for i in range(5)
    }
    assert await store.get("lone") in (None, {"v": 1})
    if variant == "pg-orm":
        # 64 callers at once: the first finds the store idle and goes alone; the 63 that
        # queued behind it go as one statement (one transaction id).
        await store.set("lone", {"v": 2})
        await asyncio.gather(*(store.set(f"q{i}", {"i": i}) for i in range(64)))
        rows = await sql(
            "pg",
            f"SELECT key, xmin::text FROM \"{TABLE}\" WHERE namespace = 'batch' AND key LIKE 'q%%'",
        )
        by_xid: dict[str, set[str]] = {}
        for key, xid in rows:
            by_xid.setdefault(xid, set()).add(key)
        assert sorted(map(len, by_xid.values())) == [1, 63]
        assert {"q0"} in by_xid.values()


@pytest.mark.parametrize("variant", ["pg-orm", "sqlite"])
async def test_large_writes_on_the_orm_path_are_chunked_and_atomic(
    stores, variant, poison, monkeypatch
):
    import prism_storage.backends.orm.table as table_module

    monkeypatch.setattr(table_module, "WRITE_CHUNK_BYTES", 64)  # about one record a statement
    store = stores()
    records = {f"big{i}": {"text": "x" * 40, "i": i} for i in range(6)}
    await store.set_many(records)
    assert await store.get_many(list(records)) == records
    # The refused record is in the last statement: the earlier ones are rolled back.
    with pytest.raises(IntegrityError):
        await store.set_many(
            {**{f"new{i}": {"text": "y" * 40} for i in range(5)}, "poison-late": {"text": "z"}}
        )
    assert await store.get_many([f"new{i}" for i in range(5)]) == {}


@pytest.mark.parametrize("variant", ["pg-orm", "sqlite"])
async def test_reads_of_large_records_go_in_smaller_batches(stores, variant, monkeypatch):
    monkeypatch.setattr(
        ORMStorageBackend, "large_records", LargeRecords(read_batch=3000)
    )  # "large": over 6 bytes
    store = stores()
    records = {f"r{i}": {"text": "x" * 1000, "i": i} for i in range(12)}
    await store.set_many(records)
    await store.get("r0")  # the store learns how large its records are
    executor = next(iter(store._batchers.values())).executor
    assert executor.policy.read_limit == 2  # about 1 KB each: two per 3,000 bytes
    read_batches: list[int] = []
    run = executor.run

    async def counting_run(requests):  # type: ignore[no-untyped-def]
        read_batches.append(sum(len(r.keys) for r in requests if r.kind == "read"))
        return await run(requests)

    executor.run = counting_run
    assert await asyncio.gather(*(store.get(k) for k in records)) == list(records.values())
    assert sum(read_batches) == 12 and max(read_batches) == 2
    # get_many is one operation: it is never split.
    assert await store.get_many(list(records)) == records


async def test_ttl_and_timestamps_per_record_within_a_batch(stores, variant):
    clock = FakeClock(start=1_700_000_000)
    store = stores("stamps", clock=clock)
    await store.set("old", {"v": 0})
    clock.advance(60)
    await asyncio.gather(
        store.set("old", {"v": 1}, ttl=30),
        store.set("new", {"v": 2}),
        store.set_many({"many": {"v": 3}}, ttl=90),
    )
    alias = VARIANTS[variant]["using"]
    records = {r.key: r async for r in Record.objects.using(alias).filter(namespace="stamps")}
    assert records["old"].updated_at - records["old"].created_at == timedelta(seconds=60)
    assert records["old"].expires_at - records["old"].updated_at == timedelta(seconds=30)
    assert records["new"].created_at == records["new"].updated_at == records["old"].updated_at
    assert records["new"].expires_at is None
    assert records["many"].expires_at - records["many"].updated_at == timedelta(seconds=90)
    clock.advance(31)
    assert await asyncio.gather(store.get("old"), store.get("new"), store.exists("many")) == [
        None,
        {"v": 2},
        True,
    ]


async def test_every_caller_of_an_unreachable_batch_gets_its_own_error(close_db_connections):
    store = ORMStorageBackend("down", using="unreachable")
    try:
        results = await asyncio.gather(
            *(store.get(f"k{i}") for i in range(8)),
            store.set("k", {"v": 1}),
            return_exceptions=True,
        )
    finally:
        await store.close()
    assert all(isinstance(r, BackendUnavailableError) for r in results)
    assert len({id(r) for r in results}) == len(results)
    assert "could not write" in str(results[-1])


@pytest.mark.parametrize("variant", ["pg-fast-path"])
async def test_one_connection_per_event_loop_and_none_left_behind(stores):
    store = stores("loops")
    ready, release = threading.Barrier(5), threading.Barrier(5)
    errors: list[BaseException] = []

    async def work(thread: int, close: bool) -> None:
        await asyncio.gather(*(store.set(f"t{thread}/{i}", {"i": i}) for i in range(20)))
        got = await store.get_many([f"t{thread}/{i}" for i in range(20)])
        assert got == {f"t{thread}/{i}": {"i": i} for i in range(20)}
        await asyncio.to_thread(ready.wait)
        await asyncio.to_thread(release.wait)
        if close:
            await store.close()

    def thread_main(thread: int, close: bool) -> None:
        try:
            asyncio.run(work(thread, close))
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
            ready.abort()
            release.abort()

    async def run_threads(close: bool) -> None:
        threads = [threading.Thread(target=thread_main, args=(t, close)) for t in range(4)]
        for thread in threads:
            thread.start()
        await asyncio.to_thread(ready.wait)
        # Four loops, each with its 20 concurrent callers: four connections.
        assert await fast_path_sessions(4) == 4
        await asyncio.to_thread(release.wait)
        await asyncio.to_thread(lambda: [t.join() for t in threads])
        assert errors == []
        ready.reset()
        release.reset()

    await run_threads(close=True)  # each loop closes its own connection
    assert await fast_path_sessions(0) == 0
    await run_threads(close=False)
    # The loops ended without close(): the next use (or close) of the store releases their
    # connections, without their loop.
    assert len(await store.get_many([f"t{t}/{i}" for t in range(4) for i in range(20)])) == 80
    assert await fast_path_sessions(1) == 1
    await store.close()
    assert await fast_path_sessions(0) == 0


@pytest.mark.django_db(transaction=True, databases=["pg"])
def test_sync_caller_inside_atomic_writes_in_its_transaction():
    store = ORMStorageBackend("atomic", using="pg")
    facade = SyncStore(store)
    facade.set("kept", {"v": 1})
    with pytest.raises(RuntimeError), transaction.atomic(using="pg"):
        facade.set("rolled-back", {"v": 2})
        assert facade.get("rolled-back") == {"v": 2}  # its own uncommitted write
        # An async caller (the fast path, its own connection) cannot see it yet.
        assert asyncio.run(_get_and_close("atomic", "rolled-back")) is None
        raise RuntimeError("roll back")
    assert facade.get("rolled-back") is None
    assert facade.get("kept") == {"v": 1}
    assert (
        _sql(
            "pg",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
            "application_name = 'prism-storage'",
            (connections["pg"].settings_dict["NAME"],),
        )[0][0]
        == 0
    )
    facade.close()


async def _get_and_close(namespace: str, key: str) -> dict | None:
    store = ORMStorageBackend(namespace, using="pg")
    try:
        return await store.get(key)
    finally:
        await store.close()


class Watch:
    """Records what the executor of ``store`` is asked to run, and how many of its calls
    are in flight at once (the executor itself does the work)."""

    def __init__(self, store: ORMStorageBackend) -> None:
        self.executor = next(iter(store._batchers.values())).executor
        self.requests: list[list] = []
        self.in_flight = self.most_in_flight = 0
        run = self.executor.run

        async def watched(requests):  # type: ignore[no-untyped-def]
            self.requests.append(requests)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                return await run(requests)
            finally:
                self.in_flight -= 1

        self.executor.run = watched

    def batches(self, kind: str) -> list[int]:
        """How many operations each call of ``kind`` held."""
        return [
            len(r.groups) if kind == "write" else len(r.keys)
            for requests in self.requests
            for r in requests
            if r.kind == kind
        ]


@pytest.mark.parametrize("variant", ["pg-orm", "sqlite"])
async def test_writes_of_large_records_go_in_capped_batches_two_at_a_time(
    stores, variant, monkeypatch
):
    monkeypatch.setattr(
        ORMStorageBackend, "large_records", LargeRecords(write=500, write_batch=2500)
    )
    store = stores()
    await store.set("small", {"v": 1})
    executor = next(iter(store._batchers.values())).executor
    assert (executor.policy.capacity, executor.policy.write_limit) == (1, None)
    records = {f"w{i}": {"text": "x" * 1000, "i": i} for i in range(16)}
    # The store learns how large its records are (an average over the records written).
    await store.set_many({f"w-first{i}": records["w0"] for i in range(16)})
    assert (executor.policy.capacity, executor.policy.write_limit) == (2, 2500)
    watch = Watch(store)
    assert await asyncio.gather(*(store.set(k, v) for k, v in records.items())) == [None] * 16
    # About 1 KB each: two per 2,500 characters; the second batch waited in the thread's
    # queue while the first ran.
    assert sum(watch.batches("write")) == 16 and max(watch.batches("write")) == 2
    assert watch.most_in_flight == 2
    assert await store.get_many(list(records)) == records
    # Call order on one key still holds, and reads never overtake the writes before them.
    results = await asyncio.gather(
        store.set("k", {"v": "a", "pad": "x" * 1000}),
        store.get("k"),
        store.set("k", {"v": "b", "pad": "x" * 1000}),
        store.get("k"),
        *(store.set(f"more{i}", {"pad": "y" * 1000}) for i in range(6)),
        store.delete("k"),
        store.exists("k"),
    )
    assert [None if r is None else r.get("v") for r in results[:4]] == [None, "a", None, "b"]
    assert results[-2:] == [None, False]
    # One operation is never split, however large: a set_many over the cap goes whole.
    huge = {f"h{i}": {"text": "z" * 1000} for i in range(8)}
    await store.set_many(huge)
    assert [len(group) for group in watch.requests[-1][0].groups] == [8]
    assert await store.get_many(list(huge)) == huge


@pytest.mark.parametrize("variant", ["pg-orm", "sqlite"])
async def test_reads_of_very_large_records_run_one_by_one(stores, variant, monkeypatch):
    monkeypatch.setattr(ORMStorageBackend, "large_records", LargeRecords(read=500))
    store = stores()
    records = {f"r{i}": {"text": "x" * 1000, "i": i} for i in range(12)}
    await store.set_many(records)
    executor = next(iter(store._batchers.values())).executor
    assert not executor.policy.direct_reads
    await store.get("r0")  # the store learns how large its records are
    assert executor.policy.direct_reads
    watch = Watch(store)
    assert await asyncio.gather(*(store.get(k) for k in records)) == list(records.values())
    # Each read is its own call; they all wait in the thread's queue at once.
    assert watch.batches("read") == [1] * 12
    assert watch.most_in_flight == 12
    # Call order on one key: a write waits for the reads before it, and the reads after it
    # wait for the write.
    results = await asyncio.gather(
        store.get("r1"), store.set("r1", {"v": "new"}), store.get("r1"), store.get("r2")
    )
    assert results == [records["r1"], None, {"v": "new"}, records["r2"]]
    # A reader cancelled in flight leaves the others, and the key, as they were.
    tasks = [asyncio.create_task(store.get(k)) for k in ("r3", "r4", "r5")]
    await asyncio.sleep(0)
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert done[0] == records["r3"] and done[2] == records["r5"]
    assert isinstance(done[1], asyncio.CancelledError)
    await store.set("r4", {"v": "after"})
    assert await store.get("r4") == {"v": "after"}
    assert not store._batchers[next(iter(store._batchers))]._reading


@pytest.mark.parametrize("variant", ["pg-fast-path", "pg-orm", "sqlite"])
async def test_appends_to_several_lists_in_one_batch(stores, variant):
    """Appends of one batch go as one operation over every list: each caller gets the
    length its own items brought the list to, a record whose field is not a list fails
    only its own callers (and stays as it was), an expired record starts anew."""
    clock = FakeClock(start=1_700_000_000)
    store = stores("lists", clock=clock)
    await store.set_many({"a": {"messages": [0]}, "bad": {"messages": "text"}})
    await store.set("old", {"messages": ["gone"]}, ttl=10)
    clock.advance(60)
    bad = await store.get_record("bad")
    watch = Watch(store)
    results = await asyncio.gather(
        store.get("idle"),  # finds the store idle and goes alone: the appends queue
        store.append("a", [1]),
        store.append("bad", [2]),
        store.append("new", [3]),
        store.append("a", [4, 5]),
        store.append("bad", [6]),
        store.append("new", [7]),
        store.append("old", [8], ttl=30),
        store.append("old", [9], ttl=30),
        return_exceptions=True,
    )
    appends = [[r for r in requests if r.call is not None] for requests in watch.requests]
    assert [len(calls) for calls in appends if calls] == [8]
    assert [results[i] for i in (0, 1, 3, 4, 6, 7, 8)] == [None, 2, 1, 4, 2, 1, 2]
    for i in (2, 5):
        assert isinstance(results[i], InvalidValueError)
        assert results[i].path == "$.messages"
    assert await store.get_many(["a", "bad", "new", "old"]) == {
        "a": {"messages": [0, 1, 4, 5]},
        "bad": {"messages": "text"},
        "new": {"messages": [3, 7]},
        "old": {"messages": [8, 9]},
    }
    records = await store.get_many_records(["a", "bad", "new", "old"])
    assert records["bad"] == bad
    old = records["old"]
    assert old.created_at == old.updated_at
    assert old.expires_at is not None and old.expires_at - old.updated_at == timedelta(seconds=30)
    assert records["new"].expires_at is None
    assert records["a"].created_at < records["a"].updated_at
