"""LangGraph on prism stores: a checkpointer and a long-term memory store
(``prism-storage[langgraph]``).

Importing this module imports LangGraph; ``import prism_storage`` never does.
"""

from .checkpoint import PrismCheckpointSaver
from .store import PrismStore

__all__ = ["PrismCheckpointSaver", "PrismStore"]
