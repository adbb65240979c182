"""The specification's usage example, as the README shows it, runs as a script."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.readme import ROOT, the_block

README_REDIS_URL = "redis://localhost:6379/0"
HELLO = {"messages": [{"role": "user", "content": "Hello"}]}


def test_the_readme_specification_example_runs_as_a_script(tmp_path, redis_server):
    script = the_block("python", "asyncio.run(main())", "FileStorageBackend(data_dir=")
    # The block exactly as written, but for the Redis address: the test's own server, so
    # that nothing is written to a Redis the machine may use for something else.
    assert script.count(README_REDIS_URL) == 2
    (tmp_path / "example.py").write_text(script.replace(README_REDIS_URL, redis_server.url))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # a plain script: no Django settings
    done = subprocess.run(
        # Every warning shown: an unclosed connection is a ResourceWarning at exit.
        [sys.executable, "-W", "default", "example.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for leak in ("ResourceWarning", "Unclosed", "never awaited", "Traceback"):
        assert leak not in done.stderr, done.stderr
    assert done.stdout.splitlines() == [
        f"file: {HELLO}",
        f"redis: {HELLO}",
        f"registry: {HELLO}",
    ]
    assert (tmp_path / "data").is_dir()


def test_the_readme_example_is_a_script_not_top_level_await():
    script = the_block("python", "asyncio.run(main())", "FileStorageBackend(data_dir=")
    compile(script, "example.py", "exec")  # a SyntaxError if an await is at top level


async def test_specification_usage_example_file_part(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # --- verbatim from the specification ---
    from prism_storage import FileStorageBackend, RedisStorageBackend, Registry  # noqa: F401

    file_storage = FileStorageBackend(data_dir="./data")
    await file_storage.set("agent_1", {"messages": [{"role": "user", "content": "Hello"}]})
    data = await file_storage.get("agent_1")
    # --- end of the verbatim part ---
    assert data == {"messages": [{"role": "user", "content": "Hello"}]}
    assert os.path.isdir(tmp_path / "data")

    storage = Registry.create(provider_type="file", data_dir="./data")
    assert await storage.get("agent_1") == data


def test_default_constructor_arguments(tmp_path, monkeypatch):
    from prism_storage import FileStorageBackend

    monkeypatch.chdir(tmp_path)
    store = FileStorageBackend()
    assert str(store.data_dir) == "data"
    assert store.create_if_missing is True
    positional = FileStorageBackend("./elsewhere", False)
    assert positional.create_if_missing is False
