"""Paths an image or a container controls never lead rootlet to the host: mount destinations on a
volume another container can change, image files reached through hostile symlinks, cp."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command
from tests.security.conftest import push_image
from tests.support.layouts import busybox_members, directory, file, symlink

pytestmark = pytest.mark.system


def test_a_mount_destination_swapped_for_a_symlink_on_a_shared_volume_stays_inside(
        rootlet: RunRootlet, probe: Path, tiny: str, tmp_path: Path) -> None:
    """CVE-2021-30465's class: container A flips /data/sub between a directory and a symlink to a
    host directory while B is started with ``-v vol:/data -v HOST:/data/sub/x``. Resolving the
    destination by path would create ``x`` on the host; rootlet walks it by descriptor."""
    target = tmp_path / "host-target"
    target.mkdir()
    source = tmp_path / "source"
    source.mkdir()
    rootlet("run", "-d", "--name", "flipper", "-v", "vol:/data", "-v", f"{probe}:/probe:ro", tiny,
            "/probe", "flip", "/data", str(target), check=True)
    try:
        outcomes = set()
        for _ in range(100):  # rootlet 0.1 lost this race within 13 to 128 tries
            proc = rootlet("run", "--rm", "-v", "vol:/data", "-v", f"{source}:/data/sub/x", tiny, "true")
            outcomes.add(proc.returncode)
            assert proc.returncode in (0, 125), proc.stderr
            assert list(target.iterdir()) == [], "a mount point was created on the host"
        assert outcomes  # the race was run
    finally:
        rootlet("rm", "-f", "flipper")
    assert list(target.iterdir()) == []


@pytest.fixture
def hostile_etc(registry: str, tmp_path: Path) -> str:
    """An image whose /etc is ``a/etc`` and ``a`` is ``/tmp/..``: followed on the host, the image's
    /etc/passwd is the host's."""
    members = busybox_members() + [symlink("etc", "a/etc"), symlink("a", "/tmp/..")]
    return push_image(registry, tmp_path, "security/hostile-etc", members)


def test_keep_id_does_not_copy_the_hosts_passwd_through_image_symlinks(rootlet: RunRootlet, hostile_etc: str,
                                                                      store_root: Path) -> None:
    """The entries keep-id adds go into the container's /etc only when it is a real directory: here
    it leads (on the host) to the host's /etc, and nothing of the host's passwd lands anywhere."""
    cid = rootlet("create", "--userns", "keep-id", hostile_etc, "true", check=True).stdout.strip()
    start = rootlet("start", "-a", cid)  # /etc loops inside the container: /etc/hosts cannot be mounted
    assert start.returncode in (0, 125) and "Traceback" not in start.stderr, start.stderr
    host_lines = [line for line in Path("/etc/passwd").read_bytes().splitlines() if line.count(b":") == 6]
    for path in (store_root / "containers" / cid).rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                text = path.read_bytes()
            except PermissionError:
                continue
            assert not any(line in text for line in host_lines), path


@pytest.mark.parametrize("user_flags", [("--userns", "keep-id"), ("-u", "4321:4321")])
def test_user_entries_are_never_written_through_a_symlinked_passwd(rootlet: RunRootlet, registry: str,
                                                                    tmp_path: Path, user_flags: tuple[str, ...]) -> None:
    """The passwd and group entries are added before the container's root is pivoted to, so the
    host's paths are still in view: an image whose /etc/passwd is a symlink to a host file must not
    get that file written (it is skipped: the command runs without a name)."""
    victim = tmp_path / "victim"
    victim.write_text("original\n")
    members = busybox_members() + [directory("etc"), symlink("etc/passwd", str(victim)),
                                   symlink("etc/group", str(victim))]
    image = push_image(registry, tmp_path, "security/passwd-link", members)
    proc = rootlet("run", "--rm", *user_flags, image, "id")
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "original\n"


def test_home_is_not_taken_from_the_hosts_passwd(rootlet: RunRootlet, hostile_etc: str) -> None:
    rootlet("create", "--name", "h", "-u", str(os.getuid()), hostile_etc, "true", check=True)
    env = rootlet("inspect", "--format", "{{json .Config.Env}}", "h", check=True).stdout
    assert '"HOME=/"' in env, env


@pytest.fixture
def huge_passwd(registry: str, tmp_path: Path) -> str:
    """An image with a 57 MB /etc/passwd whose last entry is the image's user."""
    lines = [f"user{n}:x:{n + 1000}:{n + 1000}:generated user {n}:/home/user{n}:/bin/sh\n" for n in range(850_000)]
    passwd = ("root:x:0:0:root:/root:/bin/sh\n" + "".join(lines) + "nobody:x:65534:65534:nobody:/:/bin/sh\n")
    members = busybox_members() + [directory("etc"), file("etc/passwd", passwd.encode()),
                                   file("etc/group", b"root:x:0:\nnobody:x:65534:\n")]
    assert len(passwd) > 57_000_000
    return push_image(registry, tmp_path, "security/huge-passwd", members, config={"User": "nobody"})


#: Runs a command and prints its peak RSS in KiB. A separate small process starts it: a process's
#: high-water mark includes its parent's at the time of the fork (this test's own image bytes).
_MEASURE = ("import os, subprocess, sys\n"
            "with open(sys.argv[1], 'wb') as out:\n"
            "    p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)\n"
            "    _, status, usage = os.wait4(p.pid, 0)\n"
            "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n")


def _peak_rss_mb(env: dict[str, str], args: list[str], out: Path) -> tuple[int, float]:
    """Run ``rootlet ARGS``; its exit status and the peak RSS of it and every process it waited
    for (the container's included), from wait4."""
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(out), *rootlet_command(), *args], env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    code, kib = proc.stdout.split()
    return int(code), int(kib) / 1024


def test_a_huge_passwd_costs_no_memory(rootlet: RunRootlet, rootlet_env: dict[str, str], huge_passwd: str,
                                       tmp_path: Path) -> None:
    """57 MB of /etc/passwd and ``User: nobody``: rootlet 0.1 needed 1 GB to find the user, podman
    45 MB."""
    rootlet("pull", "-q", huge_passwd, check=True)
    out = tmp_path / "out"
    code, peak = _peak_rss_mb(rootlet_env, ["run", "--rm", huge_passwd, "id", "-u"], out)
    assert (code, out.read_text()) == (0, "65534\n")
    assert peak < 80, f"peak RSS {peak:.0f} MB"
    code, peak = _peak_rss_mb(rootlet_env, ["run", "--rm", "--userns", "keep-id", huge_passwd, "wc", "-l",
                                            "/etc/passwd"], out)
    # Every line of the image's file, plus ours unless our uid is one of the generated users'.
    expected = 850002 if 1000 <= os.getuid() < 851000 else 850003
    assert code == 0 and out.read_text().split()[0] == str(expected), out.read_text()
    assert peak < 80, f"keep-id: peak RSS {peak:.0f} MB"


def test_cp_out_replaces_a_host_symlink_and_never_writes_into_the_container(rootlet: RunRootlet, tiny: str,
                                                                           tmp_path: Path) -> None:
    """podman's rule: the host side of cp is resolved on the host. A host symlink to a path that
    exists only inside the container is replaced by the file, not followed in the container."""
    rootlet("run", "-d", "--name", "cpc", tiny, "sh", "-c", "mkdir -p /inside && sleep 60", check=True)
    try:
        time.sleep(0.5)
        link = tmp_path / "link"
        link.symlink_to("/inside")  # a directory of the container, not of the host
        proc = rootlet("cp", "cpc:/bin/busybox", str(link))
        assert proc.returncode == 0, proc.stderr
        assert not link.is_symlink() and link.stat().st_size > 100_000
        assert rootlet("exec", "cpc", "ls", "/inside").stdout == ""
    finally:
        rootlet("rm", "-f", "cpc")


def test_cp_of_a_missing_path_says_so(rootlet: RunRootlet, tiny: str, tmp_path: Path) -> None:
    rootlet("create", "--name", "stopped", tiny, "true", check=True)
    for container in ("stopped",):
        proc = rootlet("cp", f"{container}:/no/such/file", str(tmp_path / "x"))
        assert proc.returncode == 125
        assert "no such file or directory" in proc.stderr and "removed" not in proc.stderr, proc.stderr
