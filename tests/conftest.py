"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.db import connections


@pytest_asyncio.fixture
async def close_db_connections():
    """Close the connections Django's async ORM opened in asgiref's worker thread.

    pytest-django only manages the main thread's connection; without this PostgreSQL
    teardown stalls on "database is being accessed by other users". Awaited on the test's
    own loop, the close runs in the same thread-sensitive executor the test's ORM calls used.
    """
    yield
    await sync_to_async(connections.close_all, thread_sensitive=True)()


def pytest_collection_modifyitems(config, items):
    from tests.support.mariadb import skip_unless_available

    skip_unless_available(items)
    _leave_out_slow_tests(config, items)


def _leave_out_slow_tests(config, items):
    """Deselect the tests marked ``slow`` unless a ``-m`` expression chooses tests or the
    command line names their file or a directory holding it: ``bash scripts/test.sh``
    runs the suite without them, ``bash scripts/test.sh -m slow`` runs them alone (CI runs
    both), and ``bash scripts/test.sh tests/reliability`` runs that directory whole."""
    if config.option.markexpr:
        return
    named = set()
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        named = {Path(arg.split("::")[0]).resolve() for arg in config.args}
    kept, slow = [], []
    for item in items:
        chosen = item.path in named or not named.isdisjoint(item.path.parents)
        (kept if chosen or not item.get_closest_marker("slow") else slow).append(item)
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = kept


# Fixtures of tests/support, made visible to every test module.
from tests.support.postgres import throwaway_postgres  # noqa: E402, F401
from tests.support.redis import redis_cluster, redis_server  # noqa: E402, F401
from tests.support.stores import (  # noqa: E402, F401
    file_store_config,
    memory_store_config,
    orm_store_config,
    redis_store_config,
    store_config,
)
from tests.support.supabase import (  # noqa: E402, F401
    postgrest_standin,
    supabase_admin,
    supabase_database,
    supabase_store_config,
    supabase_table,
)
from tests.support.vector import (  # noqa: E402, F401
    milvus_db,
    pinecone_server,
    vector_store_config,
)
