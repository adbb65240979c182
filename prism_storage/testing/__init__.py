"""Testing helpers, including the conformance suite every backend must pass.

Test a backend of your own by subclassing :class:`StorageConformanceTests` and providing a
``make_store`` fixture (see its docstring). Needs ``pytest`` and ``pytest-asyncio``.
"""

from .conformance import FakeClock, StorageConformanceTests

__all__ = ["FakeClock", "StorageConformanceTests"]
