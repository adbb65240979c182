"""Scoped erasure and tenant scopes: ``delete_prefix`` and ``scoped`` never reach a key
outside their prefix, also when prefixes are string-prefixes of each other or hold the
metacharacters of SQL ``LIKE`` and of Redis globs."""

from __future__ import annotations

import pytest

from ...backends.base import BaseStorageBackend
from ...exceptions import InvalidKeyError, InvalidValueError, UnsupportedOperationError
from ...segments import join
from .fixtures import StoreFactory

__all__ = ["ErasureCases", "ScopeCases"]

#: Prefixes each of which a LIKE pattern or a glob would widen if left unescaped.
METACHARACTER_PREFIXES = ["a%", "a_", "a*", "a?", "a[b]", "a\\", "a!"]
#: Keys that such widened patterns would wrongly catch: each starts with "a" but none
#: starts with any of the prefixes above, unless listed for it.
NEIGHBOURS = ["a", "ab", "aX", "a-b", "abc/d", "A%", "a", "b%", "[a]", "a]", "ab]"]


def _needs_listing(store: BaseStorageBackend) -> None:
    if not store.supports_listing:
        pytest.skip("this store cannot list keys, so cannot erase by prefix")


class ErasureCases:
    """``delete_prefix`` removes exactly the keys under its prefix and counts them."""

    async def test_delete_prefix_removes_only_its_prefix(self, store: BaseStorageBackend) -> None:
        _needs_listing(store)
        await store.set_many({"a": {"n": 0}, "a/1": {"n": 1}, "a/2": {"n": 2}})
        await store.set_many({"ab": {"n": 3}, "ab/1": {"n": 4}, "b/1": {"n": 5}})
        assert await store.delete_prefix("a/") == 2
        assert sorted(await store.keys()) == ["a", "ab", "ab/1", "b/1"]
        assert await store.delete_prefix("a") == 3
        assert list(await store.keys()) == ["b/1"]
        assert await store.delete_prefix("a") == 0

    @pytest.mark.parametrize("prefix", METACHARACTER_PREFIXES)
    async def test_metacharacters_match_only_themselves(
        self, store: BaseStorageBackend, prefix: str
    ) -> None:
        _needs_listing(store)
        mine = [prefix, prefix + "1", prefix + "%_*?[]\\"]
        others = [k for k in set(NEIGHBOURS) | set(METACHARACTER_PREFIXES) if k not in mine]
        others = [k for k in others if not k.startswith(prefix)]
        await store.set_many({k: {"k": k} for k in mine + others})
        assert await store.delete_prefix(prefix) == len(mine)
        assert sorted(await store.keys(limit=1000)) == sorted(others)
        assert await store.get_many(mine) == {}

    async def test_other_stores_are_untouched(self, stores: StoreFactory) -> None:
        one, two = stores("erase"), stores("erase_2")
        _needs_listing(one)
        await one.set_many({"k/1": {"v": 1}, "k/2": {"v": 2}})
        await two.set_many({"k/1": {"v": 1}, "k/3": {"v": 3}})
        assert await one.delete_prefix("k/") == 2
        assert sorted(await two.keys()) == ["k/1", "k/3"]
        assert await two.delete_prefix("", all=True) == 2
        assert list(await two.keys()) == []

    async def test_more_than_one_batch(self, store: BaseStorageBackend) -> None:
        _needs_listing(store)
        await store.set_many({f"bulk/{i:04d}": {"i": i} for i in range(1203)})
        await store.set("bulk", {"kept": True})
        assert await store.delete_prefix("bulk/") == 1203
        assert list(await store.keys()) == ["bulk"]

    @pytest.mark.parametrize("prefix", ["", None, 3, "bad\x00prefix", "x" * 513])
    async def test_bad_prefix_is_refused(self, store: BaseStorageBackend, prefix: object) -> None:
        with pytest.raises((InvalidValueError, InvalidKeyError)):
            await store.delete_prefix(prefix)  # type: ignore[arg-type]

    async def test_all_must_be_a_bool(self, store: BaseStorageBackend) -> None:
        with pytest.raises(InvalidValueError):
            await store.delete_prefix("", all="yes")  # type: ignore[arg-type]


class ScopeCases:
    """``scoped(...)`` confines every operation to the scope's keys."""

    async def test_scopes_never_see_each_other(self, store: BaseStorageBackend) -> None:
        acme, acme2 = store.scoped("acme"), store.scoped("acme-2")
        nested = store.scoped("acme", "x")
        await acme.set("k", {"t": "acme"})
        await acme2.set("k", {"t": "acme-2"})
        await nested.set("k", {"t": "acme/x"})
        await store.set("acme", {"t": "root"})
        assert await acme.get("k") == {"t": "acme"}
        assert await acme2.get("k") == {"t": "acme-2"}
        assert await nested.get("k") == {"t": "acme/x"}
        assert await store.scoped("acme/x").get("k") is None  # "/" in a segment is encoded
        assert await acme.scoped("x").get("k") == {"t": "acme/x"}  # scopes nest
        assert await acme.get_many(["k", "x/k", "nope"]) == {
            "k": {"t": "acme"},
            "x/k": {"t": "acme/x"},  # the nested scope lies within its parent
        }
        assert not await acme.exists("acme")
        if store.supports_listing:
            assert sorted(await acme.keys()) == ["k", "x/k"]  # the nested scope is inside
            assert list(await acme2.keys()) == ["k"]
            assert list(await nested.keys(prefix="k")) == ["k"]
            assert [k async for k in acme.iter_keys("x/")] == ["x/k"]
            assert await acme.delete_prefix("", all=True) == 2
            assert await acme2.get("k") == {"t": "acme-2"}
            assert await store.get("acme") == {"t": "root"}
        await acme2.delete_many(["k"])
        assert await acme2.get("k") is None

    async def test_batches_and_deletes_stay_in_scope(self, store: BaseStorageBackend) -> None:
        tenant, other = store.scoped("t%_*"), store.scoped("t")
        await tenant.set_many({"a": {"v": 1}, "b": {"v": 2}})
        await other.set_many({"a": {"v": 3}})
        await tenant.delete("a")
        assert await other.get("a") == {"v": 3}
        assert await tenant.get_many(["a", "b"]) == {"b": {"v": 2}}
        if store.supports_listing:
            with pytest.raises(InvalidValueError):
                await tenant.delete_prefix("")
            assert await other.delete_prefix("a") == 1
            assert await tenant.get("b") == {"v": 2}

    async def test_records_and_lists_in_scope(self, store: BaseStorageBackend) -> None:
        if not store.supports_versions:
            pytest.skip("this store keeps no record versions")
        scope = store.scoped("u1")
        written = await scope.put("r", {"v": 1})
        record = await scope.get_record("r")
        assert record is not None and record.key == "r" and record.version == written.version
        assert (await scope.get_many_records(["r"]))["r"].key == "r"
        assert await store.get_record("r") is None
        if store.supports_conditional_writes:
            assert await scope.update("r", lambda v: {"v": (v or {})["v"] + 1}) == {"v": 2}
            assert await scope.remove("r", if_version=(await scope.get_record("r")).version)  # type: ignore[union-attr]
        if store.supports_atomic_lists:
            assert await scope.append("chat", [1, 2]) == 2
            assert await scope.pop("chat") == 2
            assert await store.get("chat") is None

    async def test_touch_stays_in_scope(self, store: BaseStorageBackend) -> None:
        if not store.supports_ttl:
            pytest.skip("this store keeps no expiry")
        scope = store.scoped("u1")
        await store.set("r", {"v": "outside"})
        assert not await scope.touch("r")  # the scope holds no "r"
        await scope.set("r", {"v": "inside"})
        assert await scope.touch("r", ttl=3600)
        if store.supports_versions:
            full = join("u1") + "r"
            records = await store.get_many_records([full, "r"])
            assert records[full].expires_at is not None
            assert records["r"].expires_at is None

    async def test_search_returns_only_the_scope(self, store: BaseStorageBackend) -> None:
        if not store.supports_text_search:
            pytest.skip("this store does not search by text")
        acme, other = store.scoped("acme"), store.scoped("acme-2")
        text = {"messages": [{"role": "user", "content": "where is my parcel"}]}
        await other.set_many({f"doc{i}": text for i in range(5)})
        await store.set("acme/doc", text)  # the same full key as acme's own "doc"
        await acme.delete("doc")
        await acme.set("near", {"messages": [{"role": "user", "content": "where is my box"}]})
        hits = await acme.search("where is my parcel", limit=3)  # type: ignore[arg-type]
        assert [hit["key"] for hit in hits] == ["near"]
        hits = await other.search("where is my parcel", limit=2)  # type: ignore[arg-type]
        assert len(hits) == 2 and all(hit["key"].startswith("doc") for hit in hits)

    async def test_keys_and_segments_are_checked(self, store: BaseStorageBackend) -> None:
        scope = store.scoped("tenant")
        with pytest.raises(InvalidKeyError):
            await scope.get("")  # the empty key would name the scope itself
        with pytest.raises(InvalidKeyError):
            await scope.set("k" * 510, {"v": 1})  # too long once prefixed
        with pytest.raises(InvalidValueError):
            store.scoped()
        with pytest.raises(InvalidValueError):
            store.scoped(3)  # type: ignore[arg-type]
        with pytest.raises(UnsupportedOperationError):
            await scope.sweep()

    def test_scope_reports_the_inner_store(self, store: BaseStorageBackend) -> None:
        scope = store.scoped("a", "b")
        assert scope.alias == store.alias
        assert scope.backend_name == store.backend_name
        expected = {**store.capabilities, "sweep": False}
        assert scope.capabilities == expected
        assert "('a', 'b')" in repr(scope)
