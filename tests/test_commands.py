"""The management commands against real stores: prism_copy, prism_export, prism_import,
prism_sweep and prism_check.

Tests parametrized over ``STORE_KINDS`` run against every backend that has registered
its test configuration. Commands run their async work on their own event loop, so the
ORM runs in asgiref's worker thread: the module uses transactional test databases and
closes that thread's connections after each test.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from prism_storage import storages
from prism_storage.management.commands import prism_copy
from prism_storage.management.jsonl import dump_record
from prism_storage.testing import FakeClock
from prism_storage.testing.conformance import HOSTILE_KEYS, ROUND_TRIP_VALUES
from tests.support.memory_variants import memory_variant
from tests.support.minimal_backend import MinimalBackend
from tests.support.stores import STORE_KINDS

pytestmark = pytest.mark.django_db(transaction=True, databases=["default"])

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = {"BACKEND": "tests.support.minimal_backend.MinimalBackend"}
KIND_PAIRS = list(itertools.product(STORE_KINDS, repeat=2))


@pytest.fixture(autouse=True)
def _close_worker_thread_connections():
    yield
    asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)())


# ----------------------------------------------------------------------- helpers


def seed(alias: str, records: dict[str, dict[str, Any]], ttl: float | None = None) -> None:
    async def write() -> None:
        store = storages[alias]
        items = list(records.items())
        try:
            for start in range(0, len(items), 1000):
                await store.set_many(dict(items[start : start + 1000]), ttl=ttl)
        finally:
            await store.close()

    asyncio.run(write())


def dump(alias: str) -> dict[str, dict[str, Any]]:
    """Every record of a store."""

    async def read() -> dict[str, dict[str, Any]]:
        store = storages[alias]
        try:
            records = {}
            cursor = None
            while True:
                page = await store.keys(limit=1000, cursor=cursor)
                records.update(await store.get_many(page.keys))
                if page.cursor is None:
                    return records
                cursor = page.cursor
        finally:
            await store.close()

    return asyncio.run(read())


def embedding_size(*aliases: str) -> int | None:
    """The vector size records need when one of the stores is a vector store."""
    for alias in aliases:
        store = storages[alias]
        if store.supports_search:
            return int(store.dimensions)
    return None


def agent_records(count: int, *aliases: str, prefix: str = "agent") -> dict[str, dict]:
    size = embedding_size(*aliases)
    records = {}
    for i in range(count):
        value: dict[str, Any] = {
            "agent_id": i,
            "messages": [{"role": "user", "content": f"hello {i} — 🤖"}],
            "state": {"step": i % 7, "score": i / 3, "done": i % 2 == 0, "notes": None},
        }
        if size:
            value["embedding"] = [((i * 7 + d) % 11) / 10 + 0.05 for d in range(size)]
        records[f"{prefix}/{i:05d}"] = value
    return records


def hostile_records(*aliases: str) -> dict[str, dict]:
    size = embedding_size(*aliases)
    values = [value for _, value in ROUND_TRIP_VALUES]
    records = {}
    for i, key in enumerate(HOSTILE_KEYS):
        value = dict(values[i % len(values)])
        if size:
            value["embedding"] = [1.0 + i] + [0.5] * (size - 1)
        records[key] = value
    return records


def command(name: str | Any, *args: Any, **options: Any) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


_METADATA = re.compile(
    rb',"version":"[^"]*","created_at":"[^"]*","updated_at":"[^"]*","expires_at":(null|"[^"]*")\}'
    rb"(?=\n?$)"
)


def without_metadata(line: bytes) -> bytes:
    return _METADATA.sub(b"}", line)


def records_of(alias: str, keys: list[str]) -> dict:
    async def read() -> dict:
        store = storages[alias]
        try:
            return await store.get_many_records(keys)
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.fixture
def two_stores(settings, store_config):
    def configure(src_kind: str, dst_kind: str, **extra: dict) -> None:
        settings.PRISM_STORAGE = {
            "default": {"BACKEND": "orm"},
            "src": store_config(src_kind, "src"),
            "dst": store_config(dst_kind, "dst"),
            **extra,
        }

    return configure


# ----------------------------------------------------------------------- prism_copy


def test_copy_10k_records_from_files_to_the_orm(two_stores):
    two_stores("file", "orm")
    records = agent_records(10_000, "src", "dst")
    seed("src", records)
    started = time.monotonic()
    out, _ = command("prism_copy", "src", "dst", "--verify")
    elapsed = time.monotonic() - started
    assert "Copied 10000 record(s)" in out and "Verified 10000" in out
    copied = dump("dst")
    assert len(copied) == len(records)
    for key, value in records.items():
        assert copied[key] == value, key
    assert dump("src") == records
    assert elapsed < 60  # a generous bound on a shared machine; the bench gives the figures


@pytest.mark.parametrize(("src_kind", "dst_kind"), KIND_PAIRS)
def test_copy_between_every_pair_of_backends(two_stores, src_kind, dst_kind):
    two_stores(src_kind, dst_kind)
    records = {**agent_records(150, "src", "dst"), **hostile_records("src", "dst")}
    seed("src", records)
    command("prism_copy", "src", "dst", "--verify", "--batch-size", "16")
    assert dump("dst") == records
    assert dump("src") == records


def test_copy_only_the_prefix(two_stores):
    two_stores("file", "orm")
    seed("src", {**agent_records(30, "src"), **agent_records(20, "src", prefix="agents_v2")})
    out, _ = command("prism_copy", "src", "dst", "--prefix", "agent/")
    assert "Copied 30 record(s)" in out
    assert sorted(dump("dst")) == sorted(agent_records(30, "src"))


def test_existing_keys_are_refused_kept_or_replaced(two_stores):
    two_stores("file", "orm")
    records = agent_records(40, "src", "dst")
    seed("src", records)
    seed("dst", {"agent/00003": {"kept": True}})
    with pytest.raises(CommandError, match=r"already holds records.*'agent/00003'"):
        command("prism_copy", "src", "dst")
    assert dump("dst") == {"agent/00003": {"kept": True}}

    out, _ = command("prism_copy", "src", "dst", "--skip-existing", "--verify")
    assert "Copied 39 record(s)" in out and "skipped 1" in out
    copied = dump("dst")
    assert copied["agent/00003"] == {"kept": True}
    assert {k: v for k, v in copied.items() if k != "agent/00003"} == {
        k: v for k, v in records.items() if k != "agent/00003"
    }

    command("prism_copy", "src", "dst", "--overwrite", "--verify")
    assert dump("dst") == records


def test_dry_run_writes_nothing(two_stores):
    two_stores("file", "orm")
    seed("src", agent_records(25, "src"))
    seed("dst", {"agent/00001": {"old": 1}})
    out, _ = command("prism_copy", "src", "dst", "--dry-run")
    assert "25 record(s) in 'src', 1 of them already in 'dst'" in out
    assert "would refuse" in out
    assert dump("dst") == {"agent/00001": {"old": 1}}


class StopAfterBatches(prism_copy.Command):
    """Interrupts the copy for real after ``limit`` batches, as Ctrl-C would."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def batch_done(self, stats: prism_copy.CopyStats) -> None:
        if stats.batches == self.limit:
            raise KeyboardInterrupt


def test_interrupted_copy_resumes_without_loss_or_duplicates(two_stores):
    two_stores("file", "orm")
    records = agent_records(1000, "src", "dst")
    seed("src", records)
    with pytest.raises(CommandError, match="Interrupted after copying 300") as stopped:
        command(StopAfterBatches(3), "src", "dst", "--batch-size", "100")
    assert stopped.value.returncode == 130
    partial = dump("dst")
    assert len(partial) == 300
    assert all(records[key] == value for key, value in partial.items())

    with pytest.raises(CommandError, match="--skip-existing"):
        command("prism_copy", "src", "dst", "--batch-size", "100")
    out, _ = command("prism_copy", "src", "dst", "--skip-existing", "--verify")
    assert "Copied 700 record(s)" in out and "skipped 300" in out
    assert dump("dst") == records


def test_ctrl_c_stops_a_copy_in_a_subprocess_and_it_resumes(settings, tmp_path):
    storage = {
        "default": {"BACKEND": "orm"},
        "src": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path / "src")}},
        "dst": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path / "dst")}},
    }
    settings.PRISM_STORAGE = storage
    records = agent_records(6000, "src")
    seed("src", records)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django",
            "prism_copy",
            "src",
            "dst",
            "--batch-size",
            "20",
            "--verbosity",
            "2",
        ],
        cwd=ROOT,
        env=_subprocess_env(storage),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stdout:
            if line.startswith("batch 3:"):
                process.send_signal(signal.SIGINT)
                break
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Interrupted after copying" in stderr
    partial = dump("dst")
    assert 60 <= len(partial) < len(records)
    assert all(records[key] == value for key, value in partial.items())

    command("prism_copy", "src", "dst", "--skip-existing", "--verify")
    assert dump("dst") == records


def _subprocess_env(storage: dict) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.support.command_settings",
        "PRISM_TEST_STORAGE": json.dumps(storage),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
    }


def test_copy_arguments_are_validated(two_stores, settings):
    two_stores("file", "file", unlisted=MINIMAL)
    with pytest.raises(CommandError, match="same store"):
        command("prism_copy", "src", "src")
    with pytest.raises(CommandError, match=r"no store 'nope'.*configured stores: default, dst"):
        command("prism_copy", "nope", "dst")
    with pytest.raises(CommandError, match=r"--batch-size: must be from 1"):
        command("prism_copy", "src", "dst", "--batch-size", "0")
    with pytest.raises(CommandError, match="exclude each other"):
        command("prism_copy", "src", "dst", overwrite=True, skip_existing=True)
    with pytest.raises(CommandError, match="cannot list its keys"):
        command("prism_copy", "unlisted", "dst")
    with pytest.raises(CommandError, match="--prefix: A key must not contain control"):
        command("prism_copy", "src", "dst", "--prefix", "a\nb")


def test_copy_into_a_store_that_cannot_list_checks_each_batch(two_stores):
    two_stores("file", "file", plain={**MINIMAL, "OPTIONS": {"name": "copy-target"}})
    records = agent_records(30, "src")
    seed("src", records)
    MinimalBackend._data.pop("copy-target", None)
    out, _ = command("prism_copy", "src", "plain", "--verify", "--batch-size", "8")
    assert "Copied 30 record(s)" in out
    with pytest.raises(CommandError, match=r"8 key\(s\) of this batch already exist in 'plain'"):
        command("prism_copy", "src", "plain", "--batch-size", "8")
    out, _ = command("prism_copy", "src", "plain", "--skip-existing")
    assert "Copied 0 record(s)" in out and "skipped 30" in out
    assert len(MinimalBackend._data["copy-target"]) == 30


@pytest.mark.django_db(transaction=True, databases=["default", "unreachable"])
def test_copy_into_a_store_that_is_down_fails_with_a_resume_hint(two_stores):
    two_stores("file", "file", down={"BACKEND": "orm", "OPTIONS": {"using": "unreachable"}})
    seed("src", agent_records(5, "src"))
    with pytest.raises(
        CommandError,
        match=r"stopped after 0 record\(s\): BackendUnavailable"
        r".*--skip-existing to resume",
    ):
        command("prism_copy", "src", "down")


def test_verify_reports_records_that_do_not_round_trip(two_stores, settings):
    two_stores(
        "file",
        "file",
        lossy={
            "BACKEND": "tests.test_commands.RoundingStore",
            "OPTIONS": {"name": "lossy"},
        },
    )
    seed("src", {"a": {"score": 1 / 3}, "b": {"score": 1}, "c": {"score": 2 / 3}})
    with pytest.raises(CommandError, match=r"--verify: 2 record\(s\) .* differ.*'a', 'c'"):
        command("prism_copy", "src", "lossy", "--verify")


class RoundingStore(MinimalBackend):
    """A third-party store that loses float precision: what --verify exists to catch."""

    async def _set(self, key: str, value: dict, data: str, ttl: float | None) -> None:
        rounded = {k: round(v, 2) if isinstance(v, float) else v for k, v in value.items()}
        await super()._set(key, rounded, json.dumps(rounded), ttl)


def test_progress_bar_on_a_terminal_only(two_stores):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    two_stores("file", "file")
    seed("src", agent_records(120, "src"))
    out, err = Terminal(), Terminal()
    call_command("prism_copy", "src", "dst", "--batch-size", "50", stdout=out, stderr=err)
    assert "src → dst" in err.getvalue() and "120" in err.getvalue()
    command("prism_copy", "src", "dst", "--overwrite", verbosity=1)  # not a terminal
    quiet_out, quiet_err = Terminal(), Terminal()
    call_command(
        "prism_copy", "src", "dst", "--overwrite", verbosity=0, stdout=quiet_out, stderr=quiet_err
    )
    assert quiet_out.getvalue() == quiet_err.getvalue() == ""


# ----------------------------------------------------------------- export and import


@pytest.mark.parametrize("kind", list(STORE_KINDS))
def test_export_then_import_reproduces_the_store(two_stores, kind, tmp_path):
    two_stores(kind, kind)
    records = {**agent_records(120, "src"), **hostile_records("src")}
    seed("src", records)
    exported = tmp_path / "dump.jsonl"
    out, _ = command("prism_export", "src", "-o", str(exported), "--batch-size", "32")
    assert f"Exported {len(records)} record(s)" in out
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(records)
    assert {json.loads(line)["key"]: json.loads(line)["value"] for line in lines} == records

    out, _ = command("prism_import", "dst", "-i", str(exported), "--batch-size", "50")
    assert f"Imported {len(records)} record(s)" in out
    assert dump("dst") == records
    again = tmp_path / "again.jsonl"
    command("prism_export", "dst", "-o", str(again))
    # The same keys and values, byte for byte (in listing order, which not every store
    # keeps sorted); the metadata is the import's own (a new write).
    assert sorted(map(without_metadata, again.read_bytes().splitlines())) == sorted(
        map(without_metadata, exported.read_bytes().splitlines())
    )


def test_export_streams_to_stdout_and_honours_the_prefix(two_stores):
    two_stores("orm", "file")
    seed("src", {**agent_records(5, "src"), "other": {"x": 1}})
    out, _ = command("prism_export", "src", "--prefix", "agent/")
    # (Lines of a store that keeps versions end with the record's metadata.)
    lines = [without_metadata(line) for line in out.encode().splitlines(keepends=True)]
    expected = sorted(agent_records(5, "src").items())
    assert b"".join(lines) == "".join(dump_record(k, v) for k, v in expected).encode()


def test_export_of_a_store_that_cannot_list_is_refused(settings):
    settings.PRISM_STORAGE = {"default": {"BACKEND": "orm"}, "plain": MINIMAL}
    with pytest.raises(CommandError, match="cannot list its keys"):
        command("prism_export", "plain")


GOOD = '{"key": "ok/1", "value": {"v": 1}}'

BAD_LINES = [
    ("invalid JSON", [GOOD, '{"key": "k", "value": {"v": 1}'], 2, "invalid JSON"),
    ("not an object", [GOOD, GOOD.replace("1", "2"), "[1, 2]"], 3, "not a JSON object"),
    ("missing key", ['{"value": {"v": 1}}'], 1, "missing 'key'"),
    ("missing value", [GOOD, '{"key": "k"}'], 2, "missing 'value'"),
    ("extra field", [GOOD, '{"key": "k", "value": {}, "ttl": 3}'], 2, "unexpected field"),
    ("invalid key", [GOOD, '{"key": "a\\u0000b", "value": {}}'], 2, "invalid key"),
    ("key not a string", ['{"key": 7, "value": {}}'], 1, "invalid key"),
    ("value not a dict", [GOOD, '{"key": "k", "value": [1]}'], 2, "invalid value"),
    (
        "NaN in value",
        [GOOD, '{"key": "k", "value": {"x": NaN}}'],
        2,
        r"invalid value for key 'k': \$\['x'\]",
    ),
    ("blank line", [GOOD, "", GOOD.replace("1", "3")], 2, "blank line"),
    ("whitespace line", [GOOD, "   \t"], 2, "blank line"),
]


@pytest.mark.parametrize(
    ("lines", "lineno", "reason"),
    [case[1:] for case in BAD_LINES],
    ids=[case[0] for case in BAD_LINES],
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_bad_lines_are_reported_with_their_number(
    two_stores, tmp_path, lines, lineno, reason, dry_run
):
    two_stores("file", "orm")
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["dst", "-i", str(source)] + (["--dry-run"] if dry_run else [])
    with pytest.raises(CommandError, match=rf"line {lineno}: {reason}") as error:
        command("prism_import", *args)
    assert "nothing was written" in str(error.value)
    assert dump("dst") == {}


def test_every_bad_line_is_listed_and_none_is_written(two_stores, tmp_path):
    two_stores("file", "orm")
    lines = [GOOD] * 3 + ["nope"] + [GOOD] * 2 + ["{}"] + [GOOD] * 500
    source = tmp_path / "in.jsonl"
    source.write_bytes(("\n".join(lines) + "\n").encode() + b'{"key": "\xff"}\n')
    with pytest.raises(CommandError) as error:
        command("prism_import", "dst", "-i", str(source), "--batch-size", "100")
    message = str(error.value)
    assert "3 bad line(s)" in message
    assert "line 4: invalid JSON" in message
    assert "line 7: missing 'key' and 'value'" in message
    assert "line 508: not UTF-8" in message
    assert dump("dst") == {}


def test_import_dry_run_reports_and_writes_nothing(two_stores, tmp_path):
    two_stores("file", "orm")
    seed("dst", {"agent/00002": {"old": True}})
    source = tmp_path / "in.jsonl"
    source.write_text("".join(dump_record(k, v) for k, v in agent_records(10, "dst").items()))
    out, _ = command("prism_import", "dst", "-i", str(source), "--dry-run", "--overwrite")
    assert "10 valid record(s)" in out and "1 of their keys already exist" in out
    assert "they would be replaced" in out
    assert dump("dst") == {"agent/00002": {"old": True}}


def test_import_conflicts_and_repeated_keys(two_stores, tmp_path):
    two_stores("file", "orm")
    seed("dst", {"a": {"old": True}})
    source = tmp_path / "in.jsonl"
    source.write_text(
        dump_record("a", {"v": 1}) + dump_record("b", {"v": 1}) + dump_record("b", {"v": 2})
    )
    with pytest.raises(CommandError, match=r"already exist in 'dst' \(line 1: 'a'\)"):
        command("prism_import", "dst", "-i", str(source))
    assert dump("dst") == {"a": {"old": True}}

    # Lines are applied in order: with --skip-existing the first line of a key wins ...
    out, _ = command(
        "prism_import", "dst", "-i", str(source), "--skip-existing", "--batch-size", "2"
    )
    assert dump("dst") == {"a": {"old": True}, "b": {"v": 1}}
    assert "Imported 1 record(s)" in out
    # ... otherwise the last one does, within a batch and across batches.
    for size in ("1", "500"):
        command("prism_import", "dst", "-i", str(source), "--overwrite", "--batch-size", size)
        assert dump("dst") == {"a": {"v": 1}, "b": {"v": 2}}


def test_import_from_a_pipe_validates_before_writing(two_stores):
    two_stores("file", "orm")
    records = agent_records(300, "dst")
    good = "".join(dump_record(k, v) for k, v in records.items()).encode()

    def pipe(data: bytes) -> Any:
        read_fd, write_fd = os.pipe()

        def feed() -> None:
            with open(write_fd, "wb") as writer:
                writer.write(data)

        threading.Thread(target=feed, daemon=True).start()
        return open(read_fd, "rb")

    with pipe(good + b"not json\n") as stdin:
        assert not stdin.seekable()
        with pytest.raises(CommandError, match="line 301: invalid JSON"):
            command("prism_import", "dst", "--batch-size", "64", stdin=stdin)
    assert dump("dst") == {}
    with pipe(good) as stdin:
        out, _ = command("prism_import", "dst", "--batch-size", "64", stdin=stdin)
    assert "Imported 300 record(s)" in out
    assert dump("dst") == records


def test_import_enforces_the_stores_size_limit(settings, tmp_path):
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm"},
        "small": {"BACKEND": "tests.test_commands.SmallStore", "OPTIONS": {"name": "small"}},
    }
    source = tmp_path / "in.jsonl"
    source.write_text(dump_record("fits", {"t": "x"}) + dump_record("big", {"t": "x" * 200}))
    with pytest.raises(CommandError, match="line 2: the value of 'big' is 208 bytes as JSON"):
        command("prism_import", "small", "-i", str(source))


class SmallStore(MinimalBackend):
    max_value_bytes = 100


# ----------------------------------------------------------------------- prism_sweep


@pytest.fixture
def expiring_stores(settings, tmp_path):
    clock = FakeClock()
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm"},
        "files": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path), "clock": clock}},
        "rows": {"BACKEND": "orm", "OPTIONS": {"namespace": "sweep-rows", "clock": clock}},
        "plain": MINIMAL,
    }
    for alias in ("files", "rows"):
        seed(alias, {f"{alias}/short/{i}": {"i": i} for i in range(3)}, ttl=10)
        seed(alias, {f"{alias}/long/{i}": {"i": i} for i in range(2)}, ttl=1000)
        seed(alias, {f"{alias}/forever": {"i": 0}})
    return clock


def test_sweep_removes_expired_records_and_counts_them(expiring_stores):
    expiring_stores.advance(60)
    out, _ = command("prism_sweep")
    assert "files: removed 3 expired record(s)" in out
    assert "rows: removed 3 expired record(s)" in out
    assert "plain: skipped (the minimal store has no expiry)" in out
    assert "Removed 6 expired record(s) from 3 store(s)" in out  # default, files, rows
    assert sorted(dump("files")) == ["files/forever", "files/long/0", "files/long/1"]
    out, _ = command("prism_sweep", "files", "rows")
    assert "files: removed 0" in out and "rows: removed 0" in out


def test_sweep_of_a_named_store_without_expiry_is_an_error(expiring_stores):
    with pytest.raises(CommandError, match=r"Nothing to sweep in 'plain' \(the minimal store"):
        command("prism_sweep", "files", "plain")
    expiring_stores.advance(60)
    assert len(dump("files")) == 3  # refused before sweeping anything: expired ones hidden
    out, _ = command("prism_sweep", "files")
    assert "removed 3" in out


@pytest.mark.django_db(transaction=True, databases=["default", "unreachable"])
def test_sweep_reports_a_store_that_is_down_and_sweeps_the_others(expiring_stores, settings):
    settings.PRISM_STORAGE = {
        **settings.PRISM_STORAGE,
        "down": {"BACKEND": "orm", "OPTIONS": {"using": "unreachable"}},
    }
    expiring_stores.advance(60)
    with pytest.raises(CommandError, match=r"1 store\(s\) could not be swept: down"):
        command("prism_sweep")
    assert len(dump("files")) == 3 and len(dump("rows")) == 3


# ----------------------------------------------------------------------- prism_purge


@pytest.fixture
def purge_store(settings, store_config):
    def configure(kind: str) -> dict[str, dict]:
        settings.PRISM_STORAGE = {
            "default": {"BACKEND": "orm"},
            "store": store_config(kind, "purge"),
            "plain": MINIMAL,
        }
        records = {
            **agent_records(3, "store", prefix="acme"),
            **agent_records(2, "store", prefix="acme-2"),
            **agent_records(2, "store", prefix="a%_*"),
        }
        seed("store", records)
        return records

    return configure


@pytest.mark.parametrize("kind", list(STORE_KINDS))
def test_purge_erases_only_the_prefix(purge_store, kind):
    records = purge_store(kind)
    out, _ = command("prism_purge", "store", "--prefix", "acme/", "--noinput")
    assert "store: erased 3 record(s) under prefix 'acme/'." in out
    assert sorted(dump("store")) == sorted(k for k in records if not k.startswith("acme/"))
    out, _ = command("prism_purge", "store", "--prefix", "a%_*", "--noinput")
    assert "erased 2 record(s)" in out
    assert sorted(dump("store")) == ["acme-2/00000", "acme-2/00001"]


def test_purge_dry_run_counts_and_erases_nothing(purge_store):
    records = purge_store("file")
    out, _ = command("prism_purge", "store", "--prefix", "acme", "--dry-run")
    assert out.strip() == "store: would erase 5 record(s) under prefix 'acme'."
    assert sorted(dump("store")) == sorted(records)


def test_purge_asks_for_confirmation(purge_store, monkeypatch):
    records = purge_store("memory")
    questions: list[str] = []
    answers = iter(["no", "yes"])

    def answer(question: str) -> str:
        questions.append(question)
        return next(answers)

    monkeypatch.setattr("builtins.input", answer)
    with pytest.raises(CommandError, match="cancelled; nothing was erased"):
        command("prism_purge", "store", "--prefix", "acme-2/")
    assert "Erase 2 record(s) of store 'store' under prefix 'acme-2/'?" in questions[0]
    assert sorted(dump("store")) == sorted(records)
    out, _ = command("prism_purge", "store", "--prefix", "acme-2/")
    assert "erased 2 record(s)" in out
    out, _ = command("prism_purge", "store", "--prefix", "nobody/")
    assert "no record under prefix 'nobody/'; nothing to erase." in out
    assert len(questions) == 2  # nothing to erase: no question


def test_purge_of_everything_needs_all(purge_store):
    purge_store("orm")
    with pytest.raises(CommandError, match="--all"):
        command("prism_purge", "store", "--noinput")
    with pytest.raises(CommandError, match="either --prefix or --all"):
        command("prism_purge", "store", "--prefix", "a", "--all", "--noinput")
    assert len(dump("store")) == 7
    out, _ = command("prism_purge", "store", "--all", "--noinput")
    assert "store: erased 7 record(s) (the whole store)." in out
    assert dump("store") == {}


def test_purge_arguments_are_validated(purge_store):
    purge_store("memory")
    with pytest.raises(CommandError, match="no store 'nope'"):
        command("prism_purge", "nope", "--prefix", "a", "--noinput")
    with pytest.raises(CommandError, match="control"):
        command("prism_purge", "store", "--prefix", "a\x00", "--noinput")
    with pytest.raises(CommandError, match="cannot list its keys"):
        command("prism_purge", "plain", "--prefix", "a", "--noinput")


# ----------------------------------------------------------------------- prism_check


@pytest.mark.parametrize("kind", list(STORE_KINDS))
def test_check_reports_a_healthy_store(settings, store_config, kind):
    settings.PRISM_STORAGE = {"default": {"BACKEND": "orm"}, "store": store_config(kind)}
    out, _ = command("prism_check", "store", "--write")
    header, row = out.splitlines()
    assert header.split()[:5] == ["STORE", "BACKEND", "STATUS", "PING", "WRITE"]
    assert row.split()[:3] == ["store", storages["store"].backend_name, "ok"]
    assert row.split()[3].endswith("ms") and row.split()[4].endswith("ms")
    assert dump("store") == {}  # the probe record was deleted

    out, _ = command("prism_check", "store", "--json")
    (report,) = json.loads(out)
    assert report["healthy"] is True and report["status"] == "ok"
    assert report["backend"] == storages["store"].backend_name
    assert report["capabilities"] == storages["store"].capabilities
    assert report["ping_ms"] >= 0 and report["write_ms"] is None


@pytest.mark.django_db(transaction=True, databases=["default", "unreachable"])
def test_check_fails_when_a_store_is_down(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm"},
        "files": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path / "ok")}},
        "db_down": {"BACKEND": "orm", "OPTIONS": {"using": "unreachable"}},
        "no_dir": {"BACKEND": "file", "OPTIONS": {"data_dir": str(blocker / "store")}},
        "typo": {"BACKEND": "file", "OPTIONS": {"data_dri": "x"}},
    }
    with pytest.raises(CommandError, match=r"3 of 5 store\(s\) unhealthy: db_down, no_dir, typo"):
        out, _ = command("prism_check", "--json")
    out, _ = command("prism_check", "files", "default")
    assert out.count(" ok ") == 2

    stdout = io.StringIO()
    with pytest.raises(CommandError):
        call_command("prism_check", "--json", stdout=stdout)
    report = {item["alias"]: item for item in json.loads(stdout.getvalue())}
    assert report["db_down"]["status"] == "down"
    assert report["db_down"]["error"].startswith("BackendUnavailableError: The 'orm' store")
    assert "\n" not in report["db_down"]["error"]
    assert report["no_dir"]["status"] == "down"
    assert report["typo"]["status"] == "error" and "data_dri" in report["typo"]["error"]
    assert report["files"]["healthy"] and report["default"]["healthy"]


def test_check_reports_a_redis_server_that_is_not_there(settings):
    from tests.support.redis import free_port

    url = f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0"
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm"},
        "cache": {"BACKEND": "redis", "OPTIONS": {"url": url}},
    }
    stdout = io.StringIO()
    started = time.monotonic()
    with pytest.raises(CommandError, match=r"1 of 1 store\(s\) unhealthy: cache"):
        call_command("prism_check", "cache", "--json", stdout=stdout)
    assert time.monotonic() - started < 15
    (report,) = json.loads(stdout.getvalue())
    assert report["status"] == "down" and report["backend"] == "redis"
    assert "s3cret-pass" not in stdout.getvalue()


def test_check_exit_status_from_the_command_line(tmp_path):
    """What a container health check sees: status 0 when healthy, 1 when a store is down."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    healthy = {"files": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path / "ok")}}}
    broken = {**healthy, "no_dir": {"BACKEND": "file", "OPTIONS": {"data_dir": str(blocker / "x")}}}
    for storage, status in ((healthy, 0), (broken, 1)):
        result = subprocess.run(
            [sys.executable, "-m", "django", "prism_check", "--verbosity", "0"],
            cwd=ROOT,
            env=_subprocess_env(storage),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == status, result.stderr
        assert result.stdout == ""
        assert ("no_dir" in result.stderr) is (status == 1)


def test_unknown_alias_lists_the_configured_ones(settings):
    settings.PRISM_STORAGE = {"default": {"BACKEND": "orm"}, "files": MINIMAL}
    for name, args in [
        ("prism_check", ["nope"]),
        ("prism_sweep", ["nope"]),
        ("prism_export", ["nope"]),
        ("prism_import", ["nope"]),
    ]:
        with pytest.raises(CommandError, match=r"no store 'nope'.*default, files"):
            command(name, *args)


# --------------------------------------------------- versions, timestamps and expiry


@pytest.fixture
def memory_pair(settings):
    """``src`` and ``dst`` memory stores (versions, ttl), ``plain`` one without versions."""
    run = uuid.uuid4().hex[:8]
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm"},
        "src": {"BACKEND": "memory", "OPTIONS": {"name": f"cmd-src-{run}"}},
        "dst": {"BACKEND": "memory", "OPTIONS": {"name": f"cmd-dst-{run}"}},
        "plain": memory_variant("Unversioned", f"cmd-plain-{run}"),
        "minimal": {**MINIMAL, "OPTIONS": {"name": f"cmd-minimal-{run}"}},
    }


def test_export_lines_carry_the_record_metadata(memory_pair):
    seed("src", {"forever": {"n": 1}})
    seed("src", {"session": {"n": 2}}, ttl=3600)
    out, _ = command("prism_export", "src")
    lines = {line["key"]: line for line in map(json.loads, out.splitlines())}
    stored = records_of("src", ["forever", "session"])
    for key, record in stored.items():
        assert lines[key] == {
            "key": key,
            "value": record.value,
            "version": record.version,
            "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(),
            "expires_at": record.expires_at and record.expires_at.isoformat(),
        }
    assert lines["forever"]["expires_at"] is None and lines["session"]["expires_at"]
    # A store without metadata exports the plain format, as before.
    seed("plain", {"k": {"n": 1}})
    assert command("prism_export", "plain")[0] == dump_record("k", {"n": 1})


def test_import_is_a_new_write_that_keeps_the_time_left(memory_pair, tmp_path):
    seed("src", {"forever": {"n": 1}})
    seed("src", {"session": {"n": 2}}, ttl=3600)
    exported = tmp_path / "dump.jsonl"
    command("prism_export", "src", "-o", str(exported))
    before = datetime.now(UTC)
    out, _ = command("prism_import", "dst", "-i", str(exported))
    assert "Imported 2 record(s)" in out
    source = records_of("src", ["forever", "session"])
    copied = records_of("dst", ["forever", "session"])
    for key in source:
        assert copied[key].value == source[key].value
        assert copied[key].version != source[key].version  # a new write
        assert copied[key].created_at >= before > source[key].created_at
    assert copied["forever"].expires_at is None
    # The remaining TTL is kept: the same expiry (computed again at the write).
    assert abs(copied["session"].expires_at - source["session"].expires_at) < timedelta(seconds=5)


def test_import_skips_what_has_expired_and_warns_where_expiry_cannot_be_kept(memory_pair, tmp_path):
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    meta = '"version":"v1","created_at":"{t}","updated_at":"{t}","expires_at":{e}'
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"key":"gone","value":{"n":1},' + meta.format(t=past, e=f'"{past}"') + "}\n"
        '{"key":"live","value":{"n":2},' + meta.format(t=past, e=f'"{future}"') + "}\n"
    )
    out, _ = command("prism_import", "dst", "-i", str(source))
    assert "Imported 1 record(s)" in out and "1 already expired" in out
    assert dump("dst") == {"live": {"n": 2}}
    # A store that cannot expire records takes them without an expiry, and says so.
    out, err = command("prism_import", "minimal", "-i", str(source))
    assert "Imported 1 record(s)" in out
    assert "1 record(s) had an expiry that 'minimal' cannot keep" in err


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        (',"version":"v1"', "record metadata without"),
        (',"version":"","created_at":"{t}","updated_at":"{t}","expires_at":null', "version"),
        (',"version":"v","created_at":"yesterday","updated_at":"{t}","expires_at":null', "ISO"),
        (
            ',"version":"v","created_at":"2026-01-01T00:00:00","updated_at":"{t}",'
            '"expires_at":null',
            "time zone",
        ),
    ],
)
def test_import_refuses_malformed_metadata(memory_pair, tmp_path, metadata, reason):
    now = datetime.now(UTC).isoformat()
    source = tmp_path / "in.jsonl"
    source.write_text('{"key":"k","value":{}' + metadata.format(t=now) + "}\n")
    with pytest.raises(CommandError, match=reason):
        command("prism_import", "dst", "-i", str(source))
    assert dump("dst") == {}


def test_copy_is_a_new_write_that_keeps_the_time_left(memory_pair):
    seed("src", {"forever": {"n": 1}})
    seed("src", {"session": {"n": 2}}, ttl=3600)
    before = datetime.now(UTC)
    command("prism_copy", "src", "dst", "--verify")
    source = records_of("src", ["forever", "session"])
    copied = records_of("dst", ["forever", "session"])
    for key in source:
        assert copied[key].value == source[key].value
        assert copied[key].version != source[key].version
        assert copied[key].created_at >= before > source[key].created_at
    assert copied["forever"].expires_at is None
    assert abs(copied["session"].expires_at - source["session"].expires_at) < timedelta(seconds=5)
    # From a store without metadata, as before: values only.
    seed("plain", {"p": {"n": 3}})
    command("prism_copy", "plain", "dst", "--skip-existing")
    assert records_of("dst", ["p"])["p"].expires_at is None
