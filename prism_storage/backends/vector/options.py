"""Checking the ``vector`` backend's options when a store is built (InvalidOptionError),
before any engine is loaded."""

from __future__ import annotations

from ...exceptions import InvalidOptionError
from .providers import METRICS, PROVIDERS

__all__ = ["MAX_DIMENSIONS", "check_options"]

MAX_DIMENSIONS = 20_000


def check_options(
    provider: str,
    metric: str,
    dimensions: int,
    texts: dict[str, str | None],
    index_name: str,
    text_field: str,
    timeout: float,
) -> None:
    """InvalidOptionError for the first option a store cannot use. ``texts`` are the
    optional string options by name (``None`` or a non-empty str), ``namespace`` among
    them."""
    if provider not in PROVIDERS:
        raise InvalidOptionError(
            f"provider must be one of {', '.join(map(repr, PROVIDERS))}, not {provider!r}."
        )
    if metric not in METRICS:
        raise InvalidOptionError(
            f"metric must be one of {', '.join(map(repr, METRICS))}, not {metric!r}."
        )
    if type(dimensions) is not int or not 1 <= dimensions <= MAX_DIMENSIONS:
        raise InvalidOptionError(f"dimensions must be an int from 1 to {MAX_DIMENSIONS}.")
    for name, option in texts.items():
        if option is not None and (not isinstance(option, str) or not option):
            raise InvalidOptionError(f"{name} must be a non-empty str or None.")
    namespace = texts.get("namespace")
    if namespace is not None and (len(namespace) > 255 or "\x00" in namespace):
        raise InvalidOptionError("namespace must be at most 255 characters, without NUL.")
    if not isinstance(index_name, str) or not index_name:
        raise InvalidOptionError("index_name must be a non-empty str.")
    if not isinstance(text_field, str) or not text_field:
        raise InvalidOptionError("text_field must be a non-empty str.")
    if type(timeout) not in (int, float) or not 0 < timeout <= 3600:
        raise InvalidOptionError("timeout must be a positive number of seconds.")
