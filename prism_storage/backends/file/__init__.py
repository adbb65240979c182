"""``file``: one JSON file per key in a directory (see :mod:`.backend`)."""

from .backend import FileStorageBackend

__all__ = ["FileStorageBackend"]
