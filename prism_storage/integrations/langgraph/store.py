"""LangGraph's long-term memory (``BaseStore``) over any prism store that lists its keys.

An item ``(namespace, key)`` is the record ``{prefix}{label}/.../{label}/{key}``, each
part a segment of :mod:`.segments`: the namespace is every segment but the last, so
listing under a namespace prefix finds exactly its items and those of the namespaces
below it, and namespaces come back from the keys alone.

The record holds ``{"namespace": [...], "key": ..., "value": {...}}``: the value as
LangGraph was given it, readable in the admin. ``Item.created_at``/``updated_at`` are the
record's own metadata on stores that keep versions; elsewhere the times are kept in the
record beside the value.

On a store that embeds texts itself (a vector store with an embedder), the record also
holds the text to embed (in the store's ``text_field``: the fields ``index`` names, else
the value's JSON) and, as ``ns_0``, ``ns_1``..., the encoded prefixes of its namespace:
a ``query`` is the store's own similarity search, restricted to the namespace prefix by
the store's filter.

``filter`` follows LangGraph's ``InMemoryStore`` (equality, nested dicts, lists, and the
operators ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``), applied here after
listing, so every store gives the same answers. On a store that finds records by JSON
containment in its database (``find_containing``: the orm store on PostgreSQL), the
fields containment decides exactly as the filter does (strings, numbers other than 0 and
1, objects of those) are left to the database, which also stops at the page asked for
when they are the whole filter; the rest is applied here as everywhere. Search results
are the most recently updated first, as LangGraph's Postgres store returns them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Iterable
from datetime import datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)
from langgraph.store.base.embed import get_text_at_path

from ...backends.base import BaseStorageBackend
from ...backends.versions import timestamp
from ...segments import decode_segment, encode_segment, join
from .batches import Snapshot, repeated_reads
from .filters import containment_part, matches
from .gathering import ConcurrentReads
from .namespaces import listing_start, namespace_page
from .running import folder_prefix, resolve_listing_store, run_sync

__all__ = ["PrismStore"]

DEFAULT_PREFIX = "langgraph/store/"
# Keys listed and records read per round trip.
PAGE_SIZE = 500
# Candidates a similarity search takes when a filter is applied after it (the vector
# store's largest page).
SEMANTIC_CANDIDATES = 1000

Namespace = tuple[str, ...]
_READS = (GetOp, SearchOp, ListNamespacesOp)


class PrismStore(BaseStore):
    """LangGraph's ``BaseStore`` on a prism store (an instance or an alias)."""

    def __init__(
        self,
        store: BaseStorageBackend | str = "default",
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl: TTLConfig | None = None,
    ) -> None:
        self.store = resolve_listing_store(store, "namespaces and search need.")
        self.prefix = folder_prefix(prefix)
        # An expiry is set on write (the item keeps its ttl); a read with ``refresh_ttl``
        # (LangGraph's default, ``TTLConfig["refresh_on_read"]``) pushes it back with the
        # store's ``touch``.
        self.supports_ttl = self.store.supports_ttl
        self.ttl_config = ttl
        self._versions = self.store.supports_versions
        self._semantic = self.store.supports_text_search
        self._text_field: str = getattr(self.store, "text_field", "text")
        # Filters go to the database where it can apply them; not when a read must also
        # push expiries back (the store does that on its own reads only).
        self._contains = (
            self._versions
            and getattr(self.store, "supports_containment", False)
            and not getattr(self.store, "touch_on_read", False)
        )
        self._reads = ConcurrentReads(self._execute)

    # -- keys ---------------------------------------------------------------------------

    def _key(self, namespace: Namespace, key: str) -> str:
        return self.prefix + _item_path(tuple(namespace), key)

    def _namespace_of(self, key: str) -> Namespace:
        segments = key[len(self.prefix) :].split("/")[:-1]
        return tuple(decode_segment(segment) for segment in segments)

    async def _list(self, namespace_prefix: Namespace) -> list[str]:
        prefix = self.prefix + join(*namespace_prefix)
        return [key async for key in self.store.iter_keys(prefix, page_size=PAGE_SIZE)]

    # -- reading ------------------------------------------------------------------------

    async def _items(
        self, keys: list[str], ttls: dict[str, float] | None = None
    ) -> dict[str, Item]:
        """The items at ``keys`` that hold one. ``ttls``, when given, receives the ttl (in
        seconds) of each item written with one, for :meth:`_refresh`."""
        items: dict[str, Item] = {}
        for start in range(0, len(keys), PAGE_SIZE):
            page = keys[start : start + PAGE_SIZE]
            if self._versions:
                records = await self.store.get_many_records(page)
                for key, record in records.items():
                    items[key] = _item(record.value, record.created_at, record.updated_at)
                    _note_ttl(ttls, key, record.value)
            else:
                for key, value in (await self.store.get_many(page)).items():
                    created, updated = value.get("created_at", 0.0), value.get("updated_at", 0.0)
                    items[key] = _item(value, timestamp(created), timestamp(updated))
                    _note_ttl(ttls, key, value)
        return items

    async def _refresh(self, ttls: dict[str, float], returned: Iterable[str]) -> None:
        """Push back the expiry of the returned items written with a ttl, each by its own
        ttl, as LangGraph's stores do on a read with ``refresh_ttl``. An item deleted
        meanwhile stays deleted (``touch`` never revives one)."""
        wanted = [(key, ttls[key]) for key in dict.fromkeys(returned) if key in ttls]
        if wanted and self.supports_ttl:
            await asyncio.gather(*(self.store.touch(key, ttl) for key, ttl in wanted))

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        ttls: dict[str, float] | None = {} if op.refresh_ttl and self.supports_ttl else None
        page = await self._search_page(op, ttls)
        if ttls:
            await self._refresh(ttls, (self._key(item.namespace, item.key) for item in page))
        return page

    async def _search_page(self, op: SearchOp, ttls: dict[str, float] | None) -> list[SearchItem]:
        if op.query and self._semantic:
            return await self._similar(op, ttls)
        if op.filter and self._contains:
            pushed, rest = containment_part(op.filter)
            if pushed:
                return _page(await self._contained(op, pushed, not rest, ttls), op)
        keys = await self._list(op.namespace_prefix)
        found = list((await self._items(keys, ttls)).values())
        if op.filter:
            found = [item for item in found if matches(item.value, op.filter)]
        return _page(found, op)

    async def _contained(
        self,
        op: SearchOp,
        pushed: dict[str, Any],
        limited: bool,
        ttls: dict[str, float] | None = None,
    ) -> list[Item]:
        """The items of the namespace prefix that ``op.filter`` keeps, the database
        applying ``pushed``; ``limited``: only those the page may need."""
        assert op.filter is not None
        wanted = op.offset + op.limit
        if wanted < 1:
            return []
        prefix = self.prefix + join(*op.namespace_prefix)
        find = self.store.find_containing  # type: ignore[attr-defined]
        records = await find(prefix, {"value": pushed}, limit=wanted if limited else None)
        found = [
            _item(record.value, record.created_at, record.updated_at)
            for record in records
            if isinstance(record.value.get("value"), dict)
        ]
        for record in records:
            _note_ttl(ttls, record.key, record.value)
        kept = [item for item in found if matches(item.value, op.filter)]
        if limited and len(kept) < len(found):
            # Containment let through what the filter does not (it never should): the
            # page may be short, so take every candidate.
            return await self._contained(op, pushed, False, ttls)
        return kept

    async def _similar(self, op: SearchOp, ttls: dict[str, float] | None) -> list[SearchItem]:
        """The store's similarity search for ``op.query`` within the namespace prefix."""
        prefix = op.namespace_prefix
        where = {f"ns_{len(prefix) - 1}": join(*prefix)} if prefix else None
        wanted = op.offset + op.limit
        fetch = SEMANTIC_CANDIDATES if op.filter else min(wanted, SEMANTIC_CANDIDATES)
        if fetch < 1:
            return []
        # A store with text search takes the text itself (its embedder makes the vector).
        query: Any = op.query
        hits = await self.store.search(query, limit=fetch, filter=where)
        start = self.prefix + join(*prefix)
        # Other records of the store (not this integration's) may rank too: skip them.
        hits = [hit for hit in hits if hit["key"].startswith(start)]
        if op.filter:
            hits = [hit for hit in hits if matches(hit["value"]["value"], op.filter)]
        hits = hits[op.offset : wanted]
        items = await self._items([hit["key"] for hit in hits], ttls)
        return [
            SearchItem(
                namespace=item.namespace,
                key=item.key,
                value=item.value,
                created_at=item.created_at,
                updated_at=item.updated_at,
                score=hit["score"],
            )
            for hit in hits
            if (item := items.get(hit["key"])) is not None
        ]

    async def _list_namespaces(self, op: ListNamespacesOp) -> list[Namespace]:
        keys = await self._list(listing_start(op))
        # A key right under the prefix is no item of this store's (an item has a namespace).
        return namespace_page({self._namespace_of(key) for key in keys} - {()}, op)

    # -- writing ------------------------------------------------------------------------

    async def _apply_puts(self, puts: dict[tuple[Namespace, str], PutOp]) -> None:
        removed = [self._key(ns, key) for (ns, key), op in puts.items() if op.value is None]
        written = {self._key(ns, key): op for (ns, key), op in puts.items() if op.value is not None}
        if removed:
            await self.store.delete_many(removed)
        if not written:
            return
        now = time.time()
        created: dict[str, float] = {}
        if not self._versions:
            # Without record metadata the creation time lives in the record: keep it.
            for key, value in (await self.store.get_many(list(written))).items():
                created[key] = value.get("created_at", now)
        # Writes with the same expiry go together, in one call where the store batches.
        by_ttl: dict[float | None, dict[str, dict[str, Any]]] = {}
        for key, op in written.items():
            record: dict[str, Any] = {
                "namespace": list(op.namespace),
                "key": op.key,
                "value": dict(op.value or {}),
            }
            if self._semantic:
                record.update(self._index_fields(op))
            if not self._versions:
                record["created_at"] = created.get(key, now)
                record["updated_at"] = now
            ttl = None if op.ttl is None else op.ttl * 60
            if op.ttl is not None:
                record["ttl_minutes"] = op.ttl  # what a read with refresh_ttl renews
            by_ttl.setdefault(ttl, {})[key] = record
        await asyncio.gather(
            *(self.store.set_many(records, ttl=ttl) for ttl, records in by_ttl.items())
        )

    def _index_fields(self, op: PutOp) -> dict[str, Any]:
        """What a store that embeds texts itself needs: the text, the namespace prefixes."""
        value = dict(op.value or {})
        if isinstance(op.index, list):
            text = "\n".join(t for path in op.index for t in get_text_at_path(value, path))
        else:
            text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        fields: dict[str, Any] = {self._text_field: text}
        for depth in range(len(op.namespace)):
            fields[f"ns_{depth}"] = join(*op.namespace[: depth + 1])
        return fields

    # -- batches ------------------------------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        writes = False
        for op in ops:
            validate_op_namespace(op)
            if isinstance(op, PutOp):
                writes = True
            elif not isinstance(op, _READS):
                raise ValueError(f"Unknown operation type: {type(op).__name__}")
        if writes:
            results = await self._execute(ops)
        else:
            # Reads of concurrent tasks (each ``aget`` is a batch of its own) run together.
            results = await self._reads.run(ops)
        return [r.take() if isinstance(r, Snapshot) else r for r in results]

    async def _execute(self, ops: list[Op]) -> list[Result | Snapshot]:
        """The results of ``ops``; a repeated read's repeats hold a snapshot of its."""
        results: list[Result | Snapshot] = [None] * len(ops)
        # Each distinct read once; the repeats get copies of its result.
        repeats = repeated_reads(ops)
        repeated = {i for positions in repeats.values() for i in positions}
        reads: list[Awaitable[None]] = []
        gets: dict[int, GetOp] = {}
        refreshed: list[GetOp] = []
        # Of several puts to one item the last wins.
        puts: dict[tuple[Namespace, str], PutOp] = {}
        for i, op in enumerate(ops):
            if isinstance(op, PutOp):
                puts[(op.namespace, op.key)] = op
            elif isinstance(op, GetOp):
                if op.refresh_ttl:
                    refreshed.append(op)
                if i not in repeated:
                    gets[i] = op
            elif i not in repeated:
                reads.append(self._read_into(results, i, op))
        if gets:
            reads.append(self._get_into(results, gets, refreshed))
        # Together: their reads are independent, and stores batch concurrent calls.
        await _all(*reads)
        for first, positions in repeats.items():
            result = results[first]
            assert not isinstance(result, Snapshot)  # a first occurrence holds its own
            snapshot = Snapshot(result)
            for i in positions:
                results[i] = snapshot
        # Reads see the store as it was before the batch's writes, as InMemoryStore's do.
        if puts:
            await self._apply_puts(puts)
        return results

    async def _read_into(
        self, results: list[Result | Snapshot], i: int, op: SearchOp | ListNamespacesOp
    ) -> None:
        if isinstance(op, SearchOp):
            results[i] = await self._search(op)
        else:
            results[i] = await self._list_namespaces(op)

    async def _get_into(
        self, results: list[Result | Snapshot], gets: dict[int, GetOp], refreshed: list[GetOp]
    ) -> None:
        """The items ``gets`` reads in one call; then the expiries pushed back for the
        ``refreshed`` gets (repeats included: each may ask it or not)."""
        ttls: dict[str, float] = {}
        keys = {i: self._key(op.namespace, op.key) for i, op in gets.items()}
        items = await self._items(list(dict.fromkeys(keys.values())), ttls)
        for i, key in keys.items():
            results[i] = items.get(key)
        await self._refresh(ttls, (self._key(op.namespace, op.key) for op in refreshed))

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return run_sync(self.store, self.abatch, list(ops))


async def _all(*reads: Awaitable[None]) -> None:
    """Await every read, then raise the first error, if any (none is left running)."""
    for outcome in await asyncio.gather(*reads, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


@functools.lru_cache(maxsize=4096)
def _item_path(namespace: Namespace, key: str) -> str:
    """An item's key below the prefix, remembered: percent-encoding its labels is a good
    part of a get's own time, and the same items are read again and again."""
    return join(*namespace) + encode_segment(key)


def _page(found: list[Item], op: SearchOp) -> list[SearchItem]:
    """The page ``op`` asks for of ``found``, the most recently updated first."""
    found.sort(key=lambda item: (item.updated_at, item.namespace, item.key), reverse=True)
    return [
        SearchItem(
            namespace=item.namespace,
            key=item.key,
            value=item.value,
            created_at=item.created_at,
            updated_at=item.updated_at,
        )
        for item in found[op.offset : op.offset + op.limit]
    ]


def _note_ttl(ttls: dict[str, float] | None, key: str, record: dict[str, Any]) -> None:
    """Put in ``ttls`` the ttl (seconds) of a record written with one."""
    minutes = record.get("ttl_minutes")
    if ttls is not None and isinstance(minutes, int | float) and minutes > 0:
        ttls[key] = float(minutes) * 60


def _item(record: dict[str, Any], created_at: datetime, updated_at: datetime) -> Item:
    return Item(
        namespace=tuple(record["namespace"]),
        key=record["key"],
        value=record["value"],
        created_at=created_at,
        updated_at=updated_at,
    )
