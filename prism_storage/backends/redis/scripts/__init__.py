"""The Lua scripts of the ``redis`` backend: each write is one script on one key.

A script runs alone on the server, so reading the record, checking a condition and
writing is one atomic step for every client of every process; it touches only
``KEYS[1]``, so it runs on a Redis Cluster too. Layout: see :mod:`..stored`.

The texts are grouped by purpose: :mod:`.records` (whole records), :mod:`.lists`
(``append`` and ``pop``, with the JSON scanner of :mod:`.scanner`) and :mod:`.index`
(listing the key index); :mod:`.fragments` holds the Lua they share, and
:mod:`.script` the :class:`Script` wrapper. Each module says what its scripts reply.
"""

from __future__ import annotations

from .index import LIST
from .lists import APPEND, POP
from .records import DELETE, PUT, READ, REMOVE, STAMP, STAMP_MANY, TOUCH
from .script import Script

__all__ = [
    "APPEND",
    "DELETE",
    "LIST",
    "POP",
    "PUT",
    "READ",
    "REMOVE",
    "STAMP",
    "STAMP_MANY",
    "TOUCH",
    "Script",
]
