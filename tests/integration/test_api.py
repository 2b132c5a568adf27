"""The Docker Engine API of ``rootlet system service``, spoken raw: HTTP/1.1 over the real UNIX
socket with ``http.client`` and plain sockets, against the real service over a real store (images
pulled from the real test registry, containers run rootless). Protocol details (versions, hijacked
streams, frames, chunked waits, archive stats) and bad input and load (malformed JSON, unknown
fields, wrong types, a 100 MB body, a client that never finishes its headers, clients that leave
mid-stream, 50 clients at once)."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command
from tests.support.apiservice import Service, api, api_image, start_service, wait_for  # noqa: F401
from tests.support.procs import children_of

pytestmark = pytest.mark.integration


def create(api: Service, image: str, cmd: list[str], name: str | None = None, **config: object) -> str:
    body = {"Image": image, "Cmd": cmd, **config}
    path = "/v1.41/containers/create" + (f"?name={name}" if name else "")
    return api.json("POST", path, body, expect=201)["Id"]  # type: ignore[index]


def hijack(api: Service, path: str, body: bytes = b"") -> socket.socket:
    """Send a request that docker's clients hijack; returns the socket after the 101 head."""
    sock = api.raw()
    head = (f"POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    sock.sendall(head + body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        assert chunk, data
        data += chunk
    status_line = data.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 101"), data
    assert b"Upgrade: tcp" in data
    return sock


def read_all(sock: socket.socket, timeout: float = 30) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """docker's 8-byte-header frames: (stream, payload)."""
    out = []
    while data:
        kind, size = struct.unpack(">BxxxL", data[:8])
        out.append((kind, data[8:8 + size]))
        data = data[8 + size:]
    return out


# --- the service ----------------------------------------------------------------------------------

def test_ping_answers_get_and_head_with_what_clients_negotiate_from(api: Service) -> None:
    status, headers, body = api.request("GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["api-version"] == "1.41" and headers["builder-version"] == "1" and headers["ostype"] == "linux"
    status, headers, body = api.request("HEAD", "/_ping")
    assert (status, body) == (200, b"") and headers["api-version"] == "1.41"


def test_versioned_paths_from_1_24_to_1_41_and_refusals_outside(api: Service) -> None:
    for prefix in ("", "/v1.24", "/v1.41"):
        doc = api.json("GET", f"{prefix}/version")
        assert doc["ApiVersion"] == "1.41" and doc["MinAPIVersion"] == "1.24"  # type: ignore[index]
    status, _, body = api.request("GET", "/v1.44/containers/json")
    assert status == 400 and b"client version 1.44 is too new. Maximum supported API version is 1.41" in body
    status, _, body = api.request("GET", "/v1.12/containers/json")
    assert status == 400 and b"too old" in body
    assert api.request("GET", "/v1.41/no/such/thing")[0] == 404
    assert api.request("DELETE", "/_ping")[0] == 405
    assert json.loads(api.request("GET", "/v1.41/swarm")[2])["message"]


def test_the_socket_is_private_and_a_second_service_is_refused(api: Service, rootlet_env: dict[str, str]) -> None:
    assert stat.S_IMODE(os.stat(api.sock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(api.sock.parent).st_mode) == 0o700
    proc = subprocess.run(rootlet_command() + ["system", "service", f"unix://{api.sock}"], env=rootlet_env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 125 and "in use" in proc.stderr
    assert api.request("GET", "/_ping")[0] == 200  # the first one is untouched


def test_service_ends_after_idle_time_and_on_sigterm_without_stopping_containers(
        rootlet: RunRootlet, rootlet_env: dict[str, str], api_image: str, tmp_path: Path) -> None:
    run = tmp_path / "svc"
    run.mkdir(mode=0o700)
    idle = start_service(rootlet_env, run / "idle.sock", idle="1")
    started = time.monotonic()
    assert idle.proc.wait(timeout=15) == 0
    assert time.monotonic() - started < 6
    assert not (run / "idle.sock").exists()

    service = start_service(rootlet_env, run / "rootlet.sock")
    try:
        cid = create(service, api_image, ["sleep", "300"])
        assert service.request("POST", f"/containers/{cid}/start")[0] == 204
        assert service.stop() == 0
        ps = rootlet("ps", "-q", "--no-trunc", check=True)
        assert cid in ps.stdout  # the container runs on under its monitor
        # ... and a container the CLI started is the next service's.
        cli = rootlet("run", "-d", api_image, "sleep", "300", check=True).stdout.strip()
        service = start_service(rootlet_env, run / "rootlet.sock")
        listed = {c["Id"] for c in service.json("GET", "/containers/json")}  # type: ignore[union-attr]
        assert {cid, cli} <= listed
    finally:
        service.stop()
        rootlet("rm", "-a", "-f", timeout=120)


def test_start_to_first_answer_is_quick(rootlet_env: dict[str, str], tmp_path: Path) -> None:
    run = tmp_path / "svc"
    run.mkdir(mode=0o700)
    started = time.monotonic()
    service = start_service(rootlet_env, run / "rootlet.sock")
    try:
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"first answer after {elapsed:.3f} s (scripts/bench api measures it: <= 100 ms)"
    finally:
        service.stop()


def test_socket_activation_serves_the_passed_socket(rootlet_env: dict[str, str], tmp_path: Path) -> None:
    """systemd's protocol: the socket at fd 3, LISTEN_FDS=1 and LISTEN_PID the service's own pid
    (set by the shell that execs it); the URI given is then not used."""
    path = tmp_path / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)

    fd = listener.fileno()
    # What systemd does, in a small exec wrapper: the socket to fd 3, LISTEN_PID its own pid.
    wrapper = ("import os, sys\n"
               f"os.dup2({fd}, 3)\n"
               f"os.close({fd}) if {fd} != 3 else None\n"
               "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1')\n"
               "os.execvp(sys.argv[1], sys.argv[1:])\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", wrapper, *rootlet_command(), "system", "service", "--time", "0",
         f"unix://{tmp_path}/unused.sock"],
        env=rootlet_env, pass_fds=(fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    listener.close()
    try:
        service = Service(path, proc, rootlet_env)
        assert wait_for(lambda: _pings(service), 10)
        assert not (tmp_path / "unused.sock").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode in (0, -15)


def _pings(service: Service) -> bool:
    try:
        return service.request("GET", "/_ping", timeout=2)[0] == 200
    except OSError:
        return False


def test_tcp_is_served_only_when_asked_and_with_a_warning(rootlet_env: dict[str, str]) -> None:
    from tests.conftest import free_port

    port = free_port()
    proc = subprocess.Popen(rootlet_command() + ["system", "service", "--time", "0", f"tcp://127.0.0.1:{port}"],
                            env=rootlet_env, stderr=subprocess.PIPE, text=True)
    try:
        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return s.recv(100).startswith(b"HTTP/1.1 200")
            except OSError:
                return False
        assert wait_for(answers)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "Warning" in err and "anyone" in err


# --- errors and bad input -----------------------------------------------------------------------------

def test_bad_bodies_get_400s_that_name_the_problem(api: Service, api_image: str) -> None:
    cases = [
        (b"{not json", b"malformed JSON"),
        (json.dumps([1, 2]).encode(), b"JSON object"),
        (json.dumps({"Image": api_image, "Bogus": 1}).encode(), b"Bogus"),
        (json.dumps({"Image": api_image, "Cmd": 5}).encode(), b"Cmd"),
        (json.dumps({"Image": api_image, "HostConfig": {"Memory": "lots"}}).encode(), b"HostConfig.Memory"),
        (json.dumps({"Image": api_image, "HostConfig": {"Devices": [{"PathOnHost": "/dev/kvm"}]}}).encode(),
         b"HostConfig.Devices"),
        (json.dumps({"Image": api_image, "HostConfig": {"NetworkMode": "mynet"}}).encode(), b"network not found"),
        (json.dumps({"Cmd": ["true"]}).encode(), b"Image"),
        (b"", b"required"),
    ]
    for body, word in cases:
        status, _, data = api.request("POST", "/v1.41/containers/create", body)
        assert status in (400, 404), (body, status, data)
        assert word in json.loads(data)["message"].encode(), (body, data)
    assert api.json("GET", "/v1.41/containers/json?all=1") == []  # nothing was created
    status, _, data = api.request("GET", "/v1.41/containers/json?filters=%7Bnot")
    assert status == 400 and b"filters" in data


def test_error_statuses_follow_docker(api: Service, api_image: str) -> None:
    status, _, body = api.request("GET", "/v1.41/containers/nosuch/json")
    assert status == 404 and "no such container" in json.loads(body)["message"]
    assert api.request("GET", "/v1.41/images/nosuch:1/json")[0] == 404
    assert api.request("POST", "/v1.41/containers/create", {"Image": "localhost/nosuch:1", "Cmd": ["true"]})[0] == 404
    cid = create(api, api_image, ["sleep", "300"], name="twin")
    status, _, body = api.request("POST", "/v1.41/containers/create?name=twin", {"Image": api_image, "Cmd": ["true"]})
    assert status == 409
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 304
    status, _, body = api.request("DELETE", f"/v1.41/containers/{cid}")
    assert status == 409 and json.loads(body)["message"]
    assert api.request("DELETE", f"/v1.41/images/{api_image}")[0] == 409  # in use
    assert api.request("POST", f"/v1.41/containers/{cid}/kill?signal=NOPE")[0] == 400
    assert api.request("DELETE", f"/v1.41/containers/{cid}?force=1")[0] == 204
    assert api.request("DELETE", f"/v1.41/containers/{cid}?force=1")[0] == 404
    assert api.request("POST", "/v1.41/networks/create", {"Name": "n1"})[0] == 201
    assert api.request("POST", "/v1.41/networks/create", {"Name": "n1"})[0] == 409
    assert api.request("DELETE", "/v1.41/networks/bridge")[0] == 403
    assert api.request("DELETE", "/v1.41/networks/n1")[0] == 204
    assert api.request("DELETE", "/v1.41/networks/n1")[0] == 404


def test_path_parameters_are_names_never_paths(api: Service, rootlet_env: dict[str, str]) -> None:
    for bad in ("..%2F..%2F..%2Fetc", "%2E%2E", "..", "a%00b"):
        status, _, _ = api.request("GET", f"/v1.41/containers/{bad}/json")
        assert status == 404, bad
    status, _, _ = api.request("GET", "/v1.41/images/..%2F..%2Fetc%2Fpasswd/json")
    assert status in (400, 404)


def test_a_100_mb_body_is_refused_early_and_the_service_stays_up(api: Service) -> None:
    sock = api.raw()
    sock.sendall(b"POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 104857600\r\n\r\n{" + b" " * 100_000)
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    sock.close()
    sock = api.raw()  # chunked: refused once past the bound, without holding the rest
    sock.sendall(b"POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    sent = 0
    sock.settimeout(30)
    while sent < 5 << 20:  # past the 4 MiB bound; a client reads the answer before it sends 100 MB
        sock.sendall(b"10000\r\n" + b" " * 0x10000 + b"\r\n")
        sent += 0x10000
    assert sock.recv(12) == b"HTTP/1.1 413"
    assert api.request("GET", "/_ping")[0] == 200


def test_a_client_that_never_finishes_its_headers_gets_408_and_others_are_served(api: Service) -> None:
    slow = api.raw()
    slow.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    for _ in range(5):
        assert api.request("GET", "/_ping")[0] == 200
    answer = read_all(slow, timeout=30)
    assert answer.startswith(b"HTTP/1.1 408")
    assert 8 < time.monotonic() - started < 20


def test_clients_leaving_mid_stream_leave_nothing_behind(api: Service, api_image: str) -> None:
    cid = create(api, api_image, ["sh", "-c", "while true; do echo tick; sleep 0.1; done"])
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    before = len(children_of(api.proc.pid))
    for path in (f"/v1.41/containers/{cid}/logs?follow=1&stdout=1", "/v1.41/events",
                 f"/v1.41/containers/{cid}/stats", f"/v1.41/containers/{cid}/wait"):
        sock = api.raw()
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".replace("GET /v1.41/containers/" + cid + "/wait",
                                                                      "POST /v1.41/containers/" + cid + "/wait")
                     .encode())
        assert sock.recv(12).startswith(b"HTTP/1.1 200")
        sock.close()
    attach = hijack(api, f"/v1.41/containers/{cid}/attach?stream=1&stdout=1")
    assert attach.recv(100)
    attach.close()
    assert wait_for(lambda: len(children_of(api.proc.pid)) <= before, timeout=10), children_of(api.proc.pid)
    assert api.json("GET", f"/v1.41/containers/{cid}/json")["State"]["Running"]  # type: ignore[index]


def test_fifty_clients_at_once_create_start_and_remove(api: Service, api_image: str, rootlet: RunRootlet) -> None:
    errors: list[str] = []
    ids: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        try:
            cid = create(api, api_image, ["sh", "-c", f"echo client{n}"], name=f"load{n}")
            assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
            code = api.json("POST", f"/v1.41/containers/{cid}/wait")["StatusCode"]  # type: ignore[index]
            assert code == 0
            _, _, logs = api.request("GET", f"/v1.41/containers/{cid}/logs?stdout=1")
            assert frames(logs) == [(1, f"client{n}\n".encode())]
            with lock:
                ids.append(cid)
            if n % 2:
                assert api.request("DELETE", f"/v1.41/containers/{cid}")[0] == 204
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(f"client {n}: {exc!r}")

    rss_before = _rss_kb(api.proc.pid)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert len(set(ids)) == 50
    listed = api.json("GET", "/v1.41/containers/json?all=1")
    names = sorted(c["Names"][0] for c in listed)  # type: ignore[union-attr]
    assert names == sorted(f"/load{n}" for n in range(0, 50, 2))  # each once, the removed ones gone
    assert sorted(rootlet("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split()) == \
        sorted(f"load{n}" for n in range(0, 50, 2))
    assert api.request("GET", "/_ping")[0] == 200
    assert _rss_kb(api.proc.pid) < rss_before + 10_000  # the listener holds nothing per client


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


# --- streams ------------------------------------------------------------------------------------------

def test_attach_before_start_gets_every_byte_in_frames_and_wait_gets_the_code(api: Service, api_image: str) -> None:
    cid = create(api, api_image, ["sh", "-c", "echo out; echo err >&2; exit 3"], AttachStdout=True, AttachStderr=True)
    sock = hijack(api, f"/v1.41/containers/{cid}/attach?stream=1&stdout=1&stderr=1")
    waiter = api.raw()
    waiter.sendall(f"POST /v1.41/containers/{cid}/wait?condition=next-exit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert waiter.recv(12) == b"HTTP/1.1 200"  # the headers come at once: the wait is in place
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    got = frames(read_all(sock))
    assert sorted(got) == [(1, b"out\n"), (2, b"err\n")]
    assert b'"StatusCode":3' in read_all(waiter)


def test_attach_stdin_with_half_close_ends_the_containers_input(api: Service, api_image: str) -> None:
    cid = create(api, api_image, ["sh", "-c", "cat; echo done"], OpenStdin=True, StdinOnce=True,
                 AttachStdin=True, AttachStdout=True)
    sock = hijack(api, f"/v1.41/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1")
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    sock.sendall(b"first line\nsecond\n")
    sock.shutdown(socket.SHUT_WR)
    got = b"".join(p for _, p in frames(read_all(sock)))
    assert got == b"first line\nsecond\ndone\n"
    assert api.json("POST", f"/v1.41/containers/{cid}/wait")["StatusCode"] == 0  # type: ignore[index]


def test_tty_attach_is_raw_resizable_and_detach_keys_leave_it_running(api: Service, api_image: str) -> None:
    cid = create(api, api_image, ["sh"], Tty=True, OpenStdin=True, AttachStdin=True, AttachStdout=True)
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    assert api.request("POST", f"/v1.41/containers/{cid}/resize?h=40&w=120")[0] == 200
    sock = hijack(api, f"/v1.41/containers/{cid}/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-x")
    sock.sendall(b"stty size; echo mark$((40+2))\n")
    data = b""
    sock.settimeout(20)
    while b"mark42" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    assert b"40 120" in data and b"\x01\x00\x00\x00" not in data  # raw: no frame headers
    sock.sendall(b"\x18")  # ctrl-x: detach
    read_all(sock)
    assert api.json("GET", f"/v1.41/containers/{cid}/json")["State"]["Running"]  # type: ignore[index]


def test_wait_conditions(api: Service, api_image: str) -> None:
    cid = create(api, api_image, ["sh", "-c", "sleep 0.5; exit 4"])
    assert api.json("POST", f"/v1.41/containers/{cid}/wait")["StatusCode"] == 0  # type: ignore[index]
    box: dict[str, object] = {}
    waiter = threading.Thread(target=lambda: box.update(
        doc=api.json("POST", f"/v1.41/containers/{cid}/wait?condition=next-exit")))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()  # created: its next exit is after a start
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    waiter.join(30)
    assert box["doc"] == {"StatusCode": 4, "Error": None}
    removed = create(api, api_image, ["sh", "-c", "exit 6"], HostConfig={"AutoRemove": True})
    waiter = threading.Thread(target=lambda: box.update(
        gone=api.json("POST", f"/v1.41/containers/{removed}/wait?condition=removed")))
    waiter.start()
    time.sleep(0.2)
    assert api.request("POST", f"/v1.41/containers/{removed}/start")[0] == 204
    waiter.join(30)
    assert box["gone"]["StatusCode"] == 6  # type: ignore[index]
    assert api.request("GET", f"/v1.41/containers/{removed}/json")[0] == 404
    assert api.request("POST", f"/v1.41/containers/{cid}/wait?condition=bogus")[0] == 400


def test_logs_frames_timestamps_tail_since_and_follow(api: Service, api_image: str) -> None:
    cid = create(api, api_image, ["sh", "-c", "echo a; echo b >&2; echo c; sleep 1.5; echo late"])
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    _, headers, body = api.request("GET", f"/v1.41/containers/{cid}/logs?stdout=1&stderr=1&follow=1&timestamps=1")
    got = frames(body)
    lines = [(k, p.split(b" ", 1)[1]) for k, p in got]  # two pipes: each stream in order, not across
    assert [x for x in lines if x[0] == 1] == [(1, b"a\n"), (1, b"c\n"), (1, b"late\n")]
    assert [x for x in lines if x[0] == 2] == [(2, b"b\n")]
    stamp = got[0][1].split(b" ", 1)[0].decode()
    assert stamp.endswith("Z") and "T" in stamp
    _, _, body = api.request("GET", f"/v1.41/containers/{cid}/logs?stdout=1&tail=1")
    assert frames(body) == [(1, b"late\n")]
    _, _, body = api.request("GET", f"/v1.41/containers/{cid}/logs?stderr=1")
    assert frames(body) == [(2, b"b\n")]
    _, _, body = api.request("GET", f"/v1.41/containers/{cid}/logs?stdout=1&since={int(time.time()) + 60}")
    assert body == b""
    assert api.request("GET", f"/v1.41/containers/{cid}/logs")[0] == 400  # no stream chosen


def test_exec_create_start_inspect(api: Service, api_image: str) -> None:
    cid = create(api, api_image, ["sleep", "300"])
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    eid = api.json("POST", f"/v1.41/containers/{cid}/exec", {
        "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Cmd": ["sh", "-c", "cat; echo e >&2; exit 9"]},
        expect=201)["Id"]  # type: ignore[index]
    sock = hijack(api, f"/v1.41/exec/{eid}/start", json.dumps({"Detach": False, "Tty": False}).encode())
    sock.sendall(b"piped\n")
    sock.shutdown(socket.SHUT_WR)
    assert sorted(frames(read_all(sock))) == [(1, b"piped\n"), (2, b"e\n")]
    doc = api.json("GET", f"/v1.41/exec/{eid}/json")
    assert (doc["ExitCode"], doc["Running"], doc["ContainerID"]) == (9, False, cid)  # type: ignore[index]
    assert api.request("POST", f"/v1.41/exec/{eid}/start", {"Detach": False})[0] == 409  # started once only
    assert api.request("GET", "/v1.41/exec/" + "0" * 64 + "/json")[0] == 404
    status, _, body = api.request("POST", f"/v1.41/containers/{cid}/exec", {"Cmd": ["true"], "Bogus": 1})
    assert status == 400 and b"Bogus" in body


def test_archive_head_get_put(api: Service, api_image: str) -> None:
    cid = create(api, api_image, ["sleep", "300"])
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    assert api.request("PUT", f"/v1.41/containers/{cid}/archive?path=/tmp", buf.getvalue(),
                       headers={"Content-Type": "application/x-tar"})[0] == 200
    status, headers, _ = api.request("HEAD", f"/v1.41/containers/{cid}/archive?path=/tmp/hello.txt")
    doc = json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))
    assert status == 200 and (doc["name"], doc["size"], doc["mode"] & 0o777) == ("hello.txt", 6, 0o644)
    _, headers, _ = api.request("HEAD", f"/v1.41/containers/{cid}/archive?path=/tmp")
    assert json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))["mode"] & (1 << 31)  # a directory
    status, headers, body = api.request("GET", f"/v1.41/containers/{cid}/archive?path=/tmp/hello.txt")
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.extractfile("hello.txt").read() == b"hello\n"  # type: ignore[union-attr]
    assert api.request("HEAD", f"/v1.41/containers/{cid}/archive?path=/nope")[0] == 404
    assert api.request("GET", f"/v1.41/containers/{cid}/archive")[0] == 400
    assert api.request("PUT", f"/v1.41/containers/{cid}/archive?path=/tmp/hello.txt", buf.getvalue())[0] == 400


def test_events_stream_with_filters_sees_the_clis_containers(api: Service, api_image: str,
                                                              rootlet: RunRootlet) -> None:
    sock = api.raw()
    sock.sendall(b"GET /v1.41/events?filters=%7B%22event%22%3A%5B%22die%22%5D%7D HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(1)
    time.sleep(0.3)
    rootlet("run", "--rm", "--name", "evented", api_image, "true", check=True)
    while b'"die"' not in data:
        chunk = sock.recv(4096)
        assert chunk
        data += chunk
    body = data.split(b"\r\n\r\n", 1)[1]
    line = next(l for l in body.split(b"\r\n") if l.startswith(b"{"))
    event = json.loads(line)
    assert (event["Type"], event["Action"], event["Actor"]["Attributes"]["name"]) == ("container", "die", "evented")
    assert event["Actor"]["Attributes"]["exitCode"] == "0"
    sock.close()


def test_the_request_path_imports_no_typer_rich_or_click() -> None:
    import sys

    code = ("import sys\nimport rootlet.cli.api.server, rootlet.cli.api.connection, rootlet.cli.api.routes\n"
            "print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
