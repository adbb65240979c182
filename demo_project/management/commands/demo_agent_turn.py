"""Run one OpenAI Agents SDK turn whose conversation is kept in a prism store.

``python manage.py demo_agent_turn "Hello" --session alice`` hands the agent a
:class:`~prism_storage.integrations.openai_agents.PrismSession` over the ``default`` store
(the project's database), so the conversation becomes the record ``agents:alice``: run it
again with another message and the agent sees the earlier turns; open the admin's store
browser and the record is there. The model is :mod:`demo_project.local_model`, which
answers on this machine, and tracing is off: the turn needs no network and no API key.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from prism_storage import storages
from prism_storage.exceptions import ConfigurationError, PrismStorageError

EXTRA = "openai-agents"


class Command(BaseCommand):
    help = (
        "Run one agent turn (OpenAI Agents SDK, a local model) with its session kept in a "
        "prism store, and print the conversation so far."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("message", help="what the user says this turn")
        parser.add_argument(
            "--session", default="demo", help="the conversation's id (default: demo)"
        )
        parser.add_argument(
            "--store", default="default", help="the PRISM_STORAGE alias (default: default)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            # The SDK is an optional extra: imported only when the command runs.
            from agents import Agent, RunConfig, Runner

            from demo_project.local_model import LocalModel
            from prism_storage.integrations.openai_agents import PrismSession
        except ImportError as error:
            raise CommandError(
                f"The OpenAI Agents SDK is not installed ({error}). "
                f'Install it with: pip install "prism-storage[{EXTRA}]"'
            ) from error

        async def turn() -> tuple[Any, list[Any]]:
            try:
                session = PrismSession(options["session"], storages[options["store"]])
                agent = Agent(name="demo-agent", instructions="Answer briefly.", model=LocalModel())
                await Runner.run(
                    agent,
                    options["message"],
                    session=session,
                    run_config=RunConfig(tracing_disabled=True),
                )
                return session, await session.get_items()
            finally:
                await storages.aclose_all()

        try:
            session, items = asyncio.run(turn())
        except (ConfigurationError, PrismStorageError) as error:
            # An unknown alias, a store without atomic lists, a store that is down.
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"Conversation {session.session_id!r} (record {session.key!r} in store "
            f"{options['store']!r}), {len(items)} items:"
        )
        for item in items:
            self.stdout.write(f"  {item.get('role', item.get('type', '?'))}: {text_of(item)}")


def text_of(item: dict[str, Any]) -> str:
    """The text of a session item: a plain string, or the text parts of a message."""
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return repr(item)
