"""The demo project under a real ASGI server, as ``scripts/demo.sh`` serves it.

uvicorn serves ``demo_project.asgi:application`` on a free loopback port, with the demo's
own settings on a private SQLite database and data folders: the admin's pages and its
static files (served by the application while DEBUG is on), and the JSON API with its
CSRF failures in the API's error shape.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest

from tests.support.uvicorn import ROOT, admin_login, uvicorn_server

PASSWORD = "demo-test-pw"


@pytest.fixture
def demo(tmp_path):
    env = {
        "DJANGO_SETTINGS_MODULE": "demo_project.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "PRISM_FILES_PATH": str(tmp_path / "files"),
        "PRISM_VECTOR_PATH": str(tmp_path / "vectors"),
        "REDIS_URL": "",
        "SUPABASE_URL": "",
        "DEBUG": "true",
        "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
    }
    manage = [sys.executable, "manage.py"]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=full_env, check=True)
    subprocess.run(
        [*manage, "createsuperuser", "--noinput", "--username", "admin", "--email", "a@x.org"],
        cwd=ROOT,
        env=full_env,
        check=True,
        capture_output=True,
    )
    with uvicorn_server("demo_project.asgi:application", env, ready_path="/admin/login/") as base:
        yield base


def test_demo_serves_admin_with_styles_and_the_api(demo):
    with httpx.Client(base_url=demo, timeout=30) as client:
        page = client.get("/admin/login/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        stylesheets = re.findall(r'href="(/static/admin/css/[^"]+\.css)"', page.text)
        assert stylesheets, "the login page links no admin stylesheet"
        css = client.get(stylesheets[0])
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        assert "{" in css.text  # a stylesheet, not an error page

        headers = admin_login(client, "admin", PASSWORD)
        assert client.get("/admin/").status_code == 200
        aliases = [s["alias"] for s in client.get("/prism/api/stores/").json()["stores"]]
        assert aliases == ["default", "files", "memory"]
        url = "/prism/api/stores/files/records/agents%2Falice"

        # Without the token, a session write is refused in the API's JSON shape.
        refused = client.put(url, json={"turns": 1})
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["error"]["code"] == "csrf_failed"
        assert set(refused.json()["error"]) == {"code", "message"}
        assert client.get(url).status_code == 404  # nothing was written

        created = client.put(url, json={"turns": 1}, headers=headers)
        assert created.status_code == 201, created.text
        assert client.get(url).json() == {"key": "agents/alice", "value": {"turns": 1}}
        schema = client.get("/prism/api/schema/")
        assert schema.status_code == 200 and schema.json()["servers"] == [{"url": "/prism"}]
