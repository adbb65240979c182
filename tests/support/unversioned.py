"""A store that keeps no versions: the memory backend with its record flags turned off.

The API, the admin and the commands must keep their behaviour of before versioned records
for such stores (third-party backends, engines that cannot); this one stands for them in
tests whatever the built-in backends support.
"""

from __future__ import annotations

from prism_storage.backends.memory import MemoryStorageBackend


class UnversionedMemoryBackend(MemoryStorageBackend):
    supports_versions = False
    supports_conditional_writes = False
    supports_atomic_lists = False


def unversioned_config(name: str) -> dict:
    return {
        "BACKEND": "tests.support.unversioned.UnversionedMemoryBackend",
        "OPTIONS": {"name": name},
    }
