"""The keeper (C1): the process that holds a container's namespaces and root filesystem.

    P ── fork ──> C1: unshare(user) ── "U" ──> P writes the id maps; unshare(mount, uts, ipc[, net])
                  C1 ── "N" ──> P (the namespaces all exist: P may start the network helper)
                  C1 <── "G" ── P
                  C1: become root of the namespace, mount the overlay on merged_dir,
                      unshare(pid), fork ──> C2 (``rootlet.runtime.oci.process``)
                  C1 ── "C<pid of C2>" ──> P
                  C1: waitpid(C2), unmount, stop fuse-overlayfs ── "S<wait status>" ──> P

The keeper stays outside the container's pid and mount namespaces, so after the container exits
it can take the overlay down and stop fuse-overlayfs (its direct child, run in the foreground)
before reporting. It dies with P (PR_SET_PDEATHSIG → SIGTERM → it SIGKILLs C2), and C2 dies with
it (PR_SET_PDEATHSIG SIGKILL); the kernel then kills the whole pid namespace. The pid namespace
is unshared only just before C2 is forked: the first child after unshare(CLONE_NEWPID) becomes
the namespace's init, and that must be C2, not fuse-overlayfs.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import ContainerStartError
from rootlet.runtime.linux import signals
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.linux.child import close_fds_except, fork_child, redirect_to_null, report_error, stop_child
from rootlet.runtime.oci.idmap import UsernsPlan, become_root
from rootlet.runtime.oci.mapwriter import unshare_hint
from rootlet.runtime.oci.overlay import mount_overlay, unmount_overlay
from rootlet.runtime.oci.process import container_main
from rootlet.runtime.oci.spec import RuntimeSpec


def keeper_main(spec: RuntimeSpec, plan: UsernsPlan, flags: int, parent: int, err_w: int, info_w: int,
            go_r: int, console_fd: int | None, gate_r: int | None = None) -> int:
    """C1: namespaces, overlay, fork C2, wait for it, clean up, report its wait status."""
    signals.signal(signals.SIGINT, signals.SIG_IGN)  # P decides what Ctrl-C means
    signals.signal(signals.SIGPIPE, signals.SIG_IGN)
    # Nothing of the caller's stdio stays here (errors go through err_w): C2 starts from /dev/null
    # and takes only the pipes the caller made for it.
    spec = spec.replace(stdio=tuple(os.dup(fd) if fd is not None and fd <= 2 else fd for fd in spec.stdio))
    redirect_to_null(0, 1, 2)
    # The caller's environment is in our memory from the fork on: zero it before C2 (which
    # becomes visible in the container, /proc/1/environ) inherits it.
    linux.scrub_environ()
    extra = set(spec.keep_fds) | {fd for fd in spec.stdio if fd is not None}
    if console_fd is not None:
        extra.add(console_fd)
    if gate_r is not None:
        extra.add(gate_r)
    extra.update(fd for fd, _ in spec.join_ns)
    if spec.veths:
        extra.add(spec.veth_netns)
    close_fds_except({0, 1, 2, err_w, info_w, go_r, *extra})
    # The user namespace first, so that P can write its maps while the other namespaces (a
    # network namespace costs over a millisecond) are created, owned by it, and lo is brought up.
    user_flag = flags & linux.CLONE_NEWUSER
    try:
        # A joined user namespace first (it grants the capabilities the other joins need).
        linux.join_namespaces([j for j in spec.join_ns if j[1] == linux.CLONE_NEWUSER])
        if user_flag:
            linux.unshare(user_flag)
            os.write(info_w, b"U\n")
        linux.unshare(flags & ~user_flag)
        linux.join_namespaces([j for j in spec.join_ns if j[1] != linux.CLONE_NEWUSER])
        if not user_flag:
            os.write(info_w, b"U\n")
        if flags & linux.CLONE_NEWNET:
            linux.loopback_up()
        # The user namespace was reported first (its maps are written meanwhile); a helper that
        # joins the net namespace must wait for this, or it may find the host's still.
        os.write(info_w, b"N\n")
    except OSError as e:
        report_error(err_w, ContainerStartError(f"cannot create the container's namespaces: {e.strerror}",
                                                unshare_hint(e)))
        return 1
    if os.read(go_r, 1) != b"G":  # P could not write the maps
        return 1
    os.close(go_r)
    children: dict[str, int] = {}

    def on_term(_sig: int, _frame: object) -> None:
        if "c2" in children:
            try:
                os.kill(children["c2"], signals.SIGKILL)
            except ProcessLookupError:
                pass
        else:  # no container yet: stop fuse-overlayfs if it runs, and go
            if "fuse" in children:
                stop_child(children["fuse"], timeout=1.0)
            os._exit(1)

    fuse_pid: int | None = None
    try:
        become_root(plan)
        signals.signal(signals.SIGTERM, on_term)
        linux.set_pdeathsig(signals.SIGTERM)  # after the id change, which clears it
        # The id change also cleared "dumpable" when root here is not our host uid (keep-id), and
        # slirp4netns/pasta could then not open the namespaces of the container held at its gate.
        linux.set_dumpable()
        if os.getppid() != parent:
            return 1
        linux.set_child_subreaper()
        # The files rootlet provides (/etc/hosts, resolv.conf, hostname, passwd, group) belong to
        # the container's root, as in podman. Under --userns keep-id that is not our host uid, and
        # left as ours the unprivileged user (= us) could rewrite the container's /etc/passwd.
        for source in spec.etc_files.values():
            os.chown(source, 0, 0)
        if spec.veths:  # the container's side of its user networks, before its command runs
            from rootlet.runtime.linux.netlink import plug_veths

            plug_veths(spec.veths, spec.veth_netns)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE, None)
        fuse_pid = mount_overlay(spec.lower_dirs, spec.upper_dir, spec.work_dir, spec.merged_dir,
                                 spec.overlay, plan.rootful, close_fds=(err_w, info_w, *extra),
                                 fuse_options=spec.fuse_options, volatile=spec.volatile)
        if fuse_pid is not None:
            children["fuse"] = fuse_pid
        linux.unshare(linux.CLONE_NEWPID)
    except BaseException as exc:  # noqa: BLE001 - reported to P
        report_error(err_w, exc, 125)
        if fuse_pid is not None:
            unmount_overlay(spec.merged_dir, fuse_pid)
        return 1

    def c2_main() -> int:
        os.close(info_w)
        return container_main(spec, plan, err_w, console_fd, gate_r)

    c2 = fork_child(c2_main, err_w, 125)
    children["c2"] = c2
    os.write(info_w, b"C%d\n" % c2)
    os.close(err_w)
    redirect_to_null(0, 1, 2)
    for fd in extra:
        try:
            os.close(fd)
        except OSError:
            pass
    if spec.timeout:
        # podman's --timeout: the container's PID 1 (and with it its namespace) is killed once the
        # time is up; waitpid below is resumed after the handler (PEP 475).
        signals.signal(signals.SIGALRM, lambda _sig, _frame: os.kill(c2, signals.SIGKILL))
        signals.alarm(spec.timeout)
    _, status = os.waitpid(c2, 0)
    signals.alarm(0)
    unmount_overlay(spec.merged_dir, fuse_pid)
    try:
        os.write(info_w, b"S%d\n" % status)
    except OSError:
        pass
    return 0
