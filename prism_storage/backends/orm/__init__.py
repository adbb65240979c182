"""The ``orm`` backend: records in the app's ``Record`` model, on any Django database.

* :mod:`.backend` - the store class, :class:`ORMStorageBackend`;
* :mod:`.paths` - how a call reaches the database (its loop's batcher, or the thread hop);
* :mod:`.batching`, :mod:`.merging` - merge concurrent async callers' operations into batches;
* :mod:`.requests` - what a batch hands to an executor, and the one rule for running it;
* :mod:`.policy` - how batches are cut (:class:`BatchPolicy`, :class:`LargeRecords`);
* :mod:`.executor` - the ORM path: batches through Django on the connection's thread;
* :mod:`.postgres` - the PostgreSQL fast path on the backend's own psycopg connections;
* :mod:`.table`, :mod:`.sql` - the blocking work on the ``Record`` table;
* :mod:`.thread` - the hop to the connection's thread.
"""

from .backend import ORMStorageBackend
from .policy import BatchPolicy, LargeRecords

__all__ = ["BatchPolicy", "LargeRecords", "ORMStorageBackend"]
