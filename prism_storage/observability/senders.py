"""The signal senders of observed operations: each sends an operation's signal (see
:mod:`prism_storage.signals`) from its keys, arguments and result, once it succeeded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..signals import prefix_deleted, record_deleted, record_saved, records_expired

__all__ = [
    "Sender",
    "appended",
    "deleted",
    "erased",
    "expired",
    "popped",
    "put_saved",
    "removed",
    "saved",
]

#: Sends an operation's signal: ``(store, keys, arguments, result)``.
Sender = Callable[[Any, list[str], tuple[Any, ...], dict[str, Any], Any], None]


def saved(
    store: Any, keys: list[str], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> None:
    """``record_saved`` for each key written by set/set_many/append (created unknown)."""
    for key in keys:
        record_saved.send(
            type(store), store=store, alias=store.alias, key=key, created=None, version=None
        )


def put_saved(
    store: Any, keys: list[str], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> None:
    """``record_saved`` for ``put``, whose WriteResult says what it did."""
    record_saved.send(
        type(store),
        store=store,
        alias=store.alias,
        key=keys[0],
        created=result.created,
        version=result.version,
    )


def appended(
    store: Any, keys: list[str], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> None:
    """``record_saved`` for ``append``, unless it had nothing to add (nothing written)."""
    items = args[1] if len(args) > 1 else kwargs.get("items")
    if items or kwargs.get("max_items") is not None:
        saved(store, keys, args, kwargs, result)


def popped(
    store: Any, keys: list[str], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> None:
    """``record_saved`` for ``pop`` when it took an item (``None``: nothing was taken)."""
    if result is not None:
        saved(store, keys, args, kwargs, result)


def deleted(
    store: Any, keys: list[str], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> None:
    """``record_deleted`` for each key of delete/delete_many."""
    for key in keys:
        record_deleted.send(type(store), store=store, alias=store.alias, key=key)


def removed(
    store: Any, keys: list[str], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> None:
    """``record_deleted`` for ``remove`` when there was a record."""
    if result:
        deleted(store, keys, args, kwargs, result)


def expired(
    store: Any, keys: list[str], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> None:
    """``records_expired`` for a sweep that removed something."""
    if result:
        records_expired.send(type(store), store=store, alias=store.alias, count=result)


def erased(
    store: Any, keys: list[str], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> None:
    """``prefix_deleted`` for ``delete_prefix``, with the count it erased."""
    prefix = args[0] if args else kwargs["prefix"]
    prefix_deleted.send(type(store), store=store, alias=store.alias, prefix=prefix, count=result)
