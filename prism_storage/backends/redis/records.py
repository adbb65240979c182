"""Writing and reading the ``redis`` backend's records with their metadata.

:class:`ScriptedRecords` is the half of :class:`~.backend.RedisStorageBackend` that runs
the Lua scripts of :mod:`.scripts`: ``set``, ``set_many``, ``put``, ``remove`` at a
version, ``get_record``, ``append`` and ``pop``, each one atomic step on the server. A
value never goes through Lua when that can be helped (the server copies every script
argument and reply into Lua strings, about 1.4 ms per MB): large writes and batches go as
a header script plus a plain ``APPEND``, record reads of large values as ``MULTI``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ...exceptions import BackendUnavailableError, InvalidValueError
from ..versions import ABSENT, Condition, Record, WriteResult, check_condition, new_version
from ..versions import timestamp as utc
from .client import client_errors
from .scripts import APPEND, DELETE, POP, PUT, READ, REMOVE, STAMP, STAMP_MANY, TOUCH, Script
from .stored import split

__all__ = ["PIPELINE_VALUE_BYTES", "ScriptedRecords"]

T = TypeVar("T")

#: A write of a value larger than this (JSON characters) is not pipelined, nor reads while
#: the records recent reads returned are larger on average.
PIPELINE_VALUE_BYTES = 64 * 1024

#: ``set_many`` on one server writes its small records by STAMP_MANY scripts of at most
#: this many JSON characters each (a script holds its arguments in Lua strings meanwhile).
STAMP_MANY_BYTES = 512 * 1024


def _large_argument(data: str) -> memoryview:
    """A large value as a command argument redis-py sends without copying it.

    With hiredis installed, redis-py packs a command into one new bytes object, the whole
    value copied into it; a memoryview among the arguments makes it pack in Python, which
    keeps a large argument as it is: about a tenth less client CPU per 1 MB ``set``
    (docs/redis.md, "Large values").
    """
    return memoryview(data.encode())


class ScriptedRecords:
    """Record writes and metadata reads through the Lua scripts (see the module)."""

    if TYPE_CHECKING:  # provided by RedisStorageBackend
        cluster: bool
        default_ttl: float | None
        touch_on_read: bool
        _read_command: tuple[Any, ...]
        _key_prefix: str
        _index_key: str
        _indexed: bool
        _read_size: float
        _expiry_times: bool

        async def _command(self, action: str, *command: Any, alone: bool = False) -> Any: ...

        async def _run(self, action: str, operation: Callable[[Any], Awaitable[T]]) -> T: ...

        def _load(self, key: str, data: bytes | memoryview) -> dict[str, Any]: ...

        def _unavailable(self, exc: BaseException, action: str) -> BackendUnavailableError: ...

    # ------------------------------------------------------------------ scripts

    def _script_keys(self, name: str, script: Script) -> tuple[Any, ...]:
        """``numkeys`` and the keys of an ``EVALSHA`` of ``script`` on the Redis key
        ``name``: a writing script also gets the store's key index, where the store keeps
        one (a single server, or a cluster store whose prefix has a hash tag)."""
        if script.indexed and self._indexed:
            return (2, name, self._index_key)
        return (1, name)

    async def _eval(
        self, action: str, script: Script, key: str, *args: Any, alone: bool = False
    ) -> Any:
        """Run ``script`` on the record ``key`` (pipelined like any single-key command)."""
        command = ("EVALSHA", script.sha, *self._script_keys(self._key_prefix + key, script), *args)
        try:
            return await self._command(action, *command, alone=alone)
        except client_errors().no_script:
            pass  # the server restarted or flushed its scripts: load it, once
        await self._run(
            action, lambda client: client.execute_command("SCRIPT", "LOAD", script.body)
        )
        try:
            return await self._command(action, *command, alone=alone)
        except client_errors().no_script as exc:  # flushed again at once: give up typed
            error = self._unavailable(exc, action)
        raise error from error.__cause__

    async def _eval_many(
        self,
        action: str,
        script: Script,
        calls: Sequence[tuple[str, tuple[Any, ...]]],
    ) -> list[Any]:
        """Run ``script`` once per ``(record key, arguments)`` in one pipeline; the
        replies."""
        prefix = self._key_prefix
        no_script = client_errors().no_script

        def pipeline(client: Any, indexes: list[int]) -> Any:
            pipe = client.pipeline(transaction=False)
            if not self.cluster:
                # First on the connection: every EVALSHA after it finds the script.
                pipe.execute_command("SCRIPT", "LOAD", script.body)
            for index in indexes:
                key, args = calls[index]
                pipe.execute_command(
                    "EVALSHA", script.sha, *self._script_keys(prefix + key, script), *args
                )
            return pipe

        async def run(client: Any) -> list[Any]:
            indexes = list(range(len(calls)))
            skip = 0 if self.cluster else 1  # the SCRIPT LOAD's reply
            replies = (await pipeline(client, indexes).execute(raise_on_error=False))[skip:]
            # A cluster node that restarted does not know the script: load it on every
            # primary and run again what it refused.
            missing = [
                i for i, reply in zip(indexes, replies, strict=True) if isinstance(reply, no_script)
            ]
            if missing:
                await client.execute_command("SCRIPT", "LOAD", script.body)
                again = (await pipeline(client, missing).execute(raise_on_error=False))[skip:]
                for index, reply in zip(missing, again, strict=True):
                    replies[index] = reply
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return list(replies)

        return await self._run(action, run)

    # ------------------------------------------------------------------ writes

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._write(key, data, ttl, None, new_version())

    async def _write(
        self, key: str, data: str, ttl: float | None, condition: Condition, version: str
    ) -> tuple[int, Any]:
        """Store ``data`` at ``version`` if ``condition`` holds: ``(1, created)``, or
        ``(0, current version)``."""
        if condition is None and len(data) > PIPELINE_VALUE_BYTES and not self.cluster:
            # A large value goes as a plain APPEND after a script that writes the header
            # (see STAMP), in one MULTI/EXEC: never through Lua.
            name = self._key_prefix + key

            async def write(client: Any) -> Any:
                pipe = client.pipeline(transaction=True)
                pipe.execute_command("SCRIPT", "LOAD", STAMP.body)
                stamp = self._script_keys(name, STAMP)
                pipe.execute_command("EVALSHA", STAMP.sha, *stamp, version, _now(), _px(ttl))
                pipe.execute_command("APPEND", name, _large_argument(data))
                return (await pipe.execute())[1]

            return 1, await self._run("write", write)
        large = len(data) > PIPELINE_VALUE_BYTES
        done, detail = await self._eval(
            "write",
            PUT,
            key,
            _large_argument(data) if large else data,
            version,
            _now(),
            *_put_arguments(ttl, condition),
            alone=large,
        )
        return done, detail

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        if self.cluster:
            # A pipeline that sends each node its share (no cross-slot command).
            arguments = _put_arguments(ttl, None)
            now = _now()
            calls = [(k, (data, new_version(), now, *arguments)) for k, _v, data in items]
            await self._eval_many("write", PUT, calls)
            return
        prefix, px, now = self._key_prefix, _px(ttl), _now()
        assert self._indexed  # on one server the store always keeps its key index

        async def write(client: Any) -> None:
            # One MULTI/EXEC, so the batch is applied all at once: small records by
            # STAMP_MANY scripts, each large one as STAMP + APPEND (see _write), so that
            # no large value goes through Lua.
            pipe = client.pipeline(transaction=True)
            pipe.execute_command("SCRIPT", "LOAD", STAMP_MANY.body)
            large = [item for item in items if len(item[2]) > PIPELINE_VALUE_BYTES]
            if large:
                pipe.execute_command("SCRIPT", "LOAD", STAMP.body)
            for chunk in _small_record_chunks(items):
                keys = [prefix + key for key, _value, _data in chunk]
                arguments: list[Any] = [now, px]
                for _key, _value, data in chunk:
                    arguments += (new_version(), data)
                first = self._script_keys(keys[0], STAMP_MANY)
                pipe.execute_command(
                    "EVALSHA",
                    STAMP_MANY.sha,
                    first[0] + len(keys) - 1,
                    *first[1:],
                    *keys[1:],
                    *arguments,
                )
            for key, _value, data in large:
                stamp = self._script_keys(prefix + key, STAMP)
                pipe.execute_command("EVALSHA", STAMP.sha, *stamp, new_version(), now, px)
                pipe.execute_command("APPEND", prefix + key, _large_argument(data))
            await pipe.execute()

        await self._run("write", write)

    async def _delete_key(self, key: str) -> bool:
        """Delete ``key`` (and its index entry); whether it existed."""
        if not self._indexed:
            return bool(await self._command("delete", "DEL", self._key_prefix + key))
        return bool(await self._eval("delete", DELETE, key))

    # ---------------------------------------------------------- versioned records

    def _record(self, key: str, raw: bytes, expires_ms: int) -> Record:
        stored = split(raw)
        return Record(
            key,
            self._load(key, stored.data),
            stored.version,
            utc(stored.created_ms / 1000),
            utc(stored.updated_ms / 1000),
            None if expires_ms < 0 else utc(expires_ms / 1000),
        )

    def _sliding(self) -> tuple[Any, ...]:
        """The READ script's arguments: the default expiry when reads slide it."""
        return (_px(self.default_ttl),) if self.touch_on_read else ()

    async def _touch(self, key: str, ttl: float | None) -> bool:
        # One script: "exists?" and the new expiry in one step (PERSIST alone answers 0
        # both for a missing key and for a key without expiry).
        return bool(await self._eval("write", TOUCH, key, _px(ttl)))

    async def _get_record(self, key: str) -> Record | None:
        if not self.cluster and self._read_size > PIPELINE_VALUE_BYTES:
            # Recent records are large: read without the copies a script's reply costs.
            return (await self._read_records([key])).get(key)
        reply = await self._eval("read", READ, key, *self._sliding())
        return None if reply is None else self._record(key, *reply)

    async def _get_many_records(self, keys: list[str]) -> dict[str, Record]:
        if not self.cluster:
            return await self._read_records(keys)
        sliding = self._sliding()
        replies = await self._eval_many("read", READ, [(key, sliding) for key in keys])
        return {
            key: self._record(key, *reply)
            for key, reply in zip(keys, replies, strict=True)
            if reply is not None
        }

    async def _read_records(self, keys: list[str]) -> dict[str, Record]:
        """Records of a standalone server in one MULTI/EXEC: values and their expiries
        (``PEXPIRETIME``; before Redis 7.0, ``PTTL`` and the server's ``TIME``)."""
        if self._expiry_times:
            found = await self._run("read", lambda client: self._read(client, keys, True))
            if found is not None:
                return found
            self._expiry_times = False  # the server has no PEXPIRETIME, or refuses it
        found = await self._run("read", lambda client: self._read(client, keys, False))
        assert found is not None
        return found

    async def _read(
        self, client: Any, keys: list[str], expiry_times: bool
    ) -> dict[str, Record] | None:
        """``_read_records`` with ``PEXPIRETIME`` or with ``PTTL`` and ``TIME``; ``None``
        if the server refused ``PEXPIRETIME``."""
        command, *sliding = self._read_command  # GETEX when reads slide the expiry
        expiry = "PEXPIRETIME" if expiry_times else "PTTL"
        pipe = client.pipeline(transaction=True)
        if not expiry_times:
            pipe.execute_command("TIME")
        for key in keys:
            name = self._key_prefix + key
            pipe.execute_command(command, name, *sliding)
            pipe.execute_command(expiry, name)
        try:
            replies = list(await pipe.execute(raise_on_error=False))
        except client_errors().response as error:
            # A queued command the server does not know (or denies) aborts the whole.
            if expiry_times and "pexpiretime" in str(error).lower():
                return None
            raise
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply  # the reply itself (WRONGTYPE...), not the pipeline's wrapper
        now_ms = 0
        if not expiry_times:
            seconds, microseconds = replies.pop(0)
            now_ms = int(seconds) * 1000 + int(microseconds) // 1000
        found = {}
        for index, key in enumerate(keys):
            raw, expiry_reply = replies[2 * index], replies[2 * index + 1]
            if raw is not None:
                relative = not expiry_times and expiry_reply >= 0  # a PTTL, not a moment
                expires_ms = now_ms + expiry_reply if relative else expiry_reply
                found[key] = self._record(key, raw, expires_ms)
        return found

    async def _put_record(
        self, key: str, value: dict[str, Any], data: str, ttl: float | None, condition: Condition
    ) -> WriteResult:
        version = new_version()
        done, detail = await self._write(key, data, ttl, condition, version)
        if not done:
            check_condition(condition, _text(detail))  # raises VersionConflictError
        return WriteResult(version, bool(detail))

    async def _remove_record(self, key: str, if_version: str | None) -> bool:
        if if_version is None:
            return await self._delete_key(key)
        done, current = await self._eval("delete", REMOVE, key, if_version)
        if not done:
            check_condition(if_version, _text(current))  # raises VersionConflictError
        return True

    async def _append_items(
        self,
        key: str,
        field: str,
        items: list[Any],
        items_data: str,
        max_items: int | None,
        ttl: float | None,
    ) -> int:
        reply = await self._eval(
            "append",
            APPEND,
            key,
            json.dumps(field, ensure_ascii=False),
            field,
            items_data,
            "" if max_items is None else max_items,
            _px(ttl),
            _px(self.default_ttl),
            new_version(),
            _now(),
        )
        if isinstance(reply, list):
            raise _not_a_list(field, reply[1])
        return int(reply)

    async def _pop_item(self, key: str, field: str) -> Any:
        reply = await self._eval("pop", POP, key, field, new_version(), _now())
        if reply is None:
            return None
        if isinstance(reply, list):
            raise _not_a_list(field, reply[1])
        return self._load(key, b'{"item":' + reply + b"}")["item"]


def _milliseconds(ttl: float) -> int:
    return max(1, round(ttl * 1000))


def _small_record_chunks(
    items: list[tuple[str, dict[str, Any], str]],
) -> list[list[tuple[str, dict[str, Any], str]]]:
    """The records of ``items`` of at most :data:`PIPELINE_VALUE_BYTES` characters, in
    order, in chunks of at most :data:`STAMP_MANY_BYTES` characters."""
    chunks: list[list[tuple[str, dict[str, Any], str]]] = []
    size = STAMP_MANY_BYTES
    for item in items:
        if len(item[2]) > PIPELINE_VALUE_BYTES:
            continue
        if size + len(item[2]) > STAMP_MANY_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += len(item[2])
    return chunks


def _now() -> str:
    """The time of a write, as the scripts store it (15-digit Unix ms)."""
    return f"{time.time_ns() // 1_000_000:015d}"


def _px(ttl: float | None) -> int | str:
    return "" if ttl is None else _milliseconds(ttl)


def _put_arguments(ttl: float | None, condition: Condition) -> tuple[Any, ...]:
    """The PUT script's last arguments: expiry and condition."""
    if condition is None:
        return (_px(ttl), "", "")
    if condition is ABSENT:
        return (_px(ttl), "absent", "")
    return (_px(ttl), "version", condition)


def _text(reply: bytes | None) -> str | None:
    return None if reply is None else reply.decode("ascii")


#: What a JSON value starting with this character is (for the error message).
_KINDS = {ord('"'): "str", ord("{"): "dict", ord("t"): "bool", ord("f"): "bool"}


def _not_a_list(field: str, first: bytes) -> InvalidValueError:
    kind = _KINDS.get(first[0], "number") if first else "value"
    return InvalidValueError(f"The record's {field!r} field is a {kind}, not a list.", f"$.{field}")
