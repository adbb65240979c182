"""The ``file`` backend against the raw atomic write and the file stores users pick instead.

Paths, each writing and reading JSON-able agent records by key:

* ``raw to_thread`` (the baseline): ``json.dumps``, then in ``asyncio.to_thread`` a
  ``tempfile.mkstemp`` in the target directory, write, ``os.replace``; get is
  ``open``/``read``/``json.loads`` in ``asyncio.to_thread``. What a careful user writes by hand.
* ``raw to_thread + orjson``: the same with ``orjson.dumps``/``orjson.loads``: the raw path
  with the fastest encoder a user would pick. Tables show a second ratio against it.
* ``prism file``: ``FileStorageBackend.set/get`` (validation, key-derived file names, the
  ``{"key", "expires_at", "value"}`` envelope, atomic replace).
* ``django FileBasedCache``: ``aset/aget`` on a cache built directly on the directory with
  ``TIMEOUT=None`` and ``MAX_ENTRIES=10**9`` so that culling never deletes (it still lists
  the directory on every ``set``: that is how Django decides whether to cull). Values are
  pickled by Django, atomic (``mkstemp`` + rename); its async API funnels every call
  through asgiref's one shared thread.
* ``langchain LocalFileStore``: ``amset/amget`` of ``json.dumps(value).encode()`` bytes,
  ``json.loads`` on read. NOT atomic: ``Path.write_bytes`` truncates the file in place, so
  a concurrent reader (or a crash) can see a partial record.

Records are ~2.5 KB agent conversations and ~1 MB blobs; keys cycle over a fixed key space
(set overwrites, get hits), so directory sizes stay the same across rounds. Each filesystem
(tmpfs ``/dev/shm`` and the disk under the temp dir) gets its own table: ext4 write
throughput swings for minutes at a time, tmpfs shows the store's own cost. Each round
measures every path of every case once, a case's paths back to back in an order rotated
round by round (``--rounds``, default 5, 2 with ``--quick``); a figure is the median over
rounds and every ratio (the goals' too) the median of same-round ratios, min-max shown.

A second pair of lines, ``durable``, compares ``durable=True`` with the raw write plus
``fsync`` of the file and of the directory.

1 MB values make glibc's malloc map and unmap fresh pages around each op (hundreds of page
faults, up to a millisecond), depending on which thread freed what last; that noise swamped
the paths' own costs. Unless ``--default-malloc`` is given, the bench raises malloc's trim
and mmap thresholds (``mallopt``) so that freed memory is reused, as a long-running server
settles into anyway.

Run: ``python -m bench.bench_file [--quick] [--fs tmpfs|disk|both] [--size 2.5KB|1MB]
[--rounds N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import (
    Measure,
    Row,
    Size,
    agent_record,
    big_record,
    group_cases,
    measure_cases,
    pair_ratio,
    parser,
    print_table,
    rounds_of,
    save_json,
    set_get_cases,
)

BENCH = "file"
RAW = "raw to_thread"
RAW_ORJSON = "raw to_thread + orjson"
PRISM = "prism file"
DJANGO = "django FileBasedCache"
LANGCHAIN = "langchain LocalFileStore"
RAW_DURABLE = "raw to_thread + fsync"
PRISM_DURABLE = "prism file durable=True"
TASKS = (1, 64)
#: Goals for the file backend on tmpfs: at least this ratio against each path.
GOALS = {RAW: 0.9, LANGCHAIN: 2.0}


SIZES = (
    Size("2.5 KB", agent_record, key_space=512, ops=800, quick_ops=200),
    Size("1 MB", big_record, key_space=32, ops=96, quick_ops=16),
)


class Store:
    """One path under test: ``set(key, value)`` / ``get(key)`` on its own directory."""

    name = ""

    async def set(self, key: str, value: dict[str, Any]) -> None:
        raise NotImplementedError

    async def get(self, key: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class RawStore(Store):
    name = RAW

    def __init__(self, directory: Path, *, fsync: bool = False, fast: bool = False) -> None:
        self.directory = str(directory)
        self.fsync = fsync
        self.dumps: Callable[[Any], bytes] = lambda value: json.dumps(value).encode()
        self.loads: Callable[[bytes], Any] = json.loads
        if fsync:
            self.name = RAW_DURABLE
        if fast:
            import orjson

            self.dumps, self.loads = orjson.dumps, orjson.loads
            self.name = RAW_ORJSON

    def _write(self, path: str, data: bytes) -> None:
        fd, temp = tempfile.mkstemp(dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(temp, path)
            temp = ""
        finally:
            if temp:
                os.unlink(temp)
        if self.fsync:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _read(self, path: str) -> Any:
        try:
            with open(path, "rb") as fh:
                return self.loads(fh.read())
        except FileNotFoundError:
            return None

    async def set(self, key: str, value: dict[str, Any]) -> None:
        data = self.dumps(value)
        await asyncio.to_thread(self._write, os.path.join(self.directory, key + ".json"), data)

    async def get(self, key: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._read, os.path.join(self.directory, key + ".json"))


class PrismStore(Store):
    name = PRISM

    def __init__(self, directory: Path, *, durable: bool = False) -> None:
        from prism_storage import FileStorageBackend

        self.backend = FileStorageBackend(data_dir=directory, durable=durable)
        if durable:
            self.name = PRISM_DURABLE

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await self.backend.set(key, value)

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.backend.get(key)

    async def close(self) -> None:
        await self.backend.close()


class DjangoStore(Store):
    name = DJANGO

    def __init__(self, directory: Path) -> None:
        from django.core.cache.backends.filebased import FileBasedCache

        self.cache = FileBasedCache(
            str(directory), {"TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": 10**9}}
        )

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await self.cache.aset(key, value)

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.cache.aget(key)


class LangChainStore(Store):
    name = LANGCHAIN

    def __init__(self, directory: Path) -> None:
        from langchain_classic.storage import LocalFileStore

        self.store = LocalFileStore(directory)

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await self.store.amset([(key, json.dumps(value).encode())])

    async def get(self, key: str) -> dict[str, Any] | None:
        (data,) = await self.store.amget([key])
        return None if data is None else json.loads(data)


def _stores(root: Path) -> list[Store]:
    def directory(name: str) -> Path:
        path = root / name
        path.mkdir(mode=0o700, parents=True)
        return path

    return [
        RawStore(directory("raw")),
        RawStore(directory("raw-orjson"), fast=True),
        PrismStore(directory("prism")),
        DjangoStore(directory("django")),
        LangChainStore(directory("langchain")),
    ]


def _durable_stores(root: Path) -> list[Store]:
    (root / "raw-fsync").mkdir(mode=0o700, parents=True)
    (root / "prism-durable").mkdir(mode=0o700, parents=True)
    return [
        RawStore(root / "raw-fsync", fsync=True),
        PrismStore(root / "prism-durable", durable=True),
    ]


def _cases(
    stores: list[Store], size: Size, ops: int, keys: list[str], values: list[dict[str, Any]]
) -> list[tuple[str, str, Measure]]:
    """(case, path, measure) for set and get at 1 and 64 tasks."""
    return set_get_cases(stores, size, TASKS, keys, values, lambda store, tasks: ops)


async def _fill(stores: list[Store], keys: list[str], values: list[dict[str, Any]]) -> None:
    for store in stores:
        for key, value in zip(keys, values, strict=True):
            await store.set(key, value)
        probe = await store.get(keys[-1])
        if probe != values[-1]:
            raise AssertionError(f"{store.name} did not round-trip a record")


async def bench_filesystem(
    label: str, parent: str, *, sizes: tuple[Size, ...], quick: bool, rounds: int, durable: bool
) -> list[Row]:
    """Measure every path in a fresh directory under ``parent``; rows carry ``label``."""
    root = Path(tempfile.mkdtemp(prefix="prism-bench-file-", dir=parent))
    try:
        plans: list[tuple[str, str, Measure]] = []
        durable_plans: list[tuple[str, str, Measure]] = []
        all_stores: list[Store] = []
        for size in sizes:
            stores = _stores(root / size.label.replace(" ", ""))
            all_stores += stores
            keys = [f"agent-{i}" for i in range(size.key_space)]
            values = [size.make(i) for i in range(size.key_space)]
            await _fill(stores, keys, values)
            plans += _cases(stores, size, size.quick_ops if quick else size.ops, keys, values)
        if durable:
            size = SIZES[0]
            stores = _durable_stores(root / "durable")
            all_stores += stores
            keys = [f"agent-{i}" for i in range(64)]
            values = [size.make(i) for i in range(64)]
            await _fill(stores, keys, values)
            for case, path, measure in _cases(stores, size, 50 if quick else 200, keys, values):
                if case.startswith("set"):
                    durable_plans.append((f"durable {case}", path, measure))

        bench = f"{BENCH} @ {label}"
        cases = group_cases(bench, plans, baseline=RAW, fast=RAW_ORJSON)
        cases += group_cases(bench, durable_plans, baseline=RAW_DURABLE)
        rows = await measure_cases(cases, rounds)
        for store in all_stores:
            await store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for row in rows:
        row.extra["filesystem"] = label
    return rows


def print_goals(rows: list[Row]) -> None:
    """Print the file backend's ratio against each goal path, per filesystem and case."""
    print("Ratios are medians of same-round ratios (min-max after).\n")
    print(
        "| filesystem | case | "
        + " | ".join(f"prism / {path} (goal >= {goal:.1f}x)" for path, goal in GOALS.items())
        + " |"
    )
    print("|---|---|" + "---:|" * len(GOALS))
    for row in rows:
        if row.path != PRISM:
            continue
        cells = []
        for other, goal in GOALS.items():
            ratio = pair_ratio(rows, PRISM, other, row.case, bench=row.bench)
            cells.append(
                "" if ratio is None else f"{ratio} {'met' if ratio.median >= goal else 'MISSED'}"
            )
        print(f"| {row.bench.split('@')[-1].strip()} | {row.case} | " + " | ".join(cells) + " |")


FILESYSTEMS = {"tmpfs": "/dev/shm", "disk": tempfile.gettempdir()}


def pin_malloc() -> bool:
    """Keep glibc from returning freed memory to the OS between ops; False if not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_trim_threshold, 512 << 20) and mallopt(m_mmap_threshold, 64 << 20))


async def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--fs", choices=("tmpfs", "disk", "both"), default="both")
    p.add_argument(
        "--size",
        choices=[s.label.replace(" ", "") for s in SIZES],
        help="only this record size (default: all)",
    )
    p.add_argument("--no-durable", action="store_true", help="skip the durable=True lines")
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc malloc's thresholds alone (noisier 1 MB figures)",
    )
    args = p.parse_args(argv)
    rounds = rounds_of(args)
    sizes = tuple(s for s in SIZES if args.size in (None, s.label.replace(" ", "")))
    if not args.default_malloc and not pin_malloc():
        print("(not glibc: malloc thresholds left alone)")

    from bench.harness import setup_django

    setup_django()
    rows: list[Row] = []
    for label, parent in FILESYSTEMS.items():
        if args.fs not in (label, "both"):
            continue
        if label == "tmpfs" and not os.path.isdir(parent):
            print(f"(no {parent}: skipping tmpfs)")
            continue
        found = await bench_filesystem(
            f"{label} ({parent})",
            parent,
            sizes=sizes,
            quick=args.quick,
            rounds=rounds,
            durable=not args.no_durable,
        )
        print_table(
            found, f"file backend on {label} ({parent}), median of {rounds} rotated round(s)"
        )
        rows += found
    print("\n## file backend goals\n")
    print_goals(rows)
    if args.json:
        save_json(rows, args.json)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
