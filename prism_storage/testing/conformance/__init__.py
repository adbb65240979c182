"""The shared semantics of every storage backend, written once.

Subclass :class:`StorageConformanceTests` in a test module (its name must start with
``Test`` for pytest to collect it) and provide a ``make_store`` fixture::

    class TestMyBackend(StorageConformanceTests):
        @pytest.fixture
        def make_store(self, tmp_path):
            def make(namespace="main", **options):
                return MyBackend(root=tmp_path / namespace, **options)
            return make

``make_store(namespace, **options)`` returns a new, empty store; stores made with
different namespaces must be isolated from each other. ``options`` may contain ``ttl``
(a default expiry) and, for backends whose ``ttl_uses_clock`` is true, ``clock``.

Optionally provide ``make_unavailable_store``: a factory of a store whose server cannot be
reached. Without it the outage cases are reported as skipped (never as passed).

A case that does not apply to a store (listing on a store that cannot list, TTL on a store
without expiry) is skipped with ``pytest.skip`` and says why; the store's capability flags
decide. Each group of cases lives in a module of its own; the samples and hypothesis
strategies are importable for a backend's own tests.
"""

from __future__ import annotations

from ..clock import FakeClock
from .basic import BasicOperationCases
from .batches import BatchCases
from .capabilities import CapabilityCases
from .concurrency import ConcurrencyCases
from .erasure import ErasureCases, ScopeCases
from .expiry import ExpiryCases
from .fixtures import StoreFactory, StoreFixtures
from .isolation import IsolationCases
from .keys import KeyCases
from .listing import ListingCases
from .listing_churn import ListingUnderWritesCases
from .lists import AtomicListCases
from .observability import ObservabilityCases
from .outages import OutageCases
from .samples import (
    AGENT_RECORD,
    HOSTILE_KEYS,
    INVALID_KEYS,
    INVALID_VALUES,
    ROUND_TRIP_VALUES,
    nested_value,
)
from .strategies import any_keys, any_text, expected_refusal, json_like_values
from .values import ValueCases
from .versions import VersionCases

__all__ = [
    "AGENT_RECORD",
    "HOSTILE_KEYS",
    "INVALID_KEYS",
    "INVALID_VALUES",
    "ROUND_TRIP_VALUES",
    "FakeClock",
    "StorageConformanceTests",
    "StoreFactory",
    "any_keys",
    "any_text",
    "expected_refusal",
    "json_like_values",
    "nested_value",
]


class StorageConformanceTests(
    StoreFixtures,
    BasicOperationCases,
    KeyCases,
    ValueCases,
    BatchCases,
    ListingCases,
    ListingUnderWritesCases,
    IsolationCases,
    ErasureCases,
    ScopeCases,
    ConcurrencyCases,
    ExpiryCases,
    CapabilityCases,
    OutageCases,
    VersionCases,
    AtomicListCases,
    ObservabilityCases,
):
    """The shared semantics of DESIGN §2, run against the store ``make_store`` builds."""
