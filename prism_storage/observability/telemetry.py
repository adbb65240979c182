"""OpenTelemetry: the tracer and instruments of store operations, found once an SDK is
configured, and whether spans may carry keys (``PRISM_STORAGE_TRACE_KEYS``)."""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["Telemetry", "forget_settings", "otel", "refresh_telemetry", "trace_keys_enabled"]

#: Unobserved operations between two looks for an OpenTelemetry provider while none is
#: configured.
_LOOK_EVERY = 1000


class Telemetry:
    """The tracer and instruments, once a real (SDK) provider is configured.

    OpenTelemetry lets a provider be set once per process, so once found they are kept
    (``on``). While none is set, the providers are looked up again every
    :data:`_LOOK_EVERY` unobserved operations (a look costs about a microsecond, too much
    for every call; counting costs a few nanoseconds); :func:`refresh_telemetry` makes
    the next operation look.
    """

    __slots__ = (
        "countdown",
        "counter",
        "duration",
        "error_code",
        "errors",
        "installed",
        "on",
        "span_kind",
        "status",
        "tracer",
        "use_span",
    )

    def __init__(self) -> None:
        self.on = False
        self.countdown = 0
        self.installed: bool | None = None  # opentelemetry-api importable; None: not looked
        self.tracer: Any = None
        self.counter: Any = None
        self.errors: Any = None
        self.duration: Any = None
        self.use_span: Any = None
        self.span_kind: Any = None
        self.status: Any = None
        self.error_code: Any = None

    def due(self) -> bool:
        """Count one unobserved operation; look for providers when it is time."""
        self.countdown -= 1
        if self.countdown > 0:
            return False
        self.countdown = _LOOK_EVERY
        return self.look()

    def look(self) -> bool:
        if self.on:
            return True
        if self.installed is None:
            try:
                self.installed = importlib.util.find_spec("opentelemetry.trace") is not None
            except (ImportError, ValueError):
                self.installed = False
        if not self.installed:
            return False
        from opentelemetry import metrics, trace

        from .. import __version__

        if self.tracer is None and _is_configured(trace.get_tracer_provider()):
            self.use_span = trace.use_span
            self.span_kind = trace.SpanKind.CLIENT
            self.status = trace.Status
            self.error_code = trace.StatusCode.ERROR
            self.tracer = trace.get_tracer("prism_storage", __version__)
        if self.counter is None and _is_configured(metrics.get_meter_provider()):
            meter = metrics.get_meter("prism_storage", __version__)
            self.counter = meter.create_counter(
                "prism_storage.operations", unit="{operation}", description="Store operations."
            )
            self.errors = meter.create_counter(
                "prism_storage.errors", unit="{operation}", description="Failed operations."
            )
            self.duration = meter.create_histogram(
                "prism_storage.operation.duration", unit="s", description="Operation latency."
            )
        self.on = self.tracer is not None or self.counter is not None
        return self.on


def _is_configured(provider: object) -> bool:
    """Whether ``provider`` is a real one rather than the API's placeholder (proxy or
    no-op), whose spans and instruments do nothing."""
    name = type(provider).__name__.lstrip("_")
    return not (name.startswith("Proxy") or name.startswith("NoOp"))


#: The process's one Telemetry (the compiled forwarders read ``on`` and call ``due``).
otel = Telemetry()


def refresh_telemetry() -> None:
    """Look for OpenTelemetry providers at the next operation (call it after configuring
    the SDK if store operations ran before)."""
    otel.countdown = 0


#: ``PRISM_STORAGE_TRACE_KEYS`` once read (reading a setting costs a microsecond).
_trace_keys_setting: list[bool] = []


def trace_keys_enabled() -> bool:
    """Whether spans carry the keys (``PRISM_STORAGE_TRACE_KEYS``)."""
    if _trace_keys_setting:
        return _trace_keys_setting[0]
    from django.conf import settings

    from ..conf import trace_keys

    chosen = trace_keys() is True
    if settings.configured:
        _trace_keys_setting.append(chosen)
    return chosen


def forget_settings() -> None:
    """Read the settings again (``setting_changed`` calls it)."""
    _trace_keys_setting.clear()
