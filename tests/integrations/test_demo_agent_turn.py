"""The demo's ``demo_agent_turn`` command: one agent turn whose session is kept in the
store of a ``PRISM_STORAGE`` alias, the conversation printed after each turn.

The test settings do not install the demo app, so the command runs as an instance."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from demo_project.management.commands.demo_agent_turn import Command
from prism_storage import FileStorageBackend, storages

from .conftest import unique


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No API key: the command must not need one (it disables tracing itself)."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def turn(*args: str) -> str:
    out = io.StringIO()
    call_command(Command(), *args, stdout=out)
    return out.getvalue()


def read(alias: str, key: str) -> Any:
    async def get() -> Any:
        try:
            return await storages[alias].get(key)
        finally:
            await storages.aclose_all()

    return asyncio.run(get())


def test_turns_build_one_conversation_in_a_file_store(tmp_path: Path):
    config = {"default": {"BACKEND": "file", "OPTIONS": {"data_dir": tmp_path / "agent-data"}}}
    with override_settings(PRISM_STORAGE=config):
        first = turn("Hello", "--session", "alice")
        second = turn("What did I say?", "--session", "alice")
        other = turn("Hi", "--session", "bob")
    assert "record 'agents:alice' in store 'default'), 2 items" in first
    assert "assistant: (local model) turn 1: you said 'Hello'." in first
    # The second turn's model was given the first turn from the store.
    assert "4 items" in second
    assert second.index("user: Hello") < second.index("user: What did I say?")
    assert "assistant: (local model) turn 2: you said 'What did I say?'." in second
    assert "turn 1: you said 'Hi'." in other

    # The records are in the store's files, where another process (the admin) reads them.
    async def stored() -> Any:
        store = FileStorageBackend(tmp_path / "agent-data")
        try:
            return await store.get("agents:alice"), await store.keys()
        finally:
            await store.close()

    record, keys = asyncio.run(stored())
    assert sorted(keys) == ["agents:alice", "agents:bob"]
    roles = [item["role"] for item in record["items"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert record["items"][2] == {"role": "user", "content": "What did I say?"}


def test_the_store_option_picks_the_alias():
    chats = {"BACKEND": "memory", "OPTIONS": {"name": unique("chats")}}
    with override_settings(PRISM_STORAGE={"default": {"BACKEND": "orm"}, "chats": chats}):
        output = turn("Hello", "--session", "carol", "--store", "chats")
        record = read("chats", "agents:carol")
    assert "in store 'chats'), 2 items" in output
    assert [item["role"] for item in record["items"]] == ["user", "assistant"]


def test_an_unknown_store_is_a_command_error():
    config = {"default": {"BACKEND": "memory"}}
    with override_settings(PRISM_STORAGE=config), pytest.raises(CommandError, match="nowhere"):
        turn("Hello", "--store", "nowhere")


def test_without_the_sdk_the_command_names_the_extra(monkeypatch):
    # A None entry in sys.modules makes ``import agents`` fail as if it were not installed;
    # the modules that import it are dropped so that they are imported again.
    monkeypatch.setitem(sys.modules, "agents", None)
    for module in ["demo_project.local_model", "prism_storage.integrations.openai_agents"]:
        monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(CommandError, match=r'pip install "prism-storage\[openai-agents\]"'):
        turn("Hello")
