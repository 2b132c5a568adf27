"""The state of rootlet's network namespace for user networks (``rootlet.runtime.net.netns``).

``netns/state.json`` holds a ``NetnsState``: the holder and its slirp4netns by pid and start time,
the bridges made in the namespace, every container attached (with the process that owns it) and
every published port. It changes only under ``locks/netns.lock``; the holder reads it (0644) to
answer DNS. These are its records and the few functions every part needs.
"""

from __future__ import annotations

import contextlib
import os

from rootlet.registry.fsutil import atomic_write_json, flocked, read_json
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.linux.netlink import Veth
from rootlet.runtime.linux.proc import boot_id, same_process
from rootlet.runtime.net.bridge import in_netns
from rootlet.runtime.net.ports import PortMapping

#: tap0's address in N: where slirp4netns delivers published ports.
TAP_ADDRESS = "10.0.2.100"
TITLE = "rootlet-netns"


class Attachment(Record):
    """One container on one network: its address, the names DNS answers for it, the veth's host
    end, and the process that owns it (its monitor or foreground run; a pod's infra)."""

    cid: str
    name: str
    network: str
    ip: str
    host_ifname: str
    owner_pid: int
    owner_start: int
    aliases: list[str] = []
    pid: int = 0


class Forward(Record):
    """One published port of a container on a user network: slirp4netns forward ``slirp_id`` from
    the host to ``guest_port`` of tap0, DNATed to ``ip:container_port``."""

    _nested = {"port": PortMapping}

    cid: str
    ip: str
    port: PortMapping
    guest_port: int
    slirp_id: int = -1


class Bridge(Record):
    """A network's bridge as made in N."""

    network: str
    interface: str
    subnet: str
    gateway: str
    internal: bool = False


class NetnsState(Record):
    _nested = {"bridges": Bridge, "attachments": Attachment, "forwards": Forward}

    holder_pid: int = 0
    holder_start: int = 0
    boot_id: str = ""
    slirp_pid: int = 0
    slirp_start: int = 0
    run_dir: str = ""
    bridges: list[Bridge] = []
    attachments: list[Attachment] = []
    forwards: list[Forward] = []


class JoinPlan:
    """What a container's start needs to enter the networks: the holder's namespaces (open fds,
    closed by ``close``) and the veth pairs its keeper makes."""

    def __init__(self, user_fd: int, net_fd: int, veths: list[Veth], addresses: dict[str, str]) -> None:
        self.user_fd = user_fd
        self.net_fd = net_fd
        self.veths = veths
        self.addresses = addresses

    def spec_changes(self) -> dict[str, object]:
        """``RuntimeSpec`` fields for a container that joins the networks."""
        from rootlet.runtime.linux.syscalls import CLONE_NEWUSER

        join = ((self.user_fd, CLONE_NEWUSER),) if self.user_fd >= 0 else ()
        return {"join_ns": join, "veths": tuple(self.veths), "veth_netns": self.net_fd}

    def close(self) -> None:
        for fd in (self.user_fd, self.net_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.user_fd = self.net_fd = -1


# --- the state ----------------------------------------------------------------------------------

def state_path(store: ImageStore) -> str:
    return os.path.join(store.root, "netns", "state.json")


def load_state(store: ImageStore) -> NetnsState:
    try:
        doc = read_json(state_path(store), default=None)
    except ValueError:
        doc = None
    return NetnsState.from_json(doc) if isinstance(doc, dict) else NetnsState()


def save_state(store: ImageStore, state: NetnsState) -> None:
    os.makedirs(os.path.dirname(state_path(store)), mode=0o700, exist_ok=True)
    # 0644: the holder, root of its user namespace, reads it to answer DNS.
    atomic_write_json(state_path(store), state.to_json(), mode=0o644, durable=False)


@contextlib.contextmanager
def locked(store: ImageStore):  # -> Iterator[None]
    store.ensure()
    with flocked(store.lock_path("netns")):
        yield


def holder_alive(state: NetnsState) -> bool:
    return bool(state.holder_pid) and state.boot_id == boot_id() and same_process(state.holder_pid, state.holder_start)


def owner_alive(att: Attachment) -> bool:
    return same_process(att.owner_pid, att.owner_start)


def run_in(state: NetnsState, func, *args: object, target_pid: int = 0) -> None:  # noqa: ANN001 - module-level
    in_netns(state.holder_pid, state.holder_start, func, *args, target_pid=target_pid)
