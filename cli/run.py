"""``rootlet run``: parsed by the fast table parser (cli/argv.py), never through typer.

This is the command benchmarked against ``podman run``: nothing heavy is imported before the
container starts. Flags are docker's and podman's; an unknown one exits 125.
"""

from __future__ import annotations

import os
import sys

from rootlet.cli.argv import Flag, parse, render_help

RUN_FLAGS: tuple[Flag, ...] = (
    Flag(("--rm",), "rm", "bool", "Remove the container (and its anonymous volumes) when it exits."),
    Flag(("-i", "--interactive"), "interactive", "bool", "Keep stdin attached to the container."),
    Flag(("-t", "--tty"), "tty", "bool", "Allocate a pseudo-terminal."),
    Flag(("-d", "--detach"), "detach", "bool", "Run in the background under a monitor; print the container id."),
    Flag(("--restart",), "restart", "value", "Restart policy: no, on-failure[:N], always, unless-stopped.", "POLICY"),
    Flag(("--stop-signal",), "stop_signal", "value", "Signal `stop` sends first (default: the image's, or TERM).", "SIG"),
    Flag(("--stop-timeout",), "stop_timeout", "value", "Seconds `stop` waits before SIGKILL (default 10).", "N"),
    Flag(("--log-driver",), "log_driver", "value", "k8s-file (default) or none.", "DRIVER"),
    Flag(("--log-opt",), "log_opt", "multi", "Log option: max-size=SIZE bounds the log (rotated once).", "OPT"),
    Flag(("--name",), "name", "value", "Name the container.", "NAME"),
    Flag(("-h", "--hostname"), "hostname", "value", "Container host name (default: the short id).", "NAME"),
    Flag(("-e", "--env"), "env", "multi", "Set an environment variable (K=V), or pass K through.", "K=V"),
    Flag(("--env-file",), "env_file", "multi", "Read environment variables from a file.", "FILE"),
    Flag(("-w", "--workdir"), "workdir", "value", "Working directory inside the container (created if missing).", "DIR"),
    Flag(("-u", "--user"), "user", "value", "User[:group] to run as (names from the container's /etc/passwd).", "USER"),
    Flag(("--group-add",), "group_add", "multi", "Additional groups (name or gid).", "GROUP"),
    Flag(("--entrypoint",), "entrypoint", "value", "Override the image's ENTRYPOINT ('' clears it).", "CMD"),
    Flag(("-v", "--volume"), "volume", "multi", "Bind-mount HOST:CTR[:ro|rw], or a named volume NAME:CTR.", "SPEC"),
    Flag(("--mount",), "mount", "multi", "type=bind|volume|tmpfs,source=…,destination=…[,readonly].", "SPEC"),
    Flag(("--tmpfs",), "tmpfs", "multi", "Mount a tmpfs: /path[:size=64m,mode=1777].", "PATH"),
    Flag(("--read-only",), "read_only", "bool", "Mount the root filesystem read-only."),
    Flag(("--init",), "init", "bool", "Run a reaper as PID 1 that forwards signals and collects zombies."),
    Flag(("--cap-add",), "cap_add", "multi", "Add a capability (or ALL).", "CAP"),
    Flag(("--cap-drop",), "cap_drop", "multi", "Drop a capability (or ALL).", "CAP"),
    Flag(("--security-opt",), "security_opt", "multi", "Security options: no-new-privileges[=true|false].", "OPT"),
    Flag(("--ulimit",), "ulimit", "multi", "Resource limit NAME=SOFT[:HARD].", "LIMIT"),
    Flag(("--network", "--net"), "network", "value", "none, host, slirp4netns[:allow_host_loopback=true,cidr=…,mtu=…,"
         "enable_ipv6=true], pasta, a user network NAME[,NAME…], or container:CTR (default: a user-mode "
         "network).", "MODE"),
    Flag(("--network-alias",), "network_alias", "multi", "Another DNS name on its user networks.", "ALIAS"),
    Flag(("--ip",), "ip", "value", "IPv4 address on its (first) user network.", "IP"),
    Flag(("--pod",), "pod", "value", "Run in this pod (its network, IPC and UTS namespaces).", "POD"),
    Flag(("--health-cmd",), "health_cmd", "value", "Healthcheck command: a shell line, or a JSON array; "
         "'none' disables the image's.", "CMD"),
    Flag(("--health-interval",), "health_interval", "value", "Time between checks (default 30s; 'disable').",
         "DURATION"),
    Flag(("--health-retries",), "health_retries", "value", "Failures in a row that make it unhealthy (default 3).",
         "N"),
    Flag(("--health-timeout",), "health_timeout", "value", "Longest a check may take (default 30s).", "DURATION"),
    Flag(("--health-start-period",), "health_start_period", "value", "Failures during this first time do not "
         "count (default 0s).", "DURATION"),
    Flag(("--no-healthcheck",), "no_healthcheck", "bool", "Disable the image's HEALTHCHECK."),
    Flag(("-p", "--publish"), "publish", "multi", "Publish [IP:]HOSTPORT:CTRPORT[/PROTO] on the host.", "PORT"),
    Flag(("--dns",), "dns", "multi", "DNS server for the container.", "IP"),
    Flag(("--dns-search",), "dns_search", "multi", "DNS search domain.", "DOMAIN"),
    Flag(("--dns-option", "--dns-opt"), "dns_option", "multi", "resolv.conf option.", "OPT"),
    Flag(("--add-host",), "add_host", "multi", "Add NAME:IP to /etc/hosts.", "HOST:IP"),
    Flag(("-l", "--label"), "label", "multi", "Set a label KEY=VALUE.", "LABEL"),
    Flag(("--pull",), "pull", "value", "Pull policy: always, missing, never, newer.", "POLICY", "missing"),
    Flag(("--platform",), "platform", "value", "Platform to pull: OS/ARCH[/VARIANT].", "PLATFORM"),
    Flag(("--sig-proxy",), "sig_proxy", "bool", "Forward signals to the container (default true).", default=True),
    Flag(("--userns",), "userns", "value", "User namespace mode: keep-id.", "MODE"),
    Flag(("-m", "--memory"), "memory", "value", "Memory limit: not supported (no cgroup code); refused.", "BYTES"),
    Flag(("--cpus",), "cpus", "value", "CPU limit: not supported (no cgroup code); refused.", "N"),
    Flag(("--pids-limit",), "pids_limit", "value", "Process limit: not supported (no cgroup code); refused.", "N"),
    Flag(("--tls-verify",), "tls_verify", "bool", "Require verified HTTPS when pulling.", default=None),
    Flag(("--creds",), "creds", "value", "Registry credentials USER[:PASS] for pulling.", "CREDS"),
    Flag(("--authfile",), "authfile", "value", "auth.json to use when pulling.", "FILE"),
    Flag(("-q", "--quiet"), "quiet", "bool", "Do not show pull progress."),
    Flag(("--cidfile",), "cidfile", "value", "Write the container id to this new file.", "FILE"),
    Flag(("--replace",), "replace_existing", "bool", "Remove a container of the same --name first."),
    Flag(("--timeout",), "timeout", "value", "Kill the container this many seconds after it starts (podman's).", "N"),
    Flag(("--privileged",), "privileged", "bool", "Every capability, no seccomp filter, /proc and /sys unmasked "
         "(rootless: no host devices)."),
    Flag(("--preserve-fds",), "preserve_fds", "value", "Pass descriptors 3 to 3+N-1 to the container (with -d: "
         "to its first start).", "N"),
    Flag(("-a", "--attach"), "attach", "multi", "Attach only these streams: stdin, stdout, stderr (foreground).",
         "STREAM"),
    Flag(("--help",), "help", "bool", "Show this message and exit."),
)


#: ``create`` takes every ``run`` flag but those of the run itself: -d (a created container is
#: started by ``start``), and the descriptors and streams of this process (-a, --preserve-fds).
CREATE_FLAGS: tuple[Flag, ...] = tuple(f for f in RUN_FLAGS if f.dest not in ("detach", "attach", "preserve_fds"))


def build_options(argv: list[str], command: str = "run"):  # -> (RunOptions, quiet) | None (None: --help printed)
    """Parse ``run``/``create`` arguments into RunOptions (syntax errors are UsageError, exit 125;
    the engine checks the values)."""
    from rootlet.registry.errors import UsageError
    from rootlet.runtime.engine.options import RunOptions

    flags = RUN_FLAGS if command == "run" else CREATE_FLAGS
    p = parse(argv, flags, command)
    if p.help:
        summary = "Run a command in a new container." if command == "run" else \
            "Create a container without starting it; prints its id."
        sys.stdout.write(render_help(command, "[OPTIONS] IMAGE [COMMAND [ARG...]]", summary, flags))
        return None
    if not p.positional:
        raise UsageError(f"{command} needs an image", f"rootlet {command} [OPTIONS] IMAGE [COMMAND [ARG...]]")
    detach = bool(p.values.get("detach"))
    if detach and p.sig_proxy and "sig_proxy" in p.given:
        raise UsageError("--sig-proxy does not work with -d", "signals reach a detached container with `rootlet kill`")
    stop_timeout = None
    if p.stop_timeout is not None:
        if not p.stop_timeout.lstrip("-").isdigit():
            raise UsageError(f"invalid --stop-timeout {p.stop_timeout!r}", "give whole seconds")
        stop_timeout = max(0, int(p.stop_timeout))
    numbers = {}
    for flag, value in (("--timeout", p.timeout), ("--preserve-fds", p.values.get("preserve_fds"))):
        if value is not None and not (value.isascii() and value.isdigit() and len(value) < 10):
            raise UsageError(f"invalid {flag} {value!r}", "give a whole number")
        numbers[flag] = int(value) if value is not None else None
    opts = RunOptions(
        image=p.positional[0], command=tuple(p.positional[1:]), rm=p.rm, interactive=p.interactive, tty=p.tty,
        name=p.name, hostname=p.hostname, env=tuple(p.env), env_files=tuple(p.env_file), workdir=p.workdir,
        user=p.user, group_add=tuple(p.group_add), entrypoint=p.entrypoint, volumes=tuple(p.volume),
        mounts=tuple(p.mount), tmpfs=tuple(p.tmpfs), read_only=p.read_only, init=p.init,
        cap_add=tuple(p.cap_add), cap_drop=tuple(p.cap_drop), security_opt=tuple(p.security_opt),
        ulimits=tuple(p.ulimit), network=p.network, publish=tuple(p.publish), dns=tuple(p.dns),
        dns_search=tuple(p.dns_search), dns_option=tuple(p.dns_option), add_host=tuple(p.add_host),
        labels=tuple(p.label), pull=p.pull, platform=p.platform, sig_proxy=p.sig_proxy, userns=p.userns,
        memory=p.memory, cpus=p.cpus, pids_limit=p.pids_limit, tls_verify=p.tls_verify, creds=p.creds,
        authfile=p.authfile, detach=detach, restart=p.restart, stop_signal=p.stop_signal,
        stop_timeout=stop_timeout, log_driver=p.log_driver, log_opts=tuple(p.log_opt),
        cidfile=p.cidfile, replace=p.replace_existing, timeout=numbers["--timeout"], privileged=p.privileged,
        preserve_fds=numbers["--preserve-fds"] or 0, attach=tuple(p.values.get("attach", ())),
        network_aliases=tuple(p.network_alias), ip=p.ip, pod=p.pod, health_cmd=p.health_cmd,
        health_interval=p.health_interval, health_timeout=p.health_timeout,
        health_start_period=p.health_start_period, health_retries=p.health_retries, no_healthcheck=p.no_healthcheck,
    )
    return opts, bool(p.quiet)


def _notice(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def run_command(root: str, argv: list[str], command: str = "run") -> int:
    """``rootlet run`` / ``rootlet create``: the container's exit code, or 0 after printing the id
    of a detached or created container (failures raise RootletError → 125)."""
    parsed = build_options(argv, command)
    if parsed is None:
        return 0
    opts, quiet = parsed
    from rootlet.cli.progress import pull_progress
    from rootlet.runtime.engine import Engine

    engine = Engine(root, os.environ)
    with pull_progress(quiet) as progress:
        result = engine.create(opts, progress) if command == "create" else engine.run(opts, progress, notify=_notice)
    if isinstance(result, int):
        return result
    for warning in result.warnings:
        _notice(f"Warning: {warning}")
    sys.stdout.write(result.id + "\n")
    return 0
