"""What the ``prism_*`` management commands share: alias arguments, the one event loop a
command runs on, store handling, conflict policy and the progress bar.

Every command runs its async work with exactly one :func:`run` call, so a command opens
each client once, and closes the stores it used (see :func:`using_stores`) before the loop
ends. Interrupting a command (Ctrl-C) cancels that work; the ``finally`` blocks still run.

The commands read and write their files and streams directly on that loop: the loop runs
one sequential pipeline and nothing else, so a blocking write delays nothing, and no
worker thread is left blocked on a terminal read when the command is interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any, Protocol, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from ..backends.base import MAX_PAGE_SIZE, BaseStorageBackend
from ..codec import validate_key
from ..exceptions import InvalidKeyError

__all__ = [
    "INTERRUPTED",
    "OnExisting",
    "Progress",
    "add_existing_arguments",
    "batch_size",
    "configured_aliases",
    "error_text",
    "key_batches",
    "open_store",
    "progress_bar",
    "run",
    "store_alias",
    "using_stores",
]

T = TypeVar("T")

#: Keys listed per ``keys()`` call. Larger than a batch because one listing call may cost a
#: scan of the whole store (a file store reads its directory for every page).
LIST_PAGE_SIZE = 5000
#: The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130
DEFAULT_BATCH_SIZE = 500


def configured_aliases() -> list[str]:
    """The aliases configured in ``PRISM_STORAGE``, sorted."""
    from ..handler import storages

    return sorted(storages.settings)


def store_alias(value: str) -> str:
    """argparse ``type=`` for a store alias: it must be configured in ``PRISM_STORAGE``."""
    aliases = configured_aliases()
    if value not in aliases:
        raise argparse.ArgumentTypeError(
            f"no store {value!r} in PRISM_STORAGE; configured stores: "
            f"{', '.join(aliases) or 'none'}"
        )
    return value


def batch_size(value: str) -> int:
    """argparse ``type=`` for ``--batch-size``: an int from 1 to the largest key page."""
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_PAGE_SIZE}, not {size}")
    return size


def add_batch_size_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-size",
        type=batch_size,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"records per batch read and write (default {DEFAULT_BATCH_SIZE})",
    )


def key_prefix(value: str) -> str:
    """argparse ``type=`` for ``--prefix``: empty, or obeying the key rules."""
    if value:
        try:
            validate_key(value)
        except InvalidKeyError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_prefix_argument(parser: argparse.ArgumentParser, description: str) -> None:
    parser.add_argument("--prefix", type=key_prefix, default="", help=description)


class OnExisting(enum.Enum):
    """What to do when a record's key already exists in the destination store."""

    REFUSE = "refuse"
    OVERWRITE = "overwrite"
    SKIP = "skip"


def add_existing_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="replace records whose key already exists in the destination",
    )
    group.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep records whose key already exists in the destination (resumes a copy)",
    )


def on_existing(options: dict[str, Any]) -> OnExisting:
    """The conflict policy chosen by ``--overwrite`` / ``--skip-existing`` (default: refuse)."""
    if options["overwrite"] and options["skip_existing"]:
        # argparse refuses both on a command line; call_command(...) does not check groups.
        raise CommandError("--overwrite and --skip-existing exclude each other.")
    if options["overwrite"]:
        return OnExisting.OVERWRITE
    if options["skip_existing"]:
        return OnExisting.SKIP
    return OnExisting.REFUSE


def open_store(alias: str) -> BaseStorageBackend:
    """``storages[alias]``, with a configuration mistake turned into a CommandError."""
    from ..handler import storages

    try:
        return storages[alias]
    except ImproperlyConfigured as exc:
        raise CommandError(f"Store {alias!r} is misconfigured: {exc}") from exc


def require_listing(store: BaseStorageBackend, alias: str, role: str) -> None:
    if not store.supports_listing:
        raise CommandError(
            f"{role} store {alias!r} ({store.backend_name}) cannot list its keys, so it "
            "cannot be read record by record."
        )


async def key_batches(
    store: BaseStorageBackend, prefix: str, size: int
) -> AsyncIterator[list[str]]:
    """Yield the keys starting with ``prefix`` in lists of at most ``size``."""
    cursor: str | None = None
    while True:
        page = await store.keys(prefix, limit=max(size, LIST_PAGE_SIZE), cursor=cursor)
        for start in range(0, len(page.keys), size):
            yield page.keys[start : start + size]
        if page.cursor is None:
            return
        cursor = page.cursor


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's async work on one event loop and return its result."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    coroutine.close()
    raise CommandError(
        "This command cannot run inside a running event loop; call it from sync code "
        "(for example through asgiref.sync.sync_to_async(call_command))."
    )


@contextlib.asynccontextmanager
async def using_stores(stores: Iterable[BaseStorageBackend]) -> AsyncIterator[None]:
    """Close ``stores`` when the block ends. A failure to close never hides the block's own
    error (that error is what the user needs to see)."""
    unique = list({id(store): store for store in stores}.values())
    try:
        yield
    except BaseException:
        for store in unique:
            with contextlib.suppress(Exception):
                await store.close()
        raise
    for store in unique:
        await store.close()


def error_text(exc: BaseException) -> str:
    """A one-line description of an error (backend messages are already redacted)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Progress(Protocol):
    def update(self, n: int) -> Any: ...

    def set_postfix_str(self, s: str) -> Any: ...

    def close(self) -> Any: ...


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


class _PartialLineWriter:
    """Lets tqdm redraw its line on ``command.stderr``: OutputWrapper appends a newline to
    every write unless told otherwise, and tqdm writes ``\\r``-terminated updates."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self._wrapper = wrapper

    def write(self, text: str) -> None:
        self._wrapper.write(text, ending="")

    def flush(self) -> None:
        self._wrapper.flush()


def progress_bar(command: BaseCommand, verbosity: int, description: str) -> Progress:
    """A tqdm bar on ``command.stderr`` when a person is watching: verbosity >= 1 and both
    output streams are terminals. Otherwise (cron, CI, pipes) an object that does nothing.
    Without tqdm installed (the ``progress`` extra) there is no bar either."""
    if verbosity < 1 or not (command.stdout.isatty() and command.stderr.isatty()):
        return _NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoProgress()
    bar: Progress = tqdm(
        desc=description,
        unit="rec",
        unit_scale=True,
        dynamic_ncols=True,
        file=_PartialLineWriter(command.stderr),
    )
    return bar
