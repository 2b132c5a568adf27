"""Pushing to a registry: the distribution spec's upload protocol, on the pull's client.

One ``Destination`` per pushed repository, sharing a ``RegistryClient`` (its TLS policy,
credentials, token cache and per-thread connections), so blobs go up from a few threads at once.

Policy, and why:

- ``HEAD /v2/NAME/blobs/DIGEST`` first: a blob the registry has is never sent again.
- A blob the same registry holds in another repository we know of (the image's own source
  repositories) is mounted, ``POST …/blobs/uploads/?mount=DIGEST&from=REPO``: 201 means done
  without a byte sent; 202 (or any refusal) falls back to an ordinary upload.
- Small blobs (≤ ``MONOLITHIC_MAX``) go up as POST + one ``PUT ?digest=``; larger ones as POST,
  ``PATCH`` chunks with ``Content-Range`` and a final empty ``PUT``, so an interruption costs at
  most the chunk in flight where the registry can resume. Each step's ``Location`` is followed
  (relative or absolute); ``OCI-Chunk-Min-Length`` raises the chunk size when the registry asks.
- Bodies stream from the file in ``BLOCK`` pieces: memory stays bounded whatever the blob size.
- A cut connection, a timeout or a 5xx mid-blob asks the registry where the upload stands
  (``GET`` on the upload URL, its ``Range``) and continues from there, or starts the blob over
  when the registry has dropped the session (docker-registry drops it after a partial chunk);
  ``ClientSettings.retries`` attempts without progress, then a one-line ``TransferError``.
- Tokens are asked for ``repository:NAME:pull,push`` (plus ``pull`` on a mount's source).
  Credentials go only to the registry's own origin: an upload ``Location`` on another host gets
  the bytes, never the ``Authorization`` header (``RegistryClient._follow``).
- Refusals say which and why, with a hint: 401/403 (denied), 404 (no such repository), 405
  (read-only registry or cache), 413 (too large), 429, 5xx.
- The manifest goes up last, with its media type as ``Content-Type``; the digest the registry
  reports must be the one we computed.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from urllib.parse import quote, urljoin

import requests

from rootlet.registry.client import RETRY_STATUSES, RegistryClient, error_text
from rootlet.registry.config import Endpoint
from rootlet.registry.errors import AuthError, DigestMismatch, RateLimited, RegistryError, TransferError
from rootlet.registry.reference import Reference, canonical_registry, check_digest

#: Blobs up to this size go up in one PUT; larger ones in PATCH chunks.
MONOLITHIC_MAX = 16 * 1024 * 1024
#: PATCH chunk size (raised to the registry's ``OCI-Chunk-Min-Length`` when that is larger).
CHUNK_SIZE = 16 * 1024 * 1024
#: Bytes read from the blob file and handed to the socket at a time.
BLOCK = 1024 * 1024
BACKOFF_MIN = 0.2
BACKOFF_MAX = 5.0
#: Error codes that mean "this upload session is gone or went wrong": start the blob again.
_RESTART_CODES = ("BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID", "DIGEST_INVALID", "SIZE_INVALID")


class Interrupted(Exception):
    """A blob upload broke off in a way a resume or a fresh start may heal (cut, timeout, 5xx)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class _Slice:
    """*length* bytes of the blob from *offset*, as a request body. The blob is an open descriptor
    (read with ``pread``, left open: the caller opened it before the push, so an ``rmi`` meanwhile
    cannot take the file away) or a path (opened here, closed when done).

    ``requests`` streams any object with ``read`` and ``__iter__`` and takes ``Content-Length``
    from ``__len__``; ``read`` ignores the size asked for and returns up to ``BLOCK`` bytes (fewer
    system calls than urllib3's 16 KiB). *seen* is told the absolute position after each block.
    """

    def __init__(self, blob: str | int, offset: int, length: int, seen: Callable[[int], None]) -> None:
        self._own = isinstance(blob, str)
        self._fd = os.open(blob, os.O_RDONLY | os.O_CLOEXEC) if isinstance(blob, str) else blob
        self._pos = offset
        self._left = length
        self._length = length
        self._seen = seen

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> _Slice:
        return self

    def __next__(self) -> bytes:
        data = self.read()
        if not data:
            raise StopIteration
        return data

    def read(self, _size: int = -1) -> bytes:
        if self._left <= 0 or self._fd < 0:
            return b""
        data = os.pread(self._fd, min(BLOCK, self._left), self._pos)
        if not data:
            raise OSError(f"the blob ended {self._left} bytes before its recorded size")
        self._left -= len(data)
        self._pos += len(data)
        self._seen(self._pos)
        return data

    def close(self) -> None:
        if self._own and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1


class _Progress:
    """Reports each byte of a blob once, however often a retry sends it again."""

    def __init__(self, on_progress: Callable[[int], None] | None) -> None:
        self._on_progress = on_progress
        self._high = 0
        self._lock = threading.Lock()

    def seen(self, pos: int) -> None:
        with self._lock:
            if pos <= self._high:
                return
            delta, self._high = pos - self._high, pos
        if self._on_progress is not None:
            self._on_progress(delta)


def _with_query(url: str, **params: str) -> str:
    query = "&".join(f"{k}={quote(v, safe=':')}" for k, v in params.items())
    base, _, fragment = url.partition("#")
    return base + ("&" if "?" in base else "?") + query + (f"#{fragment}" if fragment else "")


def _backoff(attempt: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_MIN * (2 ** max(0, attempt - 1)))


class Destination:
    """One repository on one registry that blobs and a manifest are pushed to."""

    def __init__(self, client: RegistryClient, ref: Reference, endpoint: Endpoint) -> None:
        self.client = client
        self.ref = ref
        self.endpoint = endpoint
        self.host = canonical_registry(endpoint.host)
        self.repository = endpoint.repository
        self.scopes = (f"repository:{self.repository}:pull,push",)

    @classmethod
    def open(cls, client: RegistryClient, ref: Reference) -> Destination:
        """The registry's own endpoint for *ref*: a push never goes to a mirror."""
        return cls(client, ref, client.config.endpoints(ref.replace(short=False))[-1])

    # --- the requests ---------------------------------------------------------------------------

    def _send(self, method: str, path: str, headers: dict[str, str] | None = None,
              body: Callable[[], object] | None = None, scopes: tuple[str, ...] | None = None,
              retry: bool = True) -> requests.Response:
        return self.client.request(self.endpoint, method, path, repository=self.repository, headers=headers,
                                   body=body, scopes=scopes or self.scopes, retry=retry)

    def refusal(self, status: int, detail: str, what: str) -> RegistryError:
        """The error for the registry's refusal (HTTP *status*, its error text *detail*) of *what*."""
        said = f": {detail}" if detail else ""
        host, repo = self.host, self.repository
        if status in (401, 403):
            err: RegistryError = AuthError(
                f"{host} denied pushing {what} to {repo} (HTTP {status}){said}",
                f"log in with `rootlet login {host}` (or pass --creds) as a user that may push to {repo}")
        elif status == 404:
            err = RegistryError(f"{host} has no repository {repo} to push {what} to (HTTP 404){said}",
                                "check the destination name; some registries need the repository created first")
        elif status == 405:
            err = RegistryError(f"{host} does not accept pushes (HTTP 405){said}",
                                "the registry is read-only or a pull-through cache; push to the registry itself")
        elif status == 413:
            err = RegistryError(f"{host} refused {what}: too large (HTTP 413){said}",
                                "the registry or a proxy in front of it limits request sizes "
                                "(nginx: client_max_body_size); raise the limit")
        elif status == 429:
            err = RateLimited(f"{host}: too many requests while pushing {what} (HTTP 429)",
                              "wait a while and try again")
        elif status >= 500:
            err = RegistryError(f"{host} failed while receiving {what}: HTTP {status}{said}",
                                "the registry has a problem; try again later")
        else:
            err = RegistryError(f"{host} refused {what}: HTTP {status}{said}",
                                "the registry does not accept this upload; see its answer")
        err.status = status
        return err

    def _refused(self, resp: requests.Response, what: str) -> RegistryError:
        return self.refusal(resp.status_code, error_text(resp), what)

    def has_blob(self, digest: str) -> bool:
        """Whether the repository already holds blob *digest* (HEAD)."""
        resp = self._send("HEAD", f"/v2/{self.repository}/blobs/{check_digest(digest)}")
        if resp.status_code in (200, 404):
            resp.close()
            return resp.status_code == 200
        raise self._refused(resp, f"blob {digest[:19]}")

    def _start(self, digest: str, mount_from: str | None = None) -> tuple[bool, str, int]:
        """POST a new upload (or a mount): (mounted, upload URL, the registry's minimum chunk)."""
        path = f"/v2/{self.repository}/blobs/uploads/"
        scopes = self.scopes
        if mount_from:
            path += f"?mount={digest}&from={quote(mount_from, safe='/')}"
            scopes = (*self.scopes, f"repository:{mount_from}:pull")
        resp = self._send("POST", path, scopes=scopes, headers={"Content-Length": "0"})
        location = resp.headers.get("Location", "")
        minimum = resp.headers.get("OCI-Chunk-Min-Length", "")
        if resp.status_code == 201 and mount_from:
            resp.close()
            return True, "", 0
        if resp.status_code != 202:
            raise self._refused(resp, f"blob {digest[:19]}")
        resp.close()
        if not location:
            raise RegistryError(f"{self.host} started an upload without saying where (no Location)",
                                "the registry is broken")
        return False, urljoin(resp.url, location), int(minimum) if minimum.isdigit() else 0

    def _step(self, method: str, url: str, blob: str | int, offset: int, length: int, progress: _Progress,
              headers: dict[str, str], what: str) -> requests.Response:
        """One PATCH or PUT with *length* bytes of *blob* from *offset*; a 2xx answer, a refusal
        raised, or ``Interrupted`` when a resume or a fresh start may heal it."""
        bodies: list[_Slice] = []

        def body() -> object:
            if not length:
                return None
            for old in bodies:
                old.close()
            bodies.append(_Slice(blob, offset, length, progress.seen))
            return bodies[-1]

        try:
            resp = self._send(method, url, headers=headers, body=body, retry=False)
        except TransferError as exc:
            raise Interrupted(exc.answer or exc.message) from None
        finally:
            for b in bodies:
                b.close()
        status = resp.status_code
        if 200 <= status < 300:
            return resp
        detail = error_text(resp)
        if status in RETRY_STATUSES or status >= 500 or status == 416 or any(c in detail for c in _RESTART_CODES):
            raise Interrupted(f"HTTP {status}" + (f": {detail}" if detail else ""), status)
        raise self.refusal(status, detail, what)

    def _status(self, url: str) -> tuple[str, int] | None:
        """Where an interrupted upload stands: (URL, bytes the registry holds), None to start over."""
        try:
            resp = self._send("GET", url)
        except TransferError:
            return None
        rng = resp.headers.get("Range", "")
        location = resp.headers.get("Location", "")
        new_url = urljoin(resp.url, location) if location else url
        resp.close()
        start, _, end = rng.removeprefix("bytes=").partition("-")
        # "0-0" means nothing or one byte (docker-registry says so for both): start over.
        if resp.status_code != 204 or start != "0" or not end.isdigit() or int(end) == 0:
            return None
        return new_url, int(end) + 1

    def _finish(self, resp: requests.Response, digest: str) -> None:
        sent = resp.headers.get("Docker-Content-Digest", "")
        resp.close()
        if sent and sent != digest:
            raise DigestMismatch(f"{self.host} stored blob {digest[:19]} as {sent}",
                                 "the registry or a proxy changed the upload; try again")

    # --- blobs ----------------------------------------------------------------------------------

    def push_blob(self, blob: str | int, digest: str, size: int, mount_from: tuple[str, ...] = (),
                  on_progress: Callable[[int], None] | None = None) -> str:
        """Make blob *digest* (*size* bytes: a file's path, or an open descriptor) exist in the
        repository.

        Returns ``"exists"``, ``"mounted"`` or ``"uploaded"``. *mount_from* names repositories of
        this registry that may hold it; *on_progress* receives byte increments.
        """
        check_digest(digest)
        if self.has_blob(digest):
            return "exists"
        url, minimum = "", 0
        for source in mount_from:
            if source == self.repository:
                continue
            try:
                mounted, url, minimum = self._start(digest, source)
            except RegistryError:
                continue  # no pull access there, or mounts refused: an ordinary upload below
            if mounted:
                return "mounted"
            break  # 202: the registry started an ordinary upload instead
        progress = _Progress(on_progress)
        attempts = max(1, self.client.settings.retries)
        failures, offset, best = 0, 0, -1
        while True:
            try:
                if not url:
                    _, url, minimum = self._start(digest)
                    offset = 0
                self._send_from(url, blob, digest, size, offset, max(CHUNK_SIZE, minimum), progress)
                return "uploaded"
            except Interrupted as exc:
                failures = 1 if offset > best else failures + 1
                best = max(best, offset)
                if failures >= attempts:
                    raise TransferError(f"pushing blob {digest[:19]} to {self.host}/{self.repository} failed "
                                        f"{attempts} times: {exc.reason}",
                                        "check your network and the registry, then push again "
                                        "(blobs already there are skipped)") from None
                time.sleep(_backoff(failures))
                resumed = self._status(url) if url else None
                url, offset = resumed if resumed and resumed[1] <= size else ("", 0)

    def _send_from(self, url: str, blob: str | int, digest: str, size: int, offset: int, chunk: int,
                   progress: _Progress) -> None:
        """Send the blob from *offset* on the upload at *url*, and close the upload with its digest."""
        what = f"blob {digest[:19]}"
        octet = {"Content-Type": "application/octet-stream"}
        if offset == 0 and size <= MONOLITHIC_MAX:
            self._finish(self._step("PUT", _with_query(url, digest=digest), blob, 0, size, progress, octet, what),
                         digest)
            return
        while offset < size:
            n = min(chunk, size - offset)
            headers = {**octet, "Content-Range": f"{offset}-{offset + n - 1}"}
            resp = self._step("PATCH", url, blob, offset, n, progress, headers, what)
            location = resp.headers.get("Location", "")
            end = resp.headers.get("Range", "").removeprefix("bytes=").partition("-")[2]
            url = urljoin(resp.url, location) if location else url
            resp.close()
            # The registry says how much it holds; a lower figure than sent means resend from there.
            offset = int(end) + 1 if end.isdigit() and int(end) + 1 <= offset + n else offset + n
        self._finish(self._step("PUT", _with_query(url, digest=digest), blob, offset, 0, progress, octet, what),
                     digest)

    # --- the manifest ---------------------------------------------------------------------------

    def put_manifest(self, data: bytes, media_type: str, reference: str) -> str:
        """PUT the manifest under *reference* (a tag or its digest); returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        resp = self._send("PUT", f"/v2/{self.repository}/manifests/{reference}",
                          headers={"Content-Type": media_type}, body=lambda: data)
        if resp.status_code not in (200, 201, 202, 204):
            raise self._refused(resp, f"the manifest {self.repository}:{reference}")
        sent = resp.headers.get("Docker-Content-Digest", "")
        resp.close()
        if sent and sent != digest:
            raise DigestMismatch(f"{self.host} stored the manifest as {sent}, not {digest}",
                                 "the registry rewrote the manifest; it may not support this format")
        return digest
