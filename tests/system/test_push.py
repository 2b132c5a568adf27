"""``rootlet push`` end to end: the real command, the real docker-registry, and the real skopeo and
podman reading what it pushed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, need
from tests.support.podman import Podman, podman, skopeo  # noqa: F401  (podman: the fixture)
from tests.support.registries import start_registry

pytestmark = pytest.mark.system

USERS = {"pusher": "push-pw"}


def image_id(rootlet: RunRootlet, name: str, root: Path | None = None) -> str:
    env = {"ROOTLET_ROOT": str(root)} if root else None
    return rootlet("image", "inspect", "--format", "{{.Id}}", name, env=env, check=True).stdout.strip()


def manifest_digest(rootlet: RunRootlet, name: str) -> str:
    """The manifest digest the store recorded for *name* (its RepoDigests entry)."""
    doc = json.loads(rootlet("image", "inspect", name, check=True).stdout)[0]
    return doc["RepoDigests"][0].split("@", 1)[1]


def error_lines(stderr: str) -> list[str]:
    """The ``Error:`` lines (podman's push also says "Getting image source signatures" before one)."""
    return [line for line in stderr.splitlines() if line.startswith("Error: ")]


def inspect_remote(ref: str, raw: bool = False) -> dict:
    args = ["inspect", "--tls-verify=false", *(["--raw"] if raw else []), f"docker://{ref}"]
    return json.loads(skopeo(*args).stdout)




@pytest.fixture
def other_store(tmp_path: Path, store_roots: list[Path]) -> Path:
    """A second, empty store root (removed with the session's stores)."""
    root = tmp_path / "store2"
    store_roots.append(root)
    return root


def test_pushed_image_keeps_its_digest_and_runs_in_podman(rootlet: RunRootlet, alpine: str, registry: str,
                                                           tmp_path: Path, podman: Podman, other_store: Path) -> None:
    dest = f"{registry}/pushed/alpine:copy"
    digestfile = tmp_path / "digest"
    proc = rootlet("push", "--digestfile", str(digestfile), alpine, f"docker://{dest}", check=True)
    assert proc.stdout == ""  # podman prints nothing on stdout either
    assert "Writing manifest to image destination" in proc.stderr
    digest = digestfile.read_text()
    assert digest == manifest_digest(rootlet, alpine)  # the pulled manifest went up as it was
    assert inspect_remote(dest)["Digest"] == digest

    podman("pull", "-q", "--tls-verify=false", dest)
    assert podman("run", "--rm", dest, "cat", "/etc/alpine-release").stdout.startswith("3.20")

    rootlet("pull", "-q", dest, env={"ROOTLET_ROOT": str(other_store)}, check=True)
    assert image_id(rootlet, dest, other_store) == image_id(rootlet, alpine)


def test_push_to_the_images_own_name_and_again_skips_every_blob(rootlet: RunRootlet, alpine: str,
                                                                 registry: str) -> None:
    rootlet("tag", alpine, f"{registry}/pushed/own:1", check=True)
    first = rootlet("push", f"{registry}/pushed/own:1", check=True)
    assert "Getting image source signatures" in first.stderr
    again = rootlet("push", f"{registry}/pushed/own:1", check=True)
    blobs = [line for line in again.stderr.splitlines() if line.startswith("Copying blob")]
    assert blobs and all(line.endswith("skipped: already exists") for line in blobs)
    assert rootlet("push", "-q", f"{registry}/pushed/own:1", check=True).stderr == ""


def test_push_as_v2s2_makes_a_docker_manifest_of_the_same_image(rootlet: RunRootlet, alpine: str, registry: str,
                                                                tmp_path: Path, other_store: Path) -> None:
    dest = f"{registry}/pushed/docker:v2s2"
    rootlet("push", "-q", "--format", "v2s2", "--digestfile", str(tmp_path / "d"), alpine, dest, check=True)
    raw = inspect_remote(dest, raw=True)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert raw["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert [layer["mediaType"] for layer in raw["layers"]] == ["application/vnd.docker.image.rootfs.diff.tar.gzip"]
    assert inspect_remote(dest)["Digest"] == (tmp_path / "d").read_text()
    rootlet("pull", "-q", dest, env={"ROOTLET_ROOT": str(other_store)}, check=True)
    assert image_id(rootlet, dest, other_store) == image_id(rootlet, alpine)


def test_push_with_zstd_recompresses_and_pulls_back_as_the_same_image(rootlet: RunRootlet, alpine: str,
                                                                      registry: str, other_store: Path,
                                                                      podman: Podman) -> None:
    dest = f"{registry}/pushed/zstd:1"
    rootlet("push", "--compression-format", "zstd", alpine, dest, check=True)
    raw = inspect_remote(dest, raw=True)
    assert [layer["mediaType"] for layer in raw["layers"]] == ["application/vnd.oci.image.layer.v1.tar+zstd"]
    rootlet("pull", "-q", dest, env={"ROOTLET_ROOT": str(other_store)}, check=True)
    assert image_id(rootlet, dest, other_store) == image_id(rootlet, alpine)
    run = rootlet("run", "--rm", dest, "cat", "/etc/alpine-release", env={"ROOTLET_ROOT": str(other_store)})
    assert run.returncode == 0 and run.stdout.startswith("3.20"), run.stderr
    podman("pull", "-q", "--tls-verify=false", dest)
    assert podman("run", "--rm", dest, "cat", "/etc/alpine-release").stdout.startswith("3.20")
    # What the zstd image (its kept blobs are zstd now) pushes as v2s2 goes back to gzip.
    rootlet("push", "-q", "--format", "v2s2", dest, f"{registry}/pushed/zstd:v2s2",
            env={"ROOTLET_ROOT": str(other_store)}, check=True)
    raw = inspect_remote(f"{registry}/pushed/zstd:v2s2", raw=True)
    assert [layer["mediaType"] for layer in raw["layers"]] == ["application/vnd.docker.image.rootfs.diff.tar.gzip"]


def test_push_to_a_registry_with_auth(rootlet: RunRootlet, alpine: str, tmp_path: Path) -> None:
    need("docker-registry", "htpasswd")
    handle = start_registry(tmp_path / "auth-registry", auth="htpasswd", users=USERS)
    try:
        dest = f"{handle.host}/private/alpine:1"
        denied = rootlet("push", alpine, dest)
        assert denied.returncode == 125
        assert error_lines(denied.stderr) == [f"Error: {handle.host} requires authentication"]
        assert f"rootlet login {handle.host}" in denied.stderr
        wrong = rootlet("push", "--creds", "pusher:nope", alpine, dest)
        assert wrong.returncode == 125 and "denied" in wrong.stderr and "nope" not in wrong.stderr
        authfile = tmp_path / "auth.json"
        rootlet("login", "--authfile", str(authfile), "-u", "pusher", "--password-stdin", handle.host,
                input="push-pw\n", check=True)
        rootlet("push", "-q", "--authfile", str(authfile), alpine, dest, check=True)
        remote = json.loads(skopeo("inspect", "--tls-verify=false", "--creds", "pusher:push-pw",
                                   f"docker://{dest}").stdout)
        assert remote["Digest"] == manifest_digest(rootlet, alpine)
    finally:
        handle.stop()


def test_push_to_an_oci_archive_keeps_the_manifest_digest(rootlet: RunRootlet, alpine: str, tmp_path: Path) -> None:
    archive = tmp_path / "alpine.tar"
    proc = rootlet("push", alpine, f"oci-archive:{archive}:team/alpine:saved", check=True)
    assert proc.stdout == "" and "Writing manifest to image destination" in proc.stderr
    remote = json.loads(skopeo("inspect", f"oci-archive:{archive}:team/alpine:saved").stdout)
    assert remote["Digest"] == manifest_digest(rootlet, alpine)


def test_push_to_a_docker_archive_loads_and_runs_in_podman(rootlet: RunRootlet, alpine: str, tmp_path: Path,
                                                           podman: Podman) -> None:
    archive = tmp_path / "alpine-docker.tar"
    rootlet("push", "-q", alpine, f"docker-archive:{archive}:team/alpine:d", check=True)
    assert "docker.io/team/alpine:d" in podman("load", "-i", str(archive)).stdout
    assert podman("run", "--rm", "docker.io/team/alpine:d", "cat", "/etc/alpine-release").stdout.startswith("3.20")


def test_registry_flags_are_refused_for_an_archive(rootlet: RunRootlet, alpine: str, tmp_path: Path) -> None:
    proc = rootlet("push", "--digestfile", str(tmp_path / "d"), alpine, f"oci-archive:{tmp_path / 'a.tar'}")
    assert proc.returncode == 125
    assert error_lines(proc.stderr) == ["Error: --digestfile applies to registry destinations, not oci-archive:"]
    assert not (tmp_path / "a.tar").exists()


@pytest.mark.parametrize("dest, words", [
    ("Bad!Name", "invalid reference format"),
    ("containers-storage:x", "cannot push to containers-storage"),
    ("dir:/tmp/nowhere", "cannot push to dir"),
    ("127.0.0.1:1/nobody/here:1", "cannot reach 127.0.0.1:1"),
])
def test_a_bad_destination_is_one_line_and_exit_125(rootlet: RunRootlet, alpine: str, dest: str,
                                                     words: str) -> None:
    proc = rootlet("push", alpine, dest)
    assert proc.returncode == 125, proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and words in errors[0]
    assert "Traceback" not in proc.stderr


def test_a_missing_image_is_podmans_image_not_known(rootlet: RunRootlet, registry: str) -> None:
    proc = rootlet("push", "nosuchimage:1", f"{registry}/x/y:1")
    assert proc.returncode == 125
    assert proc.stderr.splitlines()[0] == "Error: nosuchimage:1: image not known"
