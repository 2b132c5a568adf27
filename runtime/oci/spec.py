"""What the runtime needs to start one container process: ``RuntimeSpec`` and its parts.

The engine builds a RuntimeSpec from a container's record (``rootlet.runtime.container.launchspec``)
for every start; ``rootlet.runtime.oci.spawn`` turns it into processes. Plain data: importing this
module costs nothing, so every module on both sides can share the types.
"""

from __future__ import annotations

from rootlet.registry.record import Record
from rootlet.runtime.oci.capnames import PODMAN_DEFAULT_CAPS

TYPE_CHECKING = False  # netlink loads ctypes, idmap pwd: the records that hold a spec need neither
if TYPE_CHECKING:
    from collections.abc import Mapping
    from rootlet.runtime.linux.netlink import Veth
    from rootlet.runtime.oci.idmap import UsernsPlan


class BindMount(Record):
    """A host file or directory bind-mounted into the container (``-v``/``--mount type=bind``).

    ``options`` take mount words: ``bind`` (not recursive; the default is recursive like
    podman's ``-v``), ``nosuid``/``nodev``/``noexec``, ``ro``/``rw``, and propagation
    (``private``, ``rslave``, ``shared``, …). SELinux and copy words (``z``, ``Z``, ``copy``,
    ``nocopy``) are accepted and ignored.
    """

    source: str
    destination: str
    readonly: bool = False
    options: tuple[str, ...] = ()


class TmpfsMount(Record):
    """A tmpfs at ``destination``; ``options`` mixes mount words and tmpfs data (size=, mode=)."""

    destination: str
    options: str = "rw,nosuid,nodev,mode=1777"


class Rlimit(Record):
    """One resource limit (``resource`` is an ``RLIMIT_*`` number from the resource module)."""

    resource: int
    soft: int
    hard: int


class RuntimeSpec(Record):
    """Everything the container process needs; paths are host paths unless said otherwise.

    ``lower_dirs`` are layer diff dirs, topmost first; ``upper_dir``, ``work_dir`` and
    ``merged_dir`` are the container's own (created empty by the caller). ``argv`` is the final
    entrypoint+cmd (argv[0] is looked up on the container's PATH when it has no "/"), ``env`` the
    final environment. ``user`` is resolved inside the rootfs ("", "name", "uid", "name:group",
    "uid:gid"). ``caps`` is the capability set of container root and the bounding set of
    everyone; ``ambient_caps`` are the capabilities a non-root user keeps (podman gives a non-root
    user only its ``--cap-add`` ones, raised into the ambient set). ``network``: "private" and
    "none" get a new network namespace with lo up (the caller attaches slirp4netns/pasta for
    "private"), "host" keeps the host's. ``stdio`` are descriptors of the caller (pipes it made:
    ``rootlet.runtime.oci.stdio``; never its own terminal or files) that become the command's 0,
    1 and 2, None meaning /dev/null; with ``tty`` the command gets a pty instead. ``keep_fds`` stay
    open in the command; every other descriptor is closed. ``fuse_options`` are extra fuse-overlayfs options (id mappings
    for ``--userns keep-id``); they force fuse-overlayfs. ``winsize`` (a struct winsize) is set on
    the allocated pty before the command starts. With ``gate`` the command waits, fully set up
    (credentials, capabilities, seccomp filter: all but the execve), until the caller's
    ``ContainerProcess.release()`` (the network is attached meanwhile, so the
    command has it from its first instruction). ``volatile``: the upper dir is thrown away after
    the run (``--rm``), so the kernel overlay need not sync it. ``seccomp`` is the compiled filter
    (``rootlet.runtime.oci.seccomp``) the command runs under; None runs it unconfined.
    ``timeout`` (seconds, 0: none) kills the command that long after it started; ``privileged``
    leaves /proc and /sys unmasked. ``join_ns`` are namespaces to enter instead of making new ones
    ((fd, CLONE_NEW* flag) pairs, the user namespace among them first: a user network's, a pod's,
    ``--network container:``'s), and ``veths`` the pairs that connect the new network namespace to
    bridges in the namespace ``veth_netns`` (an fd) refers to (``rootlet.runtime.linux.netlink``).
    """

    lower_dirs: tuple[str, ...]
    upper_dir: str
    work_dir: str
    merged_dir: str
    overlay: str = "auto"
    argv: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    additional_gids: tuple[int | str, ...] = ()
    user_entries: tuple[tuple[str, str, str], ...] = ()
    hostname: str = ""
    etc_files: Mapping[str, str] = {}
    binds: tuple[BindMount, ...] = ()
    tmpfs: tuple[TmpfsMount, ...] = ()
    readonly_rootfs: bool = False
    caps: tuple[str, ...] = PODMAN_DEFAULT_CAPS
    ambient_caps: tuple[str, ...] = ()
    no_new_privs: bool = False
    seccomp: bytes | None = None
    rlimits: tuple[Rlimit, ...] = ()
    network: str = "private"
    tty: bool = False
    stdio: tuple[int | None, int | None, int | None] = (None, None, None)
    init: bool = False
    plan: UsernsPlan | None = None
    keep_fds: tuple[int, ...] = ()
    fuse_options: str = ""
    winsize: bytes | None = None
    gate: bool = False
    volatile: bool = False
    timeout: int = 0
    privileged: bool = False
    join_ns: tuple[tuple[int, int], ...] = ()
    veths: tuple[Veth, ...] = ()
    veth_netns: int = -1
