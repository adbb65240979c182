"""``vector``: records with embeddings in Qdrant, Milvus or Pinecone, with similarity search.

:mod:`.backend` is the store; :mod:`.options` checks its options and :mod:`.providers`
loads the engine's module; :mod:`.vectors` checks embeddings, runs the embedder and
converts scores; :mod:`.points` makes the guarded engine calls and :mod:`.metadata` the
records' metadata; :mod:`.filters` parses search filters and :mod:`.search` ranks the
results; :mod:`.adapter` is the interface each engine implements, one module per engine
(:mod:`.qdrant`, :mod:`.milvus`, :mod:`.pinecone`), imported only when a store uses it;
:mod:`.locks` holds the per-key locks of the embedded engines.
"""

from .backend import PROVIDERS, VectorStorageBackend
from .vectors import to_score

__all__ = ["PROVIDERS", "VectorStorageBackend", "to_score"]
