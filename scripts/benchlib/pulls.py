"""`bench pull20` and `bench bigpull`: cold pulls of generated images (issue 16) – twenty small
layers, and one layer of 1 GiB – built once by scripts/make-image and cached."""

from __future__ import annotations

import json
import shutil
import sys
import time

from . import CACHE, MAKE_IMAGE, PULL_RSS_TARGET_MB, TARGETS
from .measure import header, run_quiet

# pull20: the busybox bench rootfs (1.1 MB compressed) and 19 layers of 50 files of 4 KiB each
# (half of the files random bytes): ~100 KB compressed, 200 KiB unpacked per layer.
SMALL_LAYERS, SMALL_FILES, SMALL_FILE_BYTES = 19, 50, 4096
# bigpull: the busybox bench rootfs and one layer of 8 files of 128 MiB: 1 GiB uncompressed, half
# of its 64 KiB blocks random bytes, the other half repetitive text, so ~0.5 GiB gzip-compressed.
BIG_FILES, BIG_FILE_BYTES, BIG_RANDOM_FRACTION = 8, 128 * 2**20, 0.5


class LayeredPullCases:
    """Mixed into scripts/bench's Bench (uses its registry, cold_pulls, show, ...)."""

    def generated_image(self, name: str, layers: list[tuple[str, list[str]]]) -> tuple[str, str]:
        """Push the busybox bench rootfs plus LAYERS (file name, `make-image files` arguments) as
        bench/NAME:latest; the tarballs and the layout are made once and cached (a recipe stamp
        tells when they must be made again). Returns the reference and a description."""
        base = CACHE / "busybox-rootfs.tar.gz"
        recipe = json.dumps([str(base.stat().st_mtime_ns), layers])
        layout = CACHE / f"layout-{name}"
        stamp = layout / ".recipe"
        tarballs = [CACHE / name / file for file, _ in layers]
        if not stamp.exists() or stamp.read_text() != recipe or not all(t.exists() for t in tarballs):
            t0 = time.perf_counter()
            print(f"  making the {name} image (once; cached in {CACHE}) ...", flush=True)
            shutil.rmtree(layout, ignore_errors=True)
            shutil.rmtree(CACHE / name, ignore_errors=True)
            (CACHE / name).mkdir(parents=True)
            for tarball, (_, args) in zip(tarballs, layers):
                run_quiet([sys.executable, str(MAKE_IMAGE), "files", str(tarball), *args], timeout=3600)
            run_quiet([sys.executable, str(MAKE_IMAGE), "layout", str(base), str(layout), "latest",
                       *(x for t in tarballs for x in ("--layer", str(t)))], timeout=3600)
            stamp.write_text(recipe)
            print(f"  ... made in {time.perf_counter() - t0:.0f} s", flush=True)
        ref = f"{self.registry}/bench/{name}:latest"
        run_quiet(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:latest",
                   f"docker://{ref}"], timeout=3600)
        compressed = base.stat().st_size + sum(t.stat().st_size for t in tarballs)
        return ref, f"{len(layers) + 1} layers, {compressed / 2**20:.1f} MB compressed"

    def bench_pull20(self) -> None:
        self.ensure_images()
        ref, desc = self.generated_image("layers20", [
            (f"layer{k:02d}.tar.gz", ["--files", str(SMALL_FILES), "--file-bytes", str(SMALL_FILE_BYTES),
                                      "--dir", f"layers/l{k:02d}", "--seed", str(k), "--random-fraction", "0.5"])
            for k in range(1, SMALL_LAYERS + 1)])
        n = self.runs(3)
        header(f"pull20: cold pull of {ref} ({desc}: the busybox rootfs and {SMALL_LAYERS} layers of "
               f"{SMALL_FILES} x {SMALL_FILE_BYTES // 1024} KiB files), {n} runs each, alternating")
        self.show("pull20", self.cold_pulls(ref, n, "pull20"), TARGETS["pull20"], rss=False)

    def bench_bigpull(self) -> None:
        self.ensure_images()
        n = self.runs(2)
        need = (2 * n + 1) * 1.6 * 2**30  # per store: 1 GiB unpacked + up to 0.5 GiB of blob
        free = shutil.disk_usage(self.work).free
        if free < need:
            header("bigpull")
            print(f"  skipped: {free / 2**30:.1f} GiB free under {self.work}, needs ~{need / 2**30:.0f} GiB")
            return
        ref, desc = self.generated_image("bigpull", [
            ("big.tar.gz", ["--files", str(BIG_FILES), "--file-bytes", str(BIG_FILE_BYTES), "--dir", "big",
                            "--seed", "big", "--random-fraction", str(BIG_RANDOM_FRACTION)])])
        header(f"bigpull: cold pull of {ref} ({desc}; its big layer: {BIG_FILES} files, "
               f"{BIG_FILES * BIG_FILE_BYTES / 2**30:.0f} GiB uncompressed, {BIG_RANDOM_FRACTION:.0%} of it random "
               f"bytes), {n} runs each, alternating; the ratio has no target, rootlet's peak RSS has")
        self.show("bigpull", self.cold_pulls(ref, n, "bigpull"), None, rss=PULL_RSS_TARGET_MB)
