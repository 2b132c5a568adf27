"""save, load, export and import through the real rootlet command, and the real podman beside it.

Round trips rootlet → rootlet (a fresh store), podman → rootlet and rootlet → podman in both
archive formats, the archive byte for byte against podman's, stdin and stdout, compressed
archives, and export → import → run. Images come from the test registry (``alpine`` and
``busybox`` fixtures, pulled by rootlet; podman pulls the same references).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pty
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command
from tests.support.podman import Podman, podman  # noqa: F401  (the fixture)

pytestmark = pytest.mark.system

FORMATS = ("docker-archive", "oci-archive")




@pytest.fixture
def other_store(tmp_path: Path, store_roots: list[Path]) -> dict[str, str]:
    """The environment of a second, empty store (removed with the session's stores)."""
    root = tmp_path / "store2"
    store_roots.append(root)
    return {"ROOTLET_ROOT": str(root)}


def _inspect(rootlet: RunRootlet, name: str, env: dict[str, str] | None = None) -> dict:
    return json.loads(rootlet("image", "inspect", name, env=env, check=True).stdout)[0]


def _raw(rootlet_env: dict[str, str], args: list[str], stdin: object = None, stdout: object = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The rootlet command with binary stdin/stdout (files or descriptors)."""
    return subprocess.run([*rootlet_command(), *args], stdin=stdin, stdout=stdout if stdout is not None else
                          subprocess.PIPE, stderr=subprocess.PIPE, env={**rootlet_env, **(env or {})}, timeout=180)


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_then_load_in_a_fresh_store_keeps_the_image_and_runs(rootlet: RunRootlet, alpine: str, tmp_path: Path,
                                                                  other_store: dict[str, str], fmt: str) -> None:
    archive = tmp_path / "alpine.tar"
    rootlet("save", "-q", "--format", fmt, "-o", str(archive), alpine, check=True)
    proc = rootlet("load", "-q", "-i", str(archive), env=other_store, check=True)
    assert proc.stdout == f"Loaded image: {alpine}\n"
    before, after = _inspect(rootlet, alpine), _inspect(rootlet, alpine, other_store)
    assert after["Id"] == before["Id"]
    assert after["RootFS"] == before["RootFS"]
    if fmt == "oci-archive":  # the kept blobs and the pulled manifest travel as they are
        assert after["Digest"] == before["Digest"]
    out = rootlet("run", "--rm", alpine, "cat", "/etc/alpine-release", env=other_store, check=True).stdout
    assert out.startswith("3.20")
    assert os.listdir(Path(other_store["ROOTLET_ROOT"]) / "tmp") == []


def test_loads_of_one_archive_at_once_all_succeed_and_store_each_layer_once(
        rootlet: RunRootlet, rootlet_env: dict[str, str], alpine: str, tmp_path: Path,
        other_store: dict[str, str]) -> None:
    """No lock is held across a layer's unpacking: each load unpacks it in tmp/, the first to
    place it wins, and the others' copies are removed."""
    archive = tmp_path / "alpine.tar"
    rootlet("save", "-q", "-o", str(archive), alpine, check=True)
    env = {**rootlet_env, **other_store}
    procs = [subprocess.Popen([*rootlet_command(), "load", "-q", "-i", str(archive)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    results = [(p.wait(180), *p.communicate()) for p in procs]
    assert [r[0] for r in results] == [0] * 4, [r[2] for r in results]
    assert {r[1] for r in results} == {f"Loaded image: {alpine}\n"}
    root = Path(other_store["ROOTLET_ROOT"])
    assert len(os.listdir(root / "layers")) == len(_inspect(rootlet, alpine)["RootFS"]["Layers"])
    assert os.listdir(root / "tmp") == []
    out = rootlet("run", "--rm", alpine, "cat", "/etc/alpine-release", env=other_store, check=True).stdout
    assert out.startswith("3.20")


def test_a_multi_image_archive_loads_every_image(rootlet: RunRootlet, alpine: str, busybox: str, tmp_path: Path,
                                                other_store: dict[str, str]) -> None:
    archive = tmp_path / "both.tar"
    rootlet("save", "-q", "-m", "-o", str(archive), alpine, busybox, check=True)
    with tarfile.open(archive) as tf:
        items = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert [i["RepoTags"] for i in items] == [[alpine], [busybox]]
    proc = rootlet("load", "-q", "-i", str(archive), env=other_store, check=True)
    assert proc.stdout == f"Loaded image: {alpine}\nLoaded image: {busybox}\n"
    assert rootlet("run", "--rm", busybox, "echo", "bb", env=other_store, check=True).stdout == "bb\n"
    assert rootlet("run", "--rm", alpine, "cat", "/etc/alpine-release", env=other_store,
                   check=True).stdout.startswith("3.20")


def test_without_m_further_names_are_tags_as_podman_has_it(rootlet: RunRootlet, alpine: str, tmp_path: Path,
                                                          other_store: dict[str, str]) -> None:
    archive = tmp_path / "tags.tar"
    rootlet("save", "-q", "-o", str(archive), alpine, "extra:1", "other", check=True)
    proc = rootlet("load", "-q", "-i", str(archive), env=other_store, check=True)
    assert proc.stdout.splitlines() == ["Loaded image: localhost/extra:1", "Loaded image: localhost/other:latest",
                                        f"Loaded image: {alpine}"]
    proc = rootlet("save", "-o", str(tmp_path / "bad.tar"), alpine, f"x@sha256:{'a' * 64}")
    assert proc.returncode == 125 and "invalid additional tag" in proc.stderr
    assert not (tmp_path / "bad.tar").exists()


def test_an_image_saved_by_id_loads_untagged(rootlet: RunRootlet, busybox: str, tmp_path: Path,
                                            other_store: dict[str, str]) -> None:
    image_id = _inspect(rootlet, busybox)["Id"].removeprefix("sha256:")
    archive = tmp_path / "byid.tar"
    rootlet("save", "-q", "-o", str(archive), image_id[:12], check=True)
    proc = rootlet("load", "-q", "-i", str(archive), env=other_store, check=True)
    assert proc.stdout == f"Loaded image: sha256:{image_id}\n"
    assert rootlet("images", "--format", "{{.Repository}}", env=other_store, check=True).stdout == "<none>\n"


def test_a_docker_25_archive_loads_through_its_manifest_json(rootlet: RunRootlet, alpine: str, tmp_path: Path,
                                                             other_store: dict[str, str]) -> None:
    """docker 25 and later write an OCI layout and a manifest.json naming its blobs: the names and
    the layers come from manifest.json then."""
    oci = tmp_path / "oci.tar"
    rootlet("save", "-q", "--format", "oci-archive", "-o", str(oci), alpine, check=True)
    with tarfile.open(oci) as tf:
        members = [(m, tf.extractfile(m).read() if m.isfile() else b"") for m in tf.getmembers()]  # type: ignore[union-attr]
    files = {m.name: data for m, data in members}
    index = json.loads(files["index.json"])
    manifest = json.loads(files["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    docker = [{"Config": "blobs/sha256/" + manifest["config"]["digest"][7:], "RepoTags": ["team/d25:1"],
               "Layers": ["blobs/sha256/" + layer["digest"][7:] for layer in manifest["layers"]]}]
    archive = tmp_path / "docker25.tar"
    with tarfile.open(archive, "w") as tf:
        for m, data in members:
            tf.addfile(m, io.BytesIO(data) if m.isfile() else None)
        info = tarfile.TarInfo("manifest.json")
        body = json.dumps(docker).encode()
        info.size = len(body)
        tf.addfile(info, io.BytesIO(body))
    proc = rootlet("load", "-q", "-i", str(archive), env=other_store, check=True)
    assert proc.stdout == "Loaded image: docker.io/team/d25:1\n"
    assert _inspect(rootlet, "team/d25:1", other_store)["Id"] == _inspect(rootlet, alpine)["Id"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_podman_save_loads_into_rootlet_and_runs(rootlet: RunRootlet, podman: Podman, registry: str, tmp_path: Path,
                                                 fmt: str) -> None:
    ref = f"{registry}/library/alpine:3.20"
    podman("pull", "-q", "--tls-verify=false", ref)
    archive = tmp_path / "podman.tar"
    podman("save", "--format", fmt, "-o", str(archive), ref)
    proc = rootlet("load", "-q", "-i", str(archive), check=True)
    assert proc.stdout == f"Loaded image: {ref}\n"
    podman_id = podman("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
    assert _inspect(rootlet, ref)["Id"].removeprefix("sha256:") == podman_id.removeprefix("sha256:")
    assert rootlet("run", "--rm", ref, "cat", "/etc/alpine-release", check=True).stdout.startswith("3.20")


@pytest.mark.parametrize("fmt", FORMATS)
def test_rootlet_save_loads_into_podman_and_runs(rootlet: RunRootlet, podman: Podman, alpine: str, tmp_path: Path,
                                                 fmt: str) -> None:
    rootlet("run", "--name", "c", alpine, "sh", "-c", "echo saved > /root/file", check=True)
    rootlet("commit", "c", "team/saved:1", check=True)
    archive = tmp_path / "rootlet.tar"
    rootlet("save", "-q", "--format", fmt, "-o", str(archive), "localhost/team/saved:1", check=True)
    assert "localhost/team/saved:1" in podman("load", "-i", str(archive)).stdout
    assert podman("run", "--rm", "localhost/team/saved:1", "cat", "/root/file").stdout == "saved\n"


def test_a_docker_archive_is_byte_for_byte_podmans(rootlet: RunRootlet, podman: Podman, alpine: str,
                                                   tmp_path: Path) -> None:
    """Same image, same archive: layout, tar headers, manifest.json, repositories and the legacy
    layer ids (each naming its parent) as containers/image writes them, for a pulled image and
    for one of two layers."""
    podman("pull", "-q", "--tls-verify=false", alpine)
    ours, theirs = tmp_path / "ours.tar", tmp_path / "theirs.tar"
    rootlet("save", "-q", "-o", str(ours), alpine, check=True)
    podman("save", "-o", str(theirs), alpine)
    assert ours.read_bytes() == theirs.read_bytes()
    rootlet("run", "--name", "c", alpine, "sh", "-c", "echo two > /two", check=True)
    rootlet("commit", "c", "team/two:1", check=True)
    ours, theirs = tmp_path / "ours2.tar", tmp_path / "theirs2.tar"
    rootlet("save", "-q", "-o", str(ours), "localhost/team/two:1", check=True)
    podman("load", "-i", str(ours))
    podman("save", "-o", str(theirs), "localhost/team/two:1")
    assert ours.read_bytes() == theirs.read_bytes()
    with tarfile.open(ours) as tf:
        assert len(json.loads(tf.extractfile("manifest.json").read())[0]["Layers"]) == 2  # type: ignore[union-attr]


def test_save_to_stdout_and_load_from_stdin_compressed_or_not(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                              busybox: str, tmp_path: Path,
                                                              other_store: dict[str, str]) -> None:
    archive = tmp_path / "stdout.tar"
    with open(archive, "wb") as f:
        proc = _raw(rootlet_env, ["save", busybox], stdout=f)
    assert proc.returncode == 0, proc.stderr
    assert b"Copying blob sha256:" in proc.stderr  # podman's progress lines, on stderr
    packed = tmp_path / "stdout.tar.gz"
    packed.write_bytes(gzip.compress(archive.read_bytes()))
    for source in (archive, packed):
        with open(source, "rb") as f:
            proc = _raw(rootlet_env, ["load"], stdin=f, env=other_store)
        assert (proc.returncode, proc.stdout) == (0, f"Loaded image: {busybox}\n".encode()), proc.stderr
    proc = rootlet("load", "-q", "-i", str(packed), env=other_store, check=True)
    assert proc.stdout == f"Loaded image: {busybox}\n"
    assert rootlet("run", "--rm", busybox, "echo", "ok", env=other_store, check=True).stdout == "ok\n"


def test_a_terminal_is_refused_as_podman_refuses_it(rootlet_env: dict[str, str], busybox: str) -> None:
    primary, secondary = pty.openpty()
    try:
        proc = _raw(rootlet_env, ["save", busybox], stdout=secondary)
        assert proc.returncode == 125 and b"refusing to save to terminal" in proc.stderr
        proc = _raw(rootlet_env, ["load"], stdin=secondary)
        assert proc.returncode == 125 and b"cannot read from terminal" in proc.stderr
    finally:
        os.close(primary)
        os.close(secondary)


def test_export_then_import_runs_with_the_changes(rootlet: RunRootlet, rootlet_env: dict[str, str], alpine: str,
                                                  tmp_path: Path) -> None:
    rootlet("run", "--name", "c", alpine, "sh", "-c",
            "echo hello > /hello; rm /etc/motd; mkdir /owned; chown 1234:55 /owned", check=True)
    flat = tmp_path / "flat.tar"
    rootlet("export", "-o", str(flat), "c", check=True)
    with tarfile.open(flat) as tf:
        names = set(tf.getnames())
        assert {"hello", "etc/alpine-release", "owned"} <= names and "etc/motd" not in names
        assert not any(n.startswith((".wh.", "/", "./")) or "/.wh." in n for n in names)
        owned = tf.getmember("owned")
        assert (owned.uid, owned.gid) == (1234, 55)
    out = rootlet("import", "-c", 'CMD ["cat", "/hello"]', "-m", "flattened", str(flat), "flat:1", check=True).stdout
    assert out.startswith("sha256:") and len(out.strip()) == 71
    assert rootlet("run", "--rm", "flat:1", check=True).stdout == "hello\n"
    doc = _inspect(rootlet, "localhost/flat:1")
    assert len(doc["RootFS"]["Layers"]) == 1 and doc["Config"]["Cmd"] == ["cat", "/hello"]
    # stdout and stdin: export c | import - piped
    with open(tmp_path / "piped.tar", "wb") as f:
        assert _raw(rootlet_env, ["export", "c"], stdout=f).returncode == 0
    with open(tmp_path / "piped.tar", "rb") as f:
        proc = _raw(rootlet_env, ["import", "-q", "-", "piped"], stdin=f)
    assert proc.returncode == 0, proc.stderr
    assert rootlet("run", "--rm", "piped", "stat", "-c", "%u:%g", "/owned", check=True).stdout == "1234:55\n"


def test_export_of_a_running_container_has_its_files_and_not_its_mounts(rootlet: RunRootlet, busybox: str,
                                                                        tmp_path: Path) -> None:
    rootlet("run", "-d", "--name", "r", busybox, "sh", "-c", "echo live > /live; sleep 60", check=True)
    try:
        flat = tmp_path / "running.tar"
        for _ in range(50):
            rootlet("export", "-o", str(flat), "r", check=True)
            with tarfile.open(flat) as tf:
                names = set(tf.getnames())
            if "live" in names:
                break
        assert "live" in names
        assert not any(n.startswith(("proc/", "sys/", "dev/pts/")) for n in names)
    finally:
        rootlet("rm", "-f", "r")


def test_import_gives_podmans_image_id(rootlet: RunRootlet, podman: Podman, busybox: str, tmp_path: Path) -> None:
    """The same tar and changes make the same config, so the same id: created is the file's mtime."""
    rootlet("run", "--name", "c", busybox, "true", check=True)
    flat = tmp_path / "flat.tar"
    rootlet("export", "-o", str(flat), "c", check=True)
    changes = ["-c", 'CMD ["/bin/sh"]', "-c", "ENV A=b", "-c", "WORKDIR /w", "-c", "VOLUME /data", "-m", "msg"]
    ours = rootlet("import", "-q", *changes, str(flat), check=True).stdout
    theirs = podman("import", "-q", *changes, str(flat)).stdout
    assert ours == theirs
