"""A container's network: the user-mode helper that connects its namespace to the host.

A rootless container cannot get a veth pair into the host's network namespace, so like podman
rootlet connects the container's own network namespace to the host through a user-mode helper
that runs as the invoking user in the host namespace and owns a tap device inside the container:

- ``slirp4netns`` (podman 4's default): joins the user and net namespaces of the container's
  pid, creates ``tap0`` and, with ``--configure``, gives it 10.0.2.100/24, gateway 10.0.2.2 and
  a DNS forwarder at 10.0.2.3. It signals readiness on ``--ready-fd`` and exits when
  ``--exit-fd`` becomes readable (we hold the write end, so it closes when rootlet dies).
  Ports are published through its JSON API socket (``add_hostfwd``): slirp itself listens on
  the host port.
- ``pasta`` (from passt, podman 5's default): copies the host's address and default route into
  the namespace and listens on the published host ports itself (``-t``/``-u``). It runs in the
  foreground as our child; it writes its pid file only once the namespace is configured, so a
  pipe given as the pid file (``-P /dev/fd/N``) is its readiness signal.

Measured on the development machine (Debian 12: slirp4netns 1.2.0, passt 2023-03-09), from
``attach_network`` call to return, one published port: slirp4netns about 5 ms, pasta about
35 ms (its TCP socket pools dominate). So the default is slirp4netns when both work.

``/dev/net/tun`` must be openable by the user for either helper; a fresh machine may have it
0600 root, which is detected up front and reported with the chmod hint.

socket, json and ipaddress are imported by the functions that need them, and helpers are started
with posix_spawn, to keep ``rootlet`` start-up cheap for containers that do not use the network.
Port parsing is ``rootlet.runtime.net.ports``; the /etc files, ``rootlet.runtime.net.etcfiles``.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import NetworkError, NetworkUsageError, RootletError
from rootlet.registry.fsutil import make_temp_dir
from rootlet.registry.record import Record
from rootlet.runtime.net.addresses import (PASTA_DNS_FORWARD, SLIRP_IFNAME, NetworkInfo, host_resolv, is_loopback,
                                           slirp_addresses)
from rootlet.runtime.linux.proc import find_program
from rootlet.runtime.linux.rmtree import remove_tree
from rootlet.runtime.net.ports import PortMapping, reserve_ports

TUN_PATH = "/dev/net/tun"
MODES = ("none", "host", "slirp4netns", "pasta")
# How long a helper may take to configure the namespace before we give up.
READY_TIMEOUT = 10.0

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Generator, Mapping, Sequence
    from typing import IO


# --- modes and their prerequisites --------------------------------------------------------------

def _helper_path(mode: str) -> str | None:
    """Absolute path of the helper program of ``mode`` (None when it is not installed)."""
    return find_program(mode) or next(
        (p for p in (f"/usr/bin/{mode}", f"/usr/libexec/podman/{mode}") if os.access(p, os.X_OK)), None)


def _tun_problem(tun_path: str) -> NetworkError | None:
    """Why this user cannot open ``tun_path`` read-write (None when it can)."""
    try:
        fd = os.open(tun_path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return NetworkError(f"{tun_path} does not exist: slirp4netns and pasta need a tun device",
                            "sudo modprobe tun (in a container: pass --device /dev/net/tun)")
    except OSError as e:
        return NetworkError(
            f"cannot open {tun_path} read-write ({e.strerror}): slirp4netns and pasta need it to create the "
            f"container's network interface",
            f"sudo chmod 666 {tun_path} (to keep it across reboots, a udev rule: "
            f'/etc/udev/rules.d/99-tun.rules: KERNEL=="tun", MODE="0666"), or use --network none')
    os.close(fd)
    return None


def default_network_mode(tun_path: str = TUN_PATH) -> str:
    """The mode ``--network private`` (and no ``--network``) means on this host.

    slirp4netns when it is installed and /dev/net/tun is usable (it starts about 7x faster
    than pasta here, and is podman 4's default), else pasta, else "none".
    """
    if _tun_problem(tun_path) is not None:
        return "none"
    for mode in ("slirp4netns", "pasta"):
        if _helper_path(mode):
            return mode
    return "none"


#: ``--network slirp4netns:OPTIONS`` that rootlet honours, with what each takes.
SLIRP_OPTIONS = {"allow_host_loopback": "true or false", "cidr": "an IPv4 network of /24 or larger, e.g. 10.0.3.0/24",
                 "mtu": "a number from 1280 to 65520", "enable_ipv6": "true or false",
                 "port_handler": "slirp4netns"}


def parse_network(value: str) -> tuple[str, dict[str, str]]:
    """``--network MODE[:OPTIONS]`` → (mode, options): podman's ``slirp4netns:allow_host_loopback=
    true,cidr=10.0.3.0/24,mtu=1500,enable_ipv6=true,port_handler=slirp4netns`` and ``pasta:-a,10.0.2.0,
    --mtu,1500`` (``rootlet.runtime.net.pastaopts``). Every option is checked here
    (NetworkUsageError naming it); what rootlet does not do is refused, not ignored."""
    mode, _, rest = value.partition(":")
    if not rest:
        return mode, {}
    if mode == "container":  # another container's namespace: rootlet.runtime.container.netmode
        return mode, {"container": rest}
    if mode == "pasta":
        from rootlet.runtime.net.pastaopts import parse_pasta_options

        return mode, parse_pasta_options(rest)
    if mode != "slirp4netns":
        raise NetworkUsageError(f"--network {mode} takes no options in rootlet ({value!r})",
                                "options are supported for slirp4netns (" + ", ".join(SLIRP_OPTIONS)
                                + ") and pasta (pasta(1)'s, comma-separated: pasta:--mtu,1500)")
    options: dict[str, str] = {}
    for item in rest.split(","):
        key, eq, val = item.partition("=")
        if key not in SLIRP_OPTIONS or not eq:
            raise NetworkUsageError(f"unsupported slirp4netns option {item!r}",
                                    "supported: " + ", ".join(f"{k}=" for k in SLIRP_OPTIONS))
        ok = {"allow_host_loopback": val in ("true", "false"), "enable_ipv6": val in ("true", "false"),
              "mtu": val.isdigit() and 1280 <= int(val) <= 65520, "port_handler": val == "slirp4netns",
              "cidr": _valid_cidr(val)}[key]
        if not ok:
            hint = SLIRP_OPTIONS[key]
            if key == "port_handler" and val == "rootlesskit":
                hint = "rootlet publishes ports through slirp4netns itself; use port_handler=slirp4netns or drop it"
            raise NetworkUsageError(f"invalid slirp4netns option {item!r}", hint)
        options[key] = val
    return mode, options


def _valid_cidr(text: str) -> bool:
    import ipaddress

    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        return False
    return net.prefixlen <= 24 and not net.is_loopback


def network_warnings(mode: str, ports: Sequence[PortMapping], allow_host_loopback: bool = False) -> tuple[str, ...]:
    """What the user should hear about ``ports`` on ``mode``: discarded with host or none (podman's
    words), and the UDP limits of each helper. Known at create, told before the container runs."""
    mode = _resolve_mode(mode)
    if not ports:
        return ()
    if mode in ("none", "host"):
        return ("Port mappings have been discarded as one of the Host, Container, Pod, and None network modes "
                "are in use",)
    if mode == "slirp4netns" and not allow_host_loopback and any(p.protocol == "udp" for p in ports):
        return ("slirp4netns drops UDP replies to clients on this host's loopback (127.0.0.1) unless host "
                "loopback is allowed; other clients are answered. Use --network pasta for UDP services used "
                "from this host",)
    if mode == "pasta" and any(p.protocol == "udp" and p.host_port != p.container_port for p in ports):
        return ("older pasta releases (Debian 12's passt 2023-03-09) drop UDP replies to clients on this host "
                "when the host port differs from the container port; publish UDP with equal port numbers "
                "(-p 5353:5353/udp) for local clients",)
    return ()


def _resolve_mode(mode: str, tun_path: str = TUN_PATH) -> str:
    """Map podman's aliases ("private", "default", "") to a concrete mode."""
    return default_network_mode(tun_path) if mode in ("private", "default", "") else mode


def check_network_mode(mode: str, tun_path: str = TUN_PATH) -> None:
    """Raise NetworkError unless ``mode`` is known and its helper can run on this host.

    Checks that the helper is installed and that ``tun_path`` opens read-write (the cheap
    test the helpers fail on otherwise, with a less helpful message, after start-up).
    """
    mode = _resolve_mode(mode, tun_path)
    if mode in ("none", "host"):
        return
    if mode not in MODES:
        raise NetworkUsageError(f"unsupported network mode {mode!r}",
                                "use --network none, host, slirp4netns, pasta or private (the default)")
    if _helper_path(mode) is None:
        package = "passt" if mode == "pasta" else "slirp4netns"
        raise NetworkError(f"{mode} is not installed: it is needed for --network {mode}",
                           f"apt-get install {package} (dnf install {package}), or use --network none")
    problem = _tun_problem(tun_path)
    if problem is not None:
        raise problem


# --- the handle ---------------------------------------------------------------------------------

class NetworkHandle(Record):
    """A container's attached network: what it sees, its published ports, and its helper.

    ``stop()`` ends the helper and removes its files; it is idempotent and safe to call from a
    ``finally``. ``warnings`` carries notes for the user (ports discarded with host/none, UDP
    limits of the helper).
    """

    info: NetworkInfo
    ports: tuple[PortMapping, ...] = ()
    warnings: tuple[str, ...] = ()
    process: _Helper | None = None  # the helper
    exit_fd: int | None = None  # write end of slirp4netns --exit-fd
    state_dir: str | None = None  # holds the slirp4netns API socket

    @property
    def pid(self) -> int | None:
        """The helper's pid while it runs (None for none/host or after stop)."""
        return getattr(self.process, "pid", None)

    def stop(self, wait: bool = True) -> None:
        """Kill the helper, close our ends of its fds and remove its socket dir; idempotent.

        SIGKILL, because neither helper has state worth flushing. Its exit still takes the
        kernel 20-50 ms (closing the tap device waits for an RCU grace period); ``wait=False``
        skips waiting for that and leaves the dead child to be reaped when this process exits
        (for the exit path of ``run --rm``). With ``wait`` (the default) the helper is reaped
        and its host ports are free when stop() returns.
        """
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.kill()
            if wait:
                process.wait()
        if self.exit_fd is not None:
            os.close(self.exit_fd)
            self.exit_fd = None
        if self.state_dir is not None:
            try:
                remove_tree(self.state_dir)
            except (OSError, RootletError):
                pass
            self.state_dir = None

    def __enter__(self) -> NetworkHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- attaching ----------------------------------------------------------------------------------

def _wait_readable(fd: int, timeout: float) -> bool:
    """Whether ``fd`` became readable (data or EOF) within ``timeout`` seconds."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(int(timeout * 1000)))


def _log_file(name: str) -> IO[bytes]:
    """An anonymous file for a helper's stderr (memfd: no tempfile import, nothing on disk)."""
    return open(os.memfd_create(f"{name}-stderr", os.MFD_CLOEXEC), "w+b")  # noqa: SIM115 - caller closes


def _helper_failed(name: str, process: _Helper | None, log: IO[bytes], why: str) -> NetworkError:
    """Kill and reap a failed helper and build the error from its stderr."""
    if process is not None:
        if process.poll() is None:
            process.kill()
        process.wait()
    log.seek(0)
    text = log.read().decode(errors="replace")
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith("Failed to send") and "syslog" not in line]
    detail = "; ".join(lines[-3:]) or f"exit status {process.returncode if process else '?'}"
    return NetworkError(f"{name} could not set up the container's network ({why}): {detail}",
                        "check that the container process still runs and owns its user namespace; "
                        "--network none runs without a network")


class _Helper:
    """A helper process started with posix_spawn: the part of ``subprocess.Popen`` we use.

    subprocess costs milliseconds to import, and every container with a network starts one.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass


def _spawn(argv: list[str], pass_fds: tuple[int, ...], log: IO[bytes], pdeathsig: bool) -> _Helper:
    """Start a helper in its own session (terminal signals go to the container, not it).

    With ``pdeathsig`` it is killed when this thread dies, through util-linux's setpriv
    (1 ms; a Python preexec_fn would force a full fork of this process instead of vfork).
    Only ``pass_fds`` are inherited (every descriptor rootlet opens is close-on-exec).
    """
    if pdeathsig:
        setpriv = "/usr/bin/setpriv" if os.access("/usr/bin/setpriv", os.X_OK) else None
        if setpriv is None:
            raise NetworkError("setpriv (util-linux) is needed to tie pasta's life to the container's",
                               "apt-get install util-linux, or use --network slirp4netns")
        argv = [setpriv, "--pdeathsig", "KILL", *argv]
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        for fd in pass_fds:
            os.set_inheritable(fd, True)
        from rootlet.runtime.linux import signals

        # Default dispositions and an empty mask, as subprocess's restore_signals gives: Python
        # ignores SIGPIPE, and pasta refuses to start when it cannot install its handlers.
        pid = os.posix_spawn(argv[0], argv, os.environ, setsid=True, setsigmask=(),
                             setsigdef=[s for s in signals.valid_signals()
                                        if s not in (signals.SIGKILL, signals.SIGSTOP)], file_actions=[
            (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, log.fileno(), 2)])
    except OSError as e:
        raise NetworkError(f"cannot run {argv[0]}: {e.strerror}") from None
    finally:
        os.close(null)
        for fd in pass_fds:
            os.set_inheritable(fd, False)
    return _Helper(pid)


def _runtime_dir() -> str:
    """Where a helper's API socket directory (0700) goes: $TMPDIR or /tmp, as tempfile would
    choose; a short path, since a UNIX socket's path is limited to 107 bytes."""
    return os.environ.get("TMPDIR") or "/tmp"


def _slirp_request(api_socket: str, request: dict[str, object]) -> dict[str, object]:
    """Send one JSON request to the slirp4netns API socket and return its JSON answer."""
    import socket

    from rootlet.registry import jsoncodec

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(READY_TIMEOUT)
        s.connect(api_socket)
        s.sendall(jsoncodec.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    try:
        answer = jsoncodec.loads(data)
    except ValueError:
        raise NetworkError(f"slirp4netns answered {data[:200]!r} to {request['execute']}") from None
    return answer if isinstance(answer, dict) else {}


def _attach_slirp4netns(pid: int, ports: tuple[PortMapping, ...], allow_host_loopback: bool,
                        options: Mapping[str, str]) -> Generator[None, None, NetworkHandle]:
    """Start slirp4netns on ``pid``'s namespaces, (yield,) wait until tap0 is configured, add port
    forwards; returns the handle. ``options`` are ``parse_network``'s (cidr, mtu, enable_ipv6)."""
    helper = _helper_path("slirp4netns") or "slirp4netns"
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
    guest, gateway, dns = slirp_addresses(options.get("cidr"))
    handle = NetworkHandle(info=NetworkInfo("slirp4netns", guest, gateway, (dns,)), ports=ports, exit_fd=exit_w)
    argv = [helper, "--configure", f"--mtu={options.get('mtu', '65520')}", "--enable-sandbox", "--enable-seccomp",
            f"--ready-fd={ready_w}", f"--exit-fd={exit_r}"]
    if options.get("cidr"):
        argv.append(f"--cidr={options['cidr']}")
    if options.get("enable_ipv6") == "true":
        argv.append("--enable-ipv6")
    if not allow_host_loopback:
        argv.append("--disable-host-loopback")
    api_socket = None
    if ports:
        handle.state_dir = make_temp_dir(_runtime_dir(), "rootlet-net-")
        api_socket = os.path.join(handle.state_dir, "slirp4netns.sock")
        argv.append(f"--api-socket={api_socket}")
    argv += [str(pid), SLIRP_IFNAME]
    handle.warnings = network_warnings("slirp4netns", ports, allow_host_loopback)
    try:
        with _log_file("slirp4netns") as log:
            # slirp4netns creates its API socket as root of the container's user namespace, which
            # under --userns keep-id is not our host uid: with umask 0 the socket stays connectable
            # for us, and nobody else can reach it inside our private 0700 directory.
            old_umask = os.umask(0) if api_socket else None
            try:
                handle.process = _spawn(argv, (ready_w, exit_r), log, pdeathsig=False)
            finally:
                if old_umask is not None:
                    os.umask(old_umask)
                os.close(ready_w)
                os.close(exit_r)
            yield
            if not _wait_readable(ready_r, READY_TIMEOUT) or os.read(ready_r, 1) != b"1":
                process, handle.process = handle.process, None
                raise _helper_failed("slirp4netns", process, log, "it did not signal readiness")
        for port in ports:
            assert api_socket is not None
            request = {"execute": "add_hostfwd", "arguments": {
                "proto": port.protocol, "host_addr": port.host_ip or "0.0.0.0", "host_port": port.host_port,
                "guest_addr": guest, "guest_port": port.container_port}}
            answer = _slirp_request(api_socket, request)
            if "error" in answer:
                error = answer["error"]
                desc = error.get("desc") if isinstance(error, dict) else error
                raise NetworkError(f"cannot publish {port.host_ip or '0.0.0.0'}:{port.host_port} → "
                                   f"{port.container_port}/{port.protocol}: slirp4netns: {desc}",
                                   "check the host port is free, or publish with --network pasta")
    except BaseException:
        handle.stop()
        raise
    finally:
        os.close(ready_r)
    return handle


def _pasta_port_args(ports: tuple[PortMapping, ...]) -> list[str]:
    """pasta -t/-u options for ``ports`` ("none" for a protocol without any: no automatic forwards)."""
    args: list[str] = []
    for proto, flag in (("tcp", "-t"), ("udp", "-u")):
        chosen = [p for p in ports if p.protocol == proto]
        if not chosen:
            args += [flag, "none"]
        for p in chosen:
            prefix = f"{p.host_ip}/" if p.host_ip else ""
            args += [flag, f"{prefix}{p.host_port}:{p.container_port}"]
    return args + ["-T", "none", "-U", "none"]


def _netns_ipv4(pid: int) -> tuple[str | None, str | None]:
    """The first non-loopback IPv4 address and the default gateway in ``pid``'s net namespace."""
    import socket
    import struct

    gateway = None
    try:
        with open(f"/proc/{pid}/net/route") as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 2 and fields[1] == "00000000" and fields[2] != "00000000":
                    gateway = socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
                    break
        ip = None
        with open(f"/proc/{pid}/net/fib_trie") as f:
            lines = f.read().splitlines()
        for prev, line in zip(lines, lines[1:]):
            if line.strip() == "/32 host LOCAL":
                address = prev.strip().removeprefix("|-- ")
                if not address.startswith("127."):
                    ip = address
                    break
    except OSError:
        return None, gateway
    return ip, gateway


def _attach_pasta(pid: int, ports: tuple[PortMapping, ...], allow_host_loopback: bool,
                  extra: Sequence[str] = ()) -> Generator[None, None, NetworkHandle]:
    """Start pasta in the foreground on ``pid``'s namespaces, (yield,) and return the handle once it
    has configured them. ``extra`` are the user's options (``--network pasta:…``); their -T/-U
    replace the "none"."""
    helper = _helper_path("pasta") or "pasta"
    host_dns = host_resolv()[0]
    dns = tuple(s for s in host_dns if not is_loopback(s)) or (PASTA_DNS_FORWARD,)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    port_args = _pasta_port_args(ports)
    for flags in (("-T", "--tcp-ns"), ("-U", "--udp-ns")):
        if any(a in flags for a in extra):
            at = port_args.index(flags[0], len(port_args) - 4)
            del port_args[at:at + 2]
    argv = [helper, "--config-net", "--foreground", "--quiet", "--pid", f"/dev/fd/{ready_w}",
            *port_args, "--dns-forward", PASTA_DNS_FORWARD, *extra]
    if not allow_host_loopback and "--no-map-gw" not in extra:
        argv.append("--no-map-gw")
    if os.geteuid() == 0:
        argv += ["--runas", "0"]  # as root pasta drops to nobody, who may not join the container's namespaces
    argv.append(str(pid))
    handle = NetworkHandle(info=NetworkInfo("pasta", None, None, dns), ports=ports)
    handle.warnings = network_warnings("pasta", ports)
    try:
        with _log_file("pasta") as log:
            try:
                handle.process = _spawn(argv, (ready_w,), log, pdeathsig=True)
            finally:
                os.close(ready_w)
            yield
            if not _wait_readable(ready_r, READY_TIMEOUT) or not os.read(ready_r, 32).strip():
                process, handle.process = handle.process, None
                raise _helper_failed("pasta", process, log, "it exited before configuring the namespace")
        ip, gateway = _netns_ipv4(pid)
        handle.info = NetworkInfo("pasta", ip, gateway, dns)
    except BaseException:
        handle.stop()
        raise
    finally:
        os.close(ready_r)
    return handle


def attach_network(mode: str, pid: int, ports: Sequence[PortMapping] = (), *,
                   allow_host_loopback: bool = False, tun_path: str = TUN_PATH,
                   options: Mapping[str, str] | None = None) -> NetworkHandle:
    """Attach slirp4netns/pasta to the net namespace of host pid ``pid`` and publish ``ports``.

    ``pid``'s user namespace must own its net namespace and belong to the caller (as a
    rootless container's does). Returns once the container's interface is configured, so its
    command can use the network from its first instruction. Requested host ports are checked
    to be free first (NetworkError naming the port otherwise); host_port 0 is replaced by a
    free port, and the handle's ``ports`` carry the real ones. ``allow_host_loopback`` lets
    the container reach the host's loopback through the gateway address (off, as in podman);
    ``options`` are the other ``--network slirp4netns:…`` or ``pasta:…`` options (``parse_network``).

    For "none" and "host" nothing runs: the handle's ``stop()`` does nothing and published
    ports are discarded with a warning, as podman does. Call from the thread that will outlive
    the container: pasta is killed when that thread exits (PR_SET_PDEATHSIG), slirp4netns when
    this process closes its exit fd.
    """
    return start_network(mode, pid, ports, allow_host_loopback=allow_host_loopback, tun_path=tun_path,
                         options=options).ready()


class PendingNetwork:
    """A network helper started on a container's namespaces and not yet known to be ready: the
    container's own set-up (mounts, pivot_root) runs meanwhile, and ``ready()`` then waits for the
    helper, publishes the ports and returns the NetworkHandle; ``abort()`` ends the helper instead."""

    def __init__(self, steps: Generator[None, None, NetworkHandle]) -> None:
        self._steps = steps

    def ready(self) -> NetworkHandle:
        try:
            next(self._steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        raise AssertionError("a network attach step yielded twice")

    def abort(self) -> None:
        self._steps.close()  # runs the steps' cleanup: the helper is killed, its files removed


def start_network(mode: str, pid: int, ports: Sequence[PortMapping] = (), *, allow_host_loopback: bool = False,
                  tun_path: str = TUN_PATH, options: Mapping[str, str] | None = None) -> PendingNetwork:
    """``attach_network`` in two steps: the helper is spawned (and the host ports checked) now,
    and ``ready()`` waits for it. ``pid`` may be any process in the container's user and net
    namespaces (the keeper, before the container's PID 1 exists)."""
    steps = _attach_steps(mode, pid, ports, allow_host_loopback, tun_path, options)
    next(steps)  # up to the helper's start; raises what that raises
    return PendingNetwork(steps)


def _attach_steps(mode: str, pid: int, ports: Sequence[PortMapping], allow_host_loopback: bool, tun_path: str,
                  options: Mapping[str, str] | None) -> Generator[None, None, NetworkHandle]:
    """The attach as a generator: it yields once the helper runs, and returns the handle."""
    mode = _resolve_mode(mode, tun_path)
    if mode in ("none", "host"):
        warnings = network_warnings(mode, ports)
        yield
        if mode == "none":
            return NetworkHandle(NetworkInfo("none", None, None, ()), warnings=warnings)
        return NetworkHandle(NetworkInfo("host", None, None, tuple(host_resolv()[0])), warnings=warnings)
    check_network_mode(mode, tun_path)
    reserved = reserve_ports(ports)
    if mode == "slirp4netns":
        return (yield from _attach_slirp4netns(pid, reserved, allow_host_loopback, options or {}))
    from rootlet.runtime.net.pastaopts import pasta_args

    return (yield from _attach_pasta(pid, reserved, allow_host_loopback, pasta_args(dict(options or {}))))


# --- for rootlet's own network namespace (user networks: rootlet.runtime.net.netns) --------------

def start_slirp4netns(pid: int, api_socket: str, exit_fd: int | None) -> int:
    """slirp4netns for the network namespace of ``pid`` that outlives this process: configured
    (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3 on tap0), host loopback closed, its API socket
    at ``api_socket``, and ending when ``exit_fd`` (the read end of a pipe whose write end the
    namespace's holder keeps; None: until it is killed) reaches EOF. Returns its pid once tap0 is up."""
    check_network_mode("slirp4netns")
    helper = _helper_path("slirp4netns") or "slirp4netns"
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    argv = [helper, "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox", "--enable-seccomp",
            f"--ready-fd={ready_w}", f"--api-socket={api_socket}", str(pid), SLIRP_IFNAME]
    if exit_fd is not None:
        argv.insert(-2, f"--exit-fd={exit_fd}")
    try:
        with _log_file("slirp4netns") as log:
            try:
                process = _spawn(argv, (ready_w,) if exit_fd is None else (ready_w, exit_fd), log, pdeathsig=False)
            finally:
                os.close(ready_w)
            if not _wait_readable(ready_r, READY_TIMEOUT) or os.read(ready_r, 1) != b"1":
                raise _helper_failed("slirp4netns", process, log, "it did not signal readiness")
    finally:
        os.close(ready_r)
    return process.pid


def slirp_api(api_socket: str, request: dict[str, object]) -> dict[str, object]:
    """One request to a slirp4netns API socket (``add_hostfwd``, ``remove_hostfwd``); its answer."""
    return _slirp_request(api_socket, request)
