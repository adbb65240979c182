"""Observability: the signals every store sends after a successful operation (and never
after a failed one), and the OpenTelemetry spans and metrics of its operations.

The span cases need ``opentelemetry-sdk``; without it they are skipped and say so. The
SDK's providers can be set once per process, so :func:`in_memory_telemetry` installs one
tracer provider with an in-memory exporter and one meter provider with an in-memory
reader for the whole session; each case clears the exporter first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ...backends.base import BaseStorageBackend
from ...exceptions import InvalidValueError, VersionConflictError
from ...observability import refresh_telemetry
from ...signals import prefix_deleted, record_deleted, record_saved, records_expired
from ..clock import FakeClock
from .fixtures import StoreFactory

__all__ = ["InMemoryTelemetry", "ObservabilityCases", "SignalLog", "in_memory_telemetry"]

#: A value no span or signal may carry.
_SECRET_VALUE = {"note": "value-that-must-not-be-traced-7731"}


@dataclass
class SignalLog:
    """What the three signals sent, as ``(signal name, sender, kwargs)`` tuples."""

    events: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)

    def receiver(self, name: str) -> Any:
        def receive(sender: Any, signal: Any = None, **kwargs: Any) -> None:
            self.events.append((name, sender, kwargs))

        return receive

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for event, _, kwargs in self.events if event == name]

    def saved_keys(self) -> list[str]:
        return [kwargs["key"] for kwargs in self.of("saved")]

    def deleted_keys(self) -> list[str]:
        return [kwargs["key"] for kwargs in self.of("deleted")]

    def take(self) -> list[tuple[str, Any, dict[str, Any]]]:
        events, self.events = self.events, []
        return events


@dataclass
class InMemoryTelemetry:
    """The session's OpenTelemetry SDK providers and their in-memory exporter and reader."""

    exporter: Any
    reader: Any

    def spans(self, store: BaseStorageBackend) -> list[Any]:
        """Finished spans of ``store``'s backend, oldest first."""
        return [
            span
            for span in self.exporter.get_finished_spans()
            if span.attributes.get("prism.backend") == store.backend_name
        ]

    def operation_counts(self, alias: str) -> dict[tuple[str, str], int]:
        """``{(metric name, operation): total}`` of the counters for ``alias``."""
        totals: dict[tuple[str, str], int] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        attributes = point.attributes
                        if attributes.get("gen_ai.memory.store.id") != alias:
                            continue
                        name = (metric.name, attributes["prism.operation"])
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count  # a histogram: how many were recorded
                        totals[name] = totals.get(name, 0) + value
        return totals


_telemetry: InMemoryTelemetry | None = None


def in_memory_telemetry() -> InMemoryTelemetry:
    """Install (once per process) SDK providers exporting to memory, or skip."""
    global _telemetry
    if _telemetry is None:
        pytest.importorskip("opentelemetry.sdk", reason="the span cases need opentelemetry-sdk")
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        reader = InMemoryMetricReader()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        if trace.get_tracer_provider() is not tracer_provider:
            pytest.skip("another OpenTelemetry tracer provider is set in this process")
        refresh_telemetry()
        _telemetry = InMemoryTelemetry(exporter, reader)
    _telemetry.exporter.clear()
    return _telemetry


class ObservabilityCases:
    """Signals for every write, batches included, only on success; one span per operation."""

    @pytest.fixture
    def signal_log(self) -> Iterator[SignalLog]:
        log = SignalLog()
        receivers = {
            "saved": (record_saved, log.receiver("saved")),
            "deleted": (record_deleted, log.receiver("deleted")),
            "expired": (records_expired, log.receiver("expired")),
            "erased": (prefix_deleted, log.receiver("erased")),
        }
        for signal, receive in receivers.values():
            signal.connect(receive, weak=False)
        yield log
        for signal, receive in receivers.values():
            signal.disconnect(receive)

    @pytest.fixture
    def telemetry(self) -> InMemoryTelemetry:
        return in_memory_telemetry()

    async def test_writes_and_deletes_send_signals(
        self, store: BaseStorageBackend, signal_log: SignalLog
    ) -> None:
        await store.set("a", {"v": 1})
        await store.set_many({"b": {"v": 2}, "c": {"v": 3}})
        await store.delete("a")
        await store.delete_many(key for key in ["b", "c", "b"])  # a one-shot iterator
        events = signal_log.take()
        assert [(name, kwargs["key"]) for name, _, kwargs in events] == [
            ("saved", "a"),
            ("saved", "b"),
            ("saved", "c"),
            ("deleted", "a"),
            ("deleted", "b"),
            ("deleted", "c"),
        ]
        for _, sender, kwargs in events:
            assert sender is type(store)
            assert kwargs["store"] is store and kwargs["alias"] == store.alias
        for kwargs in signal_log.of("saved"):
            assert kwargs["created"] is None and kwargs["version"] is None
        # A failed operation sends nothing (the value is refused before any I/O).
        with pytest.raises(InvalidValueError):
            await store.set("d", {"v": {1, 2}})
        with pytest.raises(InvalidValueError):
            await store.set_many({"d": {"v": 1}, "e": "not a dict"})  # type: ignore[dict-item]
        assert signal_log.take() == []

    async def test_a_scope_reports_each_operation_once_with_the_full_key(
        self, store: BaseStorageBackend, signal_log: SignalLog, telemetry: InMemoryTelemetry
    ) -> None:
        scope = store.scoped("tenant")
        telemetry.exporter.clear()
        await scope.set("a", {"v": 1})
        await scope.get("a")
        await scope.delete("a")
        assert [(name, kwargs["key"]) for name, _, kwargs in signal_log.take()] == [
            ("saved", "tenant/a"),
            ("deleted", "tenant/a"),
        ]
        operations = [span.attributes["prism.operation"] for span in telemetry.spans(store)]
        assert operations == ["set", "get", "delete"]

    async def test_delete_prefix_sends_prefix_deleted(
        self, store: BaseStorageBackend, signal_log: SignalLog
    ) -> None:
        if not store.supports_listing:
            pytest.skip("the store cannot list keys, so cannot erase by prefix")
        await store.set_many({"user-1/a": {}, "user-1/b": {}, "user-10/a": {}})
        signal_log.take()
        with pytest.raises(InvalidValueError):
            await store.delete_prefix("")  # refused: nothing sent
        assert await store.delete_prefix("user-1/") == 2
        assert await store.scoped("user-10").delete_prefix("", all=True) == 1
        events = signal_log.take()
        assert [(name, kwargs["prefix"], kwargs["count"]) for name, _, kwargs in events] == [
            ("erased", "user-1/", 2),
            ("erased", "user-10/", 1),  # the full prefix: the scope's, sent once
        ]
        assert all(kwargs["store"] is store for _, _, kwargs in events)

    async def test_record_operations_send_signals(
        self, store: BaseStorageBackend, signal_log: SignalLog
    ) -> None:
        if not store.supports_versions:
            pytest.skip("the store keeps no record versions (supports_versions is false)")
        first = await store.put("r", {"v": 1})
        second = await store.put("r", {"v": 2})
        assert [(k["key"], k["created"], k["version"]) for k in signal_log.of("saved")] == [
            ("r", True, first.version),
            ("r", False, second.version),
        ]
        signal_log.take()
        assert await store.remove("missing") is False
        assert signal_log.take() == []  # nothing was removed
        if store.supports_conditional_writes:
            with pytest.raises(VersionConflictError):
                await store.put("r", {"v": 3}, if_version=first.version)
            with pytest.raises(VersionConflictError):
                await store.remove("r", if_version=first.version)
            assert signal_log.take() == []
            await store.update("r", lambda value: {"v": (value or {}).get("v", 0) + 1})
            [update] = signal_log.of("saved")
            assert update["key"] == "r" and update["created"] is False and update["version"]
            signal_log.take()
        if store.supports_atomic_lists:
            await store.append("l", ["x", "y"])
            await store.append("l", [])  # nothing to add: nothing written
            await store.pop("l")
            await store.pop("empty")  # nothing taken
            assert signal_log.saved_keys() == ["l", "l"]
            signal_log.take()
        assert await store.remove("r") is True
        assert signal_log.deleted_keys() == ["r"]

    async def test_sweep_sends_records_expired(
        self, stores: StoreFactory, signal_log: SignalLog
    ) -> None:
        probe = stores("sweep-probe")
        if not (probe.supports_sweep and probe.ttl_uses_clock):
            pytest.skip("the store sweeps nothing or keeps time itself")
        clock = FakeClock()
        store = stores("sweep", clock=clock)
        await store.set_many({"a": {"v": 1}, "b": {"v": 2}}, ttl=5)
        await store.set("kept", {"v": 3})
        signal_log.take()
        assert await store.sweep() == 0
        assert signal_log.take() == []  # nothing expired: no signal
        clock.advance(10)
        assert await store.sweep() == 2
        [expired] = signal_log.of("expired")
        assert expired == {"store": store, "alias": store.alias, "count": 2}

    async def test_each_operation_is_one_span_without_values(
        self, store: BaseStorageBackend, telemetry: InMemoryTelemetry
    ) -> None:
        await store.set("a", _SECRET_VALUE)
        assert await store.get("a") == _SECRET_VALUE
        await store.get_many(["a", "b", "c"])
        with pytest.raises(InvalidValueError):
            await store.set("bad", {"v": {1}})
        spans = telemetry.spans(store)
        operations = [span.attributes["prism.operation"] for span in spans]
        assert operations == ["set", "get", "get_many", "set"]
        set_span, get_span, many_span, failed = spans
        where = store.alias or store.backend_name
        assert set_span.name == f"upsert_memory {where}"
        assert set_span.attributes["gen_ai.operation.name"] == "upsert_memory"
        assert get_span.name == f"get {where}"
        assert many_span.attributes["prism.batch.size"] == 3
        for span in spans[:3]:
            assert span.status.is_ok and span.attributes["prism.outcome"] == "ok"
            assert span.attributes.get("gen_ai.memory.store.id") == store.alias
            assert "gen_ai.memory.record.id" not in span.attributes  # keys are opt-in
        assert not failed.status.is_ok
        assert failed.attributes["error.type"].endswith("InvalidValueError")
        assert failed.status.description == failed.attributes["error.type"]
        assert failed.events == ()  # no exception event: its message could quote input
        for span in spans:
            assert "value-that-must-not-be-traced" not in repr(span.to_json())
