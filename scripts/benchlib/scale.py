"""`bench scale`: how cost grows with the work (issue 16): `ps -a` over 1, 50, 200, 500
containers, `images` over 1, 10, 50, 200 images (issue 16's points, and one between them so that
the two largest segments' slopes can be compared), and 50 concurrent `run --rm`."""

from __future__ import annotations

import hashlib
import io
import json
import statistics
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import PS_500_TARGET_S, TARGETS
from .measure import (GROWTH_MIN_RUNS, SUMMARY, Series, fail_text, fmt_s, fmt_slope, growth, header, measure,
                      measure_burst, ratio_lines, run_quiet, table, verdict)

PS_POINTS = (1, 50, 200, 500)
IMAGE_POINTS = (1, 10, 50, 200)
CONCURRENT = 50
CREATE_PARALLEL = 4  # set-up only: containers are created this many at a time
SCALE_REPO = "localhost/bench-scale"
MTIME = 1_700_000_000


def _tar_bytes(members: list[tuple[str, bytes | None]]) -> bytes:
    """An uncompressed tar of (name, data) members; data None makes a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            _add(tar, name, data)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes | None) -> None:
    ti = tarfile.TarInfo(name)
    ti.mtime = MTIME
    if data is None:
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(ti)
    else:
        ti.size, ti.mode = len(data), 0o644
        tar.addfile(ti, io.BytesIO(data))


def scale_archive(path: Path, first: int, count: int) -> None:
    """A docker-archive of COUNT images SCALE_REPO:FIRST.. as images usually are: a base layer
    they all share, and a small top layer and a config (a label) of each one's own, so every
    image has an id and a top layer of its own."""
    base = _tar_bytes([("scale", None), ("scale/README", b"the base layer of rootlet's scale bench images\n")])
    manifest = []
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        def layer(data: bytes) -> tuple[str, str]:
            digest = hashlib.sha256(data).hexdigest()
            _add(tar, digest, None)
            _add(tar, f"{digest}/layer.tar", data)
            return f"{digest}/layer.tar", "sha256:" + digest

        base_name, base_id = layer(base)
        for i in range(first, first + count):
            top_name, top_id = layer(_tar_bytes([("scale", None), (f"scale/image-{i}", f"image {i}\n".encode())]))
            config = json.dumps({
                "architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
                "config": {"Cmd": ["/bin/sh"], "Labels": {"n": str(i)}},
                "rootfs": {"type": "layers", "diff_ids": [base_id, top_id]},
                "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "scale bench base"},
                            {"created": "2023-11-14T22:13:20Z", "created_by": f"scale bench image {i}"}],
            }, sort_keys=True).encode()
            config_name = hashlib.sha256(config).hexdigest() + ".json"
            _add(tar, config_name, config)
            manifest.append({"Config": config_name, "RepoTags": [f"{SCALE_REPO}:{i}"],
                             "Layers": [base_name, top_name]})
        _add(tar, "manifest.json", json.dumps(manifest).encode())


class ScaleCase:
    """Mixed into scripts/bench's Bench (uses its stores, cmd, tools_for, ...)."""

    def bench_scale(self) -> None:
        self.ensure_images()
        ref = f"{self.registry}/bench/busybox:latest"
        tools = self.tools_for("pull", "create", "ps", "images", "load", "run")
        if not tools:
            return
        n = self.runs(10)
        self.scale_ps(n, tools, ref)
        self.scale_images(n, tools)
        self.scale_concurrent(self.runs(3), tools, ref)

    # -- ps -a -------------------------------------------------------------------------------------

    def create_containers(self, tool: str, store: Path, ref: str, have: int, want: int) -> str:
        """Create containers scale-HAVE .. scale-WANT-1 (not timed); '' or the first failure."""
        def one(k: int) -> str:
            cmd, env = self.cmd(tool, store, "create", "--name", f"scale-{k:03d}", ref, "true")
            p = run_quiet(cmd, env=env, check=False)
            return "" if p.returncode == 0 else \
                f"create scale-{k:03d}: exit {p.returncode}: {' | '.join(p.stderr.strip().splitlines()[-3:])}"

        with ThreadPoolExecutor(CREATE_PARALLEL) as pool:
            errors = [e for e in pool.map(one, range(have, want)) if e]
        return errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "") if errors else ""

    def listing_points(self, n: int, tools: list[str], args: list[str], points: tuple[int, ...],
                       make_store) -> dict[str, list[tuple[int, Series]]]:
        """A store per tool and point, filled by MAKE_STORE(tool, count) -> (store, error) (not
        timed); then ARGS is timed N times in each, round-robin over points and tools (so a busy
        spell of the machine is shared out instead of landing on one point), after a warm-up whose
        output must list every item."""
        series = {(t, count): Series(t) for t in tools for count in points}
        stores: dict[tuple[str, int], Path | None] = {}
        for count in points:
            for tool in tools:
                stores[(tool, count)], series[(tool, count)].failed = make_store(tool, count)
        for i in range(-1, n):
            k = max(i, 0) % len(points)
            for count in points[k:] + points[:k]:
                for tool in (tools if i % 2 == 0 else tools[::-1]):
                    s = series[(tool, count)]
                    if s.failed:
                        continue
                    r = measure(*self.cmd(tool, stores[(tool, count)], *args))
                    if r.rc != 0:
                        s.failed = fail_text(r)
                    elif i < 0:
                        rows = len([line for line in r.out.splitlines() if line.strip()]) - 1  # the header
                        if rows != count:
                            s.failed = f"listed {rows} rows, expected {count}"
                    else:
                        s.add(r)
        return {t: [(count, series[(t, count)]) for count in points] for t in tools}

    def growth_report(self, what: str, unit: str, tools: list[str],
                      results: dict[str, list[tuple[int, Series]]]) -> None:
        """A row per point (each tool's median, the ratio), then each tool's per-item slopes and
        whether its growth is no worse than linear (benchlib.measure.growth)."""
        both = "rootlet" in tools and "podman" in tools
        rows = []
        points = [count for count, _ in results[tools[0]]]
        for k, count in enumerate(points):
            cells = [str(count)]
            for tool in tools:
                s = results[tool][k][1]
                cells.append("failed" if s.failed else fmt_s(s.median))
            if both:
                a, b = results["rootlet"][k][1].median, results["podman"][k][1].median
                cells.append("-" if a is None or not b else f"{a / b:.2f}")
            rows.append(cells)
        table(rows, [unit, *tools] + (["ratio"] if both else []))
        for tool in tools:
            for count, s in results[tool]:
                if s.failed:
                    print(f"  {tool} {what} with {count} {unit} failed: {s.failed}")
                    self.failed = True
        rows = []
        for tool in tools:
            pts = [(count, s) for count, s in results[tool] if s.median is not None]
            if len(pts) < len(points):
                rows.append([f"{tool}: per-item slope", "-", "", "n/a"])
                ok = None
            else:
                slopes, bands, ok = growth(pts)
                segs = ", ".join(f"{a}->{b}: {fmt_slope(sl, band)}"
                                 for (a, _), (b, _), sl, band in zip(pts, pts[1:], slopes, bands))
                rows.append([f"{tool}: per-item slope", segs, "no worse than linear",
                             f"n/a (< {GROWTH_MIN_RUNS} runs)" if ok is None else
                             "ok" if ok else ("MISSED" if tool == "rootlet" else "superlinear")])
            if tool == "rootlet":
                SUMMARY.append([f"scale: {what} growth", "-" if ok is None else ("linear" if ok else "superlinear"),
                                "no worse than linear", "n/a" if ok is None else ("ok" if ok else "MISSED")])
        table(rows)

    def scale_ps(self, n: int, tools: list[str], ref: str) -> None:
        header(f"scale: `ps -a` with {', '.join(map(str, PS_POINTS))} containers (created, not started, in a "
               f"store per point; the creating is not timed), {n} runs each per point, round-robin (+1 warm-up)")

        def make_store(tool: str, count: int) -> tuple[Path | None, str]:
            store = self.warm_store(tool, f"scale-ps{count}")
            if store is None:
                return None, "set-up: could not pull the image"
            return store, self.create_containers(tool, store, ref, 0, count)

        results = self.listing_points(n, tools, ["ps", "-a"], PS_POINTS, make_store)
        self.growth_report("ps -a", "containers", tools, results)
        if "rootlet" in tools:
            last = results["rootlet"][-1][1].median
            table([[f"rootlet ps -a with {PS_POINTS[-1]} containers", fmt_s(last),
                    f"target <= {PS_500_TARGET_S * 1000:.0f} ms", verdict(last, PS_500_TARGET_S)]])
            SUMMARY.append([f"scale: ps -a, {PS_POINTS[-1]} containers", fmt_s(last),
                            f"<= {PS_500_TARGET_S * 1000:.0f} ms", verdict(last, PS_500_TARGET_S)])

    # -- images ------------------------------------------------------------------------------------

    def scale_images(self, n: int, tools: list[str]) -> None:
        header(f"scale: `images` with {', '.join(map(str, IMAGE_POINTS))} images (distinct ids: a shared base "
               f"layer, a tiny top layer and a label each; `load`ed from a generated docker-archive into a store "
               f"per point, not timed), {n} runs each per point, round-robin (+1 warm-up)")

        def make_store(tool: str, count: int) -> tuple[Path | None, str]:
            store = self.work / f"scale-images{count}-{tool}"
            self.cleanups.append(lambda: self.remove_store(store, tool))
            archive = self.work / f"scale-images-{count}.tar"
            if not archive.exists():
                scale_archive(archive, 0, count)
            cmd, env = self.cmd(tool, store, "load", "-q", "-i", str(archive))
            p = run_quiet(cmd, env=env, check=False)
            return store, "" if p.returncode == 0 else \
                f"set-up: load of {count} images: exit {p.returncode}: {' | '.join(p.stderr.strip().splitlines()[-3:])}"

        results = self.listing_points(n, tools, ["images"], IMAGE_POINTS, make_store)
        self.growth_report("images", "images", tools, results)

    # -- concurrent run --rm -----------------------------------------------------------------------

    def scale_concurrent(self, m: int, tools: list[str], ref: str) -> None:
        header(f"scale: {CONCURRENT} concurrent `run --rm IMAGE true` (started at once; wall time until the "
               f"last exits, every one must exit 0), {m} runs each, alternating (+1 single warm-up run)")
        stores = {t: self.warm_store(t) for t in tools}
        series = {t: Series(t) for t in tools}
        before: dict[str, int] = {}
        for tool in tools:
            if stores[tool] is None:
                series[tool].failed = "could not pull the image"
                continue
            measure(*self.cmd(tool, stores[tool], "run", "--rm", *self.net_args(), ref, "true"))
            before[tool] = self.count_containers(tool, stores[tool])
        failures: dict[str, list[str]] = {t: [] for t in tools}
        for i in range(m):
            for tool in (tools if i % 2 == 0 else tools[::-1]):
                s = series[tool]
                if s.failed:
                    continue
                cmd, env = self.cmd(tool, stores[tool], "run", "--rm", *self.net_args(), ref, "true")
                b = measure_burst([cmd] * CONCURRENT, env)
                s.times.append(b.seconds)  # kept to show, but a burst with a failure fails the figure
                failures[tool] += b.failures
        for tool, s in series.items():
            if failures[tool]:
                s.failed = (f"{len(failures[tool])} of {CONCURRENT * len(s.times)} runs failed; "
                            f"first: {failures[tool][0]}")
        rows = [[s.name, fmt_s(statistics.median(s.times)), fmt_s(min(s.times)), fmt_s(max(s.times)),
                 str(len(s.times)), str(len(failures[s.name]))] for s in series.values() if s.times]
        table(rows, ["", "median", "min", "max", "bursts", "failed runs"])
        for tool, s in series.items():
            if s.failed:
                print(f"  {tool} failed: {s.failed}")
                self.failed = True
            if tool in before:
                left = self.count_containers(tool, stores[tool]) - before[tool]
                if left:
                    print(f"  note: {tool}: {left} containers were left behind by the `run --rm`s")
        if "rootlet" in series:
            ratio_lines(f"{CONCURRENT} concurrent run --rm", series["rootlet"], series.get("podman"),
                        TARGETS["concurrent"])

    def count_containers(self, tool: str, store: Path) -> int:
        cmd, env = self.cmd(tool, store, "ps", "-a", "-q")
        p = run_quiet(cmd, env=env, check=False)
        return len(p.stdout.split()) if p.returncode == 0 else 0
