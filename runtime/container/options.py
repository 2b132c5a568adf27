"""What ``run``/``create``, ``exec`` and ``cp`` take (re-exported by ``rootlet.runtime.engine.options``).

Values with a docker/podman textual syntax are passed in that syntax and parsed by
``rootlet.runtime.container.flags``. Plain data: importing this module costs microseconds.
"""

from __future__ import annotations

from rootlet.registry.record import Record

PULL_POLICIES = ("always", "missing", "never", "newer")


class RunOptions(Record):
    """Everything ``run``/``create`` accept; flag syntax as docker's (see the module doc).

    ``volumes`` are ``-v`` values, ``mounts`` ``--mount`` values, ``tmpfs`` ``--tmpfs`` values,
    ``ulimits`` ``--ulimit``, ``security_opt`` ``--security-opt``, ``labels`` ``K=V``.
    ``overlay`` None takes the engine's default (``ROOTLET_OVERLAY``, else auto). ``cidfile``
    receives the new container's id; ``replace`` removes a container of the same name first;
    ``timeout`` seconds after the start the container is killed; ``preserve_fds`` N passes our
    descriptors 3 to 3+N-1 to the container (detached: to its first start); ``attach`` the streams a foreground run
    relays (stdin, stdout, stderr; none given: stdout and stderr, stdin with ``interactive``).
    """

    image: str
    command: tuple[str, ...] = ()
    rm: bool = False
    interactive: bool = False
    tty: bool = False
    name: str | None = None
    stdin_once: bool = False  # docker's StdinOnce (REST API): the end of an attached client's input closes stdin
    hostname: str | None = None
    env: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    group_add: tuple[str, ...] = ()
    entrypoint: str | None = None
    volumes: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()
    tmpfs: tuple[str, ...] = ()
    read_only: bool = False
    init: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    ulimits: tuple[str, ...] = ()
    network: str | None = None
    publish: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_option: tuple[str, ...] = ()
    add_host: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    pull: str = "missing"
    platform: str | None = None
    sig_proxy: bool = True
    userns: str | None = None
    overlay: str | None = None
    memory: str | None = None
    cpus: str | None = None
    pids_limit: str | None = None
    tls_verify: bool | None = None
    creds: str | None = None
    authfile: str | None = None
    detach: bool = False
    restart: str | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    log_driver: str | None = None
    log_opts: tuple[str, ...] = ()
    cidfile: str | None = None
    replace: bool = False
    timeout: int | None = None
    privileged: bool = False
    preserve_fds: int = 0
    attach: tuple[str, ...] = ()
    # --- user networks, pods, healthchecks (rootlet.runtime.container.netmode, .health) ---
    network_aliases: tuple[str, ...] = ()  # --network-alias: more DNS names on user networks
    ip: str | None = None                  # --ip: a fixed address on the (first) user network
    pod: str | None = None                 # --pod: join this pod's namespaces
    health_cmd: str | None = None          # "CMD ARGS" (a shell line) or a JSON array; "none" disables
    health_interval: str | None = None     # Go durations: 30s, 1m30s; "disable": no periodic checks
    health_timeout: str | None = None
    health_start_period: str | None = None
    health_retries: str | None = None
    no_healthcheck: bool = False

    def pull_options(self):  # -> PullOptions
        """How to pull the image when ``pull`` says so."""
        from rootlet.runtime.image.options import PullOptions

        return PullOptions(reference=self.image, platform=self.platform, tls_verify=self.tls_verify,
                           creds=self.creds, authfile=self.authfile)


class ExecOptions(Record):
    """``exec``: run ``command`` in a running container."""

    container: str
    command: tuple[str, ...]
    interactive: bool = False
    tty: bool = False
    detach: bool = False
    user: str | None = None
    env: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    workdir: str | None = None
    privileged: bool = False


class CopyOptions(Record):
    """``cp``: ``source`` and ``destination`` as docker writes them, one of them ``CONTAINER:PATH``
    and the other a host path or ``-`` (a tar stream). ``archive`` (podman's default): files copied
    in belong to the container's user, else they keep their owners; ``overwrite`` lets a directory
    replace a non-directory and the reverse; ``pause`` True is said to be impossible (no freezer)."""

    source: str
    destination: str
    follow_link: bool = False
    archive: bool = True
    overwrite: bool = False
    pause: bool | None = None
