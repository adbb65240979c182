"""The README says what the code does: capability names, commands, scripts and extras.

The specification's example is run as a script by tests/test_spec_example.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from io import StringIO

from django.core.management import call_command, get_commands

from prism_storage import storages
from prism_storage.views.records import capabilities as api_capabilities
from tests.support.readme import ROOT, code_blocks, readme_text

PROJECT_COMMAND_DIRS = [
    ROOT / "prism_storage" / "management" / "commands",
    ROOT / "demo_project" / "management" / "commands",
]


def readme_capabilities() -> list[str]:
    """The names in the README's ``capabilities`` row of the API table, in order."""
    (row,) = re.findall(r"^\| `capabilities` \| `dict` \| (.*) \|$", readme_text(), re.M)
    listed = row.split("(also", 1)[0]
    return re.findall(r"`(\w+)`", listed)


def test_the_readme_lists_exactly_the_capabilities_a_store_reports(settings):
    settings.PRISM_STORAGE = {"default": {"BACKEND": "memory", "OPTIONS": {"name": "readme"}}}
    store = storages["default"]
    listed = readme_capabilities()
    assert "text_search" in listed
    assert listed == list(store.capabilities)
    assert listed == list(api_capabilities(store))  # GET prism/api/stores/
    out = StringIO()
    call_command("prism_check", "default", "--json", stdout=out)
    (report,) = json.loads(out.getvalue())
    assert listed == list(report["capabilities"])


def shell_lines() -> list[str]:
    lines = []
    for block in code_blocks("bash"):
        lines += [line.split("#", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line]


def test_the_scripts_the_readme_runs_exist():
    text = readme_text()
    scripts = set(re.findall(r"\bbash (scripts/[\w./-]+)", text))
    assert "scripts/demo.sh" in scripts and "scripts/test.sh" in scripts
    for script in scripts:
        assert (ROOT / script).is_file(), script


def test_the_management_commands_the_readme_names_exist():
    text = readme_text()
    named = set(re.findall(r"manage\.py (\w+)", text))
    named |= set(re.findall(r"^\| `(prism_[a-z_]+)[ `]", text, re.M))  # the commands table
    assert {"migrate", "check", "demo_agent_turn", "prism_supabase_sql"} <= named
    assert {"prism_check", "prism_copy", "prism_export", "prism_import", "prism_sweep"} <= named
    django_commands = get_commands()
    for name in named:
        ours = any((folder / f"{name}.py").is_file() for folder in PROJECT_COMMAND_DIRS)
        assert ours or name in django_commands, name


def test_the_extras_the_readme_installs_exist():
    with (ROOT / "pyproject.toml").open("rb") as file:
        extras = set(tomllib.load(file)["project"]["optional-dependencies"])
    named: set[str] = set()
    for line in shell_lines():
        if "pip install" in line:
            for group in re.findall(r"\[([\w,-]+)\]", line):
                named |= set(group.split(","))
    named |= set(re.findall(r"prism-storage\[([\w-]+)\]", readme_text()))
    assert {"redis", "qdrant", "all", "testing"} <= named
    assert named <= extras, named - extras


def test_the_readme_installs_from_a_clone_or_a_wheel_while_not_on_pypi():
    lines = shell_lines()
    assert "python -m pip install -e ." in lines
    assert "python -m build" in lines
    assert any(re.fullmatch(r"python -m pip install dist/prism_storage-\S+\.whl", x) for x in lines)
    # A wheel's name is the project's name with "-" as "_": what `python -m build` writes.
    with (ROOT / "pyproject.toml").open("rb") as file:
        name = tomllib.load(file)["project"]["name"]
    assert name.replace("-", "_") == "prism_storage"


def test_the_readme_check_command_runs_as_written_on_the_demo_project():
    """``python manage.py check`` is the one README command that reads and writes nothing
    (migrate would create a database, the scripts install packages): run it for real."""
    (line,) = [x for x in shell_lines() if x.startswith("python manage.py check")]
    argv = shlex.split(line)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py names the demo's settings
    done = subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout
