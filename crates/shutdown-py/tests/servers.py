"""Real servers for the tests, each on a port of its own with its files in the test's directory:
a Pushgateway and a redis-server. Ready when they answer (waited for, bounded), killed after."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, ready, proc: subprocess.Popen, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {proc.stderr.read()}")
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not answer within {limit}s")


@contextlib.contextmanager
def pushgateway(directory):
    port = free_port()
    proc = subprocess.Popen(
        [
            "prometheus-pushgateway",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={directory / 'pushgateway.data'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    _wait("prometheus-pushgateway", lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=1).status == 200, proc)
    try:
        yield url
    finally:
        proc.kill()
        proc.wait()


def pushed(url: str) -> list[dict]:
    """Every metric group the Pushgateway holds (its `/api/v1/metrics`)."""
    with urllib.request.urlopen(f"{url}/api/v1/metrics", timeout=5) as r:
        return json.loads(r.read())["data"]


@contextlib.contextmanager
def redis_server(directory):
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def ready() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    _wait("redis-server", ready, proc)
    try:
        yield port
    finally:
        proc.kill()
        proc.wait()
