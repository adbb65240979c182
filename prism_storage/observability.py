"""What every store operation tells the outside: signals, logs, traces and metrics.

The public methods of :class:`~prism_storage.backends.base.BaseStorageBackend` carry the
:func:`observed` decorator. When nobody listens (no receiver on the operation's signal,
DEBUG logging off for ``prism_storage.operations`` and no OpenTelemetry SDK configured)
the decorator hands back the method's own coroutine: the only cost is one call and three
cheap checks. Otherwise the operation is timed, logged, traced and counted, and its
signal is sent once it succeeded.

Nothing here reads a value or a query; keys reach spans only when
``PRISM_STORAGE_TRACE_KEYS`` is true, and never reach logs.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import logging
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from logging import DEBUG
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar

from asgiref.sync import markcoroutinefunction

from .signals import prefix_deleted, record_deleted, record_saved, records_expired

if TYPE_CHECKING:
    from django.dispatch import Signal

__all__ = ["Shape", "logger", "observed", "refresh_telemetry"]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

#: DEBUG: one line per operation; WARNING: outages and retries.
logger = logging.getLogger("prism_storage.operations")

#: Where an operation's keys are among its arguments: one ``key``, an iterable of
#: ``keys``, a ``mapping`` of key -> value, or ``none`` (a prefix, a vector, nothing).
Shape = Literal["key", "keys", "mapping", "none"]

#: Sends an operation's signal: ``(store, keys, arguments, result)``.
Sender = Callable[[Any, list[str], tuple[Any, ...], dict[str, Any], Any], None]

#: Unobserved operations between two looks for an OpenTelemetry provider while none is
#: configured.
_LOOK_EVERY = 1000


# ------------------------------------------------------------------ OpenTelemetry


class _Telemetry:
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

        from . import __version__

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


_telemetry = _Telemetry()


def refresh_telemetry() -> None:
    """Look for OpenTelemetry providers at the next operation (call it after configuring
    the SDK if store operations ran before)."""
    _telemetry.countdown = 0


#: ``PRISM_STORAGE_TRACE_KEYS`` once read (reading a setting costs a microsecond).
_trace_keys_setting: list[bool] = []


def _trace_keys() -> bool:
    if _trace_keys_setting:
        return _trace_keys_setting[0]
    from django.conf import settings

    from .conf import trace_keys

    chosen = trace_keys() is True
    if settings.configured:
        _trace_keys_setting.append(chosen)
    return chosen


def forget_settings() -> None:
    """Read the settings again (``setting_changed`` calls it)."""
    _trace_keys_setting.clear()


# ------------------------------------------------------------------ the decorator


def observed(
    operation: str,
    *,
    gen_ai: str | None = None,
    shape: Shape = "key",
    signal: Signal | None = None,
    send: Sender | None = None,
) -> Callable[
    [Callable[Concatenate[S, P], Coroutine[Any, Any, R]]],
    Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
]:
    """Observe a public store method.

    ``operation`` names it in logs and metrics (``prism.operation``); ``gen_ai`` is its
    OpenTelemetry GenAI operation name where one applies (else ``operation``); ``shape``
    says where its keys are; ``send`` sends ``signal`` after the method succeeded.
    A subclass overriding the method is observed the same way without repeating this.
    """
    spec = _Operation(operation, gen_ai or operation, shape, signal, send)

    def decorate(
        method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
    ) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
        return spec.wrap(method)

    return decorate


class _Operation:
    __slots__ = ("attributes", "gen_ai", "name", "send", "shape", "signal")

    def __init__(
        self, name: str, gen_ai: str, shape: Shape, signal: Signal | None, send: Sender | None
    ) -> None:
        self.name = name
        self.gen_ai = gen_ai
        self.shape = shape
        self.signal = signal
        self.send = send
        self.attributes: dict[tuple[str | None, str], dict[str, str]] = {}

    def wrap(self, method: Callable[..., Coroutine[Any, Any, R]]) -> Callable[..., Any]:
        wrapper = _forwarder(method, self)
        functools.update_wrapper(wrapper, method)
        wrapper.__prism_operation__ = self  # type: ignore[attr-defined]
        markcoroutinefunction(wrapper)
        return wrapper

    async def run(
        self,
        method: Callable[..., Coroutine[Any, Any, R]],
        store: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        args, kwargs = _materialize(self.shape, args, kwargs)
        keys = _keys_of(self.shape, args, kwargs)
        telemetry = _telemetry
        # The quiet-path test may have stopped before looking for providers.
        tracer = telemetry.tracer if telemetry.on or telemetry.look() else None
        span = None
        if tracer is not None:
            span = tracer.start_span(
                f"{self.gen_ai} {store.alias or store.backend_name}",
                kind=telemetry.span_kind,
                attributes=self._span_attributes(store, keys),
            )
        started = time.perf_counter()
        try:
            if span is None:
                result = await method(store, *args, **kwargs)
            else:
                with telemetry.use_span(
                    span, record_exception=False, set_status_on_exception=False
                ):
                    result = await method(store, *args, **kwargs)
        except BaseException as exc:
            self._finish(store, keys, started, span, exc)
            raise
        self._finish(store, keys, started, span, None)
        if self.send is not None and self.signal is not None and self.signal.receivers:
            self.send(store, keys or [], args, kwargs, result)
        return result

    def _span_attributes(self, store: Any, keys: list[str] | None) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": self.gen_ai,
            "prism.operation": self.name,
            "prism.backend": store.backend_name,
        }
        if store.alias is not None:
            attributes["gen_ai.memory.store.id"] = store.alias
        if keys is not None:
            attributes["prism.batch.size"] = len(keys)
            if keys and _trace_keys():
                if self.shape == "key":
                    attributes["gen_ai.memory.record.id"] = keys[0]
                else:
                    attributes["prism.keys"] = keys
        return attributes

    def _metric_attributes(self, store: Any) -> dict[str, str]:
        """The attributes of ``store``'s measurements of this operation, built once per
        alias and backend (the SDK keys its aggregations by them)."""
        found = self.attributes.get((store.alias, store.backend_name))
        if found is None:
            found = {"prism.operation": self.name, "prism.backend": store.backend_name}
            if store.alias is not None:
                found["gen_ai.memory.store.id"] = store.alias
            self.attributes[(store.alias, store.backend_name)] = found
        return found

    def _finish(
        self,
        store: Any,
        keys: list[str] | None,
        started: float,
        span: Any,
        error: BaseException | None,
    ) -> None:
        elapsed = time.perf_counter() - started
        error_type = None if error is None else _error_type(error)
        telemetry = _telemetry
        if span is not None:
            if error_type is None:
                span.set_attribute("prism.outcome", "ok")
            else:
                # The type only: a message could quote what the caller passed.
                span.set_attribute("prism.outcome", "error")
                span.set_attribute("error.type", error_type)
                span.set_status(telemetry.status(telemetry.error_code, error_type))
            span.end()
        if telemetry.counter is not None:
            attributes = self._metric_attributes(store)
            telemetry.counter.add(1, attributes)
            telemetry.duration.record(elapsed, attributes)
            if error_type is not None:
                telemetry.errors.add(1, {**attributes, "error.type": error_type})
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s on store %r (%s): %s key(s), %.3f ms, %s",
                self.name,
                store.alias,
                store.backend_name,
                "-" if keys is None else len(keys),
                elapsed * 1000,
                "ok" if error_type is None else f"failed ({error_type})",
            )


def _forwarder(method: Callable[..., Any], operation: _Operation) -> Callable[..., Any]:
    """The wrapper of ``method``: with nobody observing, it returns ``method``'s own
    coroutine (no extra frame); otherwise ``operation.run``'s.

    It is compiled with ``method``'s own parameters, because packing and unpacking
    ``*args, **kwargs`` would double what the check costs on every call (measured in
    bench/bench_observability.py).
    """
    names: list[str] = []
    keyword_only: list[str] = []
    text: list[str] = ["store"]
    namespace: dict[str, Any] = {
        "method": method,
        "run": operation.run,
        "signal": operation.signal,
        "telemetry": _telemetry,
        "is_enabled_for": logger.isEnabledFor,
        "DEBUG": DEBUG,
    }
    for parameter in list(inspect.signature(method).parameters.values())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            return _generic_forwarder(method, operation, namespace)
        default = ""
        if parameter.default is not parameter.empty:
            namespace[f"_default_{parameter.name}"] = parameter.default
            default = f"=_default_{parameter.name}"
        if parameter.kind is parameter.KEYWORD_ONLY:
            if not keyword_only:
                text.append("*")
            keyword_only.append(parameter.name)
        else:
            names.append(parameter.name)
        text.append(parameter.name + default)
    positional = "".join(f"{name}, " for name in names)
    keywords = ", ".join(f"{name!r}: {name}" for name in keyword_only)
    passed = ", ".join([*names, *(f"{name}={name}" for name in keyword_only)])
    listened = "" if operation.signal is None else " or signal.receivers"
    source = (
        f"def {method.__name__}({', '.join(text)}):\n"
        f"    if telemetry.on{listened} or is_enabled_for(DEBUG) or telemetry.due():\n"
        f"        return run(method, store, ({positional}), {{{keywords}}})\n"
        f"    return method(store{', ' if passed else ''}{passed})\n"
    )
    exec(compile(source, f"<observed {method.__qualname__}>", "exec"), namespace)  # noqa: S102
    return namespace[method.__name__]  # type: ignore[no-any-return]


def _generic_forwarder(
    method: Callable[..., Any], operation: _Operation, namespace: dict[str, Any]
) -> Callable[..., Any]:
    """The same as :func:`_forwarder` builds, for a method taking ``*args``/``**kwargs``."""
    signal = operation.signal
    telemetry = _telemetry
    is_enabled_for = logger.isEnabledFor

    def wrapper(store: Any, *args: Any, **kwargs: Any) -> Any:
        if (
            telemetry.on
            or (signal is not None and signal.receivers)
            or is_enabled_for(DEBUG)
            or telemetry.due()
        ):
            return operation.run(method, store, args, kwargs)
        return method(store, *args, **kwargs)

    return wrapper


def _error_type(error: BaseException) -> str:
    cls = type(error)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _materialize(
    shape: Shape, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments with a one-shot iterator of keys turned into a list, so the keys can
    be read after the method consumed them (anything else passes unchanged, for the
    method to validate)."""
    if shape != "keys":
        return args, kwargs
    if args:
        if isinstance(args[0], Iterator):
            return (list(args[0]), *args[1:]), kwargs
    elif isinstance(kwargs.get("keys"), Iterator):
        return args, {**kwargs, "keys": list(kwargs["keys"])}
    return args, kwargs


def _keys_of(shape: Shape, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str] | None:
    """The keys an operation names (for counts, spans and signals), or ``None``. Read
    defensively: invalid arguments are the method's to refuse."""
    if shape == "none":
        return None
    value = args[0] if args else kwargs.get(shape)
    if shape == "key":
        return [value] if isinstance(value, str) else []
    if shape == "mapping":
        return [k for k in value if isinstance(k, str)] if isinstance(value, Mapping) else []
    if isinstance(value, list | tuple):
        return list(dict.fromkeys(k for k in value if isinstance(k, str)))
    return []


# ------------------------------------------------------------------ signal senders


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


def observe_overrides(cls: type) -> None:
    """Observe the public methods ``cls`` overrides the way the base class observes them
    (called from ``BaseStorageBackend.__init_subclass__``)."""
    for name, attribute in list(vars(cls).items()):
        if not callable(attribute) or hasattr(attribute, "__prism_operation__"):
            continue
        for base in cls.__mro__[1:]:
            inherited = vars(base).get(name)
            if inherited is not None:
                spec = getattr(inherited, "__prism_operation__", None)
                if spec is not None:
                    setattr(cls, name, spec.wrap(attribute))
                break


def erased(
    store: Any, keys: list[str], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> None:
    """``prefix_deleted`` for ``delete_prefix``, with the count it erased."""
    prefix = args[0] if args else kwargs["prefix"]
    prefix_deleted.send(type(store), store=store, alias=store.alias, prefix=prefix, count=result)
