"""LangGraph on prism stores: a checkpointer (``prism-storage[langgraph]``).

Importing this module imports LangGraph; ``import prism_storage`` never does.
"""

from .checkpoint import PrismCheckpointSaver

__all__ = ["PrismCheckpointSaver"]
