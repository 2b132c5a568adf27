"""Container lifecycle without a daemon, end to end as the real ``rootlet`` command, rootless.

create → start → stop → rm, ``run -d`` under a monitor, ``logs``, ``exec`` (also on a pty),
``ps``/``inspect``/``port``/``top``, restart policies, the log size bound, and the crash cases: a
monitor killed with SIGKILL, a container's PID 1 killed from outside, a "machine restart" (a state
recorded on another boot). After every crash ``ps -a`` must tell the truth, ``start`` and
``rm -f`` must work, and no process of the container (monitor, keeper, fuse-overlayfs,
slirp4netns, the container's own) may be left.

Every test gets a fresh store root; an autouse fixture removes whatever a test leaves running.
Waiting is done by polling with a deadline: for readiness markers the test reads the container's
log file directly (cheap), every assertion about state goes through the ``rootlet`` command.
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import RunRootlet, free_port, need, rootlet_command
from tests.support.procs import children_of

pytestmark = pytest.mark.system

T = TypeVar("T")

#: A shell loop that keeps PID 1 alive and lets its traps run between short sleeps.
IDLE = "while :; do sleep 0.1; done"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
ZERO_TIME = "0001-01-01T00:00:00Z"
OTHER_BOOT = "00000000-0000-4000-8000-000000000000"


# --- images -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stop_signal_image(registry: str, test_images: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """busybox:musl published again with ``StopSignal: SIGUSR2`` in its config (real bytes, real digests)."""
    need("skopeo")
    src = test_images / "busybox-musl"
    out = tmp_path_factory.mktemp("stopsig-layout")
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(digest: str) -> bytes:
        return (src / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest

    index = json.loads((src / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))
    config["config"]["StopSignal"] = "SIGUSR2"
    for layer in manifest["layers"]:
        hexdigest = layer["digest"].removeprefix("sha256:")
        shutil.copyfile(src / "blobs" / "sha256" / hexdigest, blobs / hexdigest)
    cfg = json.dumps(config).encode()
    manifest["config"] = dict(manifest["config"], digest=put(cfg), size=len(cfg))
    man = json.dumps(manifest).encode()
    media_type = manifest.get("mediaType", "application/vnd.oci.image.manifest.v1+json")
    (out / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": media_type, "digest": put(man), "size": len(man),
                       "annotations": {"org.opencontainers.image.ref.name": "stopsig"}}]}))
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    ref = f"{registry}/library/busybox:stopsig"
    proc = subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{out}:stopsig",
                           f"docker://{ref}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return ref


# --- helpers ------------------------------------------------------------------------------------------

def wait_until(predicate: Callable[[], T], timeout: float = 15.0, what: str = "the condition",
               interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {value!r})")
        time.sleep(interval)


def start_time(pid: int) -> int | None:
    """The /proc start time of a live (non-zombie) process, else None."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    if rest[0] == b"Z":
        return None
    return int(rest[19])


def alive(pid: int, started: int | None = None) -> bool:
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def leftover_processes(store_root: Path, ids: Iterable[str] = (),
                       pids: Iterable[tuple[int, int]] = ()) -> list[str]:
    """Live processes of ours that still belong to the containers of ``store_root``.

    A process belongs to them when its environment carries this store root (the monitor, the
    keeper, slirp4netns, fuse-overlayfs and exec helpers all descend from a rootlet command run
    with it), its command line names the store or a container id (fuse-overlayfs), or it is one of
    ``pids`` (pid, start time): a container's PID 1, whose end takes its whole pid namespace with
    it. Zombies do not count: this machine's init does not reap orphans, which is not rootlet's doing.
    """
    me, own = os.getuid(), os.getpid()
    env_needle = f"ROOTLET_ROOT={store_root}".encode()
    needles = [str(store_root).encode()] + [i.encode() for i in ids]
    wanted = set(pids)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        pid = int(entry)
        try:
            if os.stat(f"/proc/{pid}").st_uid != me:
                continue
            started = start_time(pid)
            if started is None:
                continue
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                environ = []
        except OSError:
            continue
        if env_needle in environ or any(n in cmdline for n in needles) or (pid, started) in wanted:
            text = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(f"{pid}: {text}")
    return found


def kill_leftovers(store_root: Path) -> None:
    for line in leftover_processes(store_root):
        with contextlib.suppress(OSError):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


def run_d(rootlet: RunRootlet, *args: str, env: dict[str, str] | None = None) -> str:
    """``rootlet run -d ARGS…``; the container id it printed."""
    proc = rootlet("run", "-d", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    cid = proc.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), proc.stdout
    return cid


def create(rootlet: RunRootlet, *args: str) -> str:
    proc = rootlet("create", *args)
    assert proc.returncode == 0, proc.stderr
    cid = proc.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), proc.stdout
    return cid


def parallel(rootlet_env: dict[str, str], *commands: Sequence[str], timeout: float = 60,
             env: dict[str, str] | None = None) -> list[subprocess.CompletedProcess]:
    """Run several ``rootlet`` commands at once; their results in order."""
    full_env = dict(rootlet_env, **(env or {}))
    procs = [subprocess.Popen(rootlet_command() + list(c), env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in commands]
    results = []
    for command, proc in zip(commands, procs):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results.append(subprocess.CompletedProcess(list(command), proc.returncode, out, err))
    return results


def inspect(rootlet: RunRootlet, name: str) -> dict[str, Any]:
    proc = rootlet("inspect", "--type", "container", name)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert len(docs) == 1
    return docs[0]


def ps_json(rootlet: RunRootlet, *args: str) -> list[dict[str, Any]]:
    proc = rootlet("ps", "--format", "json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def ps_states(rootlet: RunRootlet) -> dict[str, str]:
    """name → State of every container, from ``ps -a``."""
    return {r["Names"][0]: r["State"] for r in ps_json(rootlet, "-a")}


def state_file(store_root: Path, cid: str) -> Path:
    return store_root / "containers" / cid / "state.json"


def read_state(store_root: Path, cid: str) -> dict[str, Any]:
    return json.loads(state_file(store_root, cid).read_text())


def names_index(store_root: Path) -> dict[str, str]:
    path = store_root / "containers.json"
    return json.loads(path.read_text()) if path.exists() else {}


def container_dirs(store_root: Path) -> list[str]:
    root = store_root / "containers"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def logged(store_root: Path, cid: str, text: str) -> bool:
    """Whether the container's log file holds ``text`` yet (a readiness marker, read directly)."""
    d = store_root / "containers" / cid
    data = b""
    for name in ("ctr.log.1", "ctr.log"):
        with contextlib.suppress(FileNotFoundError):
            data += (d / name).read_bytes()
    return text.encode() in data


def assert_removed(store_root: Path, cid: str, name: str) -> None:
    assert cid not in container_dirs(store_root)
    assert name not in names_index(store_root) and cid not in names_index(store_root).values()


def http_get(port: int, timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                return data
            data += chunk


def serves(port: int, text: bytes) -> bool:
    try:
        return text in http_get(port)
    except OSError:
        return False


def refused(port: int) -> bool:
    try:
        http_get(port, timeout=1.0)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def waits_on_a_pidfd(pid: int) -> bool:
    """Whether process ``pid`` holds a pidfd (how rootlet watches a container's PID 1)."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[pidfd]" for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def ns_of(stamp: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 UTC time with nanoseconds."""
    base, _, frac = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int((frac + "0" * 9)[:9])


HTTPD = "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 8080 -h /www"


# --- every test leaves nothing running --------------------------------------------------------------

def kill_everything(store_root: Path) -> None:
    """Kill, by their recorded ids, every container of the store and its monitor, then whatever
    else of the store still runs; wait until all of it is gone."""
    for cid in container_dirs(store_root):
        try:
            state = read_state(store_root, cid)
        except (OSError, ValueError):
            continue
        for pid, started in ((state.get("owner_pid", 0), state.get("owner_start", 0)),
                             (state.get("pid", 0), state.get("pid_start", 0))):
            if pid and alive(pid, started):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while leftover_processes(store_root) and time.monotonic() < deadline:
        kill_leftovers(store_root)
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def _nothing_outlives_the_test(store_root: Path) -> Iterator[None]:
    yield
    kill_everything(store_root)


# --- created → running → exited → removed -----------------------------------------------------------

def test_create_start_stop_rm_walk_through_every_state(rootlet: RunRootlet, busybox: str,
                                                        store_root: Path) -> None:
    cid = create(rootlet, "--name", "life", busybox, "sh", "-c", f"trap 'exit 3' TERM; echo up; {IDLE}")
    assert names_index(store_root) == {"life": cid}
    doc = inspect(rootlet, "life")
    assert (doc["Id"], doc["Name"]) == (cid, "life")
    assert (doc["State"]["Status"], doc["State"]["Running"], doc["State"]["Pid"]) == ("created", False, 0)
    assert doc["State"]["StartedAt"] == ZERO_TIME
    [row] = ps_json(rootlet, "-a")
    assert (row["Id"], row["State"], row["Status"]) == (cid, "created", "Created")
    assert rootlet("ps", "-q").stdout == ""

    proc = rootlet("start", "life")
    assert (proc.returncode, proc.stdout) == (0, "life\n"), proc.stderr
    doc = inspect(rootlet, "life")
    pid = doc["State"]["Pid"]
    assert (doc["State"]["Status"], doc["State"]["Running"]) == ("running", True)
    assert pid > 0 and alive(pid)
    assert RFC3339.match(doc["State"]["StartedAt"]) and doc["State"]["StartedAt"] != ZERO_TIME
    assert doc["State"]["FinishedAt"] == ZERO_TIME
    [row] = ps_json(rootlet)
    assert row["State"] == "running" and row["Status"].startswith("Up ") and row["Pid"] == pid
    wait_until(lambda: logged(store_root, cid, "up"), what="the trap to be set")

    proc = rootlet("stop", "-t", "5", "life")
    assert (proc.returncode, proc.stdout) == (0, "life\n"), proc.stderr
    doc = inspect(rootlet, "life")
    assert (doc["State"]["Status"], doc["State"]["Running"], doc["State"]["Pid"]) == ("exited", False, 0)
    assert doc["State"]["ExitCode"] == 3
    assert RFC3339.match(doc["State"]["FinishedAt"]) and doc["State"]["FinishedAt"] >= doc["State"]["StartedAt"]
    assert not alive(pid)
    [row] = ps_json(rootlet, "-a")
    assert row["State"] == "exited" and row["Status"].startswith("Exited (3) ")
    assert rootlet("ps", "-q").stdout == ""

    proc = rootlet("rm", "life")
    assert (proc.returncode, proc.stdout) == (0, "life\n"), proc.stderr
    assert_removed(store_root, cid, "life")
    assert ps_json(rootlet, "-a") == []
    gone = rootlet("inspect", "life")
    assert gone.returncode == 125 and gone.stderr.startswith("Error: ")
    assert leftover_processes(store_root, [cid]) == []


def test_run_d_prints_the_id_and_the_container_outlives_the_command(rootlet: RunRootlet, busybox: str,
                                                                    store_root: Path) -> None:
    # --rm: the monitor removes the container once it exits, and ends.
    brief = run_d(rootlet, "--rm", "--name", "brief", busybox, "sh", "-c", "sleep 0.3")
    wait_until(lambda: brief not in container_dirs(store_root), what="the --rm container to be removed")
    assert_removed(store_root, brief, "brief")
    wait_until(lambda: leftover_processes(store_root, [brief]) == [], what="its monitor to end")
    assert rootlet("run", "-d", "--rm", "--restart", "always", busybox, "true").returncode == 125

    cid = run_d(rootlet, "--name", "bg", busybox, "sleep", "30")
    doc = inspect(rootlet, cid)
    assert doc["State"]["Running"] is True and alive(doc["State"]["Pid"])
    assert doc["HostConfig"]["LogConfig"]["Type"] == "k8s-file"
    assert (store_root / "containers" / cid / "ctr.log").exists()
    state = read_state(store_root, cid)
    assert state["status"] == "running" and state["pid"] == doc["State"]["Pid"]
    assert alive(state["owner_pid"], state["owner_start"]), "the monitor must run on after `run -d` returned"


def test_run_d_that_fails_leaves_no_monitor_behind(rootlet: RunRootlet, busybox: str, store_root: Path) -> None:
    """`run -d` forks the container's monitor before it creates the container: when creating it
    fails, that monitor has ended by the time the command exits."""
    proc = rootlet("run", "-d", "--pull", "never", "no-such-image:1", "true")
    assert proc.returncode == 125 and "no-such-image" in proc.stderr, proc.stderr
    assert leftover_processes(store_root) == []
    taken = run_d(rootlet, "--name", "taken", busybox, "sleep", "30")
    assert rootlet("rm", "-f", "taken").returncode == 0
    wait_until(lambda: leftover_processes(store_root, [taken]) == [], what="the removed container's processes to end")
    create(rootlet, "--name", "taken", busybox, "true")
    proc = rootlet("run", "-d", "--name", "taken", busybox, "true")
    assert proc.returncode == 125 and "already in use" in proc.stderr, proc.stderr
    assert leftover_processes(store_root) == []
    # It does start when the container can: the command's failure comes from the monitor.
    proc = rootlet("run", "-d", "--name", "nocmd", busybox, "/no/such/command")
    assert proc.returncode == 127, proc.stderr
    wait_until(lambda: leftover_processes(store_root) == [], what="the monitor of the failed start to end")


def test_start_attach_and_interactive(rootlet: RunRootlet, busybox: str) -> None:
    create(rootlet, "--name", "att", "-e", "GREETING=hi", "-w", "/srv", busybox,
           "sh", "-c", 'echo "$GREETING from $(pwd)"; echo to-stderr >&2; exit 4')
    proc = rootlet("start", "-a", "att")
    assert (proc.returncode, proc.stdout) == (4, "hi from /srv\n")
    assert "to-stderr" in proc.stderr
    # An exited container starts again, with the same configuration.
    proc = rootlet("start", "--attach", "att")
    assert (proc.returncode, proc.stdout) == (4, "hi from /srv\n")
    create(rootlet, "-i", "--name", "cat", busybox, "cat")
    proc = rootlet("start", "-a", "-i", "cat", input="piped through\n")
    assert (proc.returncode, proc.stdout) == (0, "piped through\n"), proc.stderr
    assert ps_states(rootlet) == {"att": "exited", "cat": "exited"}


def test_start_of_a_running_container_is_a_no_op(rootlet: RunRootlet, busybox: str) -> None:
    run_d(rootlet, "--name", "twice", busybox, "sleep", "30")
    pid = inspect(rootlet, "twice")["State"]["Pid"]
    proc = rootlet("start", "twice")
    assert (proc.returncode, proc.stdout) == (0, "twice\n"), proc.stderr
    assert inspect(rootlet, "twice")["State"]["Pid"] == pid


def test_restart_runs_the_same_container_again(rootlet: RunRootlet, busybox: str, store_root: Path) -> None:
    cid = run_d(rootlet, "--name", "again", busybox, "sh", "-c", f"echo boot; {IDLE}")
    first = inspect(rootlet, "again")["State"]
    proc = rootlet("restart", "-t", "1", "again")
    assert (proc.returncode, proc.stdout) == (0, "again\n"), proc.stderr
    second = inspect(rootlet, "again")["State"]
    assert second["Status"] == "running" and second["Pid"] != first["Pid"]
    assert not alive(first["Pid"]) and alive(second["Pid"])
    assert second["StartedAt"] > first["StartedAt"]
    assert container_dirs(store_root) == [cid]
    wait_until(lambda: rootlet("logs", "again").stdout == "boot\nboot\n", what="two boots in the log")
    # restart of an exited container starts it.
    rootlet("stop", "-t", "0", "again", check=True)
    assert rootlet("restart", "again").returncode == 0
    assert ps_states(rootlet) == {"again": "running"}


def test_names_are_unique_and_rename_keeps_them_so(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                   busybox: str, store_root: Path) -> None:
    cid = run_d(rootlet, "--name", "old", busybox, "sleep", "30")
    taken = create(rootlet, "--name", "taken", busybox, "true")
    for proc in parallel(rootlet_env, ["run", "-d", "--name", "old", busybox, "true"],
                         ["create", "--name", "taken", busybox, "true"],
                         ["run", "--rm", "--name", "old", busybox, "true"]):
        assert proc.returncode == 125 and "already in use" in proc.stderr, proc.stderr
    assert sorted(container_dirs(store_root)) == sorted([cid, taken])

    proc = rootlet("rename", "old", "new")
    assert proc.returncode == 0, proc.stderr
    assert names_index(store_root) == {"new": cid, "taken": taken}
    assert inspect(rootlet, "new")["Name"] == "new"
    results = parallel(rootlet_env, ["inspect", "--type", "container", "old"], ["ps", "--format", "{{.Names}}"],
                       ["exec", "new", "true"], ["rename", "new", "taken"], ["rename", "new", "bad/name"])
    assert [r.returncode for r in results] == [125, 0, 0, 125, 125], [r.stderr for r in results]
    assert results[1].stdout == "new\n"
    assert names_index(store_root) == {"new": cid, "taken": taken}
    create(rootlet, "--name", "old", busybox, "true")        # the old name is free again


def test_name_full_id_and_unique_id_prefix_all_resolve(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                       busybox: str) -> None:
    cid = run_d(rootlet, "--name", "byname", busybox, "sleep", "30")
    results = parallel(rootlet_env, *[["inspect", "-f", "{{.Id}}", ref] for ref in ("byname", cid, cid[:12], cid[:4])],
                       ["exec", cid[:8], "true"], ["logs", cid[:12]])
    assert [r.stdout for r in results[:4]] == [f"{cid}\n"] * 4
    assert [r.returncode for r in results] == [0] * 6, [r.stderr for r in results]
    # Create until two ids share their first character (certain by the 17th): that prefix is ambiguous.
    ids = [cid]
    while len({i[0] for i in ids}) == len(ids):
        batch = parallel(rootlet_env, *[["create", busybox, "true"]] * 4)
        assert [p.returncode for p in batch] == [0] * 4, [p.stderr for p in batch]
        ids += [p.stdout.strip() for p in batch]
    shared = next(i[0] for i in ids if sum(j[0] == i[0] for j in ids) > 1)
    ambiguous, removed, unknown = parallel(rootlet_env, ["inspect", "--type", "container", shared], ["rm", shared],
                                           ["inspect", "--type", "container", "nosuchcontainer"])
    assert ambiguous.returncode == 125 and "ambiguous" in ambiguous.stderr
    assert removed.returncode == 125 and unknown.returncode == 125
    assert len(ps_json(rootlet, "-a")) == len(ids)


# --- stop, kill, wait ----------------------------------------------------------------------------------

def test_stop_sends_stop_signal_then_kill(rootlet: RunRootlet, rootlet_env: dict[str, str], busybox: str,
                                          store_root: Path) -> None:
    stubborn = run_d(rootlet, "--name", "stubborn", busybox, "sh", "-c",
                     f"trap 'echo got-TERM' TERM; echo ready; {IDLE}")
    polite = run_d(rootlet, "--name", "polite", busybox, "sh", "-c",
                   f"trap 'echo bye; exit 3' TERM; echo ready; {IDLE}")
    wait_until(lambda: logged(store_root, stubborn, "ready") and logged(store_root, polite, "ready"),
               what="the traps to be set")
    began = time.monotonic()
    proc = rootlet("stop", "-t", "1", "stubborn")
    took = time.monotonic() - began
    assert (proc.returncode, proc.stdout) == (0, "stubborn\n"), proc.stderr
    assert 0.9 <= took < 8, f"stop -t 1 of a container that ignores TERM took {took:.2f}s"
    began = time.monotonic()
    assert rootlet("stop", "-t", "30", "polite").returncode == 0
    took = time.monotonic() - began
    assert took < 10, f"stop waited {took:.2f}s for a container that exits on TERM"
    a, b = inspect(rootlet, "stubborn")["State"], inspect(rootlet, "polite")["State"]
    assert (a["Status"], a["ExitCode"], b["Status"], b["ExitCode"]) == ("exited", 137, "exited", 3)
    logs_a, logs_b = parallel(rootlet_env, ["logs", "stubborn"], ["logs", "polite"])
    assert logs_a.stdout == "ready\ngot-TERM\n" and logs_b.stdout == "ready\nbye\n"
    # Stopping a container that is not running is no error (docker's rule) and changes nothing.
    create(rootlet, "--name", "fresh", busybox, "true")
    for proc in parallel(rootlet_env, ["stop", "polite"], ["stop", "fresh"]):
        assert proc.returncode == 0, proc.stderr
    assert ps_states(rootlet) == {"stubborn": "exited", "polite": "exited", "fresh": "created"}


def test_stop_signal_from_the_flag_or_the_image_and_stop_timeout(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                                  busybox: str, stop_signal_image: str,
                                                                  store_root: Path) -> None:
    script = f"trap 'echo got-USR1' USR1; trap 'echo got-USR2' USR2; trap 'echo got-TERM' TERM; echo ready; {IDLE}"
    flag, from_image, override = parallel(
        rootlet_env, ["run", "-d", "--name", "usr1", "--stop-signal", "USR1", "--stop-timeout", "1", busybox,
                      "sh", "-c", script],
        ["run", "-d", "--name", "imgsig", stop_signal_image, "sh", "-c", script],
        ["run", "-d", "--name", "flagsig", "--stop-signal", "TERM", stop_signal_image, "sh", "-c", script])
    ids = [p.stdout.strip() for p in (flag, from_image, override)]
    assert [p.returncode for p in (flag, from_image, override)] == [0, 0, 0], \
        [p.stderr for p in (flag, from_image, override)]
    configs = [json.loads(p.stdout)[0]["Config"] for p in parallel(rootlet_env, *[["inspect", n] for n in
                                                                                   ("usr1", "imgsig", "flagsig")])]
    assert [(c["StopSignal"], c["StopTimeout"]) for c in configs] == [("SIGUSR1", 1), ("SIGUSR2", 10), ("SIGTERM", 10)]
    wait_until(lambda: all(logged(store_root, i, "ready") for i in ids), what="the traps to be set")
    began = time.monotonic()
    stops = parallel(rootlet_env, ["stop", "usr1"], ["stop", "-t", "1", "imgsig"], ["stop", "-t", "1", "flagsig"])
    took = time.monotonic() - began
    assert [p.returncode for p in stops] == [0, 0, 0], [p.stderr for p in stops]
    assert 0.9 <= took < 8, f"stop with --stop-timeout 1 / -t 1 took {took:.2f}s"     # no -t: --stop-timeout
    logs = parallel(rootlet_env, *[["logs", n] for n in ("usr1", "imgsig", "flagsig")])
    assert [p.stdout for p in logs] == ["ready\ngot-USR1\n", "ready\ngot-USR2\n", "ready\ngot-TERM\n"]
    assert {r["Names"][0]: r["ExitCode"] for r in ps_json(rootlet, "-a")} == \
        {"usr1": 137, "imgsig": 137, "flagsig": 137}


def test_stop_all_stops_every_running_container(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                busybox: str) -> None:
    ids = [run_d(rootlet, "--name", n, busybox, "sleep", "30") for n in ("a1", "a2")]
    create(rootlet, "--name", "a3", busybox, "true")
    proc = rootlet("stop", "-a", "-t", "0")
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == sorted(ids)
    assert ps_states(rootlet) == {"a1": "exited", "a2": "exited", "a3": "created"}
    nothing, mixed = parallel(rootlet_env, ["stop", "-a"], ["stop", "-a", "a1"])
    assert (nothing.returncode, nothing.stdout) == (0, "")        # nothing left to stop
    assert mixed.returncode == 125                                 # --all and names do not mix


def test_kill_sends_the_given_signal(rootlet: RunRootlet, rootlet_env: dict[str, str], busybox: str,
                                     store_root: Path) -> None:
    cid = run_d(rootlet, "--name", "sig", busybox, "sh", "-c",
                f"trap 'echo got-HUP' HUP; trap 'exit 12' USR2; echo ready; {IDLE}")
    run_d(rootlet, "--name", "sig9", busybox, "sleep", "30")
    wait_until(lambda: logged(store_root, cid, "ready"), what="the traps to be set")
    proc = rootlet("kill", "-s", "HUP", "sig")
    assert (proc.returncode, proc.stdout) == (0, "sig\n"), proc.stderr
    wait_until(lambda: logged(store_root, cid, "got-HUP"), what="the HUP trap to run")
    assert inspect(rootlet, "sig")["State"]["Status"] == "running"
    bogus, usr2, default = parallel(rootlet_env, ["kill", "-s", "NOSUCHSIG", "sig"],
                                    ["kill", "--signal", "SIGUSR2", "sig"], ["kill", "sig9"])
    assert bogus.returncode == 125 and usr2.returncode == 0 and default.returncode == 0
    waited = rootlet("wait", "sig", "sig9", timeout=30)
    assert waited.stdout == "12\n137\n"                           # the default signal is SIGKILL
    proc = rootlet("kill", "sig9")
    assert proc.returncode == 125 and proc.stderr.startswith("Error: ")     # not running


def test_wait_blocks_until_exit_and_prints_the_code(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                     busybox: str, store_root: Path) -> None:
    create(rootlet, "--name", "w1", busybox, "sh", "-c", "sleep 0.5; exit 7")
    # A created container is not running: plain `wait` returns at once (podman); "exited" waits.
    waiter = subprocess.Popen(rootlet_command() + ["wait", "--condition", "exited", "w1"], env=rootlet_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert rootlet("start", "w1").returncode == 0
        out, err = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert (waiter.returncode, out) == (0, "7\n"), err
    run_d(rootlet, "--name", "w2", busybox, "true")
    both, unknown = parallel(rootlet_env, ["wait", "w1", "w2"], ["wait", "nosuch"], timeout=30)
    assert (both.returncode, both.stdout) == (0, "7\n0\n"), both.stderr
    assert unknown.returncode == 125
    # A --rm container is removed when it exits; `wait` still reports how it exited (docker, podman).
    cid = run_d(rootlet, "--rm", "--name", "w3", "--network", "none", busybox, "sh", "-c",
                "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 3")
    waiter = subprocess.Popen(rootlet_command() + ["wait", "w3"], env=rootlet_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        # `wait` is waiting once it watches PID 1 through a pidfd (or, at the latest, after 3 s).
        began = time.monotonic()
        wait_until(lambda: waits_on_a_pidfd(waiter.pid) or time.monotonic() - began > 3, what="wait to wait")
        assert rootlet("exec", "w3", "touch", "/tmp/go").returncode == 0
        out, err = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    wait_until(lambda: cid not in container_dirs(store_root), what="the --rm container to be removed")
    assert (waiter.returncode, out) == (0, "3\n"), err


# --- rm, prune --------------------------------------------------------------------------------------------

def test_rm_refuses_a_running_container_unless_forced(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                       busybox: str, store_root: Path) -> None:
    cid = run_d(rootlet, "--name", "busy", busybox, "sleep", "30")
    done = run_d(rootlet, "--name", "done", busybox, "true")
    create(rootlet, "--name", "new", busybox, "true")
    pid = inspect(rootlet, "busy")["State"]["Pid"]
    assert rootlet("wait", "done", timeout=30).stdout == "0\n"
    proc = rootlet("rm", "busy")
    assert proc.returncode == 2 and "running" in proc.stderr      # podman's status for a running one
    assert alive(pid)
    proc = rootlet("rm", "-a")                  # the stopped ones go, the running one stays
    assert proc.returncode == 2
    assert ps_states(rootlet) == {"busy": "running"}
    assert done not in container_dirs(store_root)
    proc = rootlet("rm", "-f", "busy")
    assert (proc.returncode, proc.stdout) == (0, "busy\n"), proc.stderr
    assert_removed(store_root, cid, "busy")
    assert container_dirs(store_root) == [] and names_index(store_root) == {}
    assert not alive(pid)
    assert leftover_processes(store_root, [cid]) == []
    assert rootlet("rm", "busy").returncode == 1                 # podman's status for a missing one
    # rm -a -f takes running containers too.
    ids = [p.stdout.strip() for p in parallel(rootlet_env, ["run", "-d", "--name", "f1", busybox, "sleep", "30"],
                                              ["run", "-d", "--name", "f2", busybox, "sleep", "30"],
                                              ["create", "--name", "f3", busybox, "true"])]
    assert ps_states(rootlet) == {"f1": "running", "f2": "running", "f3": "created"}
    proc = rootlet("rm", "-a", "-f")
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == sorted(ids)
    assert ps_json(rootlet, "-a") == [] and container_dirs(store_root) == [] and names_index(store_root) == {}
    assert leftover_processes(store_root, ids) == []


def test_rm_v_removes_anonymous_volumes_only(rootlet: RunRootlet, busybox: str, store_root: Path) -> None:
    volumes = store_root / "volumes"
    run_d(rootlet, "--name", "keepvol", "-v", "/data", busybox, "sh", "-c", "echo x > /data/f")
    run_d(rootlet, "--name", "dropvol", "-v", "/data", "-v", "named:/named", busybox, "sh", "-c",
          "echo y > /data/f; echo z > /named/f")
    assert rootlet("wait", "keepvol", "dropvol", timeout=30).stdout == "0\n0\n"
    assert len(os.listdir(volumes)) == 3
    kept = inspect(rootlet, "keepvol")["Mounts"][0]["Name"]
    assert rootlet("rm", "keepvol").returncode == 0
    assert rootlet("rm", "-v", "dropvol").returncode == 0
    assert sorted(os.listdir(volumes)) == sorted([kept, "named"])


def test_container_prune_removes_only_stopped_containers(rootlet: RunRootlet, busybox: str,
                                                         store_root: Path) -> None:
    running = run_d(rootlet, "--name", "keep", busybox, "sleep", "30")
    exited = run_d(rootlet, "--name", "gone1", busybox, "true")
    created = create(rootlet, "--name", "gone2", busybox, "true")
    assert rootlet("wait", "gone1", timeout=30).returncode == 0
    proc = rootlet("container", "prune", "-f")
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == sorted([exited, created])
    assert container_dirs(store_root) == [running]
    assert names_index(store_root) == {"keep": running}
    assert ps_states(rootlet) == {"keep": "running"}


# --- ps ----------------------------------------------------------------------------------------------------

def test_ps_lists_running_or_all_in_every_format(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                 busybox: str) -> None:
    up = run_d(rootlet, "--name", "p-up", busybox, "sleep", "30")
    done = run_d(rootlet, "--name", "p-done", busybox, "sh", "-c", "exit 2")
    assert rootlet("wait", "p-done", timeout=30).stdout == "2\n"
    created = create(rootlet, "--name", "p-new", busybox, "echo", "a-rather-long-command-line")
    (table, table_all, quiet, quiet_all, quiet_full, no_trunc, as_json, template, last2, latest,
     container_ls) = parallel(
        rootlet_env, ["ps"], ["ps", "-a"], ["ps", "-q"], ["ps", "-a", "-q"], ["ps", "-aq", "--no-trunc"],
        ["ps", "-a", "--no-trunc"], ["ps", "-a", "--format", "json"],
        ["ps", "-a", "--format", "{{.Names}} {{.State}}"], ["ps", "-n", "2", "--format", "{{.Names}}"],
        ["ps", "-l", "--format", "{{.Names}}"], ["container", "ls", "-a", "--format", "{{.Names}}"])

    lines = table.stdout.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(lines) == 2 and lines[1].startswith(up[:12]) and lines[1].endswith("p-up")
    lines = table_all.stdout.splitlines()
    assert len(lines) == 4
    by_name = {line.split()[-1]: line for line in lines[1:]}
    assert "Exited (2)" in by_name["p-done"] and "Created" in by_name["p-new"] and "Up " in by_name["p-up"]
    assert quiet.stdout == f"{up[:12]}\n"
    assert sorted(quiet_all.stdout.split()) == sorted(i[:12] for i in (up, done, created))
    assert sorted(quiet_full.stdout.split()) == sorted((up, done, created))
    assert up in no_trunc.stdout and "a-rather-long-command-line" in no_trunc.stdout

    rows = {r["Names"][0]: r for r in json.loads(as_json.stdout)}
    assert set(rows) == {"p-up", "p-done", "p-new"}
    assert [rows[n]["State"] for n in ("p-up", "p-done", "p-new")] == ["running", "exited", "created"]
    assert rows["p-done"]["ExitCode"] == 2 and rows["p-done"]["Exited"] is True
    assert rows["p-up"]["Id"] == up and rows["p-up"]["Command"] == ["sleep", "30"] and rows["p-up"]["Pid"] > 0
    assert rows["p-new"]["Image"] == busybox

    assert sorted(template.stdout.splitlines()) == ["p-done exited", "p-new created", "p-up running"]
    assert len(last2.stdout.split()) == 2 and len(latest.stdout.split()) == 1   # which ones: see the next test
    assert sorted(container_ls.stdout.split()) == ["p-done", "p-new", "p-up"]


def test_ps_lists_the_newest_container_first(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                             busybox: str) -> None:
    """Newest first, by creation time (not rounded to the second: these are created within a
    second or two of each other), and so for -n and -l."""
    names = [f"n{i}" for i in range(5)]
    for name in names:
        create(rootlet, "--name", name, busybox, "true")
    listing, last3, latest = parallel(rootlet_env, ["ps", "-a", "--format", "{{.Names}}"],
                                      ["ps", "-n", "3", "--format", "{{.Names}}"],
                                      ["ps", "-l", "--format", "{{.Names}}"])
    assert listing.stdout.split() == names[::-1]
    assert last3.stdout.split() == names[::-1][:3]
    assert latest.stdout == "n4\n"


def test_ps_shows_the_full_name_of_the_image_as_podman(rootlet: RunRootlet, busybox: str) -> None:
    """IMAGE is the full name the image was found under, whatever the user typed: a short name's
    resolved tag, an id's first name, a digest reference's repository@digest."""
    rootlet("tag", busybox, "mine:1", check=True)
    image_id = rootlet("images", "-q", busybox, check=True).stdout.strip()
    digest = rootlet("image", "inspect", "--format", "{{.Digest}}", busybox, check=True).stdout.strip()
    repo = busybox.rsplit(":", 1)[0]
    expected = {"by-short": "localhost/mine:1", "by-id": busybox, "by-digest": f"{repo}@{digest}",
                "by-full": busybox}
    for name, image in (("by-short", "mine:1"), ("by-id", image_id), ("by-digest", f"{repo}@{digest}"),
                        ("by-full", busybox)):
        create(rootlet, "--name", name, image, "true")
    listing = rootlet("ps", "-a", "--format", "{{.Names}} {{.Image}}", check=True).stdout
    assert dict(line.split() for line in listing.splitlines()) == expected, listing


def test_ps_filters(rootlet: RunRootlet, rootlet_env: dict[str, str], busybox: str, alpine: str) -> None:
    web1 = run_d(rootlet, "--name", "web1", "-l", "tier=front", busybox, "sleep", "30")
    run_d(rootlet, "--name", "web2", "-l", "tier=back", busybox, "sh", "-c", "exit 3")
    run_d(rootlet, "--name", "db", alpine, "true")
    create(rootlet, "--name", "later", busybox, "true")
    assert rootlet("wait", "web2", "db", timeout=30).stdout == "3\n0\n"
    cases = [
        (["name=web"], ["web1", "web2"]),
        (["name=db"], ["db"]),
        (["status=exited"], ["db", "web2"]),
        (["status=running"], ["web1"]),
        (["status=created"], ["later"]),
        (["label=tier"], ["web1", "web2"]),
        (["label=tier=front"], ["web1"]),
        ([f"id={web1[:10]}"], ["web1"]),
        (["exited=3"], ["web2"]),
        (["exited=0"], ["db"]),
        (["name=web", "status=exited"], ["web2"]),             # different keys: AND
        (["status=running", "status=created"], ["later", "web1"]),  # one key: OR
        ([f"ancestor={alpine}"], ["db"]),
        ([f"ancestor={busybox}"], ["later", "web1", "web2"]),
    ]
    results = parallel(rootlet_env, *[["ps", "-a", "--format", "{{.Names}}", *[a for f in filters
                                                                               for a in ("--filter", f)]]
                                      for filters, _ in cases])
    for (filters, expected), proc in zip(cases, results):
        assert proc.returncode == 0, f"ps -a --filter {filters}: {proc.stderr}"
        assert sorted(proc.stdout.split()) == expected, filters
    no_all, bogus = parallel(rootlet_env, ["ps", "-f", "status=exited", "--format", "{{.Names}}"],
                             ["ps", "--filter", "bogus=1"])
    assert sorted(no_all.stdout.split()) == ["db", "web2"]       # status= applies without -a
    assert bogus.returncode == 125


# --- logs -----------------------------------------------------------------------------------------------

def test_logs_keep_stdout_and_stderr_apart(rootlet: RunRootlet, busybox: str) -> None:
    run_d(rootlet, "--name", "streams", busybox, "sh", "-c",
          "echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2; printf no-newline")
    assert rootlet("wait", "streams", timeout=30).stdout == "0\n"
    proc = rootlet("logs", "streams")
    assert proc.returncode == 0
    assert proc.stdout == "out-1\nout-2\nno-newline"
    assert proc.stderr == "err-1\nerr-2\n"


def test_logs_follow_until_the_container_exits(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                               busybox: str) -> None:
    run_d(rootlet, "--name", "follow", busybox, "sh", "-c",
          "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second; echo second-err >&2; exit 5")
    follower = subprocess.Popen(rootlet_command() + ["logs", "-f", "follow"], env=rootlet_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follower.stdout is not None
        ready, _, _ = select.select([follower.stdout], [], [], 15)
        assert ready, "logs -f printed nothing"
        assert follower.stdout.readline() == b"first\n"
        assert follower.poll() is None, "logs -f must keep following while the container runs"
        assert rootlet("exec", "follow", "touch", "/tmp/go").returncode == 0
        out, err = follower.communicate(timeout=15)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 0
    assert (out, err) == (b"second\n", b"second-err\n")
    assert inspect(rootlet, "follow")["State"]["ExitCode"] == 5


def test_logs_tail_since_until_and_timestamps(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                              busybox: str) -> None:
    run_d(rootlet, "--name", "timed", busybox, "sh", "-c", "echo a; echo b >&2; sleep 0.3; echo c; echo d >&2")
    assert rootlet("wait", "timed", timeout=30).stdout == "0\n"

    stamped = rootlet("logs", "-t", "timed")
    stamps: dict[str, str] = {}
    for line in stamped.stdout.splitlines() + stamped.stderr.splitlines():
        ts, _, text = line.partition(" ")
        assert RFC3339.match(ts), line
        stamps[text] = ts
    assert sorted(stamps) == ["a", "b", "c", "d"]
    assert [t.split()[1] for t in stamped.stdout.splitlines()] == ["a", "c"]
    assert ns_of(stamps["a"]) <= ns_of(stamps["b"]) < ns_of(stamps["c"]) <= ns_of(stamps["d"])

    middle = (ns_of(stamps["b"]) + ns_of(stamps["c"])) // 2      # between b and c
    secs, frac = divmod(middle, 10**9)
    rfc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"
    cases = [
        (["--tail", "1"], ("", "d\n")),
        (["--tail", "2"], ("c\n", "d\n")),
        (["--tail", "0"], ("", "")),
        (["--tail", "all"], ("a\nc\n", "b\nd\n")),
        (["-n", "3"], ("c\n", "b\nd\n")),
        (["--since", rfc], ("c\n", "d\n")),
        (["--until", rfc], ("a\n", "b\n")),
        (["--since", f"{middle / 1e9:.3f}"], ("c\n", "d\n")),
        (["--since", "1h"], ("a\nc\n", "b\nd\n")),
        (["--since", rfc, "--tail", "1"], ("", "d\n")),
        (["-t", "--since", rfc], (f"{stamps['c']} c\n", f"{stamps['d']} d\n")),
    ]
    results = parallel(rootlet_env, *[["logs", *args, "timed"] for args, _ in cases],
                       ["logs", "--since", "not-a-time", "timed"], ["logs", "--tail", "x", "timed"])
    for (args, expected), proc in zip(cases, results):
        assert proc.returncode == 0, f"logs {args}: {proc.stderr}"
        assert (proc.stdout, proc.stderr) == expected, args
    assert [r.returncode for r in results[len(cases):]] == [125, 125]


def test_log_driver_none_keeps_no_log(rootlet: RunRootlet, busybox: str, store_root: Path) -> None:
    cid = run_d(rootlet, "--name", "quiet", "--log-driver", "none", busybox, "sh", "-c", "echo unseen; exit 6")
    assert rootlet("wait", "quiet", timeout=30).stdout == "6\n"
    assert inspect(rootlet, "quiet")["HostConfig"]["LogConfig"]["Type"] == "none"
    assert not list((store_root / "containers" / cid).glob("ctr.log*"))
    proc = rootlet("logs", "quiet")
    assert proc.returncode == 125 and "unseen" not in proc.stdout


def test_log_max_size_bounds_a_container_that_writes_without_end(rootlet: RunRootlet, busybox: str,
                                                                   store_root: Path) -> None:
    max_size = 64 * 1000  # docker's and podman's log sizes are decimal
    line = "0123456789abcdefghijklmnopqrstuvwxyz" * 2
    cid = run_d(rootlet, "--name", "chatty", "--log-opt", "max-size=64k", busybox, "yes", line)
    assert inspect(rootlet, "chatty")["HostConfig"]["LogConfig"]["Config"]["max-size"] == str(max_size)
    d = store_root / "containers" / cid
    current, rotated = d / "ctr.log", d / "ctr.log.1"

    def size(p: Path) -> int:
        try:
            return p.stat().st_size
        except FileNotFoundError:
            return 0

    wait_until(rotated.exists, what="the log to be rotated")
    # Watch the files while the container keeps writing: together they must never hold much more
    # than twice max-size (one record, at most 16 KiB, of slack).
    worst = 0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        worst = max(worst, size(current) + size(rotated))
        time.sleep(0.005)
    assert sorted(p.name for p in d.glob("ctr.log*")) in (["ctr.log", "ctr.log.1"], ["ctr.log.1"])
    assert worst <= 2 * max_size + 16 * 1024 + 128, \
        f"ctr.log + ctr.log.1 reached {worst} bytes with --log-opt max-size=64k"
    # What is kept is well-formed, and the container still runs.
    assert rootlet("logs", "--tail", "1", "chatty").stdout == line + "\n"
    assert inspect(rootlet, "chatty")["State"]["Status"] == "running"


# --- exec ------------------------------------------------------------------------------------------------

def test_exec_into_a_container_started_by_another_rootlet_process(rootlet: RunRootlet, busybox: str,
                                                                  store_root: Path) -> None:
    cid = run_d(rootlet, "--name", "host", "-e", "FROM_RUN=yes", busybox, "sh", "-c",
                f"echo written-by-pid1 > /tmp/mark; echo ready; {IDLE}")
    wait_until(lambda: logged(store_root, cid, "ready"), what="PID 1 to write its file")
    # `run -d` has exited; this is another rootlet process, joining the container through its pid.
    proc = rootlet("exec", "host", "sh", "-c",
                   'echo "$(hostname) $FROM_RUN $(cat /tmp/mark) $(tr "\\0" " " < /proc/1/cmdline)"; '
                   "ls /proc | grep -c '^[0-9]'")
    assert proc.returncode == 0, proc.stderr
    first, count = proc.stdout.splitlines()
    assert first == f"{cid[:12]} yes written-by-pid1 sh -c echo written-by-pid1 > /tmp/mark; echo ready; {IDLE} "
    assert int(count) < 10          # the container's own pid namespace: PID 1, the loop, us


def test_exec_exit_codes_follow_run(rootlet: RunRootlet, rootlet_env: dict[str, str], busybox: str) -> None:
    run_d(rootlet, "--name", "codes", busybox, "sleep", "30")
    create(rootlet, "--name", "never-started", busybox, "true")
    cases = [
        (["codes", "sh", "-c", "exit 5"], 5),
        (["codes", "no-such-command"], 127),
        (["codes", "/etc/passwd"], 126),
        (["-u", "nosuchuser", "codes", "true"], 126),
        (["codes", "sh", "-c", "kill -TERM $$"], 143),
        (["nosuch", "true"], 125),
        (["codes"], 125),
        (["--bogus", "codes", "true"], 125),
        (["never-started", "true"], 125),
    ]
    results = parallel(rootlet_env, *[["exec", *args] for args, _ in cases])
    for (args, code), proc in zip(cases, results):
        assert proc.returncode == code, f"exec {args}: {proc.stderr}"
        if code in (125, 126, 127):
            assert proc.stderr.startswith("Error: "), proc.stderr
    rootlet("stop", "-t", "0", "codes", check=True)
    proc = rootlet("exec", "codes", "true")
    assert proc.returncode == 125 and "running" in proc.stderr


def test_exec_user_env_workdir_stdin_privileged_and_detach(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                    busybox: str, tmp_path: Path) -> None:
    # Alive for the whole test however slow the machine (its end would take the detached command
    # with it); removed at the end.
    run_d(rootlet, "--name", "opts", "-e", "BASE=1", busybox, "sleep", "600")
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=2\n")
    proc = rootlet("exec", "-u", "nobody", "-e", "EXTRA=3", "-e", "PASSED", "--env-file", str(env_file),
                   "-w", "/etc", "opts", "sh", "-c",
                   'echo "$(id -un) $BASE $FROM_FILE $EXTRA $PASSED $(pwd)"', env={"PASSED": "4"})
    assert (proc.returncode, proc.stdout) == (0, "nobody 1 2 3 4 /etc\n"), proc.stderr
    assert rootlet("exec", "-i", "opts", "cat", input="through stdin\n").stdout == "through stdin\n"
    assert rootlet("exec", "opts", "cat", input="not attached\n").stdout == ""
    root, notty, plain, privileged, relative = parallel(
        rootlet_env, ["exec", "-u", "0:0", "opts", "id", "-u"],
        ["exec", "opts", "sh", "-c", "test -t 0 || echo no-tty"],
        ["exec", "opts", "grep", "CapEff", "/proc/self/status"],
        ["exec", "--privileged", "opts", "grep", "CapEff", "/proc/self/status"],
        ["exec", "-w", "relative", "opts", "true"])
    assert (root.stdout, notty.stdout) == ("0\n", "no-tty\n")
    caps = int(plain.stdout.split()[1], 16)
    all_caps = int(privileged.stdout.split()[1], 16)
    assert caps & (1 << 21) == 0                        # no CAP_SYS_ADMIN by default
    assert all_caps & (1 << 21) and all_caps & caps == caps
    assert relative.returncode == 125
    # -d returns at once (this command waits for a file only written afterwards); it runs on.
    proc = rootlet("exec", "-d", "opts", "sh", "-c",
                   "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo done > /tmp/detached", timeout=30)
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr
    assert rootlet("exec", "opts", "touch", "/tmp/go").returncode == 0
    wait_until(lambda: rootlet("exec", "opts", "cat", "/tmp/detached").stdout == "done\n",
               what="the detached command to finish")
    rootlet("rm", "-f", "opts", check=True)


def _pty_session(rootlet_env: dict[str, str], argv: list[str], script: bytes, typeahead: bool,
                 timeout: float = 20, idle: float | None = None) -> tuple[int | None, str]:
    """Run ``rootlet ARGV`` on a new pty; send ``script`` (before it starts, or after the shell's
    prompt); its exit code (None if it did not end) and everything it wrote. With ``idle``, give
    up once the shell has shown its prompt and then said nothing for that long."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(rootlet_command() + argv, env=rootlet_env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    out = b""
    sent = False
    try:
        if typeahead:
            os.write(master, script)
            sent = True
        deadline = time.monotonic() + timeout
        last_output = time.monotonic()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready and idle is not None and b"# " in out and time.monotonic() - last_output > idle:
                break
            if ready:
                last_output = time.monotonic()
                try:
                    chunk = os.read(master, 65536)
                except OSError:     # EIO: every slave end is closed
                    break
                if not chunk:
                    break
                out += chunk
                if not sent and b"# " in out:
                    os.write(master, script)
                    sent = True
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=2) if proc.poll() is None else proc.returncode
    except subprocess.TimeoutExpired:
        code = None
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, out.decode(errors="replace").replace("\r", "")


def test_exec_t_gives_the_command_a_terminal(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                             busybox: str) -> None:
    run_d(rootlet, "--name", "term", busybox, "sleep", "30")
    code, out = _pty_session(rootlet_env, ["exec", "-it", "term", "sh"],
                             b"tty; test -t 1 && echo is-a-tty; echo \"term=$TERM\"; echo sum-$((40+2)); exit 3\n",
                             typeahead=False)
    assert code == 3, out
    assert re.search(r"^/dev/pts/\d+$", out, re.M), out
    assert "is-a-tty" in out and "term=xterm" in out and "sum-42" in out
    # script(1) gives the same through its own pty; without -i no input is read.
    if shutil.which("script"):
        cmd = " ".join(rootlet_command() + ["exec", "-t", "term", "sh", "-c", "'tty; exit 4'"])
        res = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=rootlet_env, capture_output=True,
                             text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert res.returncode == 4, res.stdout + res.stderr
        assert re.search(r"/dev/pts/\d+", res.stdout), res.stdout


def test_exec_it_keeps_input_typed_before_the_session_is_set_up(rootlet: RunRootlet,
                                                                 rootlet_env: dict[str, str], busybox: str) -> None:
    """What a user (or a script) types while ``exec -it`` starts reaches the command, as with
    docker and podman, which switch the terminal to raw mode without flushing its input."""
    run_d(rootlet, "--name", "ahead", busybox, "sleep", "30")
    code, out = _pty_session(rootlet_env, ["exec", "-it", "ahead", "sh"], b"echo sum-$((40+2)); exit 3\n",
                             typeahead=True, timeout=10, idle=2)
    assert code == 3 and "sum-42" in out, out


# --- inspect, port, top --------------------------------------------------------------------------------

def test_inspect_reports_state_config_mounts_ports_and_policy(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                              busybox: str, tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    cid = run_d(rootlet, "--name", "insp", "-e", "FOO=bar", "-l", "tier=front", "-v", f"{data}:/data:ro",
                "-p", f"127.0.0.1:{port}:8080", "--restart", "on-failure:2", busybox, "sleep", "30")
    doc = inspect(rootlet, "insp")
    assert (doc["Id"], doc["Name"], doc["RestartCount"]) == (cid, "insp", 0)
    st = doc["State"]
    assert (st["Status"], st["Running"], st["ExitCode"]) == ("running", True, 0)
    assert alive(st["Pid"]) and RFC3339.match(st["StartedAt"]) and st["FinishedAt"] == ZERO_TIME
    assert doc["Config"]["Cmd"] == ["sleep", "30"]
    assert "FOO=bar" in doc["Config"]["Env"]
    assert doc["Config"]["Labels"] == {"tier": "front"}
    [mount] = doc["Mounts"]
    assert (mount["Source"], mount["Destination"], mount["RW"]) == (str(data), "/data", False)
    assert doc["NetworkSettings"]["Ports"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    status, two, policy = parallel(rootlet_env, ["inspect", "-f", "{{.State.Status}}", "insp"],
                                   ["inspect", "-f", "{{.Name}} {{.State.Running}}", cid[:12]],
                                   ["container", "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "insp"])
    assert (status.stdout, two.stdout, policy.stdout) == ("running\n", "insp true\n", "on-failure\n")

    rootlet("stop", "-t", "0", "insp", check=True)
    doc = inspect(rootlet, "insp")
    st = doc["State"]
    assert (st["Status"], st["Running"], st["Pid"], st["ExitCode"]) == ("exited", False, 0, 137)
    assert RFC3339.match(st["FinishedAt"]) and st["FinishedAt"] >= st["StartedAt"]
    assert doc["RestartCount"] == 0       # a stopped container is not restarted by its policy


def test_inspect_looks_at_containers_first_then_images(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                       busybox: str) -> None:
    image_id = rootlet("image", "inspect", "--format", "{{.Id}}", busybox).stdout.strip()
    rootlet("tag", busybox, "bb", check=True)
    cid = create(rootlet, "--name", "bb", busybox, "true")
    container, image, by_ref, wrong_type, both, bad_type = parallel(
        rootlet_env, ["inspect", "-f", "{{.Id}}", "bb"], ["inspect", "--type", "image", "-f", "{{.Id}}", "bb"],
        ["inspect", "-f", "{{.Id}}", busybox], ["inspect", "--type", "container", busybox],
        ["inspect", "bb", busybox], ["inspect", "--type", "volume", "bb"])
    assert container.stdout == f"{cid}\n"
    assert image.stdout == f"{image_id}\n" and by_ref.stdout == f"{image_id}\n"
    assert wrong_type.returncode == 125 and bad_type.returncode == 125
    docs = json.loads(both.stdout)
    assert [d["Id"] for d in docs] == [cid, image_id] and "State" in docs[0] and "State" not in docs[1]


def test_published_port_is_reachable_and_listed(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                busybox: str) -> None:
    port = free_port()
    run_d(rootlet, "--name", "web", "-p", f"127.0.0.1:{port}:8080", busybox, "sh", "-c",
          HTTPD.format(text="hello-from-httpd"))
    wait_until(lambda: serves(port, b"hello-from-httpd"), timeout=20, what=f"httpd to answer on 127.0.0.1:{port}")
    assert http_get(port).split(b"\r\n", 1)[0].split()[1] == b"200"
    all_ports, one, with_proto, unpublished, table, as_json = parallel(
        rootlet_env, ["port", "web"], ["port", "web", "8080"], ["port", "web", "8080/tcp"], ["port", "web", "9999"],
        ["ps"], ["ps", "--format", "json"])
    assert all_ports.stdout == f"8080/tcp -> 127.0.0.1:{port}\n"
    assert one.stdout == with_proto.stdout == f"127.0.0.1:{port}\n"
    assert unpublished.returncode == 125
    assert f"127.0.0.1:{port}->8080/tcp" in table.stdout
    [row] = json.loads(as_json.stdout)
    assert row["Ports"] == [{"host_ip": "127.0.0.1", "host_port": port, "container_port": 8080, "protocol": "tcp"}]

    rootlet("stop", "-t", "1", "web", check=True)
    wait_until(lambda: refused(port), what="the host port to close")
    assert rootlet("port", "web").stdout == ""


def test_rm_force_and_stop_free_the_published_port_before_they_return(rootlet: RunRootlet, busybox: str) -> None:
    """The monitor reaps the network helper of a container with published ports before it records
    the exit (`rm -f web && run -p 8080:80 …` must work); without ports it does not wait for it.
    A foreground `run -p` frees its port before it returns too."""
    for verb in (["rm", "-f"], ["stop", "-t", "0"], None):
        port = free_port()
        if verb is None:
            rootlet("run", "--rm", "-p", f"127.0.0.1:{port}:8080", busybox, "true", check=True)
        else:
            run_d(rootlet, "--name", "holder", "-p", f"127.0.0.1:{port}:8080", busybox, "sleep", "1000")
            rootlet(*verb, "holder", check=True)
        with socket.socket() as s:  # at once, no waiting: the port is free
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen()
        rootlet("rm", "-f", "--ignore", "holder", check=True)


def test_top_lists_the_container_processes(rootlet: RunRootlet, rootlet_env: dict[str, str], busybox: str,
                                           store_root: Path) -> None:
    cid = run_d(rootlet, "--name", "procs", busybox, "sh", "-c", "sleep 31 & echo ready; exec sleep 30")
    wait_until(lambda: logged(store_root, cid, "ready"), what="the background sleep to start")
    table, narrow, unknown = parallel(rootlet_env, ["top", "procs"], ["top", "procs", "pid", "args"],
                                      ["top", "procs", "nosuchcolumn"])
    assert table.returncode == 0, table.stderr
    rows = [line.split(None, 7) for line in table.stdout.splitlines()]
    assert rows[0] == ["USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND"]
    by_cmd = {r[7]: r for r in rows[1:]}
    assert set(by_cmd) == {"sleep 30", "sleep 31"}
    assert by_cmd["sleep 30"][:3] == ["root", "1", "0"]
    assert by_cmd["sleep 31"][0] == "root" and by_cmd["sleep 31"][2] == "1"
    lines = narrow.stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"] and len(lines) == 3
    assert unknown.returncode == 125
    rootlet("stop", "-t", "0", "procs", check=True)
    proc = rootlet("top", "procs")
    assert proc.returncode == 125 and proc.stderr.startswith("Error: ")


# --- restart policies ----------------------------------------------------------------------------------

def test_restart_on_failure_n_restarts_n_times_then_stays_exited(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                                  busybox: str, store_root: Path) -> None:
    flaky = run_d(rootlet, "--name", "flaky", "--restart", "on-failure:2", busybox, "sh", "-c", "echo run; exit 3")
    fine = run_d(rootlet, "--name", "fine", "--restart", "on-failure", busybox, "sh", "-c", "echo run; exit 0")
    proc = rootlet("wait", "flaky", "fine", timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "3\n0\n"), proc.stderr
    # Both monitors are gone: nothing is left that could restart either of them.
    wait_until(lambda: leftover_processes(store_root, [flaky, fine]) == [], what="the monitors to end")
    a, b = inspect(rootlet, "flaky"), inspect(rootlet, "fine")
    assert (a["State"]["Status"], a["State"]["ExitCode"], a["RestartCount"]) == ("exited", 3, 2)
    assert (b["State"]["Status"], b["State"]["ExitCode"], b["RestartCount"]) == ("exited", 0, 0)
    logs_a, logs_b = parallel(rootlet_env, ["logs", "flaky"], ["logs", "fine"])
    assert (logs_a.stdout, logs_b.stdout) == ("run\n" * 3, "run\n")
    assert {r["Names"][0]: r["RestartCount"] for r in ps_json(rootlet, "-a")} == {"flaky": 2, "fine": 0}


def test_restart_always_and_unless_stopped_restart_until_stop(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                              busybox: str, store_root: Path) -> None:
    names = {"loop": ("always", "echo run; sleep 0.2"), "loop2": ("unless-stopped", "echo run; sleep 0.2"),
             "steady": ("always", "sleep 30")}
    started = parallel(rootlet_env, *[["run", "-d", "--name", n, "--restart", policy, busybox, "sh", "-c", script]
                                      for n, (policy, script) in names.items()])
    assert [p.returncode for p in started] == [0, 0, 0], [p.stderr for p in started]
    ids = dict(zip(names, (p.stdout.strip() for p in started)))
    steady_pid = inspect(rootlet, "steady")["State"]["Pid"]
    wait_until(lambda: all(read_state(store_root, ids[n])["restart_count"] >= 2 for n in ("loop", "loop2")),
               timeout=20, what="two restarts of each")

    def no_keeper_left_unreaped() -> bool:
        # The monitor records an exit before it reaps that run's keeper: a keeper may be a zombie
        # for a moment after its run. While a later run's PID 1 still lives, none may be.
        state = read_state(store_root, ids["loop"])
        zombies = children_of(state["owner_pid"], "Z")
        if state["status"] != "running" or not alive(state["pid"], state["pid_start"]):
            return False  # between runs: look again during the next one
        assert zombies == [], f"the monitor left its keepers {zombies} unreaped"
        return True

    wait_until(no_keeper_left_unreaped, timeout=20, what="a run of the restarted container")
    docs = {n: json.loads(p.stdout)[0] for n, p in zip(names, parallel(rootlet_env, *[["inspect", n] for n in names]))}
    assert docs["loop"]["RestartCount"] >= 2 and docs["loop2"]["RestartCount"] >= 2
    assert {n: d["HostConfig"]["RestartPolicy"]["Name"] for n, d in docs.items()} == \
        {"loop": "always", "loop2": "unless-stopped", "steady": "always"}
    proc = rootlet("stop", "-t", "1", *names)
    assert proc.returncode == 0, proc.stderr
    # The stop is not undone: the monitors end, and the containers stay exited.
    wait_until(lambda: leftover_processes(store_root, ids.values()) == [], what="the monitors to end after stop")
    rows = {r["Names"][0]: r for r in ps_json(rootlet, "-a")}
    assert {n: r["State"] for n, r in rows.items()} == {"loop": "exited", "loop2": "exited", "steady": "exited"}
    assert rows["steady"]["RestartCount"] == 0 and not alive(steady_pid)
    count = rows["loop"]["RestartCount"]
    runs = rootlet("logs", "loop").stdout.count("run\n")
    assert runs == count + 1
    # `start` puts it back under its policy (docker counts restarts again from the start).
    assert rootlet("start", "loop").returncode == 0
    wait_until(lambda: read_state(store_root, ids["loop"])["restart_count"] >= 1, timeout=20,
               what="the policy to restart it again after start")
    assert rootlet("logs", "loop").stdout.count("run\n") >= runs + 2


# --- crashes ---------------------------------------------------------------------------------------------

def _running_pids(store_root: Path, cid: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """((container pid, start time), (monitor pid, start time)) of a running container."""
    state = read_state(store_root, cid)
    assert state["status"] == "running"
    container = (state["pid"], state["pid_start"])
    monitor = (state["owner_pid"], state["owner_start"])
    assert alive(*container) and alive(*monitor)
    return container, monitor


def _assert_exited_truthfully(rootlet: RunRootlet, name: str, code: int | None = 137) -> None:
    """``ps -a`` (and ``ps``) tell the truth: the container is exited, with ``code``."""
    rows = [r for r in ps_json(rootlet, "-a") if r["Names"] == [name]]
    assert len(rows) == 1
    assert (rows[0]["State"], rows[0]["Pid"]) == ("exited", 0), rows[0]
    if code is not None:
        assert rows[0]["ExitCode"] == code and rows[0]["Status"].startswith(f"Exited ({code})"), rows[0]
    assert ps_json(rootlet) == []


def _fuse_env(overlay: str) -> dict[str, str] | None:
    if overlay != "fuse":
        return None
    need("fuse-overlayfs")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        pytest.skip("/dev/fuse is not usable by this user")
    return {"ROOTLET_OVERLAY": "fuse"}


@pytest.mark.parametrize("overlay", ["auto", "fuse"])
def test_monitor_killed_takes_its_container_down(rootlet: RunRootlet, busybox: str, store_root: Path,
                                                 overlay: str) -> None:
    env = _fuse_env(overlay)
    port = free_port()
    cid = run_d(rootlet, "--name", "orphan", "-p", f"127.0.0.1:{port}:8080", busybox, "sh", "-c",
                HTTPD.format(text="up"), env=env)
    container, monitor = _running_pids(store_root, cid)
    if env:
        assert any("fuse-overlayfs" in p for p in leftover_processes(store_root, [cid])), \
            "ROOTLET_OVERLAY=fuse must run the container on fuse-overlayfs"
    wait_until(lambda: serves(port, b"up"), timeout=20, what="the published port to answer")

    os.kill(monitor[0], signal.SIGKILL)
    wait_until(lambda: not alive(*monitor), what="the monitor to die")
    _assert_exited_truthfully(rootlet, "orphan")
    state = inspect(rootlet, "orphan")["State"]
    assert (state["Status"], state["Running"], state["ExitCode"], state["Pid"]) == ("exited", False, 137, 0)
    assert state["FinishedAt"] != ZERO_TIME
    wait_until(lambda: leftover_processes(store_root, [cid], [container]) == [], timeout=10,
               what="every process of the container to be gone")
    assert refused(port)
    assert rootlet("exec", "orphan", "true").returncode == 125

    # It starts again (on the same port) and is removed cleanly.
    proc = rootlet("start", "orphan", env=env)
    assert proc.returncode == 0, proc.stderr
    wait_until(lambda: serves(port, b"up"), timeout=20, what="the started container to answer")
    container2, _ = _running_pids(store_root, cid)
    proc = rootlet("rm", "-f", "orphan")
    assert proc.returncode == 0, proc.stderr
    assert_removed(store_root, cid, "orphan")
    assert leftover_processes(store_root, [cid], [container2]) == []


def test_rm_f_right_after_a_monitor_crash(rootlet: RunRootlet, busybox: str, store_root: Path) -> None:
    env = _fuse_env("fuse")
    cid = run_d(rootlet, "--name", "crashed", busybox, "sleep", "30", env=env)
    container, monitor = _running_pids(store_root, cid)
    os.kill(monitor[0], signal.SIGKILL)
    wait_until(lambda: not alive(*monitor), what="the monitor to die")
    proc = rootlet("rm", "-f", "crashed")           # no ps in between: rm finds out by itself
    assert proc.returncode == 0, proc.stderr
    assert_removed(store_root, cid, "crashed")
    assert leftover_processes(store_root, [cid], [container]) == []


def test_container_pid1_killed_from_outside_is_recorded(rootlet: RunRootlet, busybox: str,
                                                        store_root: Path) -> None:
    cid = run_d(rootlet, "--name", "victim", busybox, "sleep", "30")
    pid = inspect(rootlet, "victim")["State"]["Pid"]
    container, monitor = _running_pids(store_root, cid)
    assert container[0] == pid
    os.kill(pid, signal.SIGKILL)
    assert rootlet("wait", "victim", timeout=30).stdout == "137\n"
    _assert_exited_truthfully(rootlet, "victim")
    wait_until(lambda: not alive(*monitor), what="the monitor to end with its container")
    assert leftover_processes(store_root, [cid], [container]) == []
    proc = rootlet("start", "victim")
    assert proc.returncode == 0, proc.stderr
    container2, _ = _running_pids(store_root, cid)
    assert container2[0] != pid
    assert rootlet("exec", "victim", "true").returncode == 0
    assert rootlet("rm", "-f", "victim").returncode == 0
    assert_removed(store_root, cid, "victim")
    assert leftover_processes(store_root, [cid], [container2]) == []


def test_state_from_a_previous_boot_is_not_trusted(rootlet: RunRootlet, busybox: str,
                                                   store_root: Path) -> None:
    """A machine restart, simulated: every process of the container dies at once, without a word,
    and its record carries another boot's id."""
    cid = run_d(rootlet, "--name", "rebooted", "-p", f"127.0.0.1:{free_port()}:80", busybox, "sleep", "30")
    container, _ = _running_pids(store_root, cid)
    for line in leftover_processes(store_root, [cid], [container]):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
    wait_until(lambda: leftover_processes(store_root, [cid], [container]) == [], what="everything to die")
    state = read_state(store_root, cid)
    assert state["status"] == "running"      # nobody was left to record anything
    state["boot_id"] = OTHER_BOOT
    state_file(store_root, cid).write_text(json.dumps(state))

    _assert_exited_truthfully(rootlet, "rebooted", code=None)
    assert inspect(rootlet, "rebooted")["State"]["Running"] is False
    proc = rootlet("start", "rebooted")
    assert proc.returncode == 0, proc.stderr
    container2, _ = _running_pids(store_root, cid)
    assert rootlet("rm", "-f", "rebooted").returncode == 0
    assert_removed(store_root, cid, "rebooted")
    assert leftover_processes(store_root, [cid], [container2]) == []


def test_a_recorded_pid_that_is_no_longer_ours_is_never_signalled(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                                  busybox: str, store_root: Path) -> None:
    """After a reboot (or on this boot, once the pids were reused) the recorded pids may be other
    processes: rootlet must record the container exited without signalling them."""
    stale = {n: create(rootlet, "--name", n, busybox, "sleep", "30") for n in ("previous-boot", "pid-reused")}
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        started = wait_until(lambda: start_time(bystander.pid), what="the bystander to start")
        this_boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        for name, cid in stale.items():
            state = read_state(store_root, cid)
            state.update(status="running", pid=bystander.pid, owner_pid=bystander.pid, started_at=time.time(),
                         detached=True, exit_code=None)
            if name == "previous-boot":
                state.update(pid_start=started, owner_start=started, boot_id=OTHER_BOOT)
            else:
                state.update(pid_start=started + 1, owner_start=started + 1, boot_id=this_boot)
            state_file(store_root, cid).write_text(json.dumps(state))

        for name in stale:
            _assert_exited_truthfully(rootlet, name, code=None)
        killed = parallel(rootlet_env, *[["kill", n] for n in stale])
        assert [p.returncode for p in killed] == [125, 125]
        proc = rootlet("rm", "-f", *stale)
        assert proc.returncode == 0, proc.stderr
        for name, cid in stale.items():
            assert_removed(store_root, cid, name)
        assert bystander.poll() is None and alive(bystander.pid, started), "rootlet signalled a process not its own"
    finally:
        bystander.kill()
        bystander.wait()
