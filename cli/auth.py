"""``rootlet login`` / ``logout``: store registry credentials where podman keeps them."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from rootlet.cli.images import parse_bool
from rootlet.cli.render import out
from rootlet.registry.errors import UsageError


def _host(server: str) -> str:
    """``https://host/`` and ``host/path`` → ``host``; docker's old Hub URL → docker.io."""
    text = server.strip()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.rstrip("/")
    if text in ("index.docker.io/v1", "index.docker.io", "registry-1.docker.io"):
        return "docker.io"
    return text


def login(
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
    from rootlet.registry import auth
    from rootlet.registry.client import ClientSettings, login_check

    host = _host(server)
    if get_login:
        creds = auth.lookup(host, authfile=authfile)
        if creds is None:
            from rootlet.registry.errors import AuthError

            raise AuthError(f"not logged in to {host}", f"rootlet login {host}")
        out(creds.username)
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
    if not username or not password:
        raise UsageError("user name and password must not be empty")
    settings = ClientSettings(tls_verify=parse_bool(tls_verify, "--tls-verify"), cert_dir=cert_dir, authfile=authfile)
    login_check(host, username, password, settings)
    auth.login(host, username, password, authfile=authfile)
    out("Login Succeeded!")


def logout(
    server: Optional[str] = typer.Argument(None, metavar="[REGISTRY]"),
    all_: bool = typer.Option(False, "--all", "-a", help="Remove the credentials of every registry."),
    authfile: Optional[str] = typer.Option(None, "--authfile"),
) -> None:
    """Remove stored credentials for a registry."""
    from rootlet.registry import auth

    if all_:
        auth.logout_all(authfile=authfile)
        out("Removed login credentials for all registries")
        return
    if not server:
        raise UsageError("logout needs a registry", "rootlet logout REGISTRY or rootlet logout --all")
    host = _host(server)
    auth.logout(host, authfile=authfile)
    out(f"Removed login credentials for {host}")


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("logout")(logout)
