"""UsernsWorker, remove_tree and the host probes against the real kernel.

Rootless tests need an unprivileged user with subordinate ids (CI runs the suite as one); as
root they skip, and the rootful worker path is tested instead.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rootlet.registry.errors import RootletError, StoreError, UsernsError
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.linux.rmtree import remove_tree
from rootlet.runtime.oci.idmap import IdMapping, UsernsPlan, plan_userns
from rootlet.runtime.oci.userns import UsernsWorker, run_in_userns
from rootlet.runtime.system.hostinfo import dev_fuse_check, host_info, probe_kernel_overlay

ROOT = os.getuid() == 0
rootless = pytest.mark.skipif(ROOT, reason="running as root: a rootful plan creates no user namespace")
rootful = pytest.mark.root_only


# --- functions that run in the worker (module level: pickled by reference) ----------------------

def read_maps() -> tuple[str, str]:
    """The worker's own uid_map and gid_map."""
    with open("/proc/self/uid_map") as u, open("/proc/self/gid_map") as g:
        return u.read(), g.read()


def ids() -> tuple[int, int, int, list[int]]:
    """uid, gid, pid and supplementary groups of the worker."""
    return os.getuid(), os.getgid(), os.getpid(), os.getgroups()


def chown_file(path: str, uid: int, gid: int) -> None:
    """Create ``path`` and give it to uid:gid."""
    with open(path, "w") as f:
        f.write("x")
    os.chown(path, uid, gid)


def raise_store_error(message: str, hint: str) -> None:
    raise StoreError(message, hint)


def raise_value_error(message: str) -> None:
    raise ValueError(message)


class Unrebuildable(Exception):
    """An exception that cannot be unpickled from its args."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


def raise_unrebuildable() -> None:
    raise Unrebuildable("left", "right")


def exit_now(code: int) -> None:
    os._exit(code)


def slow_echo(value: int) -> int:
    time.sleep(0.01)
    return value


def mount_tmpfs(path: str) -> bool:
    """Mount a tmpfs on ``path``; report whether the worker sees it mounted."""
    linux.mount("tmpfs", path, "tmpfs", 0, "size=1m")
    return os.path.ismount(path)


def build_hostile_tree(root: str, outside_file: str, outside_dir: str) -> None:
    """A tree like a layer leaves behind: subuid owners, a mode-0 dir, symlinks out of the tree."""
    os.makedirs(f"{root}/a/b/c")
    for i, path in enumerate([f"{root}/top", f"{root}/a/f", f"{root}/a/b/c/deep"]):
        chown_file(path, 1000 + i, 1000 + i)
    os.chown(f"{root}/a/b", 33, 33)
    os.mkdir(f"{root}/locked")
    chown_file(f"{root}/locked/secret", 5, 5)
    os.mkdir(f"{root}/locked/sub")
    os.chmod(f"{root}/locked/sub", 0)
    os.chmod(f"{root}/locked", 0)
    os.mkdir(f"{root}/ro", 0o500)
    os.symlink(outside_file, f"{root}/link-to-file")
    os.symlink(outside_dir, f"{root}/link-to-dir")
    os.symlink("/", f"{root}/a/root-link")
    os.mkfifo(f"{root}/fifo")


# --- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plan() -> UsernsPlan:
    """The calling user's plan; rootless tests need subordinate ids (CI has them)."""
    p = plan_userns()
    if not p.rootful and p.single_id:
        pytest.skip(f"no subordinate ids: {p.reason} ({p.hint})")
    return p


@pytest.fixture
def worker(plan: UsernsPlan) -> Iterator[UsernsWorker]:
    with UsernsWorker(plan) as w:
        yield w


@pytest.fixture
def scratch(tmp_path: Path, plan: UsernsPlan) -> Iterator[Path]:
    """A directory that may end up holding subuid-owned files; emptied through a worker."""
    d = tmp_path / "scratch"
    d.mkdir()
    yield d
    run_in_userns(plan, remove_tree, str(d))


def parse_map(text: str) -> tuple[IdMapping, ...]:
    return tuple(IdMapping(*map(int, line.split())) for line in text.splitlines())


# --- rootless ------------------------------------------------------------------------------------

@rootless
def test_child_sees_the_planned_maps(worker: UsernsWorker, plan: UsernsPlan) -> None:
    uid_map, gid_map = worker.call(read_maps)
    assert parse_map(uid_map) == plan.uid_map
    assert parse_map(gid_map) == plan.gid_map


@rootless
def test_child_is_root_of_the_namespace(worker: UsernsWorker) -> None:
    uid, gid, pid, groups = worker.call(ids)
    assert (uid, gid, groups) == (0, 0, [])
    assert pid == worker.pid != os.getpid()


@rootless
def test_chown_to_uid_1_lands_on_the_first_subuid(worker: UsernsWorker, scratch: Path, plan: UsernsPlan) -> None:
    target = scratch / "owned"
    worker.call(chown_file, str(target), 1, 1)
    st = os.lstat(target)
    assert st.st_uid == plan.host_uid(1) == plan.uid_map[1].outer
    assert st.st_gid == plan.host_gid(1)


@rootless
def test_single_id_mode_without_a_range(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text("someone-else:100000:65536\n")
    single = plan_userns(subuid_path=str(subuid), subgid_path=str(subuid))
    assert single.single_id and single.reason and single.hint
    with UsernsWorker(single) as w:
        uid_map, gid_map = w.call(read_maps)
        assert parse_map(uid_map) == (IdMapping(0, os.getuid(), 1),)
        assert parse_map(gid_map) == (IdMapping(0, os.getgid(), 1),)
        assert w.call(ids)[:2] == (0, 0)
        # Only id 0 exists in there: chown to 1 fails, and the failure comes back as itself.
        with pytest.raises(OSError):
            w.call(chown_file, str(tmp_path / "f"), 1, 1)


@rootless
def test_remove_tree_deletes_subuid_files_and_mode_0_dirs(scratch: Path, tmp_path: Path, plan: UsernsPlan) -> None:
    outside_file = tmp_path / "keep-me"
    outside_file.write_text("precious")
    outside_dir = tmp_path / "keep-dir"
    outside_dir.mkdir()
    (outside_dir / "inner").write_text("precious")
    tree = scratch / "layer"
    with UsernsWorker(plan) as w:
        w.call(build_hostile_tree, str(tree), str(outside_file), str(outside_dir))
        assert os.lstat(tree / "top").st_uid == plan.host_uid(1000)
        assert stat.S_IMODE(os.lstat(tree / "locked").st_mode) == 0
        w.call(remove_tree, str(tree))
        w.call(remove_tree, str(tree))  # already gone: not an error
    assert not tree.exists()
    assert outside_file.read_text() == "precious"
    assert (outside_dir / "inner").read_text() == "precious"


@rootless
def test_remove_tree_as_plain_user_handles_own_mode_0_dirs(tmp_path: Path) -> None:
    tree = tmp_path / "mine"
    (tree / "x" / "y").mkdir(parents=True)
    (tree / "x" / "y" / "f").write_text("f")
    (tree / "x" / "y").chmod(0)
    (tree / "x").chmod(0o500)
    remove_tree(str(tree))
    assert not tree.exists()


@rootless
def test_probe_kernel_overlay_works_here(tmp_path: Path, plan: UsernsPlan) -> None:
    ok, reason = probe_kernel_overlay(str(tmp_path), plan)
    assert ok, reason
    assert os.listdir(tmp_path) == []


@rootless
def test_host_info_all_ok_for_an_unprivileged_user() -> None:
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        pytest.skip("/dev/fuse is not read-write for this user (chmod 666 /dev/fuse)")
    start = time.perf_counter()
    info = host_info()
    elapsed = time.perf_counter() - start
    bad = [c for c in info.checks if not c.ok]
    assert bad == []
    assert info.kernel_overlay and info.fuse_overlayfs and info.fuse_overlayfs_version
    assert info.cgroup_version in ("v1", "v2", "hybrid")
    assert not info.plan.single_id
    assert elapsed < 1.0  # budget is ~150 ms; generous for loaded CI machines


@rootless
def test_newuidmap_refusal_becomes_usernserror_with_hint(tmp_path: Path) -> None:
    # A range the real /etc/subuid does not grant: newuidmap must refuse it.
    fake = tmp_path / "subids"
    fake.write_text(f"{os.getuid()}:3000000:100\n")
    bogus = plan_userns(subuid_path=str(fake), subgid_path=str(fake))
    with pytest.raises(UsernsError) as info:
        UsernsWorker(bogus)
    assert "newuidmap failed" in info.value.message or "newgidmap failed" in info.value.message
    assert info.value.hint


@rootless
def test_missing_newuidmap_says_what_to_install(plan: UsernsPlan, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsernsError) as info:
        UsernsWorker(plan)
    assert "newuidmap is not installed" in info.value.message
    assert info.value.hint and "uidmap" in info.value.hint


@rootless
def test_dev_fuse_check_flags_a_device_this_user_cannot_open() -> None:
    closed = None
    for entry in sorted(os.scandir("/dev"), key=lambda e: e.name):
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_uid == 0 and not os.access(entry.path, os.R_OK | os.W_OK):
            closed = entry.path
            break
    if closed is None:
        pytest.skip("no root-only character device in /dev to stand in for a 0600 /dev/fuse")
    check = dev_fuse_check(closed)
    assert not check.ok
    assert check.hint and f"chmod 666 {closed}" in check.hint
    assert not dev_fuse_check("/nonexistent/fuse").ok


# --- both modes ----------------------------------------------------------------------------------

def test_rootlet_errors_keep_type_message_and_hint(worker: UsernsWorker) -> None:
    with pytest.raises(StoreError) as info:
        worker.call(raise_store_error, "layer is busy", "unmount it first")
    assert info.value.message == "layer is busy"
    assert info.value.hint == "unmount it first"
    assert isinstance(info.value, RootletError)
    assert any("raise_store_error" in note for note in getattr(info.value, "__notes__", []))


def test_other_exceptions_keep_type_and_message(worker: UsernsWorker) -> None:
    with pytest.raises(ValueError, match="bad value"):
        worker.call(raise_value_error, "bad value")
    with pytest.raises(FileNotFoundError) as info:
        worker.call(os.stat, "/nonexistent/path")
    assert info.value.filename == "/nonexistent/path"
    assert worker.call(os.getcwd) == os.getcwd()  # still serving after errors


def test_unrebuildable_exception_becomes_usernserror(worker: UsernsWorker) -> None:
    with pytest.raises(UsernsError, match="Unrebuildable: left/right"):
        worker.call(raise_unrebuildable)


def test_unpicklable_call_fails_in_the_parent_and_keeps_the_worker(worker: UsernsWorker) -> None:
    with pytest.raises(Exception):
        worker.call(lambda: 1)
    assert worker.call(slow_echo, 5) == 5


def test_child_exit_raises_usernserror(worker: UsernsWorker) -> None:
    with pytest.raises(UsernsError, match="exit status 3"):
        worker.call(exit_now, 3)
    assert not worker.alive
    with pytest.raises(UsernsError):
        worker.call(ids)
    worker.close()
    worker.close()


def test_killed_child_raises_usernserror(worker: UsernsWorker) -> None:
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(UsernsError, match="signal 9"):
        worker.call(ids)


def test_calls_from_threads_are_serialized(worker: UsernsWorker) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        value = worker.call(slow_echo, n)
        with lock:
            results.append(value)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(8))


def test_sibling_worker_does_not_keep_pipes_open(plan: UsernsPlan) -> None:
    first = UsernsWorker(plan)
    with UsernsWorker(plan) as second:
        start = time.perf_counter()
        first.close()
        assert time.perf_counter() - start < 2.0  # the child saw EOF; it was not killed after a timeout
        assert second.call(os.getuid) == 0


def test_mount_namespace_keeps_mounts_private(tmp_path: Path, plan: UsernsPlan) -> None:
    target = tmp_path / "mnt"
    target.mkdir()
    with UsernsWorker(plan, mount_ns=True) as w:
        assert w.call(mount_tmpfs, str(target))
        assert not os.path.ismount(target)


def test_run_in_userns_one_shot(plan: UsernsPlan) -> None:
    uid, _, pid, _ = run_in_userns(plan, ids)
    assert uid == 0 and pid != os.getpid()


# --- rootful -------------------------------------------------------------------------------------

@rootful
def test_rootful_worker_is_a_plain_root_child(plan: UsernsPlan, tmp_path: Path) -> None:
    assert plan.rootful
    with UsernsWorker(plan) as w:
        uid_map, _ = w.call(read_maps)
        assert parse_map(uid_map) == plan.uid_map  # the initial namespace: identity
        assert w.call(ids)[0] == 0 and w.pid != os.getpid()
        w.call(chown_file, str(tmp_path / "f"), 1234, 1234)
    assert os.lstat(tmp_path / "f").st_uid == 1234
    ok, reason = probe_kernel_overlay(str(tmp_path), plan)
    assert ok, reason
