"""``system df``, ``system prune``, ``system reset``, ``events``, ``stats`` and ``pause``, as the
unprivileged user with the real rootlet command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command

pytestmark = pytest.mark.system


def _df(rootlet: RunRootlet) -> dict[str, dict]:
    return {row["Type"]: row for row in json.loads(rootlet("system", "df", "--format", "json", check=True).stdout)}


def test_df_numbers_are_consistent_with_what_the_store_holds(rootlet: RunRootlet, busybox: str) -> None:
    empty = _df(rootlet)
    assert [empty[t]["Total"] for t in ("Images", "Containers", "Local Volumes")] == [1, 0, 0]
    image_size = json.loads(rootlet("image", "inspect", busybox, check=True).stdout)[0]["Size"]
    assert empty["Images"]["Size"] == image_size and empty["Images"]["Reclaimable"] == image_size
    rootlet("run", "--name", "writer", "-v", "vol:/v", busybox, "sh", "-c",
            "head -c 5000 /bin/busybox > /v/blob; head -c 3000 /bin/busybox > /tmp/upper", check=True)
    rootlet("run", "-d", "--name", "runner", busybox, "sleep", "60", check=True)
    df = _df(rootlet)
    assert (df["Images"]["Total"], df["Images"]["Active"], df["Images"]["Reclaimable"]) == (1, 1, 0)
    assert (df["Containers"]["Total"], df["Containers"]["Active"]) == (2, 1)
    assert df["Containers"]["Size"] >= 3000 and df["Containers"]["Reclaimable"] >= 3000  # the exited one's
    assert (df["Local Volumes"]["Total"], df["Local Volumes"]["Active"], df["Local Volumes"]["Size"],
            df["Local Volumes"]["Reclaimable"]) == (1, 1, 5000, 0)
    text = rootlet("system", "df", check=True).stdout.splitlines()
    assert text[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line.split("  ")[0] for line in text[1:]] == ["Images", "Containers", "Local Volumes"]
    verbose = rootlet("system", "df", "-v", check=True).stdout
    for title in ("Images space usage:", "Containers space usage:", "Local Volumes space usage:"):
        assert title in verbose
    assert "VOLUME NAME" in verbose and "vol " in verbose and "writer" in verbose and "runner" in verbose
    rootlet("rm", "writer", check=True)
    df = _df(rootlet)
    assert (df["Local Volumes"]["Active"], df["Local Volumes"]["Reclaimable"]) == (0, 5000)
    assert rootlet("system", "df", "--format", "{{.Type}}={{.Total}}", check=True).stdout.splitlines() == \
        ["Images=1", "Containers=1", "Local Volumes=1"]


def test_system_prune_removes_stopped_containers_unused_volumes_and_images_and_says_so(
        rootlet: RunRootlet, busybox: str, alpine: str) -> None:
    rootlet("run", "--name", "done", "-v", "old:/v", busybox, "sh", "-c", "echo data > /v/f", check=True)
    rootlet("run", "-d", "--name", "up", busybox, "sleep", "60", check=True)
    rootlet("volume", "create", "spare", check=True)
    assert rootlet("system", "prune", input="").returncode == 125  # no terminal to confirm: nothing removed
    assert len(rootlet("ps", "-aq", check=True).stdout.split()) == 2
    proc = rootlet("system", "prune", "-f", check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == "Deleted Containers" and len(lines[1]) == 64 and lines[-1].startswith("Total reclaimed space: ")
    assert "Deleted Volumes" not in proc.stdout  # only with --volumes
    assert rootlet("ps", "-aq", check=True).stdout.split() == [rootlet("ps", "-q", check=True).stdout.strip()]
    proc = rootlet("system", "prune", "-f", "-a", "--volumes", check=True)
    assert proc.stdout.splitlines()[:3] == ["Deleted Volumes", "old", "spare"]
    assert "Deleted Images" in proc.stdout  # alpine: no container uses it; busybox is kept by "up"
    images = rootlet("images", "--format", "{{.Repository}}", check=True).stdout.split()
    assert images == [busybox.rsplit(":", 1)[0]]
    assert not proc.stdout.endswith(" 0B\n")


def _store_entries(root: Path) -> list[str]:
    return sorted(os.listdir(root)) if root.exists() else []


def test_system_reset_leaves_an_empty_store_that_works_again(rootlet: RunRootlet, busybox: str,
                                                             store_root: Path) -> None:
    # Files of subordinate ids everywhere: an image's layers, a container's upper dir, a volume.
    rootlet("run", "--name", "owner", "-v", "v:/v", busybox, "sh", "-c",
            "mkdir /v/d /tmp/d && echo x > /v/d/f && echo y > /tmp/d/f && chown -R 1234:1234 /v/d /tmp/d "
            "&& chmod 700 /v/d /tmp/d", check=True)
    rootlet("run", "-d", "--name", "running", busybox, "sleep", "600", check=True)
    pid = json.loads(rootlet("inspect", "running", check=True).stdout)[0]["State"]["Pid"]
    assert rootlet("system", "reset", input="").returncode == 125  # refused on a pipe without -f
    assert "images.json" in _store_entries(store_root)
    rootlet("system", "reset", "-f", check=True)
    assert _store_entries(store_root) == []
    assert not os.path.exists(f"/proc/{pid}")  # the running container was stopped first
    assert rootlet("images", "-q", check=True).stdout == ""
    rootlet("pull", "-q", busybox, check=True)
    assert rootlet("run", "--rm", busybox, "echo", "again", check=True).stdout == "again\n"


def test_system_reset_refuses_a_directory_that_is_not_a_store(rootlet: RunRootlet, tmp_path: Path) -> None:
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    proc = rootlet("--root", str(other), "system", "reset", "-f")
    assert proc.returncode == 125 and "does not look like a rootlet store" in proc.stderr
    assert (other / "thesis.tex").exists()


def _events(rootlet: RunRootlet, *args: str) -> list[dict]:
    out = rootlet("events", "--stream=false", "--format", "json", *args, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_events_are_recorded_in_order_and_filtered(rootlet: RunRootlet, busybox: str) -> None:
    rootlet("volume", "create", "ev", check=True)
    rootlet("run", "--name", "one", "--label", "app=web", "-v", "ev:/v", busybox, "sh", "-c", "exit 3")
    rootlet("rename", "one", "two", check=True)
    rootlet("rm", "two", check=True)
    rootlet("volume", "rm", "ev", check=True)
    rootlet("tag", busybox, "localhost/mine:1", check=True)
    rootlet("untag", busybox, "localhost/mine:1", check=True)
    every = _events(rootlet)
    assert [(e["Type"], e["Status"]) for e in every] == [
        ("image", "pull"), ("volume", "create"), ("container", "create"), ("container", "start"),
        ("container", "died"), ("container", "rename"), ("container", "remove"), ("volume", "remove"),
        ("image", "tag"), ("image", "untag")]
    died = every[4]
    assert (died["Name"], died["ContainerExitCode"], died["Image"], died["Attributes"]) == \
        ("one", 3, busybox, {"app": "web"})
    assert every[6]["Name"] == "two" and every[6]["ID"] == died["ID"]
    assert [e["Time"] for e in every] == sorted(e["Time"] for e in every)
    assert [e["Status"] for e in _events(rootlet, "--filter", "type=volume")] == ["create", "remove"]
    assert [e["Status"] for e in _events(rootlet, "--filter", "container=two")] == ["rename", "remove"]
    assert [e["Status"] for e in _events(rootlet, "--filter", f"container={died['ID'][:12]}",
                                         "--filter", "event=died", "--filter", "event=start")] == ["start", "died"]
    assert [e["Type"] for e in _events(rootlet, "--filter", "image=localhost/mine:1")] == ["image", "image"]
    assert _events(rootlet, "--filter", "volume=ev", "--filter", "event=create")[0]["Name"] == "ev"
    assert _events(rootlet, "--until", "2000-01-01T00:00:00Z") == []
    assert len(_events(rootlet, "--since", "10m")) == len(every)
    text = rootlet("events", "--no-stream", "--filter", "event=rename", check=True).stdout
    assert text.split()[4:7] == ["container", "rename", died["ID"]] and "name=two, app=web)" in text
    assert rootlet("events", "--no-stream", "--filter", "color=red").returncode == 125


def test_events_stream_new_events_until_interrupted_or_until(rootlet: RunRootlet, rootlet_env: dict[str, str]) -> None:
    proc = subprocess.Popen(rootlet_command() + ["events", "--filter", "type=volume", "--format", "{{.Name}}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=rootlet_env)
    try:
        time.sleep(1.0)
        rootlet("volume", "create", "streamed", check=True)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "streamed\n"
        assert proc.poll() is None  # still following
    finally:
        proc.terminate()
        proc.wait(10)
    started = time.monotonic()
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
    rootlet("events", "--until", until, check=True, timeout=20)  # --until in the future: it ends then by itself
    assert 1 < time.monotonic() - started < 15


def test_stats_no_stream_shows_podmans_columns_from_proc(rootlet: RunRootlet, busybox: str) -> None:
    rootlet("run", "-d", "--name", "busy", busybox, "sh", "-c", "sleep 600 & sleep 600 & wait", check=True)
    lines = rootlet("stats", "--no-stream", check=True).stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET IO",
                                                       "BLOCK IO", "PIDS", "CPU TIME", "AVG CPU %"]
    assert len(lines) == 2 and lines[1].split()[1] == "busy"
    doc = json.loads(rootlet("stats", "--no-stream", "--format", "json", "busy", check=True).stdout)[0]
    assert list(doc) == ["id", "name", "cpu_time", "cpu_percent", "avg_cpu", "mem_usage", "mem_percent", "net_io",
                         "block_io", "pids"]
    assert doc["pids"] == "3" and doc["cpu_percent"].endswith("%")
    usage, limit = doc["mem_usage"].split(" / ")
    assert usage.endswith("B") and usage[0].isdigit() and not usage.startswith("0B") and limit.endswith("B")
    assert rootlet("stats", "--no-stream", "--format", "{{.Name}} {{.PIDS}}", check=True).stdout == "busy 3\n"
    rootlet("create", "--name", "idle", busybox, "true", check=True)
    assert rootlet("stats", "--no-stream", "idle").returncode == 125
    rows = rootlet("stats", "--no-stream", "-a", "--format", "{{.Name}} {{.PIDS}}", check=True).stdout.splitlines()
    assert rows == ["busy 3", "idle 0"]


def test_pause_and_unpause_are_refused_clearly(rootlet: RunRootlet, busybox: str) -> None:
    rootlet("run", "-d", "--name", "p", busybox, "sleep", "600", check=True)
    for verb in ("pause", "unpause"):
        proc = rootlet(verb, "p")
        assert proc.returncode == 125 and "cgroup" in proc.stderr and "Traceback" not in proc.stderr
    proc = rootlet("container", "pause", "nosuch")
    assert proc.returncode == 125 and "no such container" in proc.stderr
    assert json.loads(rootlet("inspect", "p", check=True).stdout)[0]["State"]["Status"] == "running"
