"""``rootlet pull`` (and ``image pull``): parsed by the fast table parser (cli/argv.py). Scripts
and CI jobs pull before they run, and the pull is benchmarked against podman's: typer's and
click's import (~30 ms) would be paid by every pull, the ones with nothing to fetch included."""

from __future__ import annotations

from rootlet.cli.argv import HELP_FLAG, Flag, parse_command

PULL_FLAGS: tuple[Flag, ...] = (
    Flag(("--platform",), "platform", "value", "OS/ARCH[/VARIANT] to pull (default: this machine's).",
         "OS/ARCH"),
    Flag(("--arch",), "arch", "value", "Architecture to pull (with --os, --variant).", "ARCH"),
    Flag(("--os",), "os", "value", "Operating system to pull.", "OS"),
    Flag(("--variant",), "variant", "value", "Architecture variant to pull.", "VARIANT"),
    Flag(("-q", "--quiet"), "quiet", "bool", "Print only the image id."),
    Flag(("--tls-verify",), "tls_verify", "bool", "Require HTTPS with verified certificates (default: per "
         "registries.conf).", default=None),
    Flag(("--creds",), "creds", "value", "Credentials for the registry.", "USER[:PASS]"),
    Flag(("--authfile",), "authfile", "value", "Path of the auth.json to use.", "PATH"),
    Flag(("--cert-dir",), "cert_dir", "value", "Directory with CA certificates (*.crt) for the registry.", "DIR"),
    HELP_FLAG,
)


def pull_command(root: str, argv: list[str], command: str = "pull") -> int:
    """Pull an image from a registry into the local store; print its id."""
    from rootlet.registry.errors import UsageError

    p = parse_command(argv, PULL_FLAGS, command, "[OPTIONS] IMAGE",
                      "Pull an image from a registry into the local store; prints the image id.")
    if p is None:
        return 0
    if len(p.positional) != 1:
        problem = "needs an image" if not p.positional else f"takes one image, not {len(p.positional)}"
        raise UsageError(f"{command} {problem}", f"rootlet {command} [OPTIONS] IMAGE, e.g. rootlet {command} alpine")
    from rootlet.cli.progress import pull_progress
    from rootlet.cli.render import out
    from rootlet.runtime.engine import Engine
    from rootlet.runtime.engine.options import PullOptions

    opts = PullOptions(reference=p.positional[0], platform=p.platform, os=p.os, arch=p.arch, variant=p.variant,
                       tls_verify=p.tls_verify, creds=p.creds, authfile=p.authfile, cert_dir=p.cert_dir)
    with pull_progress(p.quiet) as progress:
        report = Engine(root).pull(opts, progress)
    out(report.image_id)
    return 0
