"""The :func:`observed` decorator and what it runs when someone observes: the timing,
span, measurements, DEBUG line and signal of one store operation."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from logging import DEBUG
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar

from asgiref.sync import markcoroutinefunction

from .forwarders import compile_forwarder
from .log import log_operation, logger
from .senders import Sender
from .telemetry import otel, trace_keys_enabled

if TYPE_CHECKING:
    from django.dispatch import Signal

__all__ = ["Operation", "Shape", "observe_overrides", "observed"]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

#: Where an operation's keys are among its arguments: one ``key``, an iterable of
#: ``keys``, a ``mapping`` of key -> value, or ``none`` (a prefix, a vector, nothing).
Shape = Literal["key", "keys", "mapping", "none"]


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
    spec = Operation(operation, gen_ai or operation, shape, signal, send)

    def decorate(
        method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
    ) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
        return spec.wrap(method)

    return decorate


class Operation:
    """One observed method: its names, where its keys are, its signal; ``run`` does the
    observing when someone listens."""

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
        wrapper = compile_forwarder(method, self)
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
        telemetry = otel
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
            if keys and trace_keys_enabled():
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
        telemetry = otel
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
        if logger.isEnabledFor(DEBUG):
            log_operation(self.name, store, keys, elapsed, error_type)


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
