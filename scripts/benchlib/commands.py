"""`bench commands`: the typer-era commands (issue 16: each at most half of podman's time)."""

from __future__ import annotations

from . import TARGETS
from .measure import Series, fail_text, header, measure, step_table

LOG_LINES = 5
LOGGER = ["sh", "-c", f"for i in $(seq 1 {LOG_LINES}); do echo bench log line $i; done"]
LOGGER_NAME = "bench-logs"


class CommandsCase:
    """Mixed into scripts/bench's Bench (uses its stores, cmd, tools_for, ...)."""

    def bench_commands(self) -> None:
        n = self.runs(10)
        self.ensure_images()
        ref = f"{self.registry}/bench/busybox:latest"
        header(f"commands: wall time of the typer-era commands, a store holding the busybox image and one "
               f"exited container ({LOG_LINES} lines of output); {n} runs each, alternating (+1 warm-up)")
        tools = self.tools_for("pull", "run", "ps", "images", "inspect", "logs")
        if not tools:
            return
        steps = [  # (name, arguments, in the store)
            ("--version", ["--version"], False),
            ("ps -a", ["ps", "-a"], True),
            ("images", ["images"], True),
            ("inspect IMAGE", ["inspect", ref], True),
            ("inspect CTR", ["inspect", LOGGER_NAME], True),
            ("logs CTR", ["logs", LOGGER_NAME], True),
        ]
        # What the warm-up's output must show, so that a command failing quietly is not timed.
        expect = {"ps -a": LOGGER_NAME, "images": "bench/busybox", "inspect IMAGE": '"Id"',
                  "inspect CTR": LOGGER_NAME, "logs CTR": f"bench log line {LOG_LINES}"}
        series = {(t, name): Series(t) for t in tools for name, _, _ in steps}
        stores = {}
        for tool in tools:  # set-up, not timed
            store = self.warm_store(tool, "commands")
            if store is not None:
                r = measure(*self.cmd(tool, store, "run", "--name", LOGGER_NAME, *self.net_args(), ref, *LOGGER))
                if r.rc != 0:
                    for name, _, _ in steps:
                        series[(tool, name)].failed = f"set-up: run --name {LOGGER_NAME}: {fail_text(r)}"
            else:
                for name, _, _ in steps:
                    series[(tool, name)].failed = "set-up: could not pull the image"
            stores[tool] = store
        for i in range(-1, n):
            for name, args, in_store in steps:
                for tool in (tools if i % 2 == 0 else tools[::-1]):
                    s = series[(tool, name)]
                    if s.failed:
                        continue
                    if in_store:
                        cmd, env = self.cmd(tool, stores[tool], *args)
                    else:
                        cmd, env = [self.rootlet if tool == "rootlet" else self.podman, *args], \
                            (self.env if tool == "rootlet" else self.pod_env)
                    r = measure(cmd, env)
                    if r.rc != 0:
                        s.failed = fail_text(r)
                    elif i < 0:
                        if name in expect and expect[name] not in r.out:
                            s.failed = f"its output lacks {expect[name]!r}: {r.out.strip()[:200]!r}"
                    else:
                        s.add(r)
        self.failed |= step_table([name for name, _, _ in steps], series, tools, TARGETS, "commands: ")
