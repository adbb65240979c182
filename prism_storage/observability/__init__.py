"""What every store operation tells the outside: signals, logs, traces and metrics.

The public methods of :class:`~prism_storage.backends.base.BaseStorageBackend` carry the
:func:`observed` decorator. When nobody listens (no receiver on the operation's signal,
DEBUG logging off for ``prism_storage.operations`` and no OpenTelemetry SDK configured)
the decorator hands back the method's own coroutine: the only cost is one call and three
cheap checks. Otherwise the operation is timed, logged, traced and counted, and its
signal is sent once it succeeded.

Nothing here reads a value or a query; keys reach spans only when
``PRISM_STORAGE_TRACE_KEYS`` is true, and never reach logs.

The package's rooms: :mod:`.operation` (the decorator and an observed run),
:mod:`.forwarders` (the compiled wrappers of the quiet path), :mod:`.telemetry`
(OpenTelemetry), :mod:`.log` (the operations logger) and :mod:`.senders` (signals).
"""

from __future__ import annotations

from .log import logger
from .operation import Shape, observe_overrides, observed
from .senders import (
    Sender,
    appended,
    deleted,
    erased,
    expired,
    popped,
    put_saved,
    removed,
    saved,
)
from .telemetry import forget_settings, refresh_telemetry

__all__ = [
    "Sender",
    "Shape",
    "appended",
    "deleted",
    "erased",
    "expired",
    "forget_settings",
    "logger",
    "observe_overrides",
    "observed",
    "popped",
    "put_saved",
    "refresh_telemetry",
    "removed",
    "saved",
]
