"""The base class's error translation: ``_guard`` runs a client call, and the
``_translate_error`` hook maps the client's exceptions to the typed errors, with the
client's exception chained as the cause and secrets redacted everywhere."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from prism_storage.backends.base import BaseStorageBackend
from prism_storage.exceptions import (
    BackendPermissionError,
    BackendUnavailableError,
    CorruptRecordError,
    PrismStorageError,
)

PASSWORD = "Client-Pw-9ecret-55"


class ClientError(Exception):
    """The base exception of a made-up client library."""


class ClientRefused(ClientError):
    """The server refused the credentials."""


class ClientDown(ClientError):
    """The server cannot be reached."""


class ClientBug(ClientError):
    """An error that is not the store's to translate."""


class ClientStore(BaseStorageBackend):
    """A store whose every call fails with ``failure`` (or returns ``{"ok": True}``)."""

    backend_name = "client-test"

    def __init__(
        self,
        failure: BaseException | None = None,
        *,
        delay: float = 0.0,
        timeout: float = 2.0,
        errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        super().__init__(alias="client")
        self.failure = failure
        self.delay = delay
        self.timeout = timeout
        self.errors = errors
        self.translated: list[BaseException] = []

    def _secrets(self) -> list[str]:
        return [PASSWORD]

    async def _call(self) -> dict[str, Any]:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        return {"ok": True}

    def _translate_error(self, exc: Exception, action: str) -> Exception | None:
        self.translated.append(exc)
        if isinstance(exc, ClientRefused):
            detail = self._redact(str(exc))
            return self._caused_by(BackendPermissionError(f"refused ({action}): {detail}"), exc)
        if isinstance(exc, ClientDown):
            return self._unavailable(exc, action)
        return super()._translate_error(exc, action)

    async def _get(self, key: str) -> dict[str, Any] | None:
        return await self._guard("read", self._call(), self.errors)

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._guard("write", self._call(), self.errors)

    async def _delete(self, key: str) -> None:
        await self._guard("delete", self._call(), self.errors)


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything reachable through its cause and context links."""
    found, todo = [], [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        todo += [current.__cause__, current.__context__]
    return found


def texts(exc: BaseException) -> str:
    return " ".join(f"{e!r} {e}" for e in chain(exc))


async def test_a_mapped_client_error_becomes_the_typed_error_with_its_cause():
    failure = ClientRefused("wrong user name")
    store = ClientStore(failure)
    with pytest.raises(BackendPermissionError) as caught:
        await store.get("k")
    error = caught.value
    assert str(error) == "refused (read): wrong user name"
    assert error.__cause__ is failure
    assert error.__suppress_context__
    assert error.__context__ is None  # raised outside the except block
    assert store.translated == [failure]


async def test_a_client_connection_error_becomes_unavailable_naming_the_action():
    failure = ClientDown("connection refused")
    store = ClientStore(failure)
    with pytest.raises(BackendUnavailableError) as caught:
        await store.set("k", {"v": 1})
    assert str(caught.value) == (
        "The 'client-test' store could not write: ClientDown: connection refused"
    )
    assert caught.value.__cause__ is failure
    assert isinstance(caught.value, ConnectionError)


async def test_os_errors_are_unavailable_by_default():
    failure = ConnectionRefusedError(111, "Connection refused")
    store = ClientStore(failure)
    with pytest.raises(BackendUnavailableError) as caught:
        await store.delete("k")
    assert caught.value.__cause__ is failure
    assert "could not delete" in str(caught.value)


async def test_an_error_the_hook_does_not_map_passes_through_unchanged():
    failure = ClientBug("not ours")
    store = ClientStore(failure)
    with pytest.raises(ClientBug) as caught:
        await store.get("k")
    assert caught.value is failure
    assert store.translated == [failure]


async def test_listed_connection_errors_are_unavailable_without_the_hook():
    failure = ClientBug("listed as a connection error")
    store = ClientStore(failure, errors=(ClientBug,))
    with pytest.raises(BackendUnavailableError) as caught:
        await store.get("k")
    assert caught.value.__cause__ is failure
    assert store.translated == []


async def test_typed_errors_pass_through_without_the_hook():
    failure = CorruptRecordError("already typed")
    store = ClientStore(failure)
    with pytest.raises(CorruptRecordError) as caught:
        await store.get("k")
    assert caught.value is failure
    assert store.translated == []


async def test_a_secret_in_a_client_error_reaches_no_message_nor_cause():
    store = ClientStore(ClientRefused(f"password {PASSWORD} rejected"))
    with pytest.raises(BackendPermissionError) as caught:
        await store.get("k")
    error = caught.value
    assert str(error) == "refused (read): password *** rejected"
    assert PASSWORD not in texts(error)
    # The client's exception is replaced by a stand-in that keeps its redacted text.
    cause = error.__cause__
    assert cause is not None and not isinstance(cause, ClientRefused)
    assert str(cause) == "ClientRefused: password *** rejected"


async def test_a_secret_in_an_unavailable_error_reaches_no_message_nor_cause():
    store = ClientStore(ClientDown(f"cannot reach client://agent:{PASSWORD}@db.invalid/0"))
    with pytest.raises(BackendUnavailableError) as caught:
        await store.get("k")
    assert "client://agent:***@db.invalid/0" in str(caught.value)
    assert PASSWORD not in texts(caught.value)
    assert isinstance(caught.value, PrismStorageError)


def test_the_redaction_helper_removes_secrets_and_url_passwords():
    store = ClientStore()
    text = f"key {PASSWORD}; url redis://user:other-pw@host:6379/0"
    assert store._redact(text) == "key ***; url redis://user:***@host:6379/0"


async def test_a_call_that_hangs_is_unavailable_within_the_timeout():
    store = ClientStore(delay=30, timeout=0.05)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as caught:
        await store.get("k")
    assert time.monotonic() - started < 5
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert "could not read" in str(caught.value)


async def test_the_decision_outside_the_guard_is_the_guards():
    # What a backend that bounds its calls itself (redis's pipeline) uses.
    store = ClientStore(errors=(ClientBug,))
    assert store._error_for(CorruptRecordError("typed"), "read") is None
    assert store._error_for(ClientBug("unmapped"), "read") is None
    assert isinstance(
        store._error_for(ClientBug("listed"), "read", (ClientBug,)), BackendUnavailableError
    )
    assert isinstance(store._error_for(ClientRefused("no"), "read"), BackendPermissionError)


# ------------------------------------------------------------- redis uses the hook


@pytest.fixture
def redis_store():
    pytest.importorskip("redis", reason="the redis client is not installed")
    from prism_storage.backends.redis import RedisStorageBackend

    return RedisStorageBackend(f"redis://agent:{PASSWORD}@127.0.0.1:6379/0")


def test_redis_maps_refused_credentials_to_a_permission_error(redis_store):
    from redis import exceptions

    failure = exceptions.AuthenticationError(f"invalid password {PASSWORD}")
    error = redis_store._translate_error(failure, "read")
    assert isinstance(error, BackendPermissionError)
    assert "(read)" in str(error)
    assert PASSWORD not in texts(error)


def test_redis_maps_wrongtype_to_a_corrupt_record(redis_store):
    from redis import exceptions

    failure = exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind")
    error = redis_store._translate_error(failure, "read")
    assert isinstance(error, CorruptRecordError)
    assert error.__cause__ is failure


def test_redis_maps_client_connection_errors_to_unavailable(redis_store):
    from redis import exceptions

    for failure in (
        exceptions.ConnectionError("refused"),
        exceptions.TimeoutError("slow"),
        TimeoutError(),
        OSError("unreachable"),
    ):
        error = redis_store._translate_error(failure, "write")
        assert isinstance(error, BackendUnavailableError), failure
        assert error.__cause__ is failure


def test_redis_lets_other_errors_through(redis_store):
    assert redis_store._translate_error(ValueError("not the client's"), "read") is None
