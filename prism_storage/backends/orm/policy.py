"""How the ``orm`` backend cuts batches: one frozen :class:`BatchPolicy` per executor.

The :class:`~.batching.Batcher` reads nothing else from an executor to decide what goes out
and when. The PostgreSQL fast path has one fixed policy; the ORM path starts from
:data:`ORM_PATH` and, as it learns how large its records are, switches to another one
chosen by :class:`LargeRecords` (large records bypass or shrink batching by size).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["FAST_PATH", "ORM_PATH", "BatchPolicy", "LargeRecords", "moving_average"]


@dataclass(frozen=True)
class BatchPolicy:
    """What a batcher may send to its executor."""

    #: How many batches may be in flight at once (the executor's connections or queue).
    capacity: int = 1
    #: The kinds of operation a batch may hold while another batch is in flight (``None``:
    #: any). Batches of other kinds wait for the executor to be idle.
    concurrent_kinds: frozenset[str] | None = None
    #: A caller that finds the store idle may run its own lone operation, without a driver
    #: task. Only for an executor whose calls run to the end when their caller is cancelled.
    direct: bool = False
    #: With ``direct``: a read runs on its own whenever nothing waits and no batch in flight
    #: holds its keys (records so large that batching them saves nothing).
    direct_reads: bool = False
    #: At most this many read operations per batch (``None``: no limit).
    read_limit: int | None = None
    #: At most about this many characters of JSON per batch of writes (``None``: no limit);
    #: a write operation larger than that goes in a batch of its own.
    write_limit: int | None = None


#: The fast path: two connections per event loop, batches run by driver tasks (a cancelled
#: caller must not abort a statement mid-flight).
FAST_PATH = BatchPolicy(capacity=2)

#: The ORM path with small records: one ``sync_to_async`` call at a time on the connection's
#: thread, a lone caller hops there itself, and only writes may queue behind a batch in
#: flight (once records are large; see :class:`LargeRecords`).
ORM_PATH = BatchPolicy(capacity=1, concurrent_kinds=frozenset({"write"}), direct=True)


@dataclass(frozen=True)
class LargeRecords:
    """The sizes at which the ORM path batches differently (all in characters or bytes of
    stored JSON, compared with a moving average of the records seen).

    * Records written of ``write`` or more: the work is mostly each caller's JSON encoding,
      which holds the GIL. Write batches are capped at about ``write_batch`` and a second
      one may wait in the thread's queue behind the one running, so the callers of a
      finished batch encode their next records while the database stores the next batch.
    * Records read of ``read_batch / 500`` or more: read batches hold about ``read_batch``
      (decoding a few megabytes at a time is measurably faster).
    * Records read of ``read`` or more: each read bypasses batching (``direct_reads``).
      Reading and decoding such a record costs far more than the round trip a batch saves,
      and batches of them made glibc's allocator return and fault in memory on every batch.
    """

    write: int = 64 * 1024
    read: int = 768 * 1024
    write_batch: int = 4 * 1024 * 1024
    read_batch: int = 4 * 1024 * 1024
    #: Reads count as batch-worthy up to this many records per batch.
    read_batch_records: int = 500

    def policy(self, base: BatchPolicy, read_size: float, write_size: float) -> BatchPolicy:
        """``base`` adjusted to the average record sizes read and written (0: none yet)."""
        large_writes = write_size >= self.write
        return replace(
            base,
            capacity=2 if large_writes else 1,
            write_limit=self.write_batch if large_writes else None,
            read_limit=(
                max(1, int(self.read_batch // read_size))
                if read_size * self.read_batch_records > self.read_batch
                else None
            ),
            direct_reads=bool(read_size) and read_size >= self.read,
        )


def moving_average(average: float, sizes: list[int]) -> float:
    """``average`` (0: none yet) moved towards each of ``sizes`` by an eighth."""
    average = average or float(sizes[0])
    for size in sizes:
        average += (size - average) / 8
    return average
