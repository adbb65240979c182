"""Observability beyond the conformance suite: the quiet path, the DEBUG and WARNING logs,
keys in spans only when opted in, the metrics, and the setting's check."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import uuid

import pytest
from django.core.checks import run_checks

from prism_storage import MemoryStorageBackend
from prism_storage.backends.base import BaseStorageBackend
from prism_storage.exceptions import InvalidValueError
from prism_storage.observability import observed
from prism_storage.signals import record_saved
from prism_storage.testing.conformance.observability import in_memory_telemetry

VALUE = {"note": "a-value-no-log-may-show-5521"}
KEY = "user-4471-private-key"


def memory_store(alias: str = "obs") -> MemoryStorageBackend:
    store = MemoryStorageBackend(f"observability-{uuid.uuid4().hex[:8]}")
    store.alias = alias
    return store


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_unobserved_calls_return_the_methods_own_coroutine():
    # A fresh process: no receiver, no OpenTelemetry provider, logging at WARNING.
    out = run_python(
        """
        import asyncio
        from prism_storage import MemoryStorageBackend
        from prism_storage.backends.base import BaseStorageBackend

        store = MemoryStorageBackend("quiet")
        coroutine = store.get("k")
        print(coroutine.cr_code is BaseStorageBackend.get.__wrapped__.__code__)
        print(asyncio.run(coroutine))
        """
    )
    assert out.split() == ["True", "None"]


def test_without_opentelemetry_nothing_of_it_is_imported():
    out = run_python(
        """
        import asyncio, logging, sys

        class NoOpenTelemetry:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "opentelemetry":
                    raise ModuleNotFoundError(name)

        sys.meta_path.insert(0, NoOpenTelemetry())
        logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)
        from prism_storage import MemoryStorageBackend

        async def main():
            store = MemoryStorageBackend("absent")
            await store.set("k", {"v": 1})
            return await store.get("k")

        print(asyncio.run(main()))
        print(any(name.startswith("opentelemetry") for name in sys.modules))
        """
    )
    assert "set on store None (memory): 1 key(s)" in out
    assert out.strip().splitlines()[-2:] == ["{'v': 1}", "False"]


def test_the_wrapper_is_a_coroutine_function_for_asgiref_and_asyncio():
    from asgiref.sync import iscoroutinefunction

    assert iscoroutinefunction(BaseStorageBackend.get)
    assert iscoroutinefunction(MemoryStorageBackend.sweep)  # an observed override


async def test_debug_log_names_the_operation_but_no_key_or_value(caplog):
    caplog.set_level(logging.DEBUG, logger="prism_storage")
    store = memory_store("agents")
    await store.set(KEY, VALUE)
    await store.get_many([KEY, "other"])
    with pytest.raises(InvalidValueError):
        await store.set(KEY, {"v": {1}})
    messages = [r.getMessage() for r in caplog.records if r.name == "prism_storage.operations"]
    assert messages[0].startswith("set on store 'agents' (memory): 1 key(s), ")
    assert messages[0].endswith(" ms, ok")
    assert messages[1].startswith("get_many on store 'agents' (memory): 2 key(s), ")
    assert messages[2].endswith("failed (prism_storage.exceptions.InvalidValueError)")
    for message in messages:
        assert KEY not in message and "a-value-no-log-may-show" not in message


class InterruptedOnce(MemoryStorageBackend):
    """A store where another writer gets in between update()'s first read and write."""

    interrupted = False

    async def _get_record(self, key):
        record = await super()._get_record(key)
        if not self.interrupted:
            self.interrupted = True
            await self.set(key, {"n": 10})
        return record


async def test_update_retries_are_warnings(caplog):
    caplog.set_level(logging.WARNING, logger="prism_storage")
    store = InterruptedOnce(f"retry-{uuid.uuid4().hex[:6]}")
    store.alias = "obs"
    await store._set(KEY, {"n": 0}, '{"n":0}', None)
    assert await store.update(KEY, lambda value: {"n": value["n"] + 1}) == {"n": 11}
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "update on store 'obs': another writer got in first; retry 1 of 15"
    )


async def test_keys_reach_spans_only_when_opted_in(settings):
    telemetry = in_memory_telemetry()
    store = memory_store()
    await store.set(KEY, VALUE)
    settings.PRISM_STORAGE_TRACE_KEYS = True
    await store.set(KEY, VALUE)
    await store.delete_many(["a", "b", "a"])
    plain, with_key, batch = telemetry.spans(store)
    assert "gen_ai.memory.record.id" not in plain.attributes and KEY not in plain.to_json()
    assert with_key.attributes["gen_ai.memory.record.id"] == KEY
    assert batch.attributes["prism.keys"] == ("a", "b")
    assert batch.attributes["prism.batch.size"] == 2
    assert batch.name == "delete_memory obs"


async def test_metrics_count_operations_errors_and_latency_per_alias():
    telemetry = in_memory_telemetry()
    alias = f"metrics-{uuid.uuid4().hex[:6]}"
    store = memory_store(alias)
    await store.set("a", {"v": 1})
    await store.get("a")
    await store.get("b")
    with pytest.raises(InvalidValueError):
        await store.set("c", {"v": {1}})
    counts = telemetry.operation_counts(alias)
    assert counts[("prism_storage.operations", "get")] == 2
    assert counts[("prism_storage.operations", "set")] == 2
    assert counts[("prism_storage.errors", "set")] == 1
    assert ("prism_storage.errors", "get") not in counts
    assert counts[("prism_storage.operation.duration", "get")] == 2


async def test_a_new_public_method_is_observed_with_one_decorator():
    class Touching(MemoryStorageBackend):
        @observed("touch", gen_ai="update_memory", signal=record_saved)
        async def touch(self, key: str) -> bool:
            return await self.exists(key)

    telemetry = in_memory_telemetry()
    store = Touching(f"touch-{uuid.uuid4().hex[:6]}")
    store.alias = "touching"
    assert await store.touch("k") is False
    exists, touch = sorted(telemetry.spans(store), key=lambda s: s.attributes["prism.operation"])
    assert touch.name == "update_memory touching"
    assert exists.parent.span_id == touch.context.span_id  # nested operations nest spans


def test_trace_keys_setting_is_checked(settings):
    settings.PRISM_STORAGE_TRACE_KEYS = "yes"
    ids = [m.id for m in run_checks(tags=["prism_storage"])]
    assert "prism_storage.E020" in ids
    settings.PRISM_STORAGE_TRACE_KEYS = True
    assert "prism_storage.E020" not in [m.id for m in run_checks(tags=["prism_storage"])]
