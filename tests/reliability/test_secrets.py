"""Secrets never leak: every backend is configured with recognisable secrets, made to
fail, and everything a user could see is searched for them — reprs, error messages with
their whole chain of causes and contexts, every log record at DEBUG level (the operation
lines and the outage warnings included) and every OpenTelemetry span."""

from __future__ import annotations

import logging
import socket
import traceback

import pytest

from prism_storage import Registry
from prism_storage.exceptions import PrismStorageError
from prism_storage.testing.conformance.observability import in_memory_telemetry

REDIS_PASSWORD = "Redis-Pw-5ecret-77"
SUPABASE_KEY = "sb-Secret-Key-0123456789abcdef"
PINECONE_KEY = "pcsk_Secret-Pinecone-4242"
QDRANT_KEY = "qdrant-Secret-Key-3131"
SECRETS = [REDIS_PASSWORD, SUPABASE_KEY, PINECONE_KEY, QDRANT_KEY]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failing_stores() -> dict[str, tuple[str, dict]]:
    port = closed_port()
    return {
        "redis": (
            "redis",
            {"url": f"redis://agent:{REDIS_PASSWORD}@127.0.0.1:{port}/0", "timeout": 2},
        ),
        "redis-cluster": (
            "redis",
            {"url": f"redis+cluster://agent:{REDIS_PASSWORD}@127.0.0.1:{port}/0", "timeout": 2},
        ),
        "supabase": (
            "supabase",
            {"url": f"http://127.0.0.1:{port}", "key": SUPABASE_KEY, "timeout": 2},
        ),
        "pinecone": (
            "vector",
            {
                "provider": "pinecone",
                "api_key": PINECONE_KEY,
                "url": f"http://127.0.0.1:{port}",
                "dimensions": 4,
                "timeout": 2,
            },
        ),
        "qdrant": (
            "vector",
            {
                "provider": "qdrant",
                "api_key": QDRANT_KEY,
                "url": f"http://127.0.0.1:{port}",
                "dimensions": 4,
                "timeout": 2,
            },
        ),
    }


def _chain_texts(exc: BaseException) -> list[str]:
    """The texts of an exception and of everything reachable through its cause and
    context links, printed or not (error trackers walk both)."""
    texts, todo, seen = [], [exc], set()
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [repr(current), str(current), *map(repr, current.args)]
        todo += [current.__cause__, current.__context__]
    return texts


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked into {where}: ...{text[-500:]}"


@pytest.mark.parametrize("name", sorted(failing_stores()))
async def test_no_secret_in_repr_errors_or_logs(name, caplog):
    backend, options = failing_stores()[name]
    caplog.set_level(logging.DEBUG)
    telemetry = in_memory_telemetry()
    store = Registry.create(backend, **options)
    seen: list[str] = [repr(store), str(store), store.describe()]
    operations = [
        lambda: store.get("k"),
        lambda: store.set("k", {"v": 1, "embedding": [0.1, 0.2, 0.3, 0.4]}),
        lambda: store.delete("k"),
        lambda: store.get_many(["a", "b"]),
        lambda: store.ping(),
    ]
    if store.supports_listing:
        operations.append(lambda: store.keys())
    if store.supports_search:
        operations.append(lambda: store.search([0.1, 0.2, 0.3, 0.4]))
    failures = 0
    try:
        for operation in operations:
            try:
                await operation()
            except PrismStorageError as exc:
                failures += 1
                seen.append("".join(traceback.format_exception(exc)))
                seen.extend(_chain_texts(exc))
    finally:
        await store.close()
    assert failures == len(operations), "every call to an unreachable store must fail"
    spans = telemetry.spans(store)
    failed = [span for span in spans if not span.status.is_ok]
    assert len(failed) >= len(operations), "every failed operation has a failed span"
    seen.extend(span.to_json() for span in spans)
    outages = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("is unavailable" in r.getMessage() for r in outages), "outages are warnings"
    operation_lines = [r for r in caplog.records if r.name == "prism_storage.operations"]
    assert len(operation_lines) >= len(operations)
    for record in caplog.records:
        seen.append(record.getMessage())
        if record.exc_info:
            seen.append("".join(traceback.format_exception(*record.exc_info)))
    for text in seen:
        assert_no_secret(text, name)


@pytest.mark.django_db
def test_no_secret_in_api_responses_or_admin_pages(client, django_user_model, settings):
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm"},
        **{
            name: {"BACKEND": backend, "OPTIONS": options}
            for name, (backend, options) in failing_stores().items()
        },
    }
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    pages = [client.get("/prism/api/stores/"), client.get("/admin/prism_storage/record/stores/")]
    assert pages[0].status_code == 200 and pages[1].status_code == 200
    for name in failing_stores():
        api = client.get(f"/prism/api/stores/{name}/records/agent-1")
        assert api.status_code == 503, (name, api.content[:300])
        assert api.json()["error"]["code"]
        pages.append(api)
        pages.append(
            client.put(
                f"/prism/api/stores/{name}/records/agent-1",
                data={"v": 1, "embedding": [0.1, 0.2, 0.3, 0.4]},
                content_type="application/json",
            )
        )
        pages.append(client.get(f"/admin/prism_storage/record/stores/{name}/"))
        pages.append(
            client.get(f"/admin/prism_storage/record/stores/{name}/record/", {"key": "agent-1"})
        )
    for response in pages:
        assert response.status_code < 500 or response.status_code == 503
        assert_no_secret(response.content.decode("utf-8", "replace"), response.request["PATH_INFO"])
