"""The example of each adapter's docs page runs as written, as a script of its own (no
Django settings, no API key, no network service)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations"
ROOT = DOCS.parent.parent


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("langchain.md", ["['faq', 'intro']", "human: Hi!", "ai: Hello, how can I help?"]),
        ("openai-agents.md", ["(1) you said: Hello", "(2) you said: What did", "4 items"]),
    ],
)
def test_the_example_runs(page, expected, tmp_path):
    example = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)[0]
    script = tmp_path / "example.py"
    script.write_text(example)
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}}
    env.pop("OPENAI_API_KEY", None)
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    for line in expected:
        assert line in result.stdout
