"""``list_namespaces`` of a LangGraph store: its match conditions, depth and page, as
LangGraph's ``InMemoryStore`` answers them, applied to the namespaces found by listing."""

from __future__ import annotations

from collections.abc import Iterable

from langgraph.store.base import ListNamespacesOp, MatchCondition

__all__ = ["listing_start", "namespace_page"]

Namespace = tuple[str, ...]


def listing_start(op: ListNamespacesOp) -> Namespace:
    """The namespace prefix to list under: a leading prefix condition without wildcards
    narrows the listing itself."""
    for condition in op.match_conditions or ():
        if condition.match_type == "prefix":
            return tuple(condition.path[: _fixed_length(condition.path)])
    return ()


def namespace_page(namespaces: Iterable[Namespace], op: ListNamespacesOp) -> list[Namespace]:
    """The page ``op`` asks for of ``namespaces``, sorted, cut at its depth."""
    kept = [
        namespace
        for namespace in namespaces
        if all(_matches(condition, namespace) for condition in op.match_conditions or ())
    ]
    if op.max_depth is not None:
        kept = list({namespace[: op.max_depth] for namespace in kept})
    return sorted(kept)[op.offset : op.offset + op.limit]


def _fixed_length(path: tuple[str, ...]) -> int:
    """How many leading labels of ``path`` are not wildcards."""
    for position, label in enumerate(path):
        if label == "*":
            return position
    return len(path)


def _matches(condition: MatchCondition, namespace: Namespace) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace[: len(path)], path, strict=True)
    elif condition.match_type == "suffix":
        pairs = zip(namespace[len(namespace) - len(path) :], path, strict=True)
    else:
        raise ValueError(f"Unsupported match type: {condition.match_type}")
    return all(wanted in ("*", label) for label, wanted in pairs)
