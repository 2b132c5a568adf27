"""commit, diff and history through the real rootlet command, rootless, under both overlays."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import RunRootlet
from tests.support.podman import Podman, podman  # noqa: F401  (the fixture)
from tests.system.test_run_flags import overlay  # noqa: F401  (the fixture: kernel and fuse)

pytestmark = pytest.mark.system

#: Every kind of change a layer must carry: a file added, one deleted (a whiteout), a directory
#: emptied and refilled (opaque), a hardlink, a setuid bit, an owner, a symlink and a fifo.
CHANGES = (
    "set -e; echo added > /root/added; rm /etc/motd; "
    "rm -rf /etc/apk && mkdir /etc/apk && echo fresh > /etc/apk/only; "
    "ln /root/added /root/hardlink; chmod 4755 /root/added; "
    "mkdir /owned && chown 1234:4321 /owned && echo mine > /owned/f && chown 1234:4321 /owned/f; "
    "ln -s /root/added /root/symlink; mkfifo /root/fifo"
)
CHECK = (
    "cat /root/added; test ! -e /etc/motd && echo motd-gone; ls /etc/apk; "
    "stat -c '%i %h %a' /root/added /root/hardlink; stat -c '%u:%g' /owned /owned/f; "
    "readlink /root/symlink; test -p /root/fifo && echo fifo"
)


def _check_committed(rootlet: RunRootlet, image: str, env: dict[str, str] | None = None) -> None:
    proc = rootlet("run", "--rm", image, "sh", "-c", CHECK, check=True, env=env)
    lines = proc.stdout.splitlines()
    assert lines[0] == "added" and lines[1] == "motd-gone"
    assert lines[2] == "only"  # the opaque directory hides everything the image had in it
    ino1, links1, mode1 = lines[3].split()
    ino2, links2, _ = lines[4].split()
    assert ino1 == ino2 and links1 == links2 == "2" and mode1 == "4755"
    assert lines[5:7] == ["1234:4321", "1234:4321"]
    assert lines[7:] == ["/root/added", "fifo"]


def test_commit_carries_every_kind_of_change_under_both_overlays(rootlet: RunRootlet, alpine: str,
                                                                  overlay: str) -> None:
    env = {"ROOTLET_OVERLAY": overlay}
    rootlet("run", "--name", "c", alpine, "sh", "-c", CHANGES, check=True, env=env)
    image_id = rootlet("commit", "c", "changed", check=True).stdout.strip()
    assert len(image_id) == 64
    _check_committed(rootlet, "changed", env)
    listed = rootlet("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", check=True).stdout
    assert f"localhost/changed:latest {image_id[:12]}" in listed


def test_commit_keeps_the_containers_settings_and_applies_changes(rootlet: RunRootlet, alpine: str) -> None:
    rootlet("run", "--name", "c", "-e", "FROM_RUN=1", "-w", "/tmp", "--label", "run=yes", alpine,
            "sh", "-c", "echo hello > /tmp/greeting", check=True)
    rootlet("commit", "-a", "Ann Author", "-m", "the message", "-c", 'CMD ["cat", "/tmp/greeting"]',
            "-c", "ENV A=1 B=two", "-c", "LABEL k=v", "-c", "EXPOSE 8080/udp", "-c", "STOPSIGNAL SIGINT",
            "c", "app:v1", check=True)
    assert rootlet("run", "--rm", "app:v1", check=True).stdout == "hello\n"
    doc = json.loads(rootlet("image", "inspect", "localhost/app:v1", check=True).stdout)[0]
    config = doc["Config"]
    assert "FROM_RUN=1" in config["Env"] and "A=1" in config["Env"] and "B=two" in config["Env"]
    assert not any(e.startswith("HOSTNAME=") for e in config["Env"])
    assert config["WorkingDir"] == "/tmp" and config["Cmd"] == ["cat", "/tmp/greeting"]
    assert config["Labels"] == {"run": "yes", "k": "v"}
    assert "8080/udp" in config["ExposedPorts"] and config["StopSignal"] == "SIGINT"
    assert doc.get("Author") == "Ann Author"
    history = json.loads(rootlet("history", "--format", "json", "app:v1", check=True).stdout)
    assert history[0]["comment"] == "the message" and len(history) == 2
    table = rootlet("history", "app:v1", check=True).stdout.splitlines()
    assert table[0].split() == ["ID", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert table[1].startswith(doc["Id"].removeprefix("sha256:")[:12])


def test_commit_of_a_running_container_sees_its_files_now(rootlet: RunRootlet, alpine: str) -> None:
    rootlet("run", "-d", "--name", "live", alpine, "sleep", "60", check=True)
    try:
        rootlet("exec", "live", "sh", "-c", "echo live > /live", check=True)
        rootlet("commit", "live", "snap", check=True)
        assert rootlet("run", "--rm", "snap", "cat", "/live", check=True).stdout == "live\n"
        assert rootlet("inspect", "--format", "{{.State.Status}}", "live", check=True).stdout.strip() == "running"
    finally:
        rootlet("rm", "-f", "live")


def test_a_keep_id_containers_files_keep_the_users_uid(rootlet: RunRootlet, alpine: str) -> None:
    rootlet("run", "--userns", "keep-id", "--name", "k", alpine, "touch", "/tmp/mine", check=True,
            env={"ROOTLET_OVERLAY": "fuse"})
    rootlet("commit", "k", "kept", check=True)
    owner = rootlet("run", "--rm", "kept", "stat", "-c", "%u", "/tmp/mine", check=True).stdout.strip()
    assert owner == str(os.getuid())


def test_same_container_and_source_date_epoch_give_the_same_image(rootlet: RunRootlet, alpine: str) -> None:
    rootlet("run", "--name", "c", alpine, "sh", "-c", "echo x > /x", check=True)
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    one = rootlet("commit", "c", "one", check=True, env=env).stdout.strip()
    two = rootlet("commit", "c", "two", check=True, env=env).stdout.strip()
    three = rootlet("commit", "c", "three", check=True).stdout.strip()
    assert one == two and three != one
    created = json.loads(rootlet("image", "inspect", one, check=True).stdout)[0]["Created"]
    assert created.startswith("2023-11-14T22:13:20")


def test_diff_lists_added_changed_and_deleted_paths_like_podman(rootlet: RunRootlet, alpine: str) -> None:
    rootlet("run", "--name", "c", alpine, "sh", "-c", "echo hi > /root/x; rm /etc/motd; mkdir /etc/d",
            check=True)
    # The test image has no /etc/mtab, so rootlet (as podman) adds the link to /proc/mounts: a
    # real change of the container's, listed by both.
    lines = [ln for ln in rootlet("diff", "c", check=True).stdout.splitlines() if ln != "A /etc/mtab"]
    # podman 4.3's lines for the same commands (it leaves out the container's mount points).
    assert lines == ["C /etc", "A /etc/d", "D /etc/motd", "C /root", "A /root/x"]
    doc = json.loads(rootlet("diff", "--format", "json", "c", check=True).stdout)
    doc["added"].remove("/etc/mtab")
    assert doc == {"changed": ["/etc", "/root"], "added": ["/etc/d", "/root/x"], "deleted": ["/etc/motd"]}
    rootlet("commit", "c", "img", check=True)
    assert "A /root/x" in rootlet("diff", "img", check=True).stdout.splitlines()


def test_iidfile_and_an_untagged_commit(rootlet: RunRootlet, alpine: str, tmp_path) -> None:
    rootlet("run", "--name", "c", alpine, "true", check=True)
    iid = tmp_path / "iid"
    image_id = rootlet("commit", "--iidfile", str(iid), "c", check=True).stdout.strip()
    assert iid.read_text() == "sha256:" + image_id
    assert f"<none> {image_id[:12]}" in rootlet("images", "--format", "{{.Repository}} {{.ID}}", check=True).stdout


@pytest.mark.parametrize("args, phrase", [
    (["commit", "nosuch", "x"], "no such container"),
    (["commit", "-c", "FROB x", "c", "x"], "is not one of"),
    (["commit", "-c", "EXPOSE notaport", "c", "x"], "EXPOSE"),
    (["commit", "-c", "STOPSIGNAL SIGNOPE", "c", "x"], "not a signal"),
    (["commit", "--pause=true", "c", "x"], "cannot pause"),
    (["commit", "--squash", "nosuch", "x"], "no such container"),
    (["commit", "-f", "qcow", "c", "x"], "unknown image format"),
    (["commit", "c", "bad@@name"], "bad@@name"),
    (["diff", "nosuch"], "no such container or image"),
    (["history", "nosuch"], "image not known"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_input_is_one_line_and_exit_125(rootlet: RunRootlet, alpine: str, args: list[str], phrase: str) -> None:
    rootlet("create", "--name", "c", alpine, "true", check=True)
    before = rootlet("images", "-q", check=True).stdout
    proc = rootlet(*args)
    assert proc.returncode == 125, proc.stderr
    assert phrase in proc.stderr.splitlines()[0]
    assert "Traceback" not in proc.stderr
    assert rootlet("images", "-q", check=True).stdout == before


def test_a_committed_image_pushed_runs_under_podman_with_every_change(
        rootlet: RunRootlet, alpine: str, registry: str, podman: Podman, tmp_path: Path) -> None:  # noqa: F811
    from tests.support.podman import skopeo

    rootlet("run", "--name", "c", alpine, "sh", "-c", CHANGES, check=True)
    rootlet("commit", "c", "changed", check=True)
    dest = f"{registry}/test/committed:{tmp_path.name[-8:].lower()}"
    digestfile = tmp_path / "digest"
    rootlet("push", "--tls-verify=false", "--digestfile", str(digestfile), "changed", dest, check=True)
    remote = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{dest}").stdout)
    assert remote["Digest"] == digestfile.read_text().strip()
    podman("pull", "--tls-verify=false", "-q", dest)
    proc = podman("run", "--rm", dest, "sh", "-c", CHECK)
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["added", "motd-gone", "only"]
    assert lines[3].split()[1:] == ["2", "4755"] and lines[3].split()[0] == lines[4].split()[0]
    assert lines[5:] == ["1234:4321", "1234:4321", "/root/added", "fifo"]


def test_squash_makes_one_layer_of_the_image_and_the_changes(rootlet: RunRootlet, alpine: str) -> None:
    rootlet("run", "--name", "c", alpine, "sh", "-c", CHANGES, check=True)
    rootlet("commit", "--squash", "c", "flat", check=True)
    doc = json.loads(rootlet("image", "inspect", "flat", check=True).stdout)[0]
    assert len(doc["RootFS"]["Layers"]) == 1 and len(doc["History"]) == 1
    _check_committed(rootlet, "flat")
