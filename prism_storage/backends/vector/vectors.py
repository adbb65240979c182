"""Vectors for the ``vector`` backend: checking an embedding, computing one with the
configured embedder (:class:`ValueVectors`: where each value's vector comes from), and
turning an engine's native score into the backend's score."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from django.utils.module_loading import import_string

from ...exceptions import InvalidOptionError, InvalidValueError
from .adapter import ScoreKind
from .filters import VECTOR_FIELD

__all__ = [
    "MAX_COMPONENT",
    "Embedder",
    "ValueVectors",
    "check_vector",
    "embed",
    "embedding_text",
    "resolve_embedder",
    "to_score",
]

Embedder = Callable[[str], "Sequence[float] | Awaitable[Sequence[float]]"]

#: Engines keep vectors as float32 and score in float32: larger components would overflow
#: scores (to inf or NaN) long before they reach float32's own limit of 3.4e38.
MAX_COMPONENT = 1e9
_NUMBER_TYPES = frozenset({int, float})
_FLOAT = {float}


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an int too large for a float
        return False


def check_vector(raw: Any, dimensions: int, path: str) -> list[float]:
    """``raw`` as a list of ``dimensions`` floats, or InvalidValueError naming ``path``."""
    if hasattr(raw, "tolist") and not isinstance(raw, list | tuple):
        raw = raw.tolist()  # numpy arrays
    if not isinstance(raw, list | tuple):
        raise InvalidValueError(
            f"{path}: an embedding must be a list of {dimensions} numbers, "
            f"not {type(raw).__name__}.",
            path,
        )
    if len(raw) != dimensions:
        raise InvalidValueError(
            f"{path}: the embedding has {len(raw)} dimensions; this store takes {dimensions}.", path
        )
    kinds = set(map(type, raw))
    try:
        # The common case in two passes of C code: only ints and floats, and the sum of
        # their magnitudes within range (so each one is, and none is NaN or infinite: a
        # rounded sum of non-negative floats is never below its largest term).
        fast = kinds <= _NUMBER_TYPES and sum(map(abs, raw)) <= MAX_COMPONENT
    except OverflowError:
        fast = False
    if not fast:
        for index, item in enumerate(raw):
            if type(item) not in _NUMBER_TYPES or not _finite(item):
                raise InvalidValueError(
                    f"{path}[{index}]: {item!r} is not a finite number.", f"{path}[{index}]"
                )
            if abs(item) > MAX_COMPONENT:
                raise InvalidValueError(
                    f"{path}[{index}]: {item!r} is out of range: embedding components "
                    f"must be within ±{MAX_COMPONENT:g}.",
                    f"{path}[{index}]",
                )
    vector = raw if kinds == _FLOAT and type(raw) is list else [float(item) for item in raw]
    if not any(vector):
        # No direction: cosine is undefined and Pinecone refuses it, so every provider does.
        raise InvalidValueError(f"{path}: an embedding must not be all zeros.", path)
    return vector


def resolve_embedder(embedder: Embedder | str | None) -> Embedder | None:
    """The embedder callable: ``embedder`` itself, imported from its dotted path, or an
    instance of it when it is a class."""
    if embedder is None:
        return None
    if isinstance(embedder, str):
        try:
            resolved: Any = import_string(embedder)
        except ImportError as exc:
            raise InvalidOptionError(f"embedder {embedder!r} cannot be imported: {exc}") from exc
    else:
        resolved = embedder
    if inspect.isclass(resolved):
        resolved = resolved()
    if not callable(resolved):
        raise InvalidOptionError("embedder must be a callable taking a str (or its path).")
    return cast(Embedder, resolved)


async def embed(embedder: Embedder, text: str) -> Any:
    """What ``embedder`` returns for ``text`` (not checked yet)."""
    if inspect.iscoroutinefunction(embedder) or inspect.iscoroutinefunction(
        getattr(embedder, "__call__", None)  # noqa: B004 - an async __call__ counts
    ):
        return await embedder(text)  # type: ignore[misc]
    # A sync embedder is CPU work (a model): keep it off the event loop.
    result = await asyncio.to_thread(embedder, text)
    if inspect.isawaitable(result):
        result = await result
    return result


def embedding_text(value: dict[str, Any], data: str, text_field: str) -> str:
    """The text an embedder turns into a value's vector: ``value[text_field]`` if it is a
    non-empty str; else the ``content`` strings of ``value["messages"]`` joined by
    newlines; else ``data``, the value's JSON text."""
    text = value.get(text_field)
    if isinstance(text, str) and text:
        return text
    messages = value.get("messages")
    if isinstance(messages, list):
        contents = [
            m["content"]
            for m in messages
            if isinstance(m, dict) and isinstance(m.get("content"), str)
        ]
        if any(contents):
            return "\n".join(contents)
    return data


class ValueVectors:
    """Where a store's values get their vectors: a value's ``embedding`` field, checked,
    or else the embedder run on the value's text (``text_of(value, data)``)."""

    def __init__(
        self,
        dimensions: int,
        embedder: Embedder | None,
        text_of: Callable[[dict[str, Any], str], str],
    ) -> None:
        self.dimensions = dimensions
        self.embedder = embedder
        self.text_of = text_of

    def check(self, raw: Any, path: str) -> list[float]:
        """``raw`` as a vector of the store's dimensions, or InvalidValueError."""
        return check_vector(raw, self.dimensions, path)

    def of(self, value: dict[str, Any]) -> list[float] | None:
        """The value's checked vector (``None``: it has none, the embedder computes it)."""
        raw = value.get(VECTOR_FIELD)
        if raw is not None:
            return self.check(raw, f"$[{VECTOR_FIELD!r}]")
        if self.embedder is None:
            raise InvalidValueError(
                f"$: the value has no {VECTOR_FIELD!r} and the store has no embedder.", "$"
            )
        return None

    async def embed(self, text: str, path: str) -> list[float]:
        """The embedder's vector for ``text``, checked (errors name ``path``)."""
        assert self.embedder is not None
        return self.check(await embed(self.embedder, text), path)

    async def complete(
        self, items: list[tuple[str, dict[str, Any], str]], vectors: list[list[float] | None]
    ) -> list[list[float]]:
        """``vectors`` (one per ``(key, value, data)`` item) with the missing ones
        (``None``) computed by the embedder from their values' text."""
        complete: list[list[float]] = []
        missing = [index for index, vector in enumerate(vectors) if vector is None]
        computed = iter(
            # computed concurrently (an embedder may be a remote service)
            await asyncio.gather(*(self._embed_value(*items[i]) for i in missing))
        )
        for vector in vectors:
            complete.append(next(computed) if vector is None else vector)
        return complete

    async def _embed_value(self, key: str, value: dict[str, Any], data: str) -> list[float]:
        return await self.embed(self.text_of(value, data), f"embedder({key!r})")


def to_score(kind: ScoreKind, native: float) -> float:
    """Convert an engine's native score to the backend's convention (higher = closer)."""
    if kind == "similarity":
        return float(native)
    distance = math.sqrt(max(native, 0.0)) if kind == "squared_distance" else max(native, 0.0)
    return 1.0 / (1.0 + distance)
