"""Private Redis servers for the test suite: a standalone server and a 3-node cluster.

Every server here is a real ``redis-server`` process on a free loopback port, started by
the tests and killed at the end of the session; the shared server on 6379 is never used.
Tests that stop or restart a server start their own with :class:`RedisServer`.
"""

from __future__ import annotations

import contextlib
import ctypes
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
HOST = "127.0.0.1"


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills the server if the test run dies.

    (The signal fires when the *thread* that started the server exits, so start servers
    from the main thread.)
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(*, cluster_bus: bool = False) -> int:
    """A loopback port nothing listens on (and, for a cluster node, its bus port + 10000).

    Chosen below Linux's ephemeral range (32768+): while a test's server is down, a client
    reconnecting from an ephemeral port equal to the server's port would connect to itself
    and hold the port, and the server could not come back on it.
    """
    for _ in range(1000):
        port = random.randint(12_000, 22_000)
        if _port_is_free(port) and (not cluster_bus or _port_is_free(port + 10_000)):
            return port
    raise RuntimeError("no free loopback port found")


def send_command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Send one command in RESP and return the raw first reply chunk (no client library)."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(65536)


class RedisServer:
    """One ``redis-server`` subprocess on loopback, in its own temporary directory.

    ``start()`` may be called again after ``kill()``/``stop()``: the server comes back on the
    same port with the same directory (so with ``persistent=True`` its data survives).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        persistent: bool = False,
        cluster: bool = False,
        extra_args: tuple[str, ...] = (),
        directory: Path | None = None,
    ) -> None:
        self.port = port or free_port(cluster_bus=cluster)
        self.persistent = persistent
        self.cluster = cluster
        self.extra_args = extra_args
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="prism-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def command_line(self) -> list[str]:
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--daemonize",
            "no",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--protected-mode",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        if self.cluster:
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.directory / "nodes.conf"),
                "--cluster-node-timeout",
                "5000",
            ]
        return args + list(self.extra_args)

    def start(self, *, wait: bool = True) -> RedisServer:
        if self.process is not None and self.process.poll() is None:
            return self
        self.process = subprocess.Popen(
            self.command_line(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_tail()}")
            with contextlib.suppress(OSError):
                reply = send_command(self.port, "PING")
                # NOAUTH still means "accepting commands"; LOADING means not yet.
                if reply.startswith((b"+PONG", b"-NOAUTH")):
                    return
            time.sleep(0.01)
        raise RuntimeError(f"redis-server on port {self.port} did not answer: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return (self.directory / "redis.log").read_text()[-2000:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM)."""
        self._end(signal.SIGTERM)

    def pause(self) -> None:
        """Freeze the process: connections are accepted by the kernel but never answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def _end(self, sig: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server cannot handle SIGTERM
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def cleanup(self) -> None:
        self.kill()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class RedisClusterNodes:
    """A real Redis Cluster of ``size`` primaries (no replicas) on loopback."""

    def __init__(self, size: int = 3) -> None:
        self.nodes = [RedisServer(cluster=True) for _ in range(size)]

    @property
    def url(self) -> str:
        return f"redis+cluster://{HOST}:{self.nodes[0].port}/0"

    def start(self) -> RedisClusterNodes:
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            node.wait_ready()
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"{HOST}:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for node in self.nodes:
                with contextlib.suppress(OSError):
                    states.append(b"cluster_state:ok" in send_command(node.port, "CLUSTER", "INFO"))
            if len(states) == len(self.nodes) and all(states):
                return
            time.sleep(0.05)
        raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private standalone redis-server for the whole session (no persistence)."""
    server = RedisServer()
    try:
        yield server.start()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterNodes]:
    """A private 3-primary Redis Cluster for the whole session."""
    cluster = RedisClusterNodes(3)
    try:
        yield cluster.start()
    finally:
        cluster.cleanup()
