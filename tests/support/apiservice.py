"""``rootlet system service`` for tests: started on a private socket over a test's store, talked to
with raw HTTP (``http.client`` over the UNIX socket) or by real clients (``DOCKER_HOST``).

Import the fixtures into a test module: ``from tests.support.apiservice import api, api_image  # noqa: F401``.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a UNIX socket."""

    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


class Service:
    """A running service: its socket, process, and helpers to call it."""

    def __init__(self, sock: Path, proc: subprocess.Popen, env: dict[str, str]) -> None:
        self.sock = sock
        self.proc = proc
        self.env = env

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def request(self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None,
                timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
        """One request on a fresh connection: (status, headers, body)."""
        conn = UnixHTTPConnection(str(self.sock), timeout)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            hs = dict(headers or {})
            if data is not None and "Content-Type" not in hs:
                hs["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=hs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: object = None, expect: int | tuple[int, ...] = (200, 201, 204),
             **kwargs: object) -> object:
        status, _, data = self.request(method, path, body, **kwargs)  # type: ignore[arg-type]
        wanted = (expect,) if isinstance(expect, int) else expect
        assert status in wanted, f"{method} {path}: {status} {data[:500]!r}"
        return json.loads(data) if data.strip() else None

    def raw(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(60)
        sock.connect(str(self.sock))
        return sock

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_service(env: dict[str, str], sock: Path, *extra: str, idle: str = "0") -> Service:
    """Start the service and wait until it answers ``/_ping``."""
    proc = subprocess.Popen(rootlet_command() + ["system", "service", "--time", idle, *extra, f"unix://{sock}"],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    service = Service(sock, proc, env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the service exited {proc.returncode}: {proc.stderr.read()}")  # type: ignore
        try:
            if service.request("GET", "/_ping", timeout=2)[0] == 200:
                return service
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise AssertionError("the service did not answer within 15 s")


@pytest.fixture
def api(rootlet: RunRootlet, rootlet_env: dict[str, str], tmp_path: Path) -> Iterator[Service]:
    """The service over the test's store, on a socket in a private 0700 directory."""
    run = tmp_path / "svc"
    run.mkdir(mode=0o700)
    service = start_service(rootlet_env, run / "rootlet.sock")
    try:
        yield service
    finally:
        service.stop()
        rootlet("rm", "-a", "-f", timeout=120)


@pytest.fixture
def api_image(rootlet: RunRootlet, registry: str) -> str:
    """library/alpine:3.20 pulled into the test's store through the CLI; its reference."""
    ref = f"{registry}/library/alpine:3.20"
    rootlet("pull", "-q", ref, check=True)
    return ref


def docker_env(service: Service, tmp: Path) -> dict[str, str]:
    """The environment for docker's CLI, docker-py and docker-compose: the service, a private config."""
    config = tmp / "docker-config"
    config.mkdir(exist_ok=True)
    env = dict(service.env)
    env.update(DOCKER_HOST=service.host, DOCKER_CONFIG=str(config), DOCKER_BUILDKIT="0",
               DOCKER_CLI_HINTS="false", COMPOSE_INTERACTIVE_NO_CLI="1")
    env.pop("DOCKER_API_VERSION", None)
    return env


def wait_for(predicate: object, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


