"""End to end: a compiled LangGraph graph keeps its threads and memories in prism stores,
driven by langchain_core's fake chat model (no network)."""

from __future__ import annotations

import uuid

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Command, interrupt

from prism_storage import FileStorageBackend, MemoryStorageBackend
from prism_storage.integrations.langgraph import PrismCheckpointSaver, PrismStore


def build_graph(checkpointer, store, replies):
    model = FakeListChatModel(responses=replies)

    def chat(state: MessagesState, *, store: BaseStore) -> dict:
        # Remember what the user says about themself, for every thread of that user.
        last = state["messages"][-1].content
        if last.startswith("I like "):
            store.put(("users", "ada", "memories"), str(uuid.uuid4()), {"likes": last[7:]})
        known = [m.value["likes"] for m in store.search(("users", "ada", "memories"))]
        reply = model.invoke(state["messages"])
        reply.content += f" (you like: {', '.join(sorted(known)) or 'nothing yet'})"
        return {"messages": [reply]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    return builder.compile(checkpointer=checkpointer, store=store)


def test_a_thread_is_resumed_across_turns_and_graphs(tmp_path):
    checkpoints = FileStorageBackend(data_dir=tmp_path / "checkpoints")
    memories = PrismStore(FileStorageBackend(data_dir=tmp_path / "memories"))
    first = {"configurable": {"thread_id": "t1"}}
    graph = build_graph(PrismCheckpointSaver(checkpoints), memories, ["Hello!", "Noted."])
    graph.invoke({"messages": [HumanMessage("hi")]}, first)
    graph.invoke({"messages": [HumanMessage("I like tea")]}, first)

    # A new graph on the same files: a new process would see the same.
    again = build_graph(PrismCheckpointSaver(checkpoints), memories, ["Welcome back."])
    state = again.invoke({"messages": [HumanMessage("still there?")]}, first)
    assert [m.content for m in state["messages"]] == [
        "hi",
        "Hello! (you like: nothing yet)",
        "I like tea",
        "Noted. (you like: tea)",
        "still there?",
        "Welcome back. (you like: tea)",
    ]
    history = list(again.get_state_history(first))
    # Each turn writes an input checkpoint and one per step.
    assert len(history) == 9
    assert [len(s.values.get("messages", [])) for s in history][:3] == [6, 5, 4]

    # Another thread starts empty and finds the memory the first one wrote.
    other = {"configurable": {"thread_id": "t2"}}
    state = again.invoke({"messages": [HumanMessage("who am I?")]}, other)
    assert [m.content for m in state["messages"]] == ["who am I?", "Welcome back. (you like: tea)"]
    assert len(again.get_state(first).values["messages"]) == 6


async def test_an_interrupted_run_is_resumed_from_its_checkpoint():
    saver = PrismCheckpointSaver(MemoryStorageBackend(f"lg-e2e-{uuid.uuid4().hex[:8]}"))

    def ask(state: MessagesState) -> dict:
        answer = interrupt("Send the email?")
        return {"messages": [HumanMessage(f"answer: {answer}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "approval"}}

    paused = await graph.ainvoke({"messages": [HumanMessage("draft")]}, config)
    assert paused["__interrupt__"][0].value == "Send the email?"
    snapshot = await graph.aget_state(config)
    assert snapshot.next == ("ask",)

    done = await graph.ainvoke(Command(resume="yes"), config)
    assert [m.content for m in done["messages"]] == ["draft", "answer: yes"]
    assert (await graph.aget_state(config)).next == ()


def test_the_example_in_the_docs_runs():
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "langgraph.md"
    example = re.search(r"## Example.*?```python\n(.*?)```", page.read_text(), re.S).group(1)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
