"""The container's terminal: a pty of the container's own devpts, made its controlling terminal,
and the caller's relay between it and the caller's own terminal.

A pty of the container's devpts is what ``tty``/``ttyname`` can find inside the container (a
host pty works but is "not a tty" there), and it is never the caller's terminal: the caller gets
the master over a socket (crun's console socket) and relays it. Used by ``run -t`` and ``exec -t``.
"""

from __future__ import annotations

import os

from rootlet.runtime.linux import signals
from rootlet.runtime.linux import syscalls as linux


def open_controlling_pty(winsize: bytes | None) -> int:
    """Open a pty in the devpts at /dev/pts (call it in the container's mount namespace, after
    setsid), size it, make it the controlling terminal and stdio; returns the master.

    A pty of the container's devpts is what ``tty``/``ttyname`` can find inside the container; a
    pty of the host's devpts works but is "not a tty" for them. Used by ``run -t`` and ``exec -t``.
    """
    import fcntl
    import termios

    master, slave = os.openpty()  # /dev/ptmx → pts/ptmx: the container's devpts instance
    try:
        if winsize:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, winsize)
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return master


def allocate_console(console_fd: int, winsize: bytes | None) -> None:
    """Give the container a pty as its terminal and /dev/console, and send the master to the
    caller over the ``console_fd`` socket (like crun's console socket)."""
    import socket

    master = open_controlling_pty(winsize)
    try:
        linux.mount(os.ttyname(0), "/dev/console", None, linux.MS_BIND, None)
        with socket.socket(fileno=console_fd) as sock:
            socket.send_fds(sock, [b"M"], [master])
    finally:
        os.close(master)


def relay_pty(master: int, status_fd: int | None, interactive: bool) -> None:
    """Copy our stdin to a container's pty master and its output to our stdout, in raw mode on a
    TTY, until the pty closes or ``status_fd`` (the container's exit) becomes readable; closes
    ``master``."""
    import select
    import termios
    import tty as ttymod

    saved = None
    if interactive and os.isatty(0):
        saved = termios.tcgetattr(0)
        ttymod.setraw(0, termios.TCSANOW)  # not TCSAFLUSH: keep what was typed ahead
    try:
        _sync_winsize(master)
        signals.signal(signals.SIGWINCH, lambda *_: _sync_winsize(master))
        fds = [master] + ([0] if interactive else [])
        while True:
            ready, _, _ = select.select(fds, [], [], 0.5)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    fds.remove(0)
                else:
                    os.write(master, data)
            if not ready and status_fd is not None and select.select([status_fd], [], [], 0)[0]:
                break
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        try:
            os.close(master)
        except OSError:
            pass


def terminal_size() -> bytes | None:
    """Our terminal's struct winsize (stdout's, else stdin's), for a pty made before the command runs."""
    import fcntl
    import termios

    for fd in (1, 0):
        if os.isatty(fd):
            try:
                return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
            except OSError:
                pass
    return None


def _sync_winsize(master: int) -> None:
    import fcntl
    import termios

    if os.isatty(1):
        try:
            size = fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
        except OSError:
            pass
