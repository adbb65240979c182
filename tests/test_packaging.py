"""The package's metadata agrees with the files it is built from.

Each test reads the real files of this checkout (pyproject.toml, LICENSE, CHANGELOG.md,
tox.ini, the README, .ci/run and the conformance suite's source), so a release cannot ship
a licence, version, classifier or extra that says something the code does not do.
"""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import prism_storage
from prism_storage.testing import StorageConformanceTests

ROOT = Path(__file__).resolve().parent.parent
TESTING_PACKAGE = ROOT / "prism_storage" / "testing"
CONFORMANCE_PACKAGE = TESTING_PACKAGE / "conformance"


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        table: dict[str, Any] = tomllib.load(file)
    return table


def tox_pairs() -> list[tuple[str, str]]:
    """(python, django) versions of every tox environment, e.g. ("3.11", "5.2")."""
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    pairs = []
    for env in tox["tox"]["envlist"].split(","):
        match = re.fullmatch(r"py3(\d+)-django(\d)(\d+)", env.strip())
        assert match, f"unexpected tox environment {env!r}"
        pairs.append((f"3.{match[1]}", f"{match[2]}.{match[3]}"))
    return pairs


# ------------------------------------------------------------------------- licence


def test_license_file_is_the_declared_license(project: dict[str, Any]) -> None:
    assert project["project"]["license"] == "BSD-3-Clause"
    assert project["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n")
    assert "prism-storage contributors" in text
    # The three clauses, and the disclaimer.
    assert "1. Redistributions of source code must retain" in text
    assert "2. Redistributions in binary form must reproduce" in text
    assert "3. Neither the name of the copyright holder" in text
    assert 'PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"' in text


def test_installed_metadata_declares_the_license() -> None:
    metadata = importlib.metadata.metadata("prism-storage")
    assert metadata["License-Expression"] == "BSD-3-Clause", (
        "reinstall the package (pip install -e .) after changing pyproject.toml"
    )


# ------------------------------------------------------------------------- version


def test_version_is_written_once(project: dict[str, Any]) -> None:
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "prism_storage.__version__"
    }
    # A plain string literal lets setuptools read it without importing the package.
    tree = ast.parse((ROOT / "prism_storage" / "__init__.py").read_text())
    literals = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    ]
    assert literals == [prism_storage.__version__]
    assert re.fullmatch(r"\d+\.\d+\.\d+", prism_storage.__version__)


def test_installed_version_is_the_package_version() -> None:
    assert importlib.metadata.version("prism-storage") == prism_storage.__version__, (
        "the installed metadata is stale: reinstall the package (pip install -e .)"
    )


def test_changelog_has_a_section_for_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings[0] == "Unreleased"
    versions = [heading.split(" - ")[0] for heading in headings[1:]]
    assert prism_storage.__version__ in versions
    for heading in headings[1:]:
        assert re.fullmatch(r"\d+\.\d+\.\d+ - \d{4}-\d{2}-\d{2}", heading), heading


# ------------------------------------------------------------------------- classifiers


def test_classifiers_name_the_tested_django_and_python_versions(
    project: dict[str, Any],
) -> None:
    pairs = tox_pairs()
    classifiers = project["project"]["classifiers"]
    django = {
        c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Framework :: Django :: ")
    }
    python = {
        c.rsplit(" :: ", 1)[1]
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert django == {d for _, d in pairs}
    assert python == {p for p, _ in pairs}
    lowest = min(python, key=lambda v: tuple(map(int, v.split("."))))
    assert project["project"]["requires-python"] == f">={lowest}"


def test_readme_names_the_tox_pairs() -> None:
    readme = (ROOT / "README.md").read_text()
    for python, django in tox_pairs():
        assert f"Python {python}" in readme and f"Django {django}" in readme


# ------------------------------------------------------------------------- extras


def imported_top_level_names_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def imported_top_level_names(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        names |= imported_top_level_names_of(path)
    return names


def test_testing_extra_lists_what_prism_storage_testing_imports(
    project: dict[str, Any],
) -> None:
    third_party = imported_top_level_names(TESTING_PACKAGE) - set(sys.stdlib_module_names)
    third_party -= {"__future__", "prism_storage"}
    # The span cases import the OpenTelemetry SDK only where it is installed and are
    # skipped elsewhere (pytest.importorskip): a test dependency, not a testing one.
    third_party -= {"opentelemetry"}
    distributions = importlib.metadata.packages_distributions()
    needed = {canonicalize_name(distributions[name][0]) for name in third_party}
    core = {
        canonicalize_name(Requirement(spec).name) for spec in project["project"]["dependencies"]
    }
    extras = project["project"]["optional-dependencies"]
    listed = {canonicalize_name(Requirement(spec).name) for spec in extras["testing"]}
    assert needed - core == listed
    assert "prism-storage[" in extras["test"][0] and "testing" in extras["test"][0]


def test_each_integration_imports_only_what_its_extra_lists(project: dict[str, Any]) -> None:
    """prism_storage/integrations/<sdk>.py needs exactly the extra named after it."""
    extras = project["project"]["optional-dependencies"]
    distributions = importlib.metadata.packages_distributions()
    modules = sorted((ROOT / "prism_storage" / "integrations").glob("*.py"))
    adapters = [path for path in modules if path.stem not in {"__init__", "stores"}]
    assert {path.stem for path in adapters} >= {"langchain", "openai_agents"}
    for path in adapters:
        extra = path.stem.replace("_", "-")
        names = imported_top_level_names_of(path) - set(sys.stdlib_module_names)
        names -= {"__future__", "prism_storage"}
        needed = {canonicalize_name(distributions[name][0]) for name in names}
        listed = {canonicalize_name(Requirement(spec).name) for spec in extras[extra]}
        assert needed == listed, path.name
        assert extra in extras["test"][0], f"the test extra lacks {extra}"


def test_importing_the_package_imports_no_agent_sdk() -> None:
    code = (
        "import sys, prism_storage, prism_storage.integrations, prism_storage.sync;"
        "import prism_storage.integrations.stores;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " {'langchain_core', 'agents', 'openai'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"


def test_the_testing_docstring_names_the_extra() -> None:
    import prism_storage.testing as testing

    assert testing.__doc__ is not None
    assert "prism-storage[testing]" in testing.__doc__


# ------------------------------------------------------------------------- conformance


FUNCTIONS = (ast.AsyncFunctionDef, ast.FunctionDef, ast.Lambda)


def nodes_of_cases(path: Path) -> list[tuple[str, ast.AST]]:
    """(case name, node) for every node in the body of every ``test_*`` method in ``path``,
    nested functions excluded (their ``return`` is theirs, not the case's)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, FUNCTIONS[:2]) and node.name.startswith("test_"):
            pending: list[ast.AST] = [n for n in node.body if not isinstance(n, FUNCTIONS)]
            while pending:
                current = pending.pop()
                found.append((node.name, current))
                pending.extend(
                    child
                    for child in ast.iter_child_nodes(current)
                    if not isinstance(child, FUNCTIONS)
                )
    return found


def test_conformance_cases_never_end_early_with_return() -> None:
    """A case that does not apply calls pytest.skip("why"); a bare return would pass it."""
    modules = sorted(CONFORMANCE_PACKAGE.glob("*.py"))
    assert len(modules) > 5
    returns = [
        f"{path.name}: {name}"
        for path in modules
        for name, statement in nodes_of_cases(path)
        if isinstance(statement, ast.Return)
    ]
    assert returns == []
    skips = [
        statement
        for path in modules
        for _, statement in nodes_of_cases(path)
        if isinstance(statement, ast.Call) and ast.unparse(statement.func) == "pytest.skip"
    ]
    assert skips, "the capability-dependent cases skip with pytest.skip"
    for call in skips:
        assert call.args and isinstance(call.args[0], ast.Constant) and call.args[0].value


def test_conformance_modules_stay_small() -> None:
    for path in CONFORMANCE_PACKAGE.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name


def test_every_conformance_case_comes_from_the_package() -> None:
    cases = [name for name in dir(StorageConformanceTests) if name.startswith("test_")]
    assert len(cases) > 30
    for name in cases:
        module = getattr(StorageConformanceTests, name).__module__
        assert module.startswith("prism_storage.testing.conformance."), (name, module)


# ------------------------------------------------------------------------- README and CI


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "bash scripts/test.sh"
    assert re.search(rf"^{re.escape(command)}(\s|$)", ci, flags=re.MULTILINE)
    assert re.search(rf"^{re.escape(command)}(\s|$)", readme, flags=re.MULTILINE)


def test_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(((?:docs/|CHANGELOG|LICENSE)[^)#]*)", readme)
    assert "docs/architecture.md" in targets
    for target in targets:
        assert (ROOT / target).is_file(), target
