"""``rootlet login`` / ``logout``: store registry credentials where podman keeps them."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from rootlet.cli.context import AppContext
from rootlet.cli.images import parse_bool
from rootlet.cli.render import out
from rootlet.registry.errors import UsageError


def login(
    ctx: typer.Context,
    server: str = typer.Argument(..., metavar="REGISTRY", help="Registry host, e.g. docker.io or host:5000."),
    username: Optional[str] = typer.Option(None, "--username", "-u"),
    password: Optional[str] = typer.Option(None, "--password", "-p"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    authfile: Optional[str] = typer.Option(None, "--authfile", help="Where to store the credentials."),
    tls_verify: Optional[str] = typer.Option(None, "--tls-verify", metavar="BOOL"),
    cert_dir: Optional[str] = typer.Option(None, "--cert-dir"),
    get_login: bool = typer.Option(False, "--get-login", help="Print the user name stored for REGISTRY."),
) -> None:
    """Log in to a registry: check the credentials, then store them in auth.json."""
    from rootlet.runtime.engine.options import LoginOptions

    app: AppContext = ctx.obj
    if get_login:
        out(app.engine().login_username(server, authfile))
        return
    if password and password_stdin:
        raise UsageError("--password and --password-stdin cannot be combined")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    if username is None:
        if not sys.stdin.isatty():
            raise UsageError("a user name is needed", "pass --username NAME")
        username = input("Username: ")
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("a password is needed", "pass --password-stdin and pipe it in")
        import getpass

        password = getpass.getpass("Password: ")
    app.engine().login(LoginOptions(server, username, password, authfile=authfile,
                                    tls_verify=parse_bool(tls_verify, "--tls-verify"), cert_dir=cert_dir))
    out("Login Succeeded!")


def logout(
    ctx: typer.Context,
    server: Optional[str] = typer.Argument(None, metavar="[REGISTRY]"),
    all_: bool = typer.Option(False, "--all", "-a", help="Remove the credentials of every registry."),
    authfile: Optional[str] = typer.Option(None, "--authfile"),
) -> None:
    """Remove stored credentials for a registry."""
    from rootlet.runtime.engine.options import LogoutOptions

    app: AppContext = ctx.obj
    host = app.engine().logout(LogoutOptions(server, all=all_, authfile=authfile))
    out("Removed login credentials for all registries" if host is None else f"Removed login credentials for {host}")


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("logout")(logout)
