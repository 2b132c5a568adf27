"""Pull progress for people: per-layer bars on a TTY (rich), short lines otherwise, nothing with -q."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs milliseconds to import; `run` must not pay for it
if TYPE_CHECKING:
    from typing import Any


class pull_progress:  # noqa: N801 - used as a function: ``with pull_progress(quiet) as progress:``
    """The progress display for a pull: none with ``-q``, bars on a terminal, lines elsewhere.

    The bars start on the first event: a ``run`` whose image is already here never imports rich
    (nor contextlib, which a generator-based context manager would need: 1-2 ms).
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bars: _LazyBars | None = None

    def __enter__(self) -> object | None:
        if self.quiet:
            return None
        if os.isatty(2):
            self.bars = _LazyBars()
            return self.bars
        return LineProgress()

    def __exit__(self, *_exc: object) -> None:
        if self.bars is not None:
            self.bars.close()


class LineProgress:
    """Non-TTY output, podman-like: one line per event on stderr."""

    def __init__(self) -> None:
        self._mutex: Any = None  # made by the first event: `run` of a local image never pays for threading

    @property
    def _lock(self) -> Any:
        if self._mutex is None:  # the first event comes from the main thread, before any download
            import threading

            self._mutex = threading.Lock()
        return self._mutex

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

    def finished(self, up_to_date: bool) -> None:
        if up_to_date:
            self._say("Image is up to date")


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

    def _print(self, text: str) -> None:
        # Verbatim: a reference is neither markup nor something to colour ("alpine:3.20" is no time).
        self._progress.console.print(text, markup=False, highlight=False, emoji=False)

    def resolved(self, ref: str, digest: str) -> None:
        self._print(f"Trying to pull {ref}...")

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
        self._print(f"Warning: {message}" + (f"\nHint: {hint}" if hint else ""))

    def finished(self, up_to_date: bool) -> None:
        if up_to_date:
            self._print("Image is up to date")
        # Stop the display (and its refresh thread) now: `run` goes on to fork the container,
        # which must happen with no other thread running.
        self._progress.stop()


class _LazyBars:
    """A BarProgress made on the first event and stopped when the pull finishes."""

    def __init__(self) -> None:
        self._bars: BarProgress | None = None

    def _get(self) -> BarProgress:
        if self._bars is None:
            self._bars = BarProgress().__enter__()
        return self._bars

    def resolved(self, ref: str, digest: str) -> None:
        self._get().resolved(ref, digest)

    def layer(self, digest: str, size: int, status: str) -> None:
        self._get().layer(digest, size, status)

    def advance(self, digest: str, nbytes: int) -> None:
        self._get().advance(digest, nbytes)

    def warn(self, message: str, hint: str | None = None) -> None:
        self._get().warn(message, hint)

    def finished(self, up_to_date: bool) -> None:
        if self._bars is not None:
            self._bars.finished(up_to_date)

    def close(self) -> None:
        if self._bars is not None:
            self._bars.__exit__(None, None, None)
