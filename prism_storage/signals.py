"""The signals stores send, and the receiver that resets the handler on ``override_settings``.

Every store sends, once an operation has succeeded (never when it failed), with the
backend class as ``sender``:

* ``record_saved(store, alias, key, created, version)`` for each record written by
  ``set``, ``set_many`` (one per key), ``put``, ``append``, ``pop`` (when it took an item)
  and ``update`` (through its ``put``). ``created`` is ``True``/``False`` where the store
  says (``put``), ``None`` where it cannot tell; ``version`` is the new version or ``None``;
* ``record_deleted(store, alias, key)`` for each key of ``delete`` and ``delete_many``
  (whether or not it held a record: the stores do not say), and for ``remove`` when it
  removed a record;
* ``records_expired(store, alias, count)`` when ``sweep`` removed ``count`` > 0 records;
* ``prefix_deleted(store, alias, prefix, count)`` when ``delete_prefix`` erased the
  ``count`` records under ``prefix`` (sent even for 0: an erasure request was carried out,
  which is what an audit log records).

``alias`` is the PRISM_STORAGE alias (``None`` for a store built by hand). A receiver runs
inside the operation's task, before the caller gets the result: keep it quick, and let it
not raise (an exception propagates to the caller, although the write is done).
"""

from __future__ import annotations

from typing import Any

from django.core.signals import setting_changed
from django.dispatch import Signal, receiver

__all__ = ["prefix_deleted", "record_deleted", "record_saved", "records_expired"]

record_saved = Signal()
record_deleted = Signal()
records_expired = Signal()
prefix_deleted = Signal()


@receiver(setting_changed)
def reset_storages(*, setting: str, **kwargs: Any) -> None:
    if setting == "PRISM_STORAGE":
        from .handler import storages  # imported here: the backends import this module

        storages.reset()
    elif setting == "PRISM_STORAGE_TRACE_KEYS":
        from .observability import forget_settings

        forget_settings()
