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


class Command(BaseCommand):
    help = "Seed the demo stores with example agent records (and a demo admin user)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-user", action="store_true", help="do not create the demo admin user"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._seed())
        self.stdout.write(
            f"Seeded {len(CONVERSATIONS)} conversations into 'default' and "
            f"{len(STATE)} agent states into 'files'."
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
        finally:
            await storages.aclose_all()
