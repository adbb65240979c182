"""The OpenAI Agents SDK session: real agent runs with a model that answers locally, the
same history as the SDK's own SQLiteSession, and atomic additions and pops."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, set_tracing_disabled
from agents.items import ModelResponse
from agents.memory import Session, SessionSettings, SQLiteSession
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import ResponseOutputMessage, ResponseOutputText
from pytest_socket import disable_socket, enable_socket

from prism_storage import (
    FileStorageBackend,
    MemoryStorageBackend,
    RedisStorageBackend,
    UnsupportedOperationError,
)
from prism_storage.integrations.openai_agents import PrismSession
from tests.support.minimal_backend import MinimalBackend

from .conftest import unique


class LocalModel(Model):
    """Answers from its input alone: which turn this is (the user messages it was given,
    the session's history included) and what the user said last. No network."""

    def __init__(self) -> None:
        self.calls = 0

    async def get_response(
        self, system_instructions, input, model_settings, tools, output_schema, handoffs,
        tracing, *, previous_response_id=None, conversation_id=None, prompt=None,
    ) -> ModelResponse:  # fmt: skip
        self.calls += 1
        items = [{"role": "user", "content": input}] if isinstance(input, str) else input
        said = [item["content"] for item in items if item.get("role") == "user"]
        text = f"turn {len(said)}: you said {said[-1]!r}"
        message = ResponseOutputMessage(
            id=f"msg_{self.calls}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the local model answers whole responses only")
        yield  # an async generator, as the interface declares


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No API key and no tracing: nothing may try to reach OpenAI."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")
    set_tracing_disabled(True)
    yield
    set_tracing_disabled(False)


RUN = RunConfig(tracing_disabled=True)
QUESTIONS = ["hello", "what is prism?", "thanks"]


def needs_atomic_lists(store) -> None:
    if not store.supports_atomic_lists:
        pytest.skip("the store has no atomic lists (see test_a_store_without_atomic_lists)")


async def test_agent_turns_keep_what_the_sdks_own_session_keeps(prism_store):
    needs_atomic_lists(prism_store)
    prism_session = PrismSession("conversation", prism_store)
    reference = SQLiteSession("conversation")
    try:
        for turn, question in enumerate(QUESTIONS, start=1):
            agent = Agent(name="helper", instructions="Be brief.", model=LocalModel())
            result = await Runner.run(agent, question, session=prism_session, run_config=RUN)
            # The model saw the earlier turns: the session fed them back.
            assert result.final_output == f"turn {turn}: you said {question!r}"
            agent = Agent(name="helper", instructions="Be brief.", model=LocalModel())
            await Runner.run(agent, question, session=reference, run_config=RUN)
            assert await prism_session.get_items() == await reference.get_items()
        items = await prism_session.get_items()
        assert len(items) == 2 * len(QUESTIONS)
        assert await prism_session.get_items(limit=2) == items[-2:]
    finally:
        reference.close()


async def test_the_runs_session_settings_limit_what_the_model_sees():
    session = PrismSession("limited", MemoryStorageBackend(unique("agents")))
    limited = RunConfig(tracing_disabled=True, session_settings=SessionSettings(limit=2))
    for question in QUESTIONS:
        agent = Agent(name="helper", model=LocalModel())
        result = await Runner.run(agent, question, session=session, run_config=limited)
    # The model got the last question and answer only, then the new question.
    assert result.final_output == "turn 2: you said 'thanks'"
    assert len(await session.get_items()) == 6


async def test_a_run_makes_no_network_call():
    """pytest-socket refuses every network socket (the event loop's own Unix socket pair
    stays allowed): the memory store and the local model need none."""
    session = PrismSession("offline", MemoryStorageBackend(unique("agents")))
    agent = Agent(name="helper", model=LocalModel())
    disable_socket(allow_unix_socket=True)
    try:
        result = await Runner.run(agent, "ping", session=session, run_config=RUN)
    finally:
        enable_socket()
    assert result.final_output == "turn 1: you said 'ping'"
    assert len(await session.get_items()) == 2


async def test_concurrent_batches_are_all_there_each_in_one_piece(atomic_store):
    writers = [PrismSession("shared", atomic_store) for _ in range(8)]
    batches = [[{"role": "user", "content": f"{n}.{i}"} for i in range(3)] for n in range(8)]
    await asyncio.gather(*(w.add_items(b) for w, b in zip(writers, batches, strict=True)))
    items = await writers[0].get_items()
    assert len(items) == 24
    pieces = [items[i : i + 3] for i in range(0, 24, 3)]
    assert sorted(pieces, key=lambda piece: piece[0]["content"]) == batches


async def test_concurrent_pops_never_return_one_item_twice(atomic_store):
    items = [{"role": "user", "content": str(n)} for n in range(8)]
    await PrismSession("popped", atomic_store).add_items(items)
    poppers = [PrismSession("popped", atomic_store) for _ in range(10)]
    popped = await asyncio.gather(*(p.pop_item() for p in poppers))
    taken = [item["content"] for item in popped if item is not None]
    assert sorted(taken, key=int) == [str(n) for n in range(8)]
    assert popped.count(None) == 2
    assert await poppers[0].get_items() == []


async def test_limits_pop_and_clear(prism_store):
    needs_atomic_lists(prism_store)
    session = PrismSession("s", prism_store, session_settings={"limit": 3})
    items = [{"role": "user", "content": str(n)} for n in range(5)]
    await session.add_items(items[:2])
    await session.add_items([])
    await session.add_items(items[2:])
    assert await session.get_items() == items[-3:]  # the settings' limit
    assert await session.get_items(limit=10) == items
    assert await session.get_items(limit=1) == items[-1:]
    assert await session.get_items(limit=0) == []
    assert await session.pop_item() == items[-1]
    assert await session.get_items(limit=10) == items[:-1]
    await session.clear_session()
    assert await session.get_items() == []
    assert await session.pop_item() is None
    assert await prism_store.get("agents:s") is None


async def test_max_items_and_ttl(prism_store):
    needs_atomic_lists(prism_store)
    ttl = 3600 if prism_store.supports_ttl else None
    session = PrismSession("t", prism_store, key_prefix="chat/", max_items=3, ttl=ttl)
    await session.add_items([{"role": "user", "content": str(n)} for n in range(5)])
    assert [item["content"] for item in await session.get_items()] == ["2", "3", "4"]
    record = await prism_store.get_record("chat/t")
    assert record is not None and record.value == {"items": await session.get_items()}
    if ttl is not None:
        assert record.expires_at is not None
        assert abs((record.expires_at - record.updated_at).total_seconds() - 3600) < 60


async def test_a_store_without_atomic_lists():
    session = PrismSession("s", MinimalBackend(unique("minimal")))
    with pytest.raises(UnsupportedOperationError, match="append atomically"):
        await session.add_items([{"role": "user", "content": "hi"}])
    with pytest.raises(UnsupportedOperationError, match="pop atomically"):
        await session.pop_item()
    assert await session.get_items() == []


def test_an_alias_names_the_store_and_arguments_are_checked(settings):
    settings.PRISM_STORAGE = {"agents": {"BACKEND": "memory", "OPTIONS": {"name": unique("a")}}}
    session = PrismSession("s", "agents")
    assert isinstance(session, Session)  # the SDK's runtime-checkable protocol
    assert session.store.backend_name == "memory"
    assert session.session_settings is not None and session.session_settings.limit is None
    with pytest.raises(Exception, match="session_id"):
        PrismSession("", "agents")
    with pytest.raises(Exception, match="max_items"):
        PrismSession("s", "agents", max_items=0)


# ------------------------------------------------------------ two worker processes


def worker(kind: str, where: str, name: str, batches: int) -> None:
    """One process serving the conversation: ``batches`` additions of two items."""
    from prism_storage import FileStorageBackend, RedisStorageBackend

    async def serve() -> None:
        store = (
            FileStorageBackend(where)
            if kind == "file"
            else RedisStorageBackend(where, prefix="workers:")
        )
        session = PrismSession("shared", store)
        for n in range(batches):
            await session.add_items(
                [{"role": "user", "content": f"{name}.{n}"}, {"role": "assistant", "content": "ok"}]
            )
        await store.close()

    asyncio.run(serve())


@pytest.mark.parametrize("kind", ["file", "redis"])
async def test_two_worker_processes_lose_no_item(kind, request, tmp_path):
    if kind == "file":
        where = str(tmp_path / "shared")
        store = FileStorageBackend(where)
    else:
        where = request.getfixturevalue("redis_server").url
        store = RedisStorageBackend(where, prefix="workers:")
        await store.delete("agents:shared")
    try:
        needs_atomic_lists(store)
        # Spawned, not forked: this process runs threads (a fork could copy a held lock).
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=worker, args=(kind, where, w, 25)) for w in "ab"]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        assert [process.exitcode for process in processes] == [0, 0]
        items = await PrismSession("shared", store).get_items()
        assert len(items) == 100
        said = [items[i]["content"] for i in range(0, 100, 2)]
        assert all(items[i + 1]["content"] == "ok" for i in range(0, 100, 2))
        for w in "ab":
            # Every batch of each worker, in the order that worker added them.
            assert [s for s in said if s.startswith(w)] == [f"{w}.{n}" for n in range(25)]
    finally:
        await store.close()
