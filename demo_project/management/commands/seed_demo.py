"""Seed the demo stores with a few realistic agent records."""

from __future__ import annotations

import asyncio
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from prism_storage import storages

CONVERSATIONS: dict[str, dict[str, Any]] = {
    "support-bot/thread/1001": {
        "agent": "support-bot",
        "user_id": "u-42",
        "messages": [
            {"role": "system", "content": "You are a friendly support agent for Acme Cloud."},
            {"role": "user", "content": "My deploy fails with 'quota exceeded'."},
            {
                "role": "assistant",
                "content": "Your project uses 10 of 10 build minutes. "
                "I can raise the limit or you can upgrade the plan.",
            },
            {"role": "user", "content": "Raise it, please."},
        ],
        "status": "open",
    },
    "research-agent/thread/7": {
        "agent": "research-agent",
        "user_id": "u-7",
        "messages": [
            {"role": "user", "content": "Summarise the three most cited papers on RAG."},
            {
                "role": "assistant",
                "content": "Working on it: searching the index.",
                "tool_calls": [{"name": "search", "arguments": {"q": "retrieval augmented"}}],
            },
        ],
        "status": "running",
    },
}

STATE: dict[str, dict[str, Any]] = {
    "support-bot/state": {"step": 4, "escalated": False, "open_tickets": ["T-1001"]},
    "research-agent/state": {
        "step": 2,
        "plan": ["search", "read", "summarise"],
        "budget": {"tokens": 120_000, "used": 18_250},
    },
}


MEMORIES: dict[str, dict[str, Any]] = {
    "support-bot/memory/1": {
        "text": "Customer u-42 prefers answers by email, not chat.",
        "agent": "support-bot",
        "kind": "preference",
    },
    "support-bot/memory/2": {
        "text": "Build minute quotas reset on the first of each month.",
        "agent": "support-bot",
        "kind": "fact",
    },
    "support-bot/memory/3": {
        "text": "Password resets are done from the account settings page.",
        "agent": "support-bot",
        "kind": "fact",
    },
    "research-agent/memory/1": {
        "text": "User u-7 studies retrieval augmented generation.",
        "agent": "research-agent",
        "kind": "preference",
    },
}


class Command(BaseCommand):
    help = "Seed the demo stores with example agent records (and a demo admin user)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-user", action="store_true", help="do not create the demo admin user"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._seed())
        self.stdout.write(
            f"Seeded {len(CONVERSATIONS)} conversations into 'default', {len(STATE)} agent "
            f"states into 'files' and {len(MEMORIES)} memories into 'memory'."
        )
        if not options["no_user"]:
            user_model = get_user_model()
            if not user_model.objects.filter(username="admin").exists():
                user_model.objects.create_superuser("admin", "admin@example.com", "admin")
                self.stdout.write("Created the demo superuser admin / admin.")

    async def _seed(self) -> None:
        try:
            await storages["default"].set_many(CONVERSATIONS)
            await storages["files"].set_many(STATE)
            await storages["memory"].set_many(MEMORIES)
            hits = await storages["memory"].search("How do I change my password?", limit=1)
            self.stdout.write(f"Memory search 'How do I change my password?' -> {hits[0]['key']}")
        finally:
            await storages.aclose_all()
