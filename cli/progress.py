"""Pull progress for people: per-layer bars on a TTY (rich), short lines otherwise, nothing with -q."""

from __future__ import annotations

import sys
import threading
from typing import Any


class LineProgress:
    """Non-TTY output, podman-like: one line per event on stderr."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _say(self, text: str) -> None:
        with self._lock:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def resolved(self, ref: str, digest: str) -> None:
        self._say(f"Trying to pull {ref}...")

    def layer(self, digest: str, size: int, status: str) -> None:
        if status in ("exists", "done"):
            word = "skipped: already exists" if status == "exists" else "done"
            self._say(f"Copying blob {digest.split(':', 1)[1][:12]} {word}")

    def advance(self, digest: str, nbytes: int) -> None:
        pass

    def warn(self, message: str, hint: str | None = None) -> None:
        self._say(f"Warning: {message}" + (f"\nHint: {hint}" if hint else ""))


class BarProgress(LineProgress):
    """TTY output: one rich progress bar per layer, updated from the download threads."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> BarProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _task(self, digest: str, size: int) -> Any:
        with self._lock:
            if digest not in self._tasks:
                self._tasks[digest] = self._progress.add_task(digest.split(":", 1)[1][:12], total=size)
            return self._tasks[digest]

    def resolved(self, ref: str, digest: str) -> None:
        self._progress.console.print(f"Trying to pull {ref}...")

    def layer(self, digest: str, size: int, status: str) -> None:
        task = self._task(digest, size)
        label = digest.split(":", 1)[1][:12]
        text = {"exists": "already exists", "downloading": "downloading", "downloaded": "downloaded",
                "extracting": "extracting", "done": "done"}.get(status, status)
        if status in ("exists", "done", "downloaded"):
            self._progress.update(task, completed=size)
        self._progress.update(task, description=f"{label} {text:<14}")

    def advance(self, digest: str, nbytes: int) -> None:
        task = self._tasks.get(digest)
        if task is not None:
            self._progress.advance(task, nbytes)

    def warn(self, message: str, hint: str | None = None) -> None:
        self._progress.console.print(f"Warning: {message}" + (f"\nHint: {hint}" if hint else ""))
