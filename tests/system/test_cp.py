"""``rootlet cp`` as podman's scripts use it: tar streams on stdin and stdout (``-``), ``--archive``
(who copied files belong to), ``--overwrite`` and ``--pause``; hostile archives that try to write
outside the container; and the same commands through podman 4.3 where its behaviour is the rule.

The real ``rootlet`` command on a fresh store, busybox from the test registry, the real tar
streams read and written with Python's tarfile (``tests.support.podman`` for the live podman).
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command
from tests.support.podman import Podman, podman  # noqa: F401 - the fixture
from tests.system.test_lifecycle import IDLE, kill_everything, run_d, wait_until

pytestmark = pytest.mark.system


@pytest.fixture(autouse=True)
def _nothing_outlives_the_test(store_root: Path) -> Iterator[None]:
    yield
    kill_everything(store_root)


def cp(env: dict[str, str], *args: str, data: bytes | None = None, **kw: object) -> subprocess.CompletedProcess:
    """``rootlet cp ARGS…`` with binary stdin/stdout (the ``rootlet`` fixture speaks text)."""
    kw.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(rootlet_command() + ["cp", *args], input=data, stderr=subprocess.PIPE, env=env,
                          timeout=120, **kw)  # type: ignore[call-overload]


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def make_tar(*entries: tuple[str, bytes | None, dict[str, object]]) -> bytes:
    """A tar of (name, data or None, TarInfo attributes) entries, exactly as given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, attrs in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data) if data is not None else 0
            info.mtime = 1_000_000
            for key, value in attrs.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def ready(rootlet: RunRootlet, ctr: str) -> None:
    """Wait until the container's command has touched /ready."""
    wait_until(lambda: rootlet("exec", ctr, "test", "-e", "/ready").returncode == 0, what=f"{ctr} to be ready")


def ls(rootlet: RunRootlet, ctr: str, *paths: str) -> str:
    """``uid:gid mode name`` of each path in the container, one per line."""
    proc = rootlet("exec", "-u", "0", ctr, "stat", "-c", "%u:%g %a %n", *paths)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# --- a tar stream out: cp CTR:SRC - --------------------------------------------------------------------

def test_tar_stream_out_keeps_links_owners_and_names_as_given(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                               busybox: str) -> None:
    run_d(rootlet, "--name", "src", busybox, "sh", "-c",
          f"mkdir -p /m/sub && echo x > /m/sub/f && ln /m/sub/f /m/hl && ln -s /etc/passwd /m/l && mkfifo /m/p "
          f"&& chown 5:6 /m/sub/f && touch /ready; {IDLE}")
    ready(rootlet, "src")
    proc = cp(rootlet_env, "src:/m", "-")
    assert proc.returncode == 0, proc.stderr
    got = members(proc.stdout)
    assert sorted(got) == ["m", "m/hl", "m/l", "m/p", "m/sub", "m/sub/f"]
    assert got["m"].isdir() and got["m/p"].isfifo() and got["m/l"].issym() and got["m/l"].linkname == "/etc/passwd"
    data_entry, link_entry = (got["m/hl"], got["m/sub/f"])  # sorted walk: hl comes first and carries the data
    assert data_entry.isfile() and link_entry.islnk() and link_entry.linkname == "m/hl"
    assert (data_entry.uid, data_entry.gid) == (5, 6)      # owners as the container sees them
    contents = members(cp(rootlet_env, "src:/m/.", "-").stdout)
    assert sorted(contents) == ["hl", "l", "p", "sub", "sub/f"]  # SRC/. : the entries alone
    one = members(cp(rootlet_env, "src:/etc/hostname", "-").stdout)
    assert list(one) == ["hostname"]
    root = members(cp(rootlet_env, "src:/", "-").stdout)
    assert "bin/busybox" in root and not any(n.split("/")[0] in ("proc", "sys", "dev") for n in root)


def test_tar_stream_out_of_a_stopped_container(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                               busybox: str) -> None:
    assert rootlet("run", "--name", "done", busybox, "sh", "-c", "echo kept > /kept").returncode == 0
    proc = cp(rootlet_env, "done:/kept", "-")
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        assert tar.extractfile("kept").read() == b"kept\n"  # type: ignore[union-attr]


def test_a_tar_stream_is_not_written_to_a_terminal(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                   busybox: str) -> None:
    rootlet("create", "--name", "c", busybox, "true", check=True)
    main, other = os.openpty()
    try:
        proc = cp(rootlet_env, "c:/etc/hostname", "-", stdout=other)
    finally:
        os.close(other)
        os.close(main)
    assert proc.returncode == 125 and b"refusing to write a tar stream to a terminal" in proc.stderr


# --- a tar stream in: cp - CTR:DST ---------------------------------------------------------------------

HOSTILE = (
    ("/abs", b"abs\n", {}),                                        # absolute: lands in DST
    ("../up", b"up\n", {}),                                        # climbs: clamped to DST
    ("a/../../up2", b"up2\n", {}),
    ("link", None, {"type": tarfile.SYMTYPE, "linkname": "/etc"}),  # an absolute symlink of the archive …
    ("link/one-MARK", b"through\n", {}),                            # … followed in the container's root
    ("rel", None, {"type": tarfile.SYMTYPE, "linkname": "../../../../../../../../tmp"}),
    ("rel/two-MARK", b"t2\n", {}),                                 # … its /tmp, not the host's
    ("dev", None, {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}),
    ("ok", b"ok\n", {}),
    ("hl", None, {"type": tarfile.LNKTYPE, "linkname": "/ok"}),  # a hardlink to a member, by an absolute name
)


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_a_hostile_tar_stream_lands_inside_the_container(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                         busybox: str, tmp_path: Path, state: str) -> None:
    """Absolute names and ``..`` are taken below DST; the archive's own symlinks are followed only
    inside the container's root (podman's rule: its /etc, its /tmp, never the host's); device
    nodes are skipped and said; a hardlink names a member of the same copy."""
    mark = tmp_path.name
    entries = tuple((n.replace("MARK", mark), d, a) for n, d, a in HOSTILE)
    if state == "running":
        run_d(rootlet, "--name", "dst", busybox, "sh", "-c", IDLE)
    else:
        rootlet("create", "--name", "dst", busybox, "sh", "-c", IDLE, check=True)
    proc = cp(rootlet_env, "-", "dst:/root", data=make_tar(*entries))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode().startswith("Warning: 1 device node(s) of the archive not created (dev)"), proc.stderr
    if state == "stopped":
        rootlet("start", "dst", check=True)
    seen = rootlet("exec", "dst", "sh", "-c", f"cd /root && ls -A; cat /etc/one-{mark} /tmp/two-{mark} "
                   "/root/abs /root/up /root/up2; ls /abs /up /up2 2>&1 | wc -l; stat -c %h ok hl")
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.split() == ["abs", "hl", "link", "ok", "rel", "up", "up2",      # no "dev", no "a"
                                   "through", "t2", "abs", "up", "up2", "3", "2", "2"], seen.stdout
    assert not Path(f"/tmp/two-{mark}").exists() and not Path(f"/etc/one-{mark}").exists()


def test_a_tar_stream_in_needs_an_existing_directory_and_may_be_compressed(
        rootlet: RunRootlet, rootlet_env: dict[str, str], busybox: str) -> None:
    rootlet("create", "--name", "c", busybox, "true", check=True)
    tar = make_tar(("f", b"zipped\n", {}))
    for dst in ("c:/nonexistent", "c:/bin/busybox"):
        proc = cp(rootlet_env, "-", dst, data=tar)
        assert proc.returncode == 125, proc.stderr                     # podman's words and status
        assert proc.stderr.startswith(b"Error: destination must be a directory when copying from stdin\n"), proc.stderr
    import lzma

    import zstandard

    for packed in (gzip.compress(tar), lzma.compress(tar), zstandard.ZstdCompressor().compress(tar)):
        proc = cp(rootlet_env, "-", "c:/tmp", data=packed)
        assert proc.returncode == 0, proc.stderr
        out = cp(rootlet_env, "c:/tmp/f", "-")
        with tarfile.open(fileobj=io.BytesIO(out.stdout)) as t:
            assert t.extractfile("f").read() == b"zipped\n"  # type: ignore[union-attr]
        assert cp(rootlet_env, "-", "c:/tmp", data=make_tar(("f", b"", {}))).returncode == 0  # emptied again
    broken = cp(rootlet_env, "-", "c:/tmp", data=b"not a tar at all" * 64)
    assert broken.returncode == 125 and b"tar stream is not valid" in broken.stderr, broken.stderr


# --- --archive: who copied files belong to (podman's meaning) ------------------------------------------

def test_archive_gives_files_to_the_container_user_and_false_keeps_their_owners(
        rootlet: RunRootlet, rootlet_env: dict[str, str], busybox: str, tmp_path: Path) -> None:
    """podman 4.3: ``--archive`` (default true) chowns what is copied in to the container's user;
    ``--archive=false`` keeps the archive's ids, and a host file of yours is the container's root's."""
    run_d(rootlet, "--name", "u", "-u", "1000:1001", busybox, "sh", "-c", IDLE)
    assert rootlet("exec", "-u", "0", "u", "sh", "-c", "mkdir /a /k && chmod 777 /a /k").returncode == 0
    tar = make_tar(("d", None, {"type": tarfile.DIRTYPE, "mode": 0o750, "uid": 7, "gid": 8}),
                   ("d/f", b"f\n", {"uid": 7, "gid": 8, "mode": 0o640}))
    host = tmp_path / "host.txt"
    host.write_text("mine\n")
    for args in (("-", "u:/a"), (str(host), "u:/a/host.txt")):
        proc = cp(rootlet_env, *args, data=tar if args[0] == "-" else None)
        assert proc.returncode == 0, proc.stderr
    for args in (("--archive=false", "-", "u:/k"), ("--archive=false", str(host), "u:/k/host.txt")):
        proc = cp(rootlet_env, *args, data=tar if "-" in args else None)
        assert proc.returncode == 0, proc.stderr
    assert ls(rootlet, "u", "/a/d", "/a/d/f", "/a/host.txt", "/k/d", "/k/d/f", "/k/host.txt").splitlines() == [
        "1000:1001 750 /a/d", "1000:1001 640 /a/d/f", "1000:1001 644 /a/host.txt",
        "7:8 750 /k/d", "7:8 640 /k/d/f", "0:0 644 /k/host.txt"]
    bad = make_tar(("far", b"x", {"uid": 200000, "gid": 0}))             # beyond the container's ids
    refused = cp(rootlet_env, "--archive=false", "-", "u:/k", data=bad)
    assert refused.returncode == 125 and b"no such id" in refused.stderr, refused.stderr
    assert cp(rootlet_env, "-a", "-", "u:/k", data=bad).returncode == 0   # -a: the container's user


def test_files_copied_out_belong_to_the_user_and_overwrite_swaps_dirs_and_files(
        rootlet: RunRootlet, rootlet_env: dict[str, str], busybox: str, tmp_path: Path) -> None:
    run_d(rootlet, "--name", "o", busybox, "sh", "-c",
          f"mkdir -p /o/dir && echo x > /o/file && chown 5:5 /o/file && touch /ready; {IDLE}")
    ready(rootlet, "o")
    out = tmp_path / "out"
    assert cp(rootlet_env, "o:/o", str(out)).returncode == 0
    assert (out / "file").read_text() == "x\n" and (out / "file").stat().st_uid == os.getuid()   # not 5
    swapped = tmp_path / "swapped"
    (swapped / "file").mkdir(parents=True)            # a directory where the container has a file …
    (swapped / "dir").write_text("y\n")               # … and a file where it has a directory
    refused = cp(rootlet_env, f"{swapped}/.", "o:/o")
    assert refused.returncode == 125 and b"cannot overwrite" in refused.stderr, refused.stderr
    proc = cp(rootlet_env, "--overwrite", f"{swapped}/.", "o:/o")
    assert proc.returncode == 0, proc.stderr
    assert rootlet("exec", "o", "sh", "-c", "test -d /o/file && test -f /o/dir && cat /o/dir").stdout == "y\n"


def test_pause_is_accepted_and_said_impossible_for_a_running_container(rootlet: RunRootlet,
                                                                      rootlet_env: dict[str, str],
                                                                      busybox: str, tmp_path: Path) -> None:
    run_d(rootlet, "--name", "p", busybox, "sh", "-c", IDLE)
    said = cp(rootlet_env, "--pause", "p:/bin/busybox", str(tmp_path / "a"))
    assert said.returncode == 0 and said.stderr.count(b"cannot pause a container") == 1, said.stderr
    for flag in ("--pause=false", "--pause=true"):
        proc = cp(rootlet_env, flag, "p:/bin/busybox", str(tmp_path / "b"))
        assert proc.returncode == 0 and (b"cannot pause" in proc.stderr) == (flag == "--pause=true"), proc.stderr
    assert cp(rootlet_env, "--pause=maybe", "p:/bin", str(tmp_path / "c")).returncode == 125
    assert b"--pause" in rootlet("cp", "--help").stdout.encode()


# --- podman itself, where its behaviour is the rule -----------------------------------------------------

def test_live_cp_streams_and_ownership_match_podman(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                    podman: Podman, registry: str) -> None:  # noqa: F811
    """The same archive into a container of user 1000:1001, with and without --archive, and the
    same refusal of a destination that is no directory: owners, modes and statuses as podman's."""
    image = f"{registry}/library/busybox:latest"
    rootlet("pull", "-q", image, check=True)
    podman("pull", "-q", "--tls-verify=false", image)
    tar = make_tar(("d", None, {"type": tarfile.DIRTYPE, "mode": 0o750, "uid": 7, "gid": 8}),
                   ("d/f", b"f\n", {"uid": 7, "gid": 8, "mode": 0o640}), ("/abs", b"a\n", {}), ("../up", b"u\n", {}))
    run_d(rootlet, "--name", "u", "--network", "none", "-u", "1000:1001", image, "sh", "-c", IDLE)
    podman("run", "-d", "--name", "u", "--network", "none", "-u", "1000:1001", image, "sh", "-c", IDLE)
    seen = []
    for tool in ("rootlet", "podman"):
        def run(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
            if tool == "rootlet":
                return subprocess.run(rootlet_command() + list(args), input=data, capture_output=True,
                                      env=rootlet_env, timeout=120)
            return subprocess.run([*podman.argv, *args], input=data, capture_output=True, timeout=120)
        assert run("exec", "-u", "0", "u", "sh", "-c", "mkdir /a /k && chmod 777 /a /k").returncode == 0
        statuses = [run("cp", "-", "u:/a", data=tar).returncode,
                    run("cp", "--archive=false", "-", "u:/k", data=tar).returncode]
        nodir = run("cp", "-", "u:/nonexistent", data=tar)
        statuses.append(nodir.returncode)
        assert b"destination must be a directory when copying from stdin" in nodir.stderr, (tool, nodir.stderr)
        listing = run("exec", "u", "sh", "-c", "cd / && stat -c '%u:%g %a %n' a/d a/d/f a/abs a/up k/d k/d/f")
        out = run("cp", "u:/a/d/f", "-").stdout
        with tarfile.open(fileobj=io.BytesIO(out)) as t:
            names = [(m.name, m.size) for m in t.getmembers()]
        seen.append((statuses, listing.stdout.decode(), names))
    assert seen[0] == seen[1], seen
    assert seen[0][0] == [0, 0, 125]
