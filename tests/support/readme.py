"""The README's code blocks, for the tests that keep it true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
README = ROOT / "README.md"

_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    """Every fenced block of ``language`` in the README, in order."""
    return [body for lang, body in _BLOCK.findall(readme_text()) if lang == language]


def the_block(language: str, *markers: str) -> str:
    """The one ``language`` block that contains every marker (an error if not exactly one)."""
    found = [body for body in code_blocks(language) if all(m in body for m in markers)]
    assert len(found) == 1, f"{len(found)} README {language} blocks contain {markers}"
    return found[0]
