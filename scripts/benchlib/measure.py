"""Measuring and printing for scripts/bench: wall time and peak RSS of one command or of many
started at once, medians, ratio lines with their target and verdict, the summary."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# measuring


@dataclass
class Result:
    seconds: float
    rss_mb: float
    rc: int
    out: str
    err: str


def measure(cmd: list[str], env: dict[str, str], timeout: float = 600) -> Result:
    """Run CMD to completion; wall time and peak RSS (ru_maxrss from wait4, see the module doc)."""
    # Flush the previous run's dirty pages first, so writeback of one tool's files is not billed
    # to the next run (podman fsyncs; on a small VM this alone doubled its pull times).
    os.sync()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG if timeout else 0)
            if pid:
                break
            if time.perf_counter() > deadline:
                p.kill()
                pid, status, usage = os.wait4(p.pid, 0)
                break
            time.sleep(0.002)
        seconds = time.perf_counter() - t0
        p.returncode = rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Result(seconds, usage.ru_maxrss / 1024, rc,
                      out.read().decode(errors="replace"), err.read().decode(errors="replace"))


@dataclass
class Series:
    name: str
    times: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    failed: str = ""

    def add(self, r: Result) -> None:
        self.times.append(r.seconds)
        self.rss.append(r.rss_mb)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times and not self.failed else None


def fail_text(r: Result) -> str:
    lines = (r.err.strip() or r.out.strip() or "(no output)").splitlines()
    return f"exit {r.rc}: " + " | ".join(lines[-3:])


# ---------------------------------------------------------------------------------------------
# output


def table(rows: list[list[str]], head: list[str] | None = None) -> None:
    allrows = ([head] if head else []) + rows
    widths = [max(len(r[i]) for r in allrows if i < len(r)) for i in range(max(map(len, allrows)))]
    for n, r in enumerate(allrows):
        cells = [c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)]
        print("  " + "  ".join(cells).rstrip())
        if head and n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def fmt_s(x: float | None) -> str:
    return "-" if x is None else (f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s")


def fmt_mb(x: float | None) -> str:
    return "-" if x is None else (f"{x:.1f} MB" if x < 100 else f"{x:.0f} MB")


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return "ok" if value <= target else "MISSED"


SUMMARY: list[list[str]] = []


def series_table(series: list[Series]) -> None:
    rows = []
    for s in series:
        if s.failed:
            rows.append([s.name, "failed", "", "", "", ""])
            continue
        if not s.times:
            continue
        rows.append([s.name, fmt_s(s.median), fmt_s(min(s.times)), fmt_s(max(s.times)),
                     fmt_mb(max(s.rss)), str(len(s.times))])
    table(rows, ["", "median", "min", "max", "peak RSS", "runs"])
    for s in series:
        if s.failed:
            print(f"  {s.name} failed: {s.failed}")


def ratio_lines(label: str, mine: Series, theirs: Series | None, target: float | None,
                rss_target: float | None = None) -> None:
    """The ratio of medians with its target and verdict (no target: the ratio alone, and no
    summary line), and rootlet's peak RSS against ``rss_target`` MB when given."""
    rows = []
    ratio = None
    if theirs is not None and mine.median is not None and theirs.median:
        ratio = mine.median / theirs.median
    if theirs is not None:
        t = f"target <= {target:.2f}" if target else ""
        rows.append([f"ratio rootlet/podman ({label})", "-" if ratio is None else f"{ratio:.2f}", t,
                     verdict(ratio, target) if target else ""])
        if target:
            SUMMARY.append([label, "-" if ratio is None else f"{ratio:.2f}", f"<= {target:.2f}",
                            verdict(ratio, target)])
    if rss_target:
        peak = max(mine.rss) if mine.rss and not mine.failed else None
        rows.append([f"rootlet peak RSS ({label})", fmt_mb(peak), f"target <= {rss_target:.0f} MB",
                     verdict(peak, rss_target)])
        SUMMARY.append([f"peak RSS ({label})", fmt_mb(peak), f"<= {rss_target:.0f} MB",
                        verdict(peak, rss_target)])
    if rows:
        table(rows)


def header(title: str) -> None:
    print(f"\n== {title}")


# ---------------------------------------------------------------------------------------------
# environment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_quiet(cmd: list[str], env: dict[str, str] | None = None, check: bool = True,
              timeout: float = 900) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                       timeout=timeout)
    if check and p.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr.strip()}")
    return p



@dataclass
class Burst:
    """Many commands started at once: wall time until the last one exited, and the failures."""
    seconds: float
    count: int
    failures: list[str]


def measure_burst(cmds: list[list[str]], env: dict[str, str], timeout: float = 900) -> Burst:
    """Start every command of CMDS at once (as fast as fork allows) and wait for all of them."""
    os.sync()
    files = [(tempfile.TemporaryFile(), tempfile.TemporaryFile()) for _ in cmds]
    procs = []
    t0 = time.perf_counter()
    for cmd, (out, err) in zip(cmds, files):
        procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env))
    deadline = t0 + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(max(0.1, deadline - time.perf_counter())))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    seconds = time.perf_counter() - t0
    failures = []
    for rc, (out, err) in zip(codes, files):
        if rc != 0:
            out.seek(0)
            err.seek(0)
            failures.append(fail_text(Result(0, 0, rc, out.read().decode(errors="replace"),
                                             err.read().decode(errors="replace"))))
        out.close()
        err.close()
    return Burst(seconds, len(cmds), failures)


# Growth: time against the number of items (containers, images) at a few points. A segment's
# per-item slope is "worse than linear" only when even its lowest reading allowed by the noise is
# more than GROWTH_FACTOR times the highest reading of the previous segment's slope. The noise of
# a segment is twice the standard error of the difference of its two medians (each median's
# error estimated from its runs' interquartile range), at least GROWTH_NOISE_S, spread over the
# segment's items. Linear cost passes; N log N from 50 to 500 items is 1.6x, quadratic 10x.
GROWTH_FACTOR = 2.0
GROWTH_NOISE_S = 0.003


def median_error(times: list[float]) -> float:
    """The standard error of the median of TIMES (normal theory: 1.2533 sigma / sqrt(n), sigma
    estimated as IQR / 1.349)."""
    if len(times) < 4:
        return 0.0
    q = statistics.quantiles(times, n=4)
    return 0.929 * (q[2] - q[0]) / len(times) ** 0.5


GROWTH_MIN_RUNS = 4  # fewer runs per point give no estimate of the noise: no verdict


def growth(points: list[tuple[int, Series]]) -> tuple[list[float], list[float], bool | None]:
    """Per-item slopes (seconds per item) between consecutive (items, series) points, from the
    medians; each one's noise band (+-, seconds per item); whether the growth is no worse than
    linear by the rule above (None: a point has fewer than GROWTH_MIN_RUNS runs)."""
    slopes, bands = [], []
    for (n1, s1), (n2, s2) in zip(points, points[1:]):
        slopes.append((s2.median - s1.median) / (n2 - n1))
        noise = max(GROWTH_NOISE_S, 2 * (median_error(s1.times) ** 2 + median_error(s2.times) ** 2) ** 0.5)
        bands.append(noise / (n2 - n1))
    ok = all(slopes[k] - bands[k] <= GROWTH_FACTOR * max(slopes[k - 1] + bands[k - 1], 0.0)
             for k in range(1, len(slopes)))
    if any(len(s.times) < GROWTH_MIN_RUNS for _, s in points):
        return slopes, bands, None
    return slopes, bands, ok


def fmt_slope(s: float, band: float) -> str:
    if abs(s) < 0.001:
        return f"{s * 1e6:+.0f}±{band * 1e6:.0f} us/item"
    return f"{s * 1000:+.2f}±{band * 1000:.2f} ms/item"


def step_table(steps: list[str], series: dict[tuple[str, str], Series], tools: list[str],
               targets: dict[str, float | None], summary_prefix: str = "") -> bool:
    """One row per step: each tool's median, then (both tools measured) the ratio rootlet/podman
    with its target and verdict, which also goes to the summary. Failures are printed below the
    table; returns whether there was one."""
    both = "rootlet" in tools and "podman" in tools
    rows = []
    for step in steps:
        cells = [step] + ["failed" if series[(t, step)].failed else fmt_s(series[(t, step)].median)
                          for t in tools]
        if both:
            a, b = series[("rootlet", step)].median, series[("podman", step)].median
            ratio = None if a is None or not b else a / b
            target = targets.get(step)
            cells += ["-" if ratio is None else f"{ratio:.2f}", f"<= {target:.2f}" if target else "",
                      verdict(ratio, target) if target else ""]
            if target:
                SUMMARY.append([summary_prefix + step, "-" if ratio is None else f"{ratio:.2f}",
                                f"<= {target:.2f}", verdict(ratio, target)])
        rows.append(cells)
    table(rows, ["median", *tools] + (["ratio", "target", ""] if both else []))
    failed = False
    for (tool, step), s in series.items():
        if s.failed:
            print(f"  {tool} {step} failed: {s.failed}")
            failed = True
    return failed
