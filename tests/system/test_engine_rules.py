"""Rules the engine keeps for every front end: nothing deletes data another record refers to, old
stores keep working, and the warm paths stay light.

All through the real ``rootlet`` command, rootless, on a fresh store per test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command

pytestmark = pytest.mark.system


def _image_id(rootlet: RunRootlet, ref: str) -> str:
    return rootlet("image", "inspect", "--format", "{{.Id}}", ref, check=True).stdout.strip().removeprefix("sha256:")


def test_rmi_refuses_an_image_a_created_container_uses(rootlet: RunRootlet, busybox: str) -> None:
    """The reproduction of the bug: ``create`` then ``rmi`` used to delete the layers under it."""
    rootlet("create", "--name", "web", busybox, "echo", "still here", check=True)
    rmi = rootlet("rmi", busybox)
    assert rmi.returncode == 2, rmi.stdout + rmi.stderr            # podman's status for an image in use
    assert "used by web: image is in use by a container" in rmi.stderr
    assert _image_id(rootlet, busybox)
    start = rootlet("start", "-a", "web")
    assert start.returncode == 0 and start.stdout == "still here\n", start.stderr


def test_rmi_force_removes_the_containers_first(rootlet: RunRootlet, busybox: str, store_root: Path) -> None:
    cid = rootlet("create", "--name", "doomed", busybox, "true", check=True).stdout.strip()
    image = _image_id(rootlet, busybox)
    rmi = rootlet("rmi", "-f", busybox)
    assert rmi.returncode == 0, rmi.stderr
    assert f"Deleted: {image}" in rmi.stdout
    assert rootlet("ps", "-a", "-q", "--no-trunc").stdout.split() == []
    assert not (store_root / "containers" / cid).exists()
    assert list((store_root / "layers").iterdir()) == []


def test_rmi_keeps_the_layers_of_a_container_whose_image_lost_its_name(rootlet: RunRootlet, busybox: str) -> None:
    """Untagged, the image is dangling: neither ``image prune`` nor ``prune -a`` may take it or its
    layers while a container stands on them."""
    rootlet("create", "--name", "keeper", busybox, "echo", "ok", check=True)
    rootlet("untag", busybox, check=True)
    for flags in ((), ("-a",)):
        prune = rootlet("image", "prune", "-f", *flags)
        assert prune.returncode == 0, prune.stderr
        assert prune.stdout == ""
    assert rootlet("start", "-a", "keeper").stdout == "ok\n"
    rootlet("rm", "keeper", check=True)
    prune = rootlet("image", "prune", "-f")
    assert prune.returncode == 0 and prune.stdout.strip(), prune.stderr  # now it goes


def test_rmi_all_reports_images_in_use_and_removes_the_rest(rootlet: RunRootlet, busybox: str, alpine: str) -> None:
    rootlet("create", "--name", "user", alpine, "true", check=True)
    busybox_id, alpine_id = _image_id(rootlet, busybox), _image_id(rootlet, alpine)
    rmi = rootlet("rmi", "-a")
    assert rmi.returncode == 2
    assert f"Deleted: {busybox_id}" in rmi.stdout and alpine_id[:12] in rmi.stderr
    assert rootlet("images", "-q", "--no-trunc").stdout.split() == [alpine_id]


def test_a_store_written_by_rootlet_0_1_still_starts_its_containers(rootlet: RunRootlet, busybox: str,
                                                                   store_root: Path) -> None:
    """Config version 1 (a free-form ``spec`` dict) is read as it is, and inspect tells the same."""
    cid = rootlet("create", "--name", "old", "-v", "/data", "--restart", "on-failure:2", "--stop-signal", "HUP",
                  "--ulimit", "nofile=100:200", "-e", "A=1", busybox, "sh", "-c", "ulimit -n; echo $A",
                  check=True).stdout.strip()
    before = json.loads(rootlet("inspect", "old", check=True).stdout)[0]
    path = store_root / "containers" / cid / "config.json"
    path.write_text(json.dumps(_as_version_1(json.loads(path.read_text()))))
    after = json.loads(rootlet("inspect", "old", check=True).stdout)[0]
    for key in ("Config", "Mounts", "HostConfig", "Path", "Args"):
        assert after[key] == before[key], key
    run = rootlet("start", "-a", "old")
    assert (run.returncode, run.stdout) == (0, "100\n1\n"), run.stderr
    assert rootlet("rm", "-v", "old").returncode == 0


def _as_version_1(doc: dict) -> dict:
    """A version-2 config written back the way rootlet 0.1.0 wrote it (its create.py, verbatim)."""
    old = {k: doc[k] for k in ("id", "name", "image_id", "image_name", "argv", "env", "cwd", "user", "hostname",
                                "created", "layers", "labels", "network", "auto_remove")}
    old["ports"] = doc["ports"]
    old["mounts"] = []
    binds, tmpfs, anonymous = [], [], []
    for m in doc["mounts"]:
        if m["type"] == "tmpfs":
            tmpfs.append([m["destination"], ",".join(m["options"])])
            old["mounts"].append({"Type": "tmpfs", "Source": "tmpfs", "Destination": m["destination"],
                                  "RW": not m["readonly"], "Options": list(m["options"])})
            continue
        binds.append([m["source"], m["destination"], m["readonly"], list(m["options"])])
        if m["type"] == "volume":
            if m["anonymous"]:
                anonymous.append(m["name"])
            old["mounts"].append({"Type": "volume", "Name": m["name"], "Source": m["source"],
                                  "Destination": m["destination"], "RW": not m["readonly"]})
        else:
            old["mounts"].append({"Type": "bind", "Source": m["source"], "Destination": m["destination"],
                                  "RW": not m["readonly"]})
    old["spec"] = {
        "entrypoint": doc["entrypoint"], "cmd": doc["cmd"], "additional_gids": doc["additional_gids"],
        "binds": binds, "tmpfs": tmpfs, "anonymous_volumes": anonymous, "readonly_rootfs": doc["readonly_rootfs"],
        "caps": doc["caps"], "ambient_caps": doc["ambient_caps"], "no_new_privs": doc["no_new_privs"],
        "rlimits": [[r["resource"], r["soft"], r["hard"]] for r in doc["rlimits"]], "tty": doc["tty"],
        "interactive": doc["interactive"], "init": doc["init"], "overlay": doc["overlay"], "restart": doc["restart"],
        "stop_signal": doc["stop_signal"], "stop_timeout": doc["stop_timeout"], "log": doc["log"], "publish": [],
    }
    return old


def _imported_modules(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``rootlet ARGS`` under ``python -X importtime``; the modules rootlet imported.

    Only imports after the interpreter's own start count: site's (a ``.pth`` file, setuptools'
    editable finder with its ``re`` and ``pathlib``) are the environment's, not the command's."""
    exe = rootlet_command()[0]
    python = Path(exe).parent / "python"
    if not python.exists():
        python = Path(sys.executable)
    proc = subprocess.run([str(python), "-X", "importtime", "-c",
                           "import sys; sys.stderr.write('-- rootlet --\\n'); from rootlet.cli.main import main; "
                           "sys.exit(main(sys.argv[1:]))", *args],
                          capture_output=True, text=True, env=env, timeout=120)
    modules = set()
    started = False
    for line in proc.stderr.splitlines():
        started = started or line == "-- rootlet --"
        if started and line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip())
    assert started, proc.stderr[-2000:]
    return proc, modules


def test_run_that_pulls_does_not_import_typer(rootlet_env: dict[str, str], registry: str) -> None:
    proc, modules = _imported_modules(rootlet_env, "run", "--rm", "-q", f"{registry}/library/busybox:latest", "true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rootlet.runtime.image.pull" in modules  # it did pull
    assert not {"typer", "click", "rich"} & modules


@pytest.mark.parametrize("args", [["pull", "-q"], ["image", "pull", "--quiet"]], ids=" ".join)
def test_pull_does_not_import_typer(rootlet_env: dict[str, str], registry: str, args: list[str]) -> None:
    """Scripts pull before they run: typer's and click's import would be paid by every pull."""
    proc, modules = _imported_modules(rootlet_env, *args, f"{registry}/library/alpine:3.20")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rootlet.runtime.image.fetchlayers" in modules  # it did fetch layers
    assert not {"typer", "click", "rich"} & modules


def test_run_rm_with_a_published_port_does_not_import_tempfile(rootlet_env: dict[str, str], rootlet: RunRootlet,
                                                               busybox: str) -> None:
    rootlet("run", "--rm", busybox, "true", check=True)  # warm: the seccomp program is compiled once per store
    proc, modules = _imported_modules(rootlet_env, "run", "--rm", "-p", "127.0.0.1::80", busybox, "true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rootlet.runtime.net.usermode" in modules  # the network helper did run
    assert not {"tempfile", "typer", "subprocess", "shutil", "dataclasses"} & modules, \
        sorted({"tempfile", "typer", "subprocess", "shutil", "dataclasses"} & modules)
    assert os.listdir(Path(rootlet_env["ROOTLET_ROOT"]) / "containers") == []


#: What a warm run and the listing commands have no use for, each milliseconds to import: socket's
#: enums, typing, tempfile, subprocess; json (its decoder compiles regular expressions: the store
#: reads and writes through registry/jsoncodec.py), re, enum (signal's enums: runtime/linux/signals.py),
#: contextlib with the collections and functools it imports (locks are classes: registry/fsutil.py),
#: warnings (os.get_exec_path imports it: runtime/linux/proc.py reads PATH itself), datetime
#: (image times are parsed by hand: cli/render.py), the ascii codec (a text file opened with
#: encoding="ascii" loads it; bytes.decode("ascii") does not).
WARM_FORBIDDEN = {"socket", "typing", "tempfile", "subprocess", "json", "re", "enum", "signal", "contextlib",
                  "collections", "functools", "warnings", "datetime", "encodings.ascii"}
#: What listing a container has no use for either: ctypes, the OCI spec and the network code (a
#: container record names its nested port, limit and network records by module: registry/record.py).
LISTING_FORBIDDEN = {"ctypes", "rootlet.runtime.oci.spec", "rootlet.runtime.net.networks", "rootlet.runtime.net.ports"}


def test_a_warm_run_imports_neither_socket_nor_typing(rootlet_env: dict[str, str], rootlet: RunRootlet,
                                                      busybox: str) -> None:
    """Each costs milliseconds at import (socket's enums, typing): the most common command has no
    use for them (host.containers.internal comes from /proc, not a socket)."""
    rootlet("run", "--rm", busybox, "true", check=True)  # warm: the seccomp program is compiled once per store
    proc, modules = _imported_modules(rootlet_env, "run", "--rm", busybox, "true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rootlet.runtime.container.create" in modules
    assert not WARM_FORBIDDEN & modules, sorted(WARM_FORBIDDEN & modules)


#: The commands scripts run most after `run`: parsed without typer (cli/argv.py), so that their
#: start-up is not typer's and click's (~25 ms of imports, more than podman's whole `ps`).
LIGHT_COMMANDS = [
    ["--version"], ["ps", "-a"], ["container", "ls", "-a"], ["images"], ["image", "ls", "-q"],
    ["inspect", "--format", "{{.Name}}", "light"], ["container", "inspect", "light"], ["logs", "light"],
    ["container", "logs", "light"], ["image", "inspect", "IMAGE"], ["stop", "light"], ["rm", "-f", "light"],
]


@pytest.mark.parametrize("args", LIGHT_COMMANDS, ids=lambda a: " ".join(a))
def test_listing_and_stopping_import_neither_typer_nor_rich(rootlet_env: dict[str, str], rootlet: RunRootlet,
                                                            busybox: str, args: list[str]) -> None:
    rootlet("run", "--name", "light", busybox, "echo", "hi", check=True)
    args = [busybox if a == "IMAGE" else a for a in args]
    proc, modules = _imported_modules(rootlet_env, *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    forbidden = {"typer", "click", "rich", "importlib.metadata"} | WARM_FORBIDDEN
    if args[0] in ("ps", "images", "inspect", "logs") or args[1:2] in (["ls"], ["inspect"], ["logs"]):
        forbidden |= LISTING_FORBIDDEN
    if "--format" in args:
        # A Go template is lexed with regular expressions (cli/template.py); re imports enum and
        # functools, functools collections.
        forbidden -= {"re", "enum", "functools", "collections"}
    assert not forbidden & modules, sorted(forbidden & modules)


def test_version_imports_only_the_entry_point_and_the_version(rootlet_env: dict[str, str]) -> None:
    """Nothing failed, so not even the error classes: ``--version`` is how scripts probe for rootlet."""
    proc, modules = _imported_modules(rootlet_env, "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("rootlet version "), proc.stderr[-2000:]
    assert {m for m in modules if m.startswith("rootlet")} == {
        "rootlet", "rootlet.cli", "rootlet.cli.main", "rootlet.runtime", "rootlet.runtime.version"}


def test_fast_parsed_commands_refuse_what_they_do_not_know(rootlet: RunRootlet, busybox: str) -> None:
    """Every flag they accept works; an unknown one, a bad value or a stray argument is refused with
    125 and a hint, as the typer-parsed commands do."""
    rootlet("create", "--name", "idle", busybox, "true", check=True)
    for args, message in ((["ps", "--bogus"], "unknown flag: --bogus"), (["ps", "extra"], "takes no arguments"),
                          (["ps", "--last", "x"], "invalid --last"), (["images", "a", "b"], "at most one name"),
                          (["inspect"], "needs at least one"), (["logs", "--tail", "many", "idle"], "invalid --tail"),
                          (["stop", "-t", "soon", "idle"], "invalid --time"), (["container", "rm", "-z", "idle"],
                                                                            "unknown shorthand flag: 'z'"),
                          (["pull"], "needs an image"), (["image", "pull", "a", "b"], "takes one image"),
                          (["pull", "--tls-verify=maybe", "alpine"], "must be true or false")):
        proc = rootlet(*args)
        assert proc.returncode == 125, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr and "Hint: " in proc.stderr, (args, proc.stderr)
    assert rootlet("inspect", "-t", "container", "--format", "{{.Name}}", "idle").stdout == "idle\n"
    assert rootlet("container", "ls", "-a", "-q", "--no-trunc").stdout.strip() == \
        rootlet("inspect", "--format", "{{.Id}}", "idle").stdout.strip()
    helped = rootlet("container", "rm", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: rootlet container rm ")
    assert rootlet("ps", "-h").stdout.startswith("Usage: rootlet ps ")  # -h as every typer command takes it
    assert "--volumes" in helped.stdout and "--depend" in helped.stdout
    listing = rootlet("container", "--help").stdout
    assert all(f"  {word} " in listing for word in ("ls", "rm", "stop", "logs", "inspect")), listing
    assert rootlet("rm", "--depend", "idle").stdout == "idle\n"
