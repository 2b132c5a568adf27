"""Lifecycle races without a daemon: many ``rootlet`` processes on one store at once.

Nothing serialises these commands but their locks. Afterwards every container must be accounted
for: listed by ``ps -a`` in a state that matches its processes, or removed without a trace (no
directory, no name in containers.json); nothing half-written; no process left over.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunRootlet, rootlet_command
from tests.system.test_lifecycle import (
    alive, container_dirs, kill_everything, leftover_processes, names_index, parallel, read_state, wait_until)

pytestmark = pytest.mark.system

ID = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(autouse=True)
def _nothing_outlives_the_test(store_root: Path) -> Iterator[None]:
    yield
    kill_everything(store_root)


def popen(rootlet_env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(rootlet_command() + list(args), env=rootlet_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(procs: Sequence[subprocess.Popen], timeout: float = 90) -> list[subprocess.CompletedProcess]:
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def ancestors(pid: int) -> Iterator[int]:
    """pid's parent, grandparent … up to (not including) pid 0."""
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            return
        pid = int(stat[stat.rfind(b")") + 2:].split()[1])
        yield pid


def assert_store_consistent(store_root: Path, expected_names: set[str]) -> dict[str, dict[str, Any]]:
    """Every container directory is whole and named in containers.json, and the other way round;
    nothing half-written lies around. Returns name → {"id", "config", "state"}."""
    index = names_index(store_root)
    dirs = container_dirs(store_root)
    assert sorted(index.values()) == sorted(dirs), f"containers.json {index} vs directories {dirs}"
    assert len(set(index.values())) == len(index), f"two names for one container: {index}"
    assert set(index) <= expected_names, index
    whole = {}
    for name, cid in index.items():
        d = store_root / "containers" / cid
        assert ID.fullmatch(cid)
        config = json.loads((d / "config.json").read_text())
        state = json.loads((d / "state.json").read_text())
        assert (config["id"], config["name"]) == (cid, name)
        assert state["status"] in ("created", "running", "exited"), state
        for leftover in d.iterdir():
            assert not leftover.name.endswith((".tmp", ".new", ".part")) and not leftover.name.startswith(".tmp"), \
                f"half-written file {leftover}"
        whole[name] = {"id": cid, "config": config, "state": state}
    for leftover in store_root.iterdir():
        assert not leftover.name.startswith("containers.json.") and not leftover.name.endswith(".tmp"), \
            f"half-written file {leftover}"
    tmp = store_root / "tmp"
    if tmp.is_dir():
        assert [p.name for p in tmp.iterdir()] == [], "a removal left its directory behind in tmp/"
    return whole


def assert_processes_accounted_for(store_root: Path, whole: dict[str, dict[str, Any]]) -> None:
    """Each running container has its PID 1 and its monitor; every other process of the store
    descends from one of those monitors (nothing orphaned, nothing of a removed container)."""
    monitors = set()
    for name, c in whole.items():
        state = c["state"]
        if state["status"] == "running":
            assert alive(state["pid"], state["pid_start"]), f"{name} is recorded running, its PID 1 is gone"
            assert alive(state["owner_pid"], state["owner_start"]), f"{name} is recorded running, its monitor is gone"
            monitors.add(state["owner_pid"])
        else:
            assert state["pid"] == 0 or not alive(state["pid"], state["pid_start"]), f"{name}: {state}"
    for line in leftover_processes(store_root):
        pid = int(line.split(":", 1)[0])
        assert pid in monitors or monitors & set(ancestors(pid)), f"process of no running container: {line}"


def test_concurrent_runs_with_ps_stop_and_rm_racing_them(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                         busybox: str, store_root: Path) -> None:
    names = [f"r{i}" for i in range(20)]
    stop_targets, rm_targets = names[0:5], names[5:10]
    bystanders = names[10:]
    done = threading.Event()
    listings: list[subprocess.CompletedProcess] = []
    outcomes: dict[str, list[int]] = {n: [] for n in stop_targets + rm_targets}
    errors: list[str] = []

    def lister() -> None:
        while not done.is_set():
            listings.extend(parallel(rootlet_env, ["ps", "-a", "--format", "json"], ["ps", "-a"]))

    def racer(command: list[str], name: str) -> None:
        # Again and again until it succeeds: it hits the container before it exists, while it is
        # being created or started, or once it runs, whichever comes first. Half of the racers
        # wait for the name to appear in containers.json (the end of `create`, the start of `start`).
        try:
            deadline = time.monotonic() + 60
            if int(name[1:]) % 2:
                wait_until(lambda: name in names_index(store_root), timeout=60, interval=0.005,
                           what=f"{name} to be created")
            while time.monotonic() < deadline:
                proc = subprocess.run(rootlet_command() + command + [name], env=rootlet_env, capture_output=True,
                                      text=True, timeout=60)
                outcomes[name].append(proc.returncode)
                if proc.returncode == 0 and proc.stdout.strip() == name:
                    return
                if proc.returncode == 0 and proc.stdout == "" and command[:2] == ["rm", "-f"]:
                    continue  # podman's rm -f: a name that is no container (yet) is no error
                if proc.returncode != 125 or not proc.stderr.startswith("Error: "):
                    errors.append(f"{' '.join(command)} {name} exited {proc.returncode}: {proc.stderr}")
                    return
        except Exception as exc:  # noqa: BLE001 - reported by the test's thread below
            errors.append(f"{' '.join(command)} {name}: {exc!r}")

    threads = [threading.Thread(target=lister)]
    threads += [threading.Thread(target=racer, args=(["stop", "-t", "1"], n)) for n in stop_targets]
    threads += [threading.Thread(target=racer, args=(["rm", "-f"], n)) for n in rm_targets]
    for t in threads:
        t.start()
    try:
        # The runs start once the eager racers are already retrying against names that do not
        # exist yet, so their next attempts land anywhere in create → start → running.
        wait_until(lambda: all(outcomes[n] for n in stop_targets + rm_targets if int(n[1:]) % 2 == 0),
                   timeout=30, what="the eager racers to try once")
        runs = [popen(rootlet_env, "run", "-d", "--name", n, busybox, "sleep", "30") for n in names]
        results = dict(zip(names, finish(runs)))
        for t in threads[1:]:
            t.join(timeout=90)
    finally:
        done.set()
        threads[0].join(timeout=90)

    # Every command answered sensibly while the others ran.
    assert errors == []
    for name, proc in results.items():
        if proc.returncode == 0:
            assert ID.fullmatch(proc.stdout.strip()), f"run -d --name {name} printed {proc.stdout!r}"
        else:
            assert proc.returncode == 125 and proc.stderr.startswith("Error: "), f"run -d --name {name}: {proc.stderr}"
    for name in bystanders:
        assert results[name].returncode == 0, f"run -d --name {name} failed next to the others: {results[name].stderr}"
    for name, codes in outcomes.items():
        assert codes and codes[-1] == 0, f"{name}: the racing stop/rm never succeeded ({codes})"
    assert listings
    for proc in listings:
        assert proc.returncode == 0, f"{' '.join(proc.args)} failed during the race: {proc.stderr}"
        if "json" in proc.args:
            rows = json.loads(proc.stdout)
            listed = [r["Names"][0] for r in rows]
            assert len(listed) == len(set(listed)), f"a name listed twice: {listed}"
            assert set(listed) <= set(names), listed
            assert all(r["State"] in ("created", "running", "stopping", "exited") for r in rows), rows

    # Afterwards: the store and ps -a agree, and each container is where it should be.
    whole = assert_store_consistent(store_root, set(names))
    proc = rootlet("ps", "-a", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["Names"][0]: r for r in json.loads(proc.stdout)}
    assert set(rows) == set(whole), f"ps -a lists {sorted(rows)}, the store holds {sorted(whole)}"
    for name, row in rows.items():
        assert row["Id"] == whole[name]["id"]
        assert row["State"] == whole[name]["state"]["status"], (name, row, whole[name]["state"])
        if row["State"] == "created":
            assert results[name].returncode != 0, f"{name}: run -d succeeded but the container never started"
        if results[name].returncode == 0 and name not in rm_targets:
            assert row["Id"] == results[name].stdout.strip()
    for name in rm_targets:
        assert name not in rows, f"{name} was removed (rm -f exited 0) but is still listed"
    for name in bystanders:
        assert rows[name]["State"] == "running", rows[name]
    for name in stop_targets:
        assert rows[name]["State"] in ("running", "exited"), rows[name]
    assert_processes_accounted_for(store_root, whole)

    # And everything goes away cleanly.
    proc = rootlet("rm", "-a", "-f")
    assert proc.returncode == 0, proc.stderr
    assert container_dirs(store_root) == [] and names_index(store_root) == {}
    assert rootlet("ps", "-a", "-q").stdout == ""
    assert leftover_processes(store_root) == []


def test_one_name_raced_by_many_runs_makes_exactly_one_container(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                                 busybox: str, store_root: Path) -> None:
    results = finish([popen(rootlet_env, "run", "-d", "--name", "same", busybox, "sleep", "30") for _ in range(8)])
    winners = [r for r in results if r.returncode == 0]
    assert len(winners) == 1, [(r.returncode, r.stderr) for r in results]
    for r in results:
        if r.returncode != 0:
            assert r.returncode == 125 and "already in use" in r.stderr, r.stderr
    cid = winners[0].stdout.strip()
    assert container_dirs(store_root) == [cid] and names_index(store_root) == {"same": cid}
    whole = assert_store_consistent(store_root, {"same"})
    assert whole["same"]["state"]["status"] == "running"
    assert_processes_accounted_for(store_root, whole)


def test_concurrent_starts_run_the_container_once(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                   busybox: str, store_root: Path) -> None:
    cid = rootlet("create", "--name", "once", busybox, "sleep", "30", check=True).stdout.strip()
    results = finish([popen(rootlet_env, "start", "once") for _ in range(6)])
    state = read_state(store_root, cid)
    assert state["status"] == "running" and alive(state["pid"], state["pid_start"])
    # One monitor, one PID 1: every other process of the store descends from that monitor.
    assert_processes_accounted_for(store_root, assert_store_consistent(store_root, {"once"}))
    sleeps = [line for line in leftover_processes(store_root, [cid], [(state["pid"], state["pid_start"])])
              if line.split(":", 1)[1].strip() == "sleep 30"]
    assert len(sleeps) == 1, sleeps
    # Starting a running container is not an error (docker's and podman's rule).
    assert [(r.returncode, r.stdout) for r in results] == [(0, "once\n")] * 6, [r.stderr for r in results]


def test_concurrent_rm_f_removes_a_running_container_once(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                          busybox: str, store_root: Path) -> None:
    cid = rootlet("run", "-d", "--name", "doomed", busybox, "sleep", "30", check=True).stdout.strip()
    state = read_state(store_root, cid)
    results = finish([popen(rootlet_env, "rm", "-f", "doomed") for _ in range(6)])
    # -f ignores a missing container (podman's rule), also one that another `rm -f` removed
    # meanwhile: every racer succeeds. One that was already waiting to remove it names it (it is
    # gone, as asked: the rule that lets `rm -f` of a `--rm` container name it), the later ones not.
    assert [r.returncode for r in results] == [0] * 6, [r.stderr for r in results]
    assert "doomed\n" in [r.stdout for r in results] and {r.stdout for r in results} <= {"", "doomed\n"}
    assert container_dirs(store_root) == [] and names_index(store_root) == {}
    assert_store_consistent(store_root, set())
    wait_until(lambda: leftover_processes(store_root, [cid], [(state["pid"], state["pid_start"])]) == [],
               timeout=10, what="every process of the removed container to end")


def test_stop_and_start_racing_leave_a_truthful_state(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                      busybox: str, store_root: Path) -> None:
    cid = rootlet("run", "-d", "--name", "flip", busybox, "sleep", "30", check=True).stdout.strip()
    for _ in range(3):
        results = finish([popen(rootlet_env, "stop", "-t", "0", "flip"), popen(rootlet_env, "start", "flip"),
                          popen(rootlet_env, "stop", "-t", "0", "flip"), popen(rootlet_env, "start", "flip")])
        for r in results:
            assert r.returncode in (0, 125), r.stderr
        whole = assert_store_consistent(store_root, {"flip"})
        row = json.loads(rootlet("ps", "-a", "--format", "json").stdout)[0]
        assert row["State"] == whole["flip"]["state"]["status"] in ("running", "exited")
        assert_processes_accounted_for(store_root, whole)
    assert rootlet("rm", "-f", "flip").returncode == 0
    assert leftover_processes(store_root, [cid]) == []
