"""``vector``: records with embeddings in Qdrant, Milvus or Pinecone, with similarity search.

:mod:`.backend` is the store; :mod:`.vectors` checks embeddings, runs the embedder and
converts scores; :mod:`.filters` parses search filters; :mod:`.adapter` is the interface
each engine implements, one module per engine (:mod:`.qdrant`, :mod:`.milvus`,
:mod:`.pinecone`), imported only when a store uses it.
"""

from .backend import PROVIDERS, VectorStorageBackend
from .vectors import to_score

__all__ = ["PROVIDERS", "VectorStorageBackend", "to_score"]
