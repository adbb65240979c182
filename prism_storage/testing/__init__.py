"""Testing helpers, including the conformance suite every backend must pass.

Test a backend of your own by subclassing :class:`StorageConformanceTests` and providing a
``make_store`` fixture (see :mod:`prism_storage.testing.conformance`). The suite needs the
``testing`` extra (``pip install "prism-storage[testing]"``: pytest, pytest-asyncio and
hypothesis) and runs its async cases with pytest-asyncio's ``asyncio_mode = "auto"``.
"""

from .clock import FakeClock
from .conformance import StorageConformanceTests

__all__ = ["FakeClock", "StorageConformanceTests"]
