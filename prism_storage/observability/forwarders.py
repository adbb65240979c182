"""The wrappers :func:`~prism_storage.observability.observed` puts around store methods.

With nobody observing, a wrapper hands back the method's own coroutine after three cheap
checks: that is the whole cost of observing on the quiet path (about 130 ns a call,
bench/bench_observability.py). Keep them this way: every added call or packing of
arguments shows up on every store operation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from logging import DEBUG
from typing import TYPE_CHECKING, Any

from .log import logger
from .telemetry import otel

if TYPE_CHECKING:
    from .operation import Operation

__all__ = ["compile_forwarder"]


def compile_forwarder(method: Callable[..., Any], operation: Operation) -> Callable[..., Any]:
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
        "telemetry": otel,
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
    method: Callable[..., Any], operation: Operation, namespace: dict[str, Any]
) -> Callable[..., Any]:
    """The same as :func:`compile_forwarder` builds, for a method taking ``*args``/``**kwargs``."""
    signal = operation.signal
    telemetry = otel
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
