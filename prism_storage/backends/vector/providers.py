"""The engines the ``vector`` backend can use: the module implementing each, the client
library it needs, and the loading of that module, only when a store uses the engine."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Literal

from ...exceptions import MissingDependencyError
from .adapter import VectorAdapter

__all__ = ["METRICS", "PROVIDERS", "Provider", "adapter_class", "check_dependencies"]

Provider = Literal["pinecone", "qdrant", "milvus"]

#: provider -> (module implementing it, client module, pip extra)
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "qdrant": ("qdrant", "qdrant_client", "qdrant"),
    "milvus": ("milvus", "pymilvus", "milvus"),
    "pinecone": ("pinecone", "pinecone", "pinecone"),
}
METRICS = ("cosine", "euclidean", "dotproduct")


def check_dependencies(provider: object, url: object) -> None:
    """MissingDependencyError if the client library of ``provider`` (for a server at
    ``url``, or embedded without one) is not installed; nothing for an unknown provider
    (the store's constructor reports it)."""
    if provider not in PROVIDERS:
        return
    _module, client_module, extra = PROVIDERS[provider]
    if importlib.util.find_spec(client_module) is None:
        raise MissingDependencyError(f"vector/{provider}", client_module, extra)
    if provider == "milvus" and not url and importlib.util.find_spec("milvus_lite") is None:
        raise MissingDependencyError("vector/milvus", "milvus-lite", extra)


def adapter_class(provider: Provider) -> type[VectorAdapter]:
    """The adapter of ``provider``, its module imported now (its dependencies checked)."""
    module = importlib.import_module(f"{__package__}.{PROVIDERS[provider][0]}")
    adapter: type[VectorAdapter] = module.ADAPTER
    return adapter
