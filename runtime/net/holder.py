"""Namespace holders: small processes that keep namespaces alive for others to join, no daemon.

Two kinds, one code path (podman has its pause process and catatonit for the same jobs):

- the **netns holder** of user networks (``rootlet.runtime.net.netns``): a user namespace and a
  network namespace holding the bridges; it serves the networks' DNS (``rootlet.runtime.net.dns``)
  and holds the write end of slirp4netns's exit pipe, so the helper ends with it;
- a **pod's infra** process (``rootlet.runtime.container.pods``): the network, IPC and UTS
  namespaces the pod's containers share, in the user namespace they all join.

``start_holder`` forks one, writes its user namespace's id maps (or lets it join a given one),
waits until it has set everything up and returns its pid. The holder is a session leader with its
stdio on /dev/null, and outlives the command that started it: whoever finds it no longer needed
(the last container out, ``pod stop``) kills it, by pid and start time.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import NetworkError
from rootlet.registry.record import Record
from rootlet.runtime.linux import signals
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.linux.child import (close_fds_except, error_pipe, fork_child, read_error, redirect_to_null,
                                         report_ok)
from rootlet.runtime.linux.netlink import Veth
from rootlet.runtime.oci.idmap import UsernsPlan, become_root


class HolderSpec(Record):
    """What a holder holds. ``unshare``: CLONE_NEW* flags beyond the user namespace; ``join_user``
    an fd of a user namespace to enter instead of making one (the caller then writes no maps);
    ``hold_fds`` stay open for its life (a helper's exit pipe); ``veths`` connect its network
    namespace to bridges in ``veth_netns``; ``dns_state`` (a path): serve the user networks' DNS
    from it; ``forward``: route between its interfaces (ip_forward)."""

    title: str
    unshare: int
    join_user: int = -1
    hostname: str = ""
    hold_fds: tuple[int, ...] = ()
    veths: tuple[Veth, ...] = ()
    veth_netns: int = -1
    dns_state: str = ""
    forward: bool = False


def start_holder(spec: HolderSpec, plan: UsernsPlan) -> int:
    """Fork a holder for ``spec``; its pid once it is ready (NetworkError with its reason if not)."""
    from rootlet.runtime.oci.mapwriter import write_id_maps

    info_r, info_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = error_pipe()

    def body() -> int:
        os.close(info_r)
        os.close(go_w)
        os.close(err_r)
        # Forked twice: the holder is nobody's child here, so the process that kills it (the last
        # container's owner, not its starter) never leaves a zombie in a long-lived monitor.
        if os.fork():
            return 0
        # The holder says its pid itself, before its step: written by the middle process, the pid
        # could land after the step ("U123\n"); the parent then read no pid, sent no "G", and
        # both waited for ever (a `run -d` on a network or pod hanging, 1 in a few hundred).
        os.write(info_w, b"%d\n" % os.getpid())
        return _holder_main(spec, plan, info_w, go_r, err_w)

    middle = fork_child(body, err_w, default_code=1, long_lived=True)
    for fd in (info_w, go_r, err_w):
        os.close(fd)
    pid = 0
    try:
        head = b""
        while not head.endswith(b"\n"):
            chunk = os.read(info_r, 1)
            if not chunk:
                break
            head += chunk
        os.waitpid(middle, 0)
        pid = int(head) if head.strip().isdigit() else 0
        step = os.read(info_r, 1) if pid else b""
        if step == b"U":
            try:
                write_id_maps(pid, plan)
            except BaseException:
                os.close(go_w)
                go_w = -1
                raise
        if go_w != -1 and step:  # without a step it already failed: its report says why
            os.write(go_w, b"G")
        elif go_w != -1:
            os.close(go_w)  # a holder still waiting for "G" sees the end instead, and exits
            go_w = -1
        error = read_error(err_r, "the namespace holder failed")
        err_r = -1
        if error is not None or not pid:
            _kill(pid)
            raise NetworkError(f"cannot set up {spec.title}: {getattr(error, 'message', error)}",
                               getattr(error, "hint", None)) from None
    except BaseException:
        _kill(pid)
        raise
    finally:
        for fd in (info_r, go_w, err_r):
            if fd != -1:
                os.close(fd)
    return pid


def _kill(pid: int) -> None:
    import contextlib

    if pid <= 0:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signals.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _holder_main(spec: HolderSpec, plan: UsernsPlan, info_w: int, go_r: int, err_w: int) -> int:
    """The holder: its namespaces, then DNS or nothing until it is killed."""
    os.setsid()
    redirect_to_null(0, 1, 2)
    keep = {0, 1, 2, info_w, go_r, err_w, *spec.hold_fds}
    keep.update(fd for fd in (spec.join_user, spec.veth_netns) if fd >= 0)
    close_fds_except(keep)
    os.chdir("/")  # keep no directory of the caller's busy
    for sig in (signals.SIGINT, signals.SIGHUP, signals.SIGPIPE, signals.SIGTTOU, signals.SIGTTIN, signals.SIGUSR1):
        signals.signal(sig, signals.SIG_IGN)
    signals.signal(signals.SIGTERM, signals.SIG_DFL)
    if spec.join_user >= 0:
        linux.setns(spec.join_user, linux.CLONE_NEWUSER)
        os.close(spec.join_user)
        os.write(info_w, b"J")
    elif not plan.rootful:
        linux.unshare(linux.CLONE_NEWUSER)
        os.write(info_w, b"U")
    else:
        os.write(info_w, b"R")
    os.close(info_w)
    if os.read(go_r, 1) != b"G":
        return 1
    os.close(go_r)
    become_root(plan)
    linux.set_dumpable()  # the id change cleared it: others must open our /proc/PID/ns files
    linux.unshare(spec.unshare)
    if spec.unshare & linux.CLONE_NEWNET:
        linux.loopback_up()
    if spec.hostname and spec.unshare & linux.CLONE_NEWUTS:
        linux.sethostname(spec.hostname)
    if spec.forward:
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1")
    if spec.veths:
        from rootlet.runtime.linux.netlink import plug_veths

        plug_veths(spec.veths, spec.veth_netns)
    if spec.veth_netns >= 0:
        os.close(spec.veth_netns)
    linux.set_process_name(spec.title)
    sock = None
    if spec.dns_state:
        import socket

        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        sock.bind(("0.0.0.0", 53))
    report_ok(err_w)
    if sock is not None:
        from rootlet.runtime.net.dns import serve_dns

        serve_dns(spec.dns_state, sock)
    # Reap whatever is left to us (nothing is started here), and wait to be killed.
    signals.signal(signals.SIGCHLD, lambda _s, _f: _reap())
    while True:
        signals.pause()


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
