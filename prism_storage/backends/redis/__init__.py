"""``redis``: records as JSON strings in Redis or a Redis Cluster, through ``redis.asyncio``.

:mod:`.backend` is the store; :mod:`.stored` is the layout of a record (metadata header,
then the JSON), :mod:`.scripts` the Lua script of each write; :mod:`.client` builds the
client of each event loop, :mod:`.pipeline` pipelines concurrent single-key commands,
:mod:`.connection_url` reads the URL, :mod:`.listing` pages through the keys with ``SCAN``.
"""

from .backend import SEPARATOR, RedisStorageBackend

__all__ = ["SEPARATOR", "RedisStorageBackend"]
