"""Healthchecks: docker's ``HEALTHCHECK`` and podman's ``--health-*`` flags, ``healthcheck run``.

A container's check (``HealthConfig`` in its record) comes from the image's ``Healthcheck`` unless
``--health-cmd`` replaces it (``--no-healthcheck``, ``--health-cmd none`` or the image's ``NONE``
turn it off); the other flags replace the image's times one by one, podman's defaults filling the
rest (30s interval and timeout, 3 retries, no start period).

One check runs the test inside the running container like ``exec`` does (``CMD-SHELL`` through
``/bin/sh -c``), its output captured and bounded, killed after the timeout; exit 0 passes. The
result is kept in ``containers/<id>/health.json`` (docker's ``Health``: Status, FailingStreak, the
last five results), written under ``health.lock``: ``starting`` until the first pass, ``healthy``
after a pass, ``unhealthy`` once ``retries`` checks in a row failed (failures during the start
period do not count). ``ps`` shows it after the status, ``inspect`` as ``.State.Health``. Checks run
every interval while the container runs (``rootlet.runtime.lifecycle.health``), and on demand.
"""

from __future__ import annotations

import os
import time

from rootlet.registry import jsoncodec
from rootlet.registry.errors import ContainerStateError, UsageError
from rootlet.registry.fsutil import atomic_write_json, flocked, read_json
from rootlet.registry.record import Record
from rootlet.runtime.container.record import HealthConfig

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Mapping

    from rootlet.registry.store import ImageStore
    from rootlet.runtime.container.options import RunOptions

SECOND = 1_000_000_000
DEFAULT = HealthConfig(test=[])
#: Results kept, and bytes of a check's output kept (docker's).
KEEP_RESULTS = 5
MAX_OUTPUT = 4096
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": SECOND, "m": 60 * SECOND, "h": 3600 * SECOND}


class HealthResult(Record):
    """One check: its times (RFC 3339), exit code and output."""

    start: str
    end: str
    exit_code: int
    output: str


class HealthState(Record):
    _nested = {"log": HealthResult}

    status: str = "starting"
    failing_streak: int = 0
    log: list[HealthResult] = []


def parse_duration(text: str, flag: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``, ``0``) in nanoseconds."""
    import re  # only for --health-* flags: `run` imports this module on every start

    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text or "")
    if text == "0":
        return 0
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"invalid {flag} {text!r}: not a duration", "e.g. 30s, 1m30s, 500ms")
    return int(sum(float(n) * _UNITS[u] for n, u in parts))


def _test(command: str) -> list[str]:
    """``--health-cmd``: a JSON array (``["CMD", …]``, ``["CMD-SHELL", "…"]``, or a bare argv,
    taken as CMD), else a shell line (CMD-SHELL), as podman reads it."""
    if command.strip().startswith("["):
        try:
            argv = jsoncodec.loads(command)
        except ValueError:
            raise UsageError(f"invalid --health-cmd {command!r}: not a JSON array") from None
        if not argv or not all(isinstance(a, str) for a in argv):
            raise UsageError(f"invalid --health-cmd {command!r}: give an array of strings")
        return argv if argv[0] in ("CMD", "CMD-SHELL", "NONE") else ["CMD", *argv]
    return ["CMD-SHELL", command]


def health_config(opts: RunOptions, image_config: Mapping[str, object]) -> HealthConfig | None:
    """The container's healthcheck from its flags and its image (None: it has none)."""
    flags = {"--health-interval": opts.health_interval, "--health-timeout": opts.health_timeout,
             "--health-start-period": opts.health_start_period, "--health-retries": opts.health_retries}
    if opts.no_healthcheck:
        given = [f for f, v in flags.items() if v is not None] + (["--health-cmd"] if opts.health_cmd else [])
        if given:
            raise UsageError(f"--no-healthcheck cannot be combined with {given[0]}")
        return None
    image = image_config.get("Healthcheck")
    image = image if isinstance(image, dict) else {}
    if opts.health_cmd is not None:
        test = [] if opts.health_cmd.strip().lower() == "none" else _test(opts.health_cmd)
    else:
        raw = image.get("Test")
        test = [str(t) for t in raw] if isinstance(raw, list) else []
    if not test or test[0] == "NONE":
        given = [f for f, v in flags.items() if v is not None]
        if given and opts.health_cmd is None:
            raise UsageError(f"{given[0]} needs a healthcheck, and the image has none", "give one with --health-cmd")
        return None
    if test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
        raise UsageError(f"invalid healthcheck test {test!r}", "use CMD with a command, or CMD-SHELL with a line")

    def pick(flag: str, key: str, default: int) -> int:
        value = flags[flag]
        if value is not None:
            return -1 if flag == "--health-interval" and value == "disable" else parse_duration(value, flag)
        number = image.get(key)
        return int(number) if isinstance(number, int) and number > 0 else default

    interval = pick("--health-interval", "Interval", DEFAULT.interval)
    timeout = pick("--health-timeout", "Timeout", DEFAULT.timeout)
    start_period = pick("--health-start-period", "StartPeriod", DEFAULT.start_period)
    if interval != -1 and interval < SECOND:
        raise UsageError("--health-interval must be at least 1 second", "or 'disable' for on-demand checks only")
    if timeout < SECOND:
        raise UsageError("--health-timeout must be at least 1 second")
    if opts.health_retries is not None:
        if not opts.health_retries.isdigit() or int(opts.health_retries) < 1:
            raise UsageError(f"invalid --health-retries {opts.health_retries!r}", "give a whole number, 1 or more")
        retries = int(opts.health_retries)
    else:
        image_retries = image.get("Retries")
        retries = image_retries if isinstance(image_retries, int) and image_retries > 0 else DEFAULT.retries
    return HealthConfig(test=test, interval=max(interval, 0), timeout=timeout, start_period=start_period,
                        retries=retries)


# --- the state ------------------------------------------------------------------------------------

def _path(store: ImageStore, cid: str, name: str) -> str:
    return os.path.join(store.root, "containers", cid, name)


def read_health(store: ImageStore, cid: str) -> HealthState | None:
    """The recorded health (None before any start of a container with a healthcheck)."""
    try:
        doc = read_json(_path(store, cid, "health.json"), default=None)
    except ValueError:
        doc = None
    return HealthState.from_json(doc) if isinstance(doc, dict) else None


def reset_health(store: ImageStore, cid: str) -> None:
    """A new start: ``starting`` again, as docker and podman begin every run."""
    with flocked(_path(store, cid, "health.lock")):
        atomic_write_json(_path(store, cid, "health.json"), HealthState().to_json(), durable=False)


def health_doc(state: HealthState) -> dict[str, object]:
    """docker's ``State.Health``."""
    return {"Status": state.status, "FailingStreak": state.failing_streak,
            "Log": [{"Start": r.start, "End": r.end, "ExitCode": r.exit_code, "Output": r.output} for r in state.log]}


# --- a check ----------------------------------------------------------------------------------------

def run_check(store: ImageStore, cid: str, host_env: Mapping[str, str] | None = None) -> HealthState:
    """Run the container's healthcheck once and record the result; the health after it."""
    from rootlet.runtime.container.store import ContainerStore

    containers = ContainerStore(store)
    cfg = containers.config(cid)
    if cfg.healthcheck is None:
        raise ContainerStateError(f"container {cfg.name} has no defined healthcheck",
                                  "create it with --health-cmd, or from an image with a HEALTHCHECK")
    state = containers.refresh(cid)
    if state.status != "running":
        raise ContainerStateError(f"container {cfg.name} is not running", "start it first")
    began = time.time()
    code, output = _execute(store, cfg.id, cfg.healthcheck, dict(host_env or {}))
    result = HealthResult(start=rfc3339(began), end=rfc3339(time.time()), exit_code=code, output=output)
    in_start_period = began - (state.started_at or began) < cfg.healthcheck.start_period / SECOND
    with flocked(_path(store, cid, "health.lock")):
        health = read_health(store, cid) or HealthState()
        if code == 0:
            health = health.replace(status="healthy", failing_streak=0)
        elif not (in_start_period and health.status == "starting"):
            streak = health.failing_streak + 1
            health = health.replace(failing_streak=streak,
                                    status="unhealthy" if streak >= cfg.healthcheck.retries else health.status)
        health = health.replace(log=[*health.log, result][-KEEP_RESULTS:])
        atomic_write_json(_path(store, cid, "health.json"), health.to_json(), durable=False)
    return health


def rfc3339(ts: float) -> str:
    secs = int(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{int((ts - secs) * 1e9):09d}Z"


def _execute(store: ImageStore, cid: str, check: HealthConfig, host_env: dict[str, str]) -> tuple[int, str]:
    """(exit code, output) of the test in the container; killed (exit 1) after the timeout."""
    import select
    from rootlet.runtime.linux import signals

    from rootlet.registry.errors import RootletError
    from rootlet.runtime.container.exec import ExecStreams, exec_in_container
    from rootlet.runtime.container.options import ExecOptions

    argv = ("/bin/sh", "-c", check.test[1]) if check.test[0] == "CMD-SHELL" else tuple(check.test[1:])
    output = bytearray()
    timed_out = []

    def collect(streams: ExecStreams) -> None:
        deadline = time.monotonic() + check.timeout / SECOND
        live = {fd for fd, _ in streams.outputs}
        try:
            while live:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out.append(True)
                    os.kill(streams.pid, signals.SIGKILL)  # the check dies with its helper
                    return
                ready, _, _ = select.select(list(live), [], [], left)
                for fd in ready:
                    data = os.read(fd, 65536)
                    if not data:
                        live.discard(fd)
                    elif len(output) < MAX_OUTPUT:
                        output.extend(data[:MAX_OUTPUT - len(output)])
        finally:
            for fd, _ in streams.outputs:
                os.close(fd)
            if streams.stdin is not None:
                os.close(streams.stdin)

    try:
        code = exec_in_container(store, ExecOptions(container=cid, command=argv), host_env, relay_to=collect)
    except RootletError as exc:
        return exc.exit_code if exc.exit_code != 0 else 1, exc.message
    if timed_out:
        return 1, f"healthcheck timed out after {check.timeout / SECOND:g}s"
    return code, output.decode(errors="replace")
