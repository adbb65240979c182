"""A real uvicorn process serving an ASGI application on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def uvicorn_server(
    application: str, env: dict[str, str], *, ready_path: str = "/", timeout: float = 60
) -> Iterator[str]:
    """Serve ``application`` ("module:attribute") with uvicorn from the repository root;
    yield its base URL once ``ready_path`` answers, and stop the server afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            application,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"uvicorn exited with {process.returncode}"
            try:
                httpx.get(base + ready_path, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def admin_login(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    """Log in through the admin's login form, as a browser does; return the CSRF header
    that API writes need."""
    client.get("/admin/login/")
    token = client.cookies["csrftoken"]
    response = client.post(
        "/admin/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": token,
            "next": "/admin/",
        },
    )
    assert response.status_code == 302 and "sessionid" in client.cookies, response.text
    return {"X-CSRFToken": client.cookies["csrftoken"]}
