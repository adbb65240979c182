"""``redis``: records as JSON strings in Redis or a Redis Cluster, through ``redis.asyncio``.

:mod:`.backend` is the store; :mod:`.records` writes records and reads their metadata
through the Lua scripts of :mod:`.scripts`; :mod:`.stored` is the layout of a record
(metadata header, then the JSON); :mod:`.client` builds the
client of each event loop, :mod:`.pipeline` pipelines concurrent single-key commands,
:mod:`.connection_url` reads the URL, :mod:`.listing` pages through the keys with ``SCAN``.
"""

from .backend import SEPARATOR, RedisStorageBackend

__all__ = ["SEPARATOR", "RedisStorageBackend"]
