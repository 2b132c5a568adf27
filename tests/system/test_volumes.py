"""Volumes, as the unprivileged user with the real rootlet command: named volumes seeded from the
image (owners, modes, hardlinks, symlinks kept; whiteouts honoured; the destination resolved inside
the image), anonymous volumes for the image's VOLUME paths, in-use refusal, tmpfs and bind volumes,
bad names and options, listing, and podman's ``volume inspect`` field names side by side.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from pathlib import Path

import pytest

from tests.conftest import RunRootlet
from tests.support import layouts as L
from tests.support.podman import podman  # noqa: F401
from tests.support.registries import push_layout

pytestmark = pytest.mark.system

PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"


def _hardlink(name: str, target: str) -> L.Member:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mtime = tarfile.LNKTYPE, target, 1_700_000_000
    return L.Member(ti)


@pytest.fixture
def volimage(tmp_path: Path, registry: str, rootlet: RunRootlet) -> str:
    """An image with VOLUME /srv/data whose content there has owners, modes, a hardlink, symlinks
    that point out of the image, a file whited out and a directory made opaque by its second
    layer; and symlinks whose targets climb above the image's root. Pulled; its reference."""
    base = L.busybox_members() + [
        L.directory("etc"), L.file("etc/passwd", PASSWD), L.file("etc/group", b"root:x:0:\napp:x:1000:\n"),
        L.directory("srv"), L.directory("srv/data", 0o750, 1000, 1000),
        L.file("srv/data/a.txt", b"seeded\n", 0o640, 1000, 1000), _hardlink("srv/data/hard", "srv/data/a.txt"),
        L.file("srv/data/suid", b"#!/bin/sh\n", 0o4755, 0, 0), L.directory("srv/data/sub", 0o700, 1000, 1000),
        L.file("srv/data/sub/b.txt", b"deep\n", 0o600, 1000, 1000), L.symlink("srv/data/escape", "/etc/shadow"),
        L.symlink("srv/data/up", "../../../../../../.."), L.file("srv/data/gone.txt", b"whited out\n"),
        L.directory("srv/data/opq"), L.file("srv/data/opq/old", b"hidden\n"),
        L.symlink("srv/alias", "data"), L.symlink("hostile", "../../../../../../../etc"),
    ]
    top = [L.directory("srv/data", 0o750, 1000, 1000), L.file("srv/data/.wh.gone.txt"),
           L.directory("srv/data/opq"), L.file("srv/data/opq/.wh..wh..opq"), L.file("srv/data/opq/new", b"new\n")]
    out = tmp_path / "layout-volimage"
    L.write_layout(out, [(L.tar_bytes(base), "gzip"), (L.tar_bytes(top), "gzip")],
                   config={"Volumes": {"/srv/data": {}}})
    push_layout(registry, out, "latest", "test/volimage:1")
    ref = f"{registry}/test/volimage:1"
    rootlet("pull", "-q", ref, check=True)
    return ref


def test_named_volume_is_seeded_from_the_image_with_its_owners_and_outlives_the_container(
        rootlet: RunRootlet, volimage: str, store_root: Path) -> None:
    rootlet("run", "--name", "first", "-v", "data:/srv/data", volimage, "sh", "-c",
            "busybox ls -A /srv/data > /tmp/ls && echo kept > /srv/data/mine", check=True)
    listing = rootlet("run", "--rm", "-v", "data:/srv/data", volimage, "busybox", "ls", "-A", "/srv/data",
                      check=True).stdout.split()
    # The whited-out file is not there, the opaque directory holds only the top layer's entry.
    assert sorted(listing) == ["a.txt", "escape", "hard", "mine", "opq", "sub", "suid", "up"]
    assert rootlet("run", "--rm", "-v", "data:/d", volimage, "busybox", "ls", "/d/opq", check=True).stdout.split() \
        == ["new"]
    proc = rootlet("run", "--rm", "-v", "data:/d", volimage, "busybox", "stat", "-c", "%n %u:%g %a %h %F",
                   "/d", "/d/a.txt", "/d/hard", "/d/suid", "/d/sub", "/d/sub/b.txt", "/d/escape", check=True)
    assert proc.stdout.splitlines() == [
        "/d 1000:1000 750 4 directory", "/d/a.txt 1000:1000 640 2 regular file",
        "/d/hard 1000:1000 640 2 regular file", "/d/suid 0:0 4755 1 regular file",
        "/d/sub 1000:1000 700 2 directory", "/d/sub/b.txt 1000:1000 600 1 regular file",
        "/d/escape 0:0 777 1 symbolic link"]
    links = rootlet("run", "--rm", "-v", "data:/d", volimage, "sh", "-c",
                    "busybox readlink /d/escape; busybox readlink /d/up; cat /d/sub/b.txt /d/mine", check=True).stdout.split()
    assert links == ["/etc/shadow", "../../../../../../..", "deep", "kept"]
    # The container is gone; its data is not; and the volume is seeded once only.
    rootlet("rm", "first", check=True)
    rootlet("run", "--rm", "-v", "data:/d", volimage, "busybox", "rm", "/d/a.txt", check=True)
    again = rootlet("run", "--rm", "-v", "data:/d", volimage, "busybox", "ls", "-A", "/d", check=True).stdout.split()
    assert "a.txt" not in again and "mine" in again
    doc = json.loads(rootlet("volume", "inspect", "data", check=True).stdout)[0]
    assert (doc["NeedsCopyUp"], doc["NeedsChown"], doc["Mountpoint"]) == \
        (False, False, str(store_root / "volumes" / "data" / "_data"))


def test_copy_up_follows_symlinks_only_inside_the_image(rootlet: RunRootlet, volimage: str,
                                                        store_root: Path) -> None:
    """``/hostile`` is ``../../../../etc``: resolved as the overlay shows it, that is the image's own
    /etc (the climb stops at the image's root), never the host's; ``/srv/alias`` is ``data``."""
    rootlet("create", "--name", "c", "-v", "h:/hostile", "-v", "al:/srv/alias", volimage, "true", check=True)
    seeded = store_root / "volumes" / "h" / "_data"
    assert sorted(os.listdir(seeded)) == ["group", "passwd"]  # the host's /etc has many more
    assert (seeded / "passwd").read_bytes() == PASSWD
    alias = store_root / "volumes" / "al" / "_data"
    assert os.stat(alias).st_mode & 0o777 == 0o750
    # A symlink pointing at the host's files is copied as a symlink, never as their content.
    proc = rootlet("run", "--rm", "-v", "al:/x", volimage, "busybox", "readlink", "/x/escape", check=True)
    assert proc.stdout.strip() == "/etc/shadow"


def test_a_volume_seeded_for_a_non_root_user_of_an_image_without_that_path(rootlet: RunRootlet,
                                                                          volimage: str) -> None:
    """Nothing at the destination in the image: the volume goes to the container's user (podman's
    NeedsChown), so that user can write to it."""
    proc = rootlet("run", "--rm", "-u", "app", "-v", "w:/work", volimage, "sh", "-c",
                   "echo ok > /work/f && busybox stat -c '%u:%g' /work /work/f", check=True)
    assert proc.stdout.split() == ["1000:1000", "1000:1000"]


def _anonymous(rootlet: RunRootlet) -> list[str]:
    return [n for n in rootlet("volume", "ls", "-q", check=True).stdout.split() if re.fullmatch(r"[0-9a-f]{64}", n)]


def test_image_volumes_get_anonymous_volumes_removed_by_rm_v_and_run_rm(rootlet: RunRootlet, volimage: str) -> None:
    rootlet("create", "--name", "keep", volimage, "true", check=True)
    (anon,) = _anonymous(rootlet)
    doc = json.loads(rootlet("volume", "inspect", anon, check=True).stdout)[0]
    assert doc["Anonymous"] is True
    mounts = json.loads(rootlet("inspect", "keep", check=True).stdout)[0]["Mounts"]
    assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [("volume", anon, "/srv/data")]
    rootlet("rm", "-v", "keep", check=True)
    assert _anonymous(rootlet) == []
    proc = rootlet("run", "--rm", volimage, "busybox", "ls", "/srv/data", check=True)
    assert "a.txt" in proc.stdout.split()  # seeded like a named one
    rootlet("run", "--rm", "-v", "/scratch", volimage, "true", check=True)
    assert _anonymous(rootlet) == []
    # rm without -v keeps them, as podman does; a user mount over the VOLUME path replaces it.
    rootlet("create", "--name", "plain", volimage, "true", check=True)
    rootlet("rm", "plain", check=True)
    assert len(_anonymous(rootlet)) == 1
    rootlet("create", "--name", "covered", "-v", "mine:/srv/data", volimage, "true", check=True)
    assert len(_anonymous(rootlet)) == 1


def test_volume_in_use_is_refused_and_force_removes_its_containers(rootlet: RunRootlet, volimage: str) -> None:
    rootlet("create", "--name", "user", "-v", "busy:/x", volimage, "true", check=True)
    cid = rootlet("inspect", "--format", "{{.Id}}", "user", check=True).stdout.strip()
    proc = rootlet("volume", "rm", "busy")
    assert proc.returncode == 2, proc.stderr
    assert f"volume busy is being used by the following container(s): {cid}" in proc.stderr
    assert "busy" in rootlet("volume", "ls", "-q", check=True).stdout.split()
    proc = rootlet("volume", "rm", "nosuch")
    assert proc.returncode == 1 and 'no volume with name "nosuch" found' in proc.stderr
    proc = rootlet("volume", "rm", "-f", "busy", check=True)
    assert proc.stdout.split() == ["busy"]
    assert rootlet("ps", "-a", "-q", check=True).stdout.split() == []
    assert rootlet("volume", "exists", "busy").returncode == 1


def test_tmpfs_and_bind_volumes_are_mounted_as_their_options_say(rootlet: RunRootlet, volimage: str,
                                                                  tmp_path: Path) -> None:
    rootlet("volume", "create", "-o", "type=tmpfs", "-o", "o=size=2m,mode=0700", "tv", check=True)
    proc = rootlet("run", "--rm", "-v", "tv:/t", volimage, "sh", "-c",
                   "busybox grep ' /t ' /proc/mounts; echo x > /t/f", check=True)
    fields = proc.stdout.split()
    assert fields[:3] == ["tmpfs", "/t", "tmpfs"] and "size=2048k" in fields[3] and "mode=700" in fields[3]
    assert rootlet("run", "--rm", "-v", "tv:/t", volimage, "busybox", "ls", "-A", "/t", check=True).stdout == ""
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "from-host").write_text("h\n")
    rootlet("volume", "create", "-o", "type=none", "-o", f"device={host}", "-o", "o=bind", "bv", check=True)
    rootlet("run", "--rm", "-v", "bv:/b", volimage, "sh", "-c", "cat /b/from-host && echo c > /b/from-ctr", check=True)
    assert (host / "from-ctr").read_text() == "c\n"
    doc = json.loads(rootlet("volume", "inspect", "bv", check=True).stdout)[0]
    assert doc["Options"] == {"device": str(host), "o": "bind", "type": "none"}


@pytest.mark.parametrize("args", [
    ("bad/name",), ("-weird",), (".dot",), ("a b",), ("x" * 300,),
    ("-o", "type=ext4", "-o", "device=/dev/sda1", "v"), ("-o", "type=tmpfs", "-o", "o=exec,bogus=1", "v"),
    ("-o", "type=none", "-o", "o=bind", "v"), ("-o", "device=/tmp", "v"), ("-o", "nokey", "v"),
    ("--driver", "nfs", "v"),
])
def test_bad_volume_names_and_options_are_refused_and_nothing_is_created(rootlet: RunRootlet,
                                                                         args: tuple[str, ...]) -> None:
    proc = rootlet("volume", "create", *args)
    assert proc.returncode == 125, proc.stdout + proc.stderr
    assert proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr
    assert rootlet("volume", "ls", "-q", check=True).stdout == ""


def test_volume_names_of_run_are_checked_before_anything_is_made(rootlet: RunRootlet, volimage: str) -> None:
    proc = rootlet("run", "--rm", "-v", "b@d:/x", volimage, "true")
    assert proc.returncode == 125 and "invalid volume name" in proc.stderr
    assert rootlet("volume", "ls", "-q", check=True).stdout == ""


def test_volume_ls_filters_and_formats(rootlet: RunRootlet, volimage: str) -> None:
    rootlet("volume", "create", "--label", "tier=db", "--label", "x=1", "dbdata", check=True)
    rootlet("volume", "create", "--label", "tier=web", "webdata", check=True)
    rootlet("create", "--name", "c", "-v", "webdata:/w", "-v", "/anon", volimage, "true", check=True)
    names = rootlet("volume", "create", check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", names)

    def ls(*args: str) -> list[str]:
        return rootlet("volume", "ls", "-q", *args, check=True).stdout.split()

    assert ls("--filter", "label=tier=db") == ["dbdata"]
    assert ls("--filter", "label=tier") == ["dbdata", "webdata"]
    assert ls("--filter", "name=data$") == ["dbdata", "webdata"]
    assert "webdata" not in ls("--filter", "dangling=true") and "dbdata" in ls("--filter", "dangling=true")
    assert ls("--filter", "label=tier", "--filter", "dangling=false") == ["webdata"]
    table = rootlet("volume", "ls", check=True).stdout.splitlines()
    assert table[0].split() == ["DRIVER", "VOLUME", "NAME"] and table[1].split()[0] == "local"
    docs = json.loads(rootlet("volume", "ls", "--format", "json", "--filter", "name=dbdata", check=True).stdout)
    assert [(d["Name"], d["Labels"]) for d in docs] == [("dbdata", {"tier": "db", "x": "1"})]
    line = rootlet("volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}", "--filter", "name=^web",
                   check=True).stdout
    assert line == "webdata local local\n"
    assert rootlet("volume", "ls", "--filter", "color=red").returncode == 125
    pruned = rootlet("volume", "prune", "-f", "--filter", "label=tier", check=True).stdout.split()
    assert pruned == ["dbdata"]
    assert "webdata" in ls()
    assert rootlet("volume", "prune", input="").returncode == 125  # nobody to confirm on a pipe: refused
    assert names in ls()


def test_volume_inspect_has_podmans_fields(rootlet: RunRootlet, podman) -> None:  # noqa: F811
    """Side by side with podman 4's ``volume inspect``: the same field names in the same order, the
    same values where they do not depend on the store."""
    for args in (("plain",), ("--label", "a=b", "-o", "type=tmpfs", "-o", "o=nodev", "tmp")):
        podman("volume", "create", *args)
        rootlet("volume", "create", *args, check=True)
        theirs = json.loads(podman("volume", "inspect", args[-1]).stdout)[0]
        mine = json.loads(rootlet("volume", "inspect", args[-1], check=True).stdout)[0]
        assert list(mine) == list(theirs)
        for key in ("Name", "Driver", "Labels", "Scope", "MountCount", "NeedsCopyUp", "NeedsChown"):
            assert mine[key] == theirs[key], key
        assert {k: v for k, v in theirs["Options"].items() if k != "device"} == mine["Options"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", mine["CreatedAt"])
        assert mine["Mountpoint"].endswith(f"/volumes/{args[-1]}/_data")
    assert rootlet("volume", "inspect", "--format", "{{.Name}}:{{.Scope}}", "plain", check=True).stdout == \
        podman("volume", "inspect", "--format", "{{.Name}}:{{.Scope}}", "plain").stdout
