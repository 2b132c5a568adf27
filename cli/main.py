"""The ``rootlet`` command: the typer app, global flags, and the one error boundary.

Every command module registers itself on the app given to ``register``. ``main`` is the only place
that turns exceptions into messages and exit codes: ``RootletError`` → ``Error: …`` plus a hint,
exit 125 (podman's code for its own failures); a usage mistake (unknown flag, missing argument) is
also 125 with a hint to ``--help``.
"""



import os
import sys

TYPE_CHECKING = False  # typing costs milliseconds to import; `run` and `exec` must not pay for it
if TYPE_CHECKING:
    import click
    import typer

#: Commands parsed by cli/argv.py instead of typer, whose import alone costs more than podman's
#: whole `ps`: (module, function, its Flag table, summary for the listings), and the command words
#: that name it. Each function takes (store root, arguments, command words) and returns the status.
_FAST: tuple[tuple[tuple[str, str, str, str], tuple[tuple[str, ...], ...]], ...] = (
    (("rootlet.cli.run", "run_command", "RUN_FLAGS", "Run a command in a new container."), (("run",),)),
    (("rootlet.cli.run", "run_command", "CREATE_FLAGS", "Create a container without starting it."), (("create",),)),
    (("rootlet.cli.exec", "exec_command", "EXEC_FLAGS", "Run a command in a running container."), (("exec",),)),
    (("rootlet.cli.image_list", "images_command", "IMAGES_FLAGS", "List local images."),
     (("images",), ("image", "ls"), ("image", "list"))),
    (("rootlet.cli.inspect", "inspect_command", "INSPECT_FLAGS", "Show containers or images as JSON."),
     (("inspect",),)),
    (("rootlet.cli.inspect", "inspect_command", "TYPED_FLAGS", "Show containers as JSON."),
     (("container", "inspect"),)),
    (("rootlet.cli.inspect", "inspect_command", "TYPED_FLAGS", "Show images as JSON."), (("image", "inspect"),)),
    (("rootlet.cli.logs", "logs_command", "LOGS_FLAGS", "Print a container's output."),
     (("logs",), ("container", "logs"))),
    (("rootlet.cli.pull", "pull_command", "PULL_FLAGS", "Pull an image from a registry into the local store."),
     (("pull",), ("image", "pull"))),
    (("rootlet.cli.ps", "ps_command", "PS_FLAGS", "List containers (running ones, or all with -a)."),
     (("ps",), ("container", "ps"), ("container", "ls"), ("container", "list"))),
    (("rootlet.cli.stoprm", "rm_command", "RM_FLAGS", "Remove containers."), (("rm",), ("container", "rm"))),
    (("rootlet.cli.stoprm", "stop_command", "STOP_FLAGS", "Stop running containers."),
     (("stop",), ("container", "stop"))),
)
#: The command words -> (module, function, Flag table, summary).
FAST_COMMANDS: dict[tuple[str, ...], tuple[str, str, str, str]] = {
    words: entry for entry, aliases in _FAST for words in aliases}

#: Options that, as in podman (Go's pflag), may be given bare or as ``--opt=true|false``.
OPTIONAL_BOOL_OPTIONS = ("--tls-verify", "--pause", "--archive", "--overwrite", "--stream", "--pull", "--layers")


def build_app() -> "typer.Typer":
    """The typer application with every command registered."""
    from typing import Optional

    import typer

    from rootlet.cli.context import AppContext

    app = typer.Typer(
        name="rootlet", add_completion=False, no_args_is_help=True, rich_markup_mode=None,
        pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]},
        help="Rootless, daemonless containers with podman's command line.",
    )

    @app.callback()
    def _global(
        ctx: typer.Context,
        root: Optional[str] = typer.Option(None, "--root", help="Store root (default $ROOTLET_ROOT or ~/.local/share/rootlet).",
                                           show_default=False),
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
        version: bool = typer.Option(False, "--version", "-v", help="Print the version and exit.", is_eager=True),
        # Taken by main() before typer runs (they apply to run/exec too); declared for --help.
        _log_level: Optional[str] = typer.Option(None, "--log-level", help="podman's levels; debug and trace "
                                                 "print tracebacks (rootlet logs only warnings and errors)."),
        _storage_driver: Optional[str] = typer.Option(None, "--storage-driver", help="overlay (the only one)."),
        _noout: bool = typer.Option(False, "--noout", help="Send rootlet's own output to /dev/null (a "
                                    "container's still shows)."),
    ) -> None:
        if version:
            from rootlet.runtime.version import VERSION

            typer.echo(f"rootlet version {VERSION}")
            raise typer.Exit(0)
        from rootlet.runtime.engine import default_root

        ctx.obj = AppContext(root=os.path.abspath(root) if root else default_root(), debug=debug)

    from rootlet.cli import archives, auth, build, commit, completion, containers, images, info, push

    images.register(app)
    containers.register(app)
    # After images and containers: they add to the ``image`` and ``container`` groups too.
    commit.register(app)
    build.register(app)
    push.register(app)
    archives.register(app)
    auth.register(app)
    info.register(app)
    completion.register(app)
    from rootlet.cli import system, volumes

    volumes.register(app)
    system.register(app)  # after containers: stats, pause and unpause join the ``container`` group
    from rootlet.cli import service; service.register(app)  # noqa: E702 - after system: `system service`
    from rootlet.cli import attach, kube, networks, pods

    networks.register(app)
    pods.register(app)
    kube.register(app)
    attach.register(app)  # after containers: `container attach`

    return app


def _add_fast_commands(group: "click.Group", args: list[str]) -> None:
    """List the fast-path commands in typer's click tree, so that ``rootlet --help``, the groups'
    help and shell completion (their flags too) know them; main() runs them before typer is even
    imported, so these callbacks only run when it did not (they run the same function)."""
    from importlib import import_module

    import click

    _, _, start = _split_globals(args)
    for words, (module, _, flags, summary) in FAST_COMMANDS.items():
        parent = group if len(words) == 1 else group.commands.get(words[0])
        if not isinstance(parent, click.Group):
            continue  # typer was given a single command (see _only): nothing to list it in
        params: list[click.Parameter] = []
        for f in getattr(import_module(module), flags):
            if f.dest == "help":
                continue
            params.append(click.Option(list(f.names), is_flag=f.kind == "bool", multiple=f.kind == "multi",
                                       metavar=None if f.kind == "bool" else f.metavar, help=f.help))
        params.append(click.Argument(["args"], nargs=-1, required=False))

        def callback(words: tuple[str, ...] = words, **_: object) -> None:
            ctx = click.get_current_context()
            raise click.exceptions.Exit(_fast(words, ctx.find_root().obj.root, args[start + len(words):]))

        parent.add_command(click.Command(words[-1], params=params, callback=callback, add_help_option=False,
                                         help=f"{summary} (see `rootlet {' '.join(words)} --help`)",
                                         context_settings={"help_option_names": []}), words[-1])


#: ``--log-level`` values (podman's); rootlet logs nothing but warnings and errors, so only
#: debug and trace change anything: they also print tracebacks, as ``--debug``.
LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")
#: Global flags that take a value, as podman spells them.
VALUE_GLOBALS = ("--root", "--log-level", "--storage-driver")


def _split_globals(args: list[str]) -> tuple[str | None, bool, int]:
    """The global flags before the command word (``--root``, ``--debug``, and podman's
    ``--log-level``, ``--storage-driver``, ``--noout``), and where the command starts.

    ``--noout`` takes effect here (rootlet's own stdout goes to /dev/null; a container's output,
    written to the descriptor, still shows, as in podman); a value rootlet cannot honour is a
    UsageError."""
    root: str | None = None
    debug = False
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in VALUE_GLOBALS:
            if not eq:
                if i + 1 >= len(args):
                    raise _usage_error(f"flag needs an argument: {name}", "see 'rootlet --help'")
                i += 1
                value = args[i]
            if name == "--root":
                root = value
            elif name == "--log-level":
                if value.lower() not in LOG_LEVELS:
                    raise _usage_error(f"invalid --log-level {value!r}", f"use one of {', '.join(LOG_LEVELS)}")
                debug = debug or value.lower() in ("trace", "debug")
            elif value != "overlay":
                raise _usage_error(f"unsupported --storage-driver {value!r}", "rootlet stores layers for overlay only")
        elif arg == "--debug":
            debug = True
        elif arg == "--noout":
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
        else:
            break
        i += 1
    return root, debug, i


def _usage_error(message: str, hint: str) -> Exception:
    """A UsageError, its module imported only when there is one (``--version`` needs none)."""
    from rootlet.registry.errors import UsageError

    return UsageError(message, hint)


def _normalise_argv(argv: list[str]) -> list[str]:
    out: list[str] = []
    for arg in argv:
        if arg == "--":
            out.extend(argv[len(out):])
            break
        out.append(f"{arg}=true" if arg in OPTIONAL_BOOL_OPTIONS else arg)
    return out


def main(argv: list[str] | None = None, exit_fast: bool = False) -> int:
    """Entry point of the console script; returns (and exits with) the process status.

    ``exit_fast`` (the installed command's): a command parsed by the flag table ends the process
    with ``_exit_now`` once it is done, instead of returning."""
    raw = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in raw
    fast = False
    try:
        root, debug_flag, start = _split_globals(raw)
        debug = debug or debug_flag
        if start < len(raw) and raw[start] in ("--version", "-v"):
            from rootlet.runtime.version import VERSION

            sys.stdout.write(f"rootlet version {VERSION}\n")
            code, fast = 0, True
        elif raw[start:start + 2] == ["system", "service"]:  # start to first answer: no typer
            from rootlet.cli.service import service_command
            from rootlet.runtime.engine import default_root

            code = service_command(os.path.abspath(root) if root else default_root(), raw[start + 2:], debug)
        elif (words := _fast_words(raw[start:start + 2])) is not None:
            from rootlet.runtime.engine import default_root

            fast = True
            code = _fast(words, os.path.abspath(root) if root else default_root(), raw[start + len(words):])
        else:
            # typer sees the global flags it declares (those of podman's that it does not are done).
            kept = (["--root", root] if root else []) + (["--debug"] if debug_flag else [])
            code = _typer_main(_normalise_argv(kept + raw[start:]))
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # noqa: BLE001 - the one boundary: a bug must still exit 125, not 1
        code = _report(exc, debug)
    sys.stdout.flush()
    if fast and exit_fast:
        _exit_now(code)
    return code


def _report(exc: Exception, debug: bool) -> int:
    """Tell the user what went wrong, in one line and a hint; the exit status for it.

    The error classes are imported here, once something failed: ``--version`` needs none of them."""
    from rootlet.registry.errors import RootletError

    if isinstance(exc, BrokenPipeError):
        # The reader went away (`rootlet images | head`): not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - swallow the final flush
        except OSError:
            pass
        return 141
    if debug:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, RootletError):
        _error(exc.message, exc.hint)
        return exc.exit_code
    if isinstance(exc, OSError):
        _error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), "run with --debug for details")
        return 125
    _error(f"internal error: {type(exc).__name__}: {exc}", "run with --debug for the traceback and report it")
    return 125


def _exit_now(code: int) -> None:
    """End the process with ``code`` without the interpreter's finalisation.

    Tearing down a hundred modules and collecting their objects costs 3-5 ms at every exit,
    measured on ``ps`` (a sixth of its time). What an exit must still do is done: the atexit
    handlers run (weakref finalizers among them: user-namespace workers are closed and reaped),
    stdout and stderr are flushed. The commands that exit this way write their files through
    ``atomic_write`` or close them in ``with`` blocks, so no buffered data waits for a finalizer.
    A non-daemon thread still running is joined by a normal exit: then this is one.
    """
    threading = sys.modules.get("threading")
    if threading is not None and any(t.is_alive() and not t.daemon for t in threading.enumerate()
                                     if t is not threading.main_thread()):
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, a stream closed: nothing to save
            pass
    os._exit(code)


def _fast_words(words: list[str]) -> tuple[str, ...] | None:
    """The FAST_COMMANDS key that the command words start with, if any."""
    for key in (tuple(words), tuple(words[:1])):
        if key in FAST_COMMANDS:
            return key
    return None


def _fast(words: tuple[str, ...], root: str, args: list[str]) -> int:
    module, function, _, _ = FAST_COMMANDS[words]
    # __import__, not importlib.import_module: the importlib package is two more imports.
    return getattr(__import__(module, fromlist=[function]), function)(root, args, " ".join(words))


def _typer_main(args: list[str]) -> int:
    """Run a typer-parsed command; click's own exceptions become messages and exit codes here."""
    import click
    import typer

    if "_ROOTLET_COMPLETE" in os.environ:  # the completion script calling back: typer's protocol
        from typer.completion import completion_init

        completion_init()
    try:
        command = typer.main.get_command(_only(build_app(), args))
        if isinstance(command, click.Group):
            _add_fast_commands(command, args)
        result = command.main(args=args, prog_name="rootlet", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.UsageError as exc:
        _error(exc.format_message(), _usage_hint(exc))
        return 125
    except click.exceptions.Abort:
        sys.stderr.write("Aborted.\n")
        return 130


def _only(app: "typer.Typer", args: list[str]) -> "typer.Typer":
    """``app`` reduced to the command ``args`` name, when they name one.

    typer converts every registered command into a click command before parsing (~1 ms each,
    most of it in typing.get_type_hints); dropping the ones not asked for halves the start-up
    of ``rootlet ps``. Without a known command word (``rootlet``, ``rootlet --help``, a typo)
    the full app is kept, so help and "no such command" read as usual.
    """
    _, _, start = _split_globals(args)
    word = args[start] if start < len(args) else None
    if word is None or word.startswith("-"):
        return app
    commands = [c for c in app.registered_commands if (c.name or c.callback.__name__) == word]
    groups = [g for g in app.registered_groups if g.name == word]
    if not commands and not groups:
        return app
    app.registered_commands = commands
    app.registered_groups = groups
    return app


def _usage_hint(exc: "click.exceptions.UsageError") -> str:  # noqa: F821 - click is imported lazily
    ctx = exc.ctx
    path = ctx.command_path if ctx is not None else "rootlet"
    return f"see '{path} --help'"


def _error(message: str, hint: str | None) -> None:
    text = f"Error: {message}\n" + (f"Hint: {hint}\n" if hint else "")
    # A message may quote what the user typed, undecodable bytes included (surrogate escapes).
    sys.stderr.write(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def run() -> None:
    """Console-script wrapper: exit with ``main``'s status."""
    sys.exit(main(exit_fast=True))


if __name__ == "__main__":
    run()
