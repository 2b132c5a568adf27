"""The engine's system verbs: info, login, logout."""

from __future__ import annotations

from rootlet.registry.errors import AuthError, UsageError
from rootlet.runtime.engine.options import LoginOptions, LogoutOptions
from rootlet.runtime.engine.reports import InfoReport, VersionReport

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from rootlet.registry.store import ImageStore


class SystemVerbs:
    """Mixed into ``Engine`` (see ``rootlet.runtime.engine``)."""

    images_store: ImageStore

    def info(self) -> InfoReport:
        """The rootless set-up as rootlet sees it (each check with a fix), and what the store holds.

        The kernel overlay is probed on the store's own filesystem: that is where layers are mounted
        from. Forks a user-namespace worker: call it from a single-threaded state.
        """
        from rootlet.runtime.system.hostinfo import host_info
        from rootlet.runtime.system.storeinfo import store_summary

        self.images_store.ensure()
        return InfoReport(host=host_info(tmpdir=self.images_store.tmp), store=store_summary(self.images_store))

    def version(self) -> VersionReport:
        """rootlet's version (the installed distribution's), Python's, and the platform as OCI names it."""
        import platform
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        from rootlet.registry.manifest import Platform

        try:
            mine = dist_version("rootlet")
        except PackageNotFoundError:  # run from a source tree that was never installed
            mine = "unknown"
        host = Platform.host()
        return VersionReport(version=mine, python_version=platform.python_version(), os=host.os,
                             arch=host.architecture + (f"/{host.variant}" if host.variant else ""))

    def login(self, opts: LoginOptions) -> str:
        """Check the credentials against the registry, then store them in auth.json; the registry's
        name as stored (``docker.io`` for every name of Docker Hub)."""
        from rootlet.registry import auth
        from rootlet.registry.client import ClientSettings, login_check
        from rootlet.registry.reference import canonical_registry

        host = canonical_registry(opts.server)
        if not opts.username or not opts.password:
            raise UsageError("user name and password must not be empty")
        settings = ClientSettings(tls_verify=opts.tls_verify, cert_dir=opts.cert_dir, authfile=opts.authfile)
        login_check(host, opts.username, opts.password, settings)
        auth.login(host, opts.username, opts.password, authfile=opts.authfile)
        return host

    def login_username(self, server: str, authfile: str | None = None) -> str:
        """The user name stored for a registry (``login --get-login``)."""
        from rootlet.registry import auth
        from rootlet.registry.reference import canonical_registry

        host = canonical_registry(server)
        creds = auth.lookup(host, authfile=authfile)
        if creds is None:
            raise AuthError(f"not logged in to {host}", f"rootlet login {host}")
        return creds.username

    def logout(self, opts: LogoutOptions) -> str | None:
        """Remove stored credentials: of one registry (its name, as stored), or of all (None)."""
        from rootlet.registry import auth
        from rootlet.registry.reference import canonical_registry

        if opts.all:
            auth.logout_all(authfile=opts.authfile)
            return None
        if not opts.server:
            raise UsageError("logout needs a registry", "rootlet logout REGISTRY or rootlet logout --all")
        host = canonical_registry(opts.server)
        auth.logout(host, authfile=opts.authfile)
        return host
