"""The containers a verb names, and how a verb over several containers reports: shared by the
typer-parsed verbs (cli/containers.py) and the fast-parsed ones (cli/stoprm.py); no typer here."""

from __future__ import annotations

from rootlet.cli.render import err, out, raise_collected
from rootlet.registry.errors import UsageError

TYPE_CHECKING = False  # typing costs milliseconds to import
if TYPE_CHECKING:
    from collections.abc import Sequence

    from rootlet.runtime.engine import Engine
    from rootlet.runtime.engine.reports import ContainerResult


def report_results(results: list[ContainerResult], show: bool = True,
                   codes: tuple[tuple[type, int], ...] = ()) -> None:
    """Print the name of each container the verb succeeded for (its warnings on stderr); raise
    the failures at the end (with the verb's exit ``codes``: ``raise_collected``)."""
    for r in results:
        for warning in r.warnings:
            err(f"Warning: {warning}")
        if r.error is None and show and r.id:  # no id: a missing container that --ignore skipped
            out(r.name)
    raise_collected([r.error for r in results if r.error is not None], codes)


def container_targets(engine: Engine, names: Sequence[str] | None, cidfiles: Sequence[str] | None = None,
                      latest: bool = False, ignore: bool = False) -> tuple[str, ...]:
    """The containers a verb names: its arguments, the ids in ``--cidfile`` files (a missing file
    is skipped with ``--ignore``, as podman does) and, with ``--latest``, the newest container."""
    targets = list(names or ())
    for path in cidfiles or ():
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                cid = f.read(256).strip()
        except FileNotFoundError:
            if ignore:
                continue
            raise UsageError(f"reading CIDFile: open {path}: no such file or directory") from None
        except OSError as exc:
            raise UsageError(f"reading CIDFile {path}: {exc.strerror}") from None
        if not cid:
            raise UsageError(f"CIDFile {path} is empty")
        targets.append(cid)
    if latest:
        from rootlet.runtime.engine.options import PsOptions

        if targets:
            raise UsageError("--latest and container names cannot be combined")
        newest = engine.ps(PsOptions(all=True, last=1))
        if not newest:
            raise UsageError("no containers to use with --latest")
        targets.append(newest[0].id)
    return tuple(targets)
