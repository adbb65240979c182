"""A model for the demo's agent turns that answers on this machine: no network, no key.

It implements the OpenAI Agents SDK's public ``Model`` interface, so ``Runner.run`` treats
it like any hosted model: it receives the session's history with the new input, and its
answer is added to the session. The answer shows that the history arrived: it counts the
user's messages and repeats the last one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agents.items import ModelResponse, TResponseInputItem
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import ResponseOutputMessage, ResponseOutputText


class LocalModel(Model):
    """Answers "turn N: you said ..." from its input alone."""

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        *args: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        items: list[Any] = [{"role": "user", "content": input}] if isinstance(input, str) else input
        said = [item.get("content") for item in items if item.get("role") == "user"]
        text = f"(local model) turn {len(said)}: you said {said[-1]!r}."
        message = ResponseOutputMessage(
            id=f"msg_local_{len(said)}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the demo's local model answers whole responses only")
        yield  # an async generator, as the interface declares
