"""Copying a container's output from its pipes into its log (and on to our own stdout/stderr).

Used by the monitor of a detached container and by a foreground ``run`` that keeps a log.
"""

from __future__ import annotations

import os
import select

from rootlet.runtime.lifecycle.logfile import LogWriter
from rootlet.runtime.oci.spawn import ContainerProcess


def pump(proc: ContainerProcess, out_r: int, err_r: int, log: LogWriter | None, echo: bool = False) -> int:
    """Copy the container's output into the log until it exits; its exit code.

    With ``echo`` the output is also written to our own stdout and stderr as it arrives (a
    foreground run that keeps a log). Closes ``out_r`` and ``err_r``.
    """
    streams = {out_r: "stdout", err_r: "stderr"}
    targets = {out_r: 1, err_r: 2}
    if proc.pty_master is not None:
        streams[proc.pty_master] = "stdout"
        targets[proc.pty_master] = 1
    open_fds = list(streams)
    status_fd = proc.status_fd
    exited = False

    def deliver(fd: int, data: bytes) -> None:
        if log is not None:
            log.write(streams[fd], data)
        if echo:
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(targets[fd], view):]
            except OSError:
                pass  # our reader went away; the log still gets everything

    while open_fds:
        watch = open_fds + ([] if exited else [status_fd])
        ready, _, _ = select.select(watch, [], [])
        for fd in ready:
            if fd == status_fd:
                exited = True
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # a pty master reads EIO once the last slave is closed
                data = b""
            if not data:
                open_fds.remove(fd)
                os.close(fd)
            else:
                deliver(fd, data)
        if exited:
            # PID 1 is gone, so is every process of its namespace: drain what is buffered.
            for fd in list(open_fds):
                while select.select([fd], [], [], 0)[0]:
                    try:
                        data = os.read(fd, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        break
                    deliver(fd, data)
                open_fds.remove(fd)
                os.close(fd)
    if log is not None:
        log.flush()
    return proc.wait()
