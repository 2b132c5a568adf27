"""`rootlet pull` / `images` / `rmi` / `tag` / `inspect` end to end: the real command, a real registry,
real user namespaces. Every test starts from a fresh store root."""

from __future__ import annotations

import json
import os
import pwd
import re
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command

pytestmark = pytest.mark.system
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _subid_start(path: str) -> int | None:
    user = pwd.getpwuid(os.getuid()).pw_name
    for line in Path(path).read_text().splitlines():
        parts = line.split(":")
        if len(parts) == 3 and parts[0] in (user, str(os.getuid())):
            return int(parts[1])
    return None


def _images_json(rootlet: RunRootlet) -> list[dict]:
    proc = rootlet("images", "--format", "json", check=True)
    return json.loads(proc.stdout)


def test_pull_prints_image_id_and_images_lists_it(rootlet: RunRootlet, registry: str) -> None:
    proc = rootlet("pull", f"{registry}/library/alpine:3.20", check=True)
    image_id = proc.stdout.strip()
    assert HEX64.match(image_id), proc.stdout
    listed = _images_json(rootlet)
    assert [i["Id"] for i in listed] == [image_id]
    assert listed[0]["RepoTags"] == [f"{registry}/library/alpine:3.20"]
    table = rootlet("images", check=True).stdout.splitlines()
    assert table[0].split()[:2] == ["REPOSITORY", "TAG"]
    assert table[1].split()[:3] == [f"{registry}/library/alpine", "3.20", image_id[:12]]
    assert rootlet("images", "-q", check=True).stdout.split() == [image_id[:12]]


def test_pull_quiet_prints_only_the_id(rootlet: RunRootlet, registry: str) -> None:
    proc = rootlet("pull", "-q", f"{registry}/library/busybox:musl", check=True)
    assert HEX64.match(proc.stdout.strip()) and proc.stderr == ""


def test_second_pull_reports_up_to_date(rootlet: RunRootlet, registry: str) -> None:
    first = rootlet("pull", f"{registry}/library/alpine:3.19", check=True).stdout
    second = rootlet("pull", f"{registry}/library/alpine:3.19", check=True)
    assert second.stdout == first
    assert "up to date" in second.stderr


def _pull_on_a_terminal(rootlet_env: dict[str, str], ref: str) -> tuple[int, str]:
    """``rootlet pull REF`` with stderr on a pty (the progress bars), stdout captured; (code, terminal text)."""
    import pty
    import select

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(rootlet_command() + ["pull", ref], stdout=subprocess.DEVNULL, stderr=slave,
                                env={**rootlet_env, "TERM": "xterm-256color", "COLUMNS": "100"})
    finally:
        os.close(slave)
    chunks = []
    while select.select([master], [], [], 60)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the pull exited and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_pull_on_a_terminal_prints_the_reference_verbatim_and_says_up_to_date(rootlet_env: dict[str, str],
                                                                              registry: str) -> None:
    """On a terminal the progress is rich's: the reference must come out as typed (not coloured in
    pieces: ``e:3`` of ``alpine:3.20`` is no time of day), and a second pull says it had nothing to do."""
    ref = f"{registry}/library/alpine:3.20"
    code, first = _pull_on_a_terminal(rootlet_env, ref)
    assert code == 0, first
    assert f"Trying to pull {ref}..." in first, repr(first)
    code, second = _pull_on_a_terminal(rootlet_env, ref)
    assert code == 0 and "Image is up to date" in second, repr(second)


def test_images_shows_when_an_image_without_a_creation_time_was_stored(rootlet: RunRootlet, registry: str,
                                                                        tmp_path: Path) -> None:
    """``created`` is optional in an image config: CREATED then says when the image was pulled,
    as podman does, not N/A."""
    from tests.support.layouts import file, tar_bytes, write_layout
    from tests.support.registries import push_layout

    layout = tmp_path / "undated"
    write_layout(layout, [(tar_bytes([file("hello", b"hi\n")]), "gzip")], created=None)
    push_layout(registry, layout, "latest", "test/undated:1")
    rootlet("pull", f"{registry}/test/undated:1", check=True)
    row = rootlet("images", check=True).stdout.splitlines()[1]
    assert re.search(r"\b(Less than a second|\d+ seconds?) ago\b", row), row


def test_short_name_pulls_through_a_docker_io_mirror(rootlet: RunRootlet, registry: str, tmp_path: Path) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text(
        'unqualified-search-registries = ["docker.io"]\n'
        '[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n'
        f'[[registry.mirror]]\nlocation = "{registry}"\n'
    )
    env = {"ROOTLET_REGISTRIES_CONF": str(conf)}
    image_id = rootlet("pull", "alpine:3.20", env=env, check=True).stdout.strip()
    doc = json.loads(rootlet("image", "inspect", "alpine:3.20", check=True).stdout)[0]
    assert doc["Id"] == "sha256:" + image_id
    assert doc["RepoTags"] == ["docker.io/library/alpine:3.20"]
    assert all(d.startswith("docker.io/library/alpine@sha256:") for d in doc["RepoDigests"])
    assert doc["Config"]["Cmd"] == ["/bin/sh"]
    assert doc["Os"] == "linux" and doc["Architecture"] == "amd64"
    assert doc["RootFS"]["Type"] == "layers" and len(doc["RootFS"]["Layers"]) == 1
    assert doc["Size"] > 1_000_000


def test_platform_flag_selects_arm64_from_the_index(rootlet: RunRootlet, registry: str) -> None:
    rootlet("pull", "--platform", "linux/arm64", f"{registry}/library/busybox:latest", check=True)
    doc = json.loads(rootlet("inspect", f"{registry}/library/busybox", check=True).stdout)[0]
    assert doc["Architecture"] == "arm64"


def test_unknown_platform_lists_the_available_ones(rootlet: RunRootlet, registry: str) -> None:
    proc = rootlet("pull", "--platform", "linux/s390x", f"{registry}/library/busybox:latest")
    assert proc.returncode == 125
    assert "linux/amd64" in proc.stderr and "linux/arm64" in proc.stderr
    assert _images_json(rootlet) == []


def test_pull_by_digest_records_repo_digest(rootlet: RunRootlet, registry: str) -> None:
    first = rootlet("pull", "-q", f"{registry}/library/alpine:3.20", check=True).stdout.strip()
    digest = json.loads(rootlet("inspect", first, check=True).stdout)[0]["Digest"]
    proc = rootlet("pull", "-q", f"{registry}/library/alpine@{digest}", check=True)
    assert proc.stdout.strip() == first


@pytest.mark.parametrize("ref, needle", [
    ("Alpine!", "invalid reference"),
    ("{registry}/library/alpine:nope", "manifest unknown"),
    ("{registry}/library/nothing-here:1", ""),
    ("127.0.0.1:1/library/alpine", "127.0.0.1:1"),
])
def test_pull_failures_exit_125_with_one_line_and_hint(rootlet: RunRootlet, registry: str, ref: str, needle: str) -> None:
    proc = rootlet("pull", ref.format(registry=registry), timeout=60)
    assert proc.returncode == 125, proc.stderr
    assert proc.stderr.startswith("Error: ")
    assert needle.lower() in proc.stderr.lower()
    assert "Traceback" not in proc.stderr


def test_unknown_flag_exits_125(rootlet: RunRootlet) -> None:
    proc = rootlet("pull", "--no-such-flag", "alpine")
    assert proc.returncode == 125 and "no-such-flag" in proc.stderr


def test_layer_files_are_owned_by_subordinate_ids(rootlet: RunRootlet, registry: str,
                                                                   store_root: Path) -> None:
    if os.getuid() == 0:
        pytest.skip("rootless ownership is checked as an unprivileged user (CI runs it as one)")
    gid_start = _subid_start("/etc/subgid")
    if gid_start is None:
        pytest.skip("this user has no subgid range")
    rootlet("pull", f"{registry}/library/alpine:3.20", check=True)
    diffs = list((store_root / "layers").glob("*/diff"))
    assert len(diffs) == 1
    shadow = os.lstat(diffs[0] / "etc" / "shadow")
    # /etc/shadow is root:shadow (gid 42) in Alpine: container gid 42 is host gid start+41.
    assert shadow.st_uid == os.getuid()
    assert shadow.st_gid == gid_start + 41
    assert stat.S_IMODE(shadow.st_mode) == 0o640
    assert stat.S_ISLNK(os.lstat(diffs[0] / "bin" / "sh").st_mode)
    assert stat.S_IMODE(os.lstat(diffs[0] / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(store_root).st_mode) == 0o700


def test_rmi_untags_then_deletes_and_frees_layers(rootlet: RunRootlet, registry: str, store_root: Path) -> None:
    image_id = rootlet("pull", "-q", f"{registry}/library/alpine:3.20", check=True).stdout.strip()
    rootlet("tag", image_id, "myalpine:v1", check=True)
    assert sorted(_images_json(rootlet)[0]["RepoTags"]) == sorted(
        [f"{registry}/library/alpine:3.20", "localhost/myalpine:v1"])
    proc = rootlet("rmi", "myalpine:v1", check=True)
    assert proc.stdout.strip() == "Untagged: localhost/myalpine:v1"
    proc = rootlet("rmi", image_id[:6], check=True)
    assert f"Deleted: {image_id}" in proc.stdout
    assert _images_json(rootlet) == []
    assert list((store_root / "layers").iterdir()) == []
    assert list((store_root / "tmp").iterdir()) == []


def test_rmi_keeps_layers_another_image_shares(rootlet: RunRootlet, registry: str, store_root: Path) -> None:
    rootlet("pull", "-q", f"{registry}/library/alpine:3.20", check=True)
    rootlet("pull", "-q", f"{registry}/library/alpine:latest", check=True)
    assert len(_images_json(rootlet)) == 1  # same image, two names
    rootlet("rmi", f"{registry}/library/alpine:3.20", check=True)
    assert len(list((store_root / "layers").iterdir())) == 1
    assert _images_json(rootlet)[0]["RepoTags"] == [f"{registry}/library/alpine:latest"]


def test_rmi_unknown_image_exits_125(rootlet: RunRootlet) -> None:
    proc = rootlet("rmi", "nothere")
    assert proc.returncode == 125 and "nothere" in proc.stderr


def test_image_prune_removes_dangling_images(rootlet: RunRootlet, registry: str) -> None:
    first = rootlet("pull", "-q", f"{registry}/library/alpine:3.19", check=True).stdout.strip()
    rootlet("tag", first, f"{registry}/library/alpine:moving", check=True)
    rootlet("untag", first, check=True)
    assert _images_json(rootlet)[0]["RepoTags"] == []
    proc = rootlet("image", "prune", "-f", check=True)
    assert first in proc.stdout
    assert _images_json(rootlet) == []


def test_inspect_format_template(rootlet: RunRootlet, registry: str) -> None:
    image_id = rootlet("pull", "-q", f"{registry}/library/alpine:3.20", check=True).stdout.strip()
    proc = rootlet("image", "inspect", "--format", "{{.Id}} {{json .Config.Cmd}}", image_id, check=True)
    assert proc.stdout.strip() == f'sha256:{image_id} ["/bin/sh"]'


def test_two_concurrent_pulls_both_succeed_and_store_each_layer_once(
        rootlet: RunRootlet, registry: str, store_root: Path) -> None:
    results: list[subprocess.CompletedProcess] = []
    ref = f"{registry}/library/busybox:latest"
    threads = [threading.Thread(target=lambda: results.append(rootlet("pull", "-q", ref))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert results[0].stdout == results[1].stdout
    assert len(list((store_root / "layers").iterdir())) == 1
    assert len(_images_json(rootlet)) == 1
    assert list((store_root / "tmp").iterdir()) == []
