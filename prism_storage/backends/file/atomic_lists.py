"""``append`` and ``pop`` on the file store: read-modify-writes of a list field.

:class:`AtomicLists` is mixed into :class:`~.backend.FileStorageBackend`. Each call reads
the record, changes its list and writes it back under the key's lock, so no concurrent
write of the key comes between; concurrent appends to one key wait in an
:class:`~.appends.AppendQueue` and are written together, one read and one write per batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...exceptions import InvalidValueError
from ..clients import LoopBoundClients
from ..versions import append_to, pop_from
from .appends import Append, AppendQueue, Outcome
from .key_files import KeyFiles
from .records import Head, Stored
from .threads import BatchedThreadRunner

__all__ = ["AtomicLists"]


class AtomicLists(KeyFiles):
    """The list operations of the file store (its ``_runners`` are set by ``__init__``)."""

    _runners: LoopBoundClients[BatchedThreadRunner]

    def _new_append_queue(self) -> AppendQueue:
        runner = self._runners.get()
        return AppendQueue(
            asyncio.get_running_loop(),
            lambda key, batch: runner.run(self._append_batch, key, batch),
        )

    def _append_batch(self, key: str, batch: list[Append]) -> list[Outcome]:
        """Apply the appends of ``batch`` to ``key`` in order, each as if alone, in one
        read-modify-write under the key's lock; one outcome per call."""
        try:
            self._directory()
            with self._locks.holding((key,)):
                now = self.clock()
                current = self._stored(key, now)
                value = None if current is None else current.value
                expires_at = None if current is None else current.expires_at
                exists = current is not None  # once a call succeeds, it does
                appended = False
                outcomes: list[Outcome] = []
                for call in batch:
                    try:
                        value, length = append_to(value, call.field, call.items, call.max_items)
                    except InvalidValueError as exc:  # this call fails; value is unchanged
                        outcomes.append(exc)
                        continue
                    if call.ttl is not None:
                        expires_at = self._expiry(call.ttl, now)
                    elif not exists:  # the call that creates the record: the default
                        expires_at = self._expiry(self.default_ttl, now)
                    exists = appended = True
                    outcomes.append(length)
                if appended:  # a batch in which every call failed writes nothing
                    assert value is not None
                    self._replace(key, value, expires_at, current, now)
        except OSError as exc:
            return [self._unavailable(exc, "write")] * len(batch)
        return outcomes

    def _pop(self, key: str, field: str) -> Any:
        """Take the last item of ``field`` in one read-modify-write under the key's lock."""
        self._directory()
        with self._locks.holding((key,)):
            now = self.clock()
            current = self._stored(key, now)
            if current is None:
                return None
            popped, item = pop_from(current.value, field)
            if popped:
                self._replace(key, current.value, current.expires_at, current, now)
        return item

    def _replace(
        self,
        key: str,
        value: dict[str, Any],
        expires_at: float | None,
        current: Stored | None,
        now: float,
    ) -> None:
        """Write ``value`` over ``current`` (read under the key's lock, still held)."""
        head = None if current is None else Head(current.version, current.created_at)
        data = self._encode(value)
        with self._index.adding((key,)):
            self._write_file(key, data, expires_at, head, now)
