"""Image endpoints: list, pull (``/images/create``, chunked JSON progress) and import, inspect,
history, tag, remove, push, save (``get``), load, prune, commit, and the classic builder
(``/build``: a tar context in, ``{"stream": …}`` lines and ``{"aux": {"ID": …}}`` out)."""

from __future__ import annotations

import base64
import json

from rootlet.cli.api import docs, query
from rootlet.cli.api.streams import SocketStream
from rootlet.cli.api.http import ClientGone, HttpError, Request, Stream
from rootlet.cli.api.streams import PullJson, PushJson, stream_error
from rootlet.registry.errors import ImageNotFound, RootletError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rootlet.cli.api.routes import Context


class _LazyStream:
    """A chunked 200 started by the first line: a failure before it is still an HTTP error."""

    def __init__(self, req: Request) -> None:
        self.req = req
        self.stream: Stream | None = None

    def json(self, doc: dict[str, object]) -> None:
        if self.stream is None:
            self.stream = self.req.start_stream()
        self.stream.json(doc)

    def close(self) -> None:
        if self.stream is None:
            self.stream = self.req.start_stream()
        self.stream.close()


def _creds(req: Request) -> str | None:
    """``X-Registry-Auth`` (base64url JSON of username, password) as ``user:password``."""
    text = req.headers.get("x-registry-auth", "").strip()
    if not text:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "invalid X-Registry-Auth header: base64url-encoded JSON is expected", keep=True) from None
    if not isinstance(doc, dict):
        raise HttpError(400, "invalid X-Registry-Auth header", keep=True)
    if doc.get("identitytoken") or doc.get("registrytoken"):
        raise HttpError(400, "identity tokens are not supported: give a user name and password", keep=True)
    user, password = doc.get("username") or "", doc.get("password") or ""
    return f"{user}:{password}" if user and password else None


def list_(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import ImagesOptions

    name = None
    dangling = None
    for key, value in query.filters(req):
        if key == "reference":
            name = value
        elif key == "dangling":
            dangling = value.lower() in ("1", "true")
        else:
            raise HttpError(400, f"invalid filter {key!r}: rootlet filters images by reference and dangling",
                            keep=True)
    rows = ctx.engine.images(ImagesOptions(name=name, all=query.boolean(req, "all")))
    out = docs.image_summaries(rows)
    if dangling is not None:
        out = [d for d in out if (not d["RepoTags"]) == dangling]
    req.send_json(out)


def create(req: Request, ctx: Context) -> None:
    if req.arg("fromSrc") is not None:
        _import(req, ctx)
        return
    from rootlet.runtime.engine.options import PullOptions

    image, tag = req.arg("fromImage") or "", req.arg("tag") or ""
    if not image:
        raise HttpError(400, "fromImage is required (or fromSrc to import a tar)", keep=True)
    if tag:
        image = f"{image}@{tag}" if tag.startswith("sha256:") else f"{image}:{tag}"
    elif "@" not in image and ":" not in image.rsplit("/", 1)[-1]:
        image = f"{image}:latest"
    out = _LazyStream(req)
    progress = PullJson(out, tag or image.rsplit(":", 1)[-1])  # type: ignore[arg-type]
    try:
        report = ctx.engine.pull(PullOptions(reference=image, platform=req.arg("platform") or None,
                                             creds=_creds(req)), progress)
    except RootletError as exc:
        if out.stream is None:
            raise
        stream_error(out.stream, exc.message)
        out.stream.close()
        return
    except ClientGone:
        return
    try:
        out.json({"status": f"Digest: {report.digest}"})
        word = "Image is up to date for" if report.up_to_date else "Downloaded newer image for"
        out.json({"status": f"Status: {word} {image}"})
        out.close()
    except ClientGone:
        return


def _import(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import ImportOptions

    if req.arg("fromSrc") != "-":
        raise HttpError(400, "importing from a URL is not supported: send the tar as the body (fromSrc=-)", keep=True)
    repo, tag = req.arg("repo") or "", req.arg("tag") or ""
    reference = (f"{repo}:{tag}" if tag else repo) or None
    with ctx.engine.spool() as spool:
        for piece in req.body_chunks():  # type: ignore[attr-defined]
            spool.write(piece)
        spool.flush()
        spool.seek(0)
        image_id = ctx.engine.import_image(ImportOptions(source="-", reference=reference,
                                                         changes=tuple(req.args("changes")),
                                                         message=req.arg("message") or None), stream=spool)
    stream = req.start_stream()
    stream.json({"status": "sha256:" + image_id.removeprefix("sha256:")})
    stream.close()


def inspect(req: Request, ctx: Context) -> None:
    report = ctx.engine.image_inspect((req.params["name"],))
    if report.errors:
        raise report.errors[0]  # type: ignore[misc]
    req.send_json(docs.image(report.docs[0]))


def history(req: Request, ctx: Context) -> None:
    from rootlet.cli.render import parse_time
    from rootlet.runtime.engine.options import HistoryOptions

    rows = ctx.engine.history(HistoryOptions(image=req.params["name"]))
    req.send_json([{"Id": r.id if r.id and r.id != "<missing>" else "<missing>",
                    "Created": int(parse_time(r.created) or 0), "CreatedBy": r.created_by,
                    "Tags": list(r.tags) or None, "Size": r.size, "Comment": r.comment} for r in rows])


def tag(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import TagOptions

    repo, tag_ = req.arg("repo") or "", req.arg("tag") or "latest"
    if not repo:
        raise HttpError(400, "repo is required", keep=True)
    ctx.engine.tag(TagOptions(source=req.params["name"], targets=(f"{repo}:{tag_}",)))
    req.send(201, b"", None)


def remove(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import RmiOptions

    report = ctx.engine.rmi(RmiOptions(names=(req.params["name"],), force=query.boolean(req, "force")))
    if report.errors:
        raise report.errors[0]
    req.send_json([{"Untagged": n} for n in report.untagged] +
                  [{"Deleted": "sha256:" + i.removeprefix("sha256:")} for i in report.deleted])


def prune(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import ImagePruneOptions

    dangling = True
    for key, value in query.filters(req):
        if key != "dangling":
            raise HttpError(400, f"invalid filter {key!r}: rootlet prunes by dangling only", keep=True)
        dangling = value.lower() in ("1", "true")
    report = ctx.engine.image_prune(ImagePruneOptions(all=not dangling))
    deleted = [{"Untagged": n} for n in report.untagged] + [{"Deleted": f"sha256:{i}"} for i in report.deleted]
    req.send_json({"ImagesDeleted": deleted or None, "SpaceReclaimed": 0})


def search(req: Request, ctx: Context) -> None:
    raise HttpError(400, "image search is not supported: rootlet queries no registry index", keep=True)


def distribution(req: Request, ctx: Context) -> None:
    raise HttpError(400, "distribution inspect is not supported: rootlet has no registry manifest inspection verb "
                    "yet", keep=True)


def push(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import PushOptions

    name, tag_ = req.params["name"], req.arg("tag") or ""
    image = f"{name}:{tag_}" if tag_ else name
    if not ctx.engine.image_exists(image):
        raise ImageNotFound(f"An image does not exist locally with the tag: {image}")
    stream = req.start_stream()
    progress = PushJson(stream)
    try:
        progress.send({"status": f"The push refers to repository [{name}]"})
        report = ctx.engine.push(PushOptions(image=image, creds=_creds(req)), progress)
        progress.send({"status": f"{tag_ or 'latest'}: digest: {report.digest}"})
        progress.send({"progressDetail": {}, "aux": {"Tag": tag_ or "latest", "Digest": report.digest,
                                                     "Size": report.layers_total}})
    except RootletError as exc:
        stream_error(stream, exc.message)
    except ClientGone:
        return
    try:
        stream.close()
    except ClientGone:
        pass


def _save(req: Request, ctx: Context, names: list[str]) -> None:
    from rootlet.runtime.engine.options import SaveOptions

    if not names:
        raise HttpError(400, "names is required", keep=True)
    for name in names:
        if not ctx.engine.image_exists(name):
            raise ImageNotFound(f"No such image: {name}")
    conn = req.start_raw(content_type="application/x-tar")
    ctx.engine.save(SaveOptions(images=tuple(names), multi_image=len(names) > 1), stream=SocketStream(conn.fileno()))


def get_one(req: Request, ctx: Context) -> None:
    _save(req, ctx, [req.params["name"]])


def get_many(req: Request, ctx: Context) -> None:
    _save(req, ctx, req.args("names"))


def load(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import LoadOptions

    with ctx.engine.spool() as spool:
        for piece in req.body_chunks():  # type: ignore[attr-defined]
            spool.write(piece)
        spool.flush()
        spool.seek(0)
        loaded = ctx.engine.load(LoadOptions(), stream=spool)
    stream = req.start_stream()
    for image in loaded:
        for name in image.names or [f"sha256:{image.id.removeprefix('sha256:')}"]:
            word = "Loaded image" if image.names else "Loaded image ID"
            stream.json({"stream": f"{word}: {name}\n"})
    stream.close()


def commit(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import CommitOptions

    container = req.arg("container") or ""
    if not container:
        raise HttpError(400, "container is required", keep=True)
    body = query.object_body(req)
    if any(v not in (None, "", [], {}, False, 0) for v in body.values()):
        raise HttpError(400, "a container configuration in the commit body is not supported: give changes=… "
                        "(Dockerfile instructions)", keep=True)
    repo, tag_ = req.arg("repo") or "", req.arg("tag") or ""
    image = (f"{repo}:{tag_}" if tag_ else repo) or None
    pause = req.arg("pause")
    report = ctx.engine.commit(CommitOptions(
        container=container, image=image, author=req.arg("author") or None, message=req.arg("comment") or None,
        changes=tuple(c for c in req.args("changes") if c), format="docker",
        # docker's clients ask for a pause by default; rootlet cannot pause (no freezer) and commits a
        # running container as it is, as podman does by default (README "The Docker API").
        pause=False if pause is not None and not query.boolean(req, "pause") else None))
    req.send_json({"Id": "sha256:" + report.image_id.removeprefix("sha256:")}, 201)


def build_prune(req: Request, ctx: Context) -> None:
    req.send_json({"CachesDeleted": None, "SpaceReclaimed": 0})


#: /build parameters rootlet honours, and those it takes only at their zero value.
BUILD_ZERO = {"cpuperiod": "0", "cpuquota": "0", "cpusetcpus": "", "cpusetmems": "", "cpushares": "0",
              "memory": "0", "memswap": "0", "shmsize": "0", "cgroupparent": "", "ulimits": "null",
              "cachefrom": "[]", "extrahosts": "", "squash": "0", "outputs": "", "remote": "", "isolation": "",
              "session": "", "buildid": ""}


def build(req: Request, ctx: Context) -> None:
    from rootlet.cli.api.build import run_build

    for key, zero in BUILD_ZERO.items():
        value = req.arg(key)
        if value is not None and value not in (zero, "", "0", "false", "null", "[]", "{}") and key != "session":
            raise HttpError(400, f"build parameter {key}={value!r} is not supported by rootlet's builder", keep=True)
    if (req.arg("version") or "1") != "1":
        raise HttpError(400, "BuildKit (version=2) is not available: rootlet serves docker's classic builder "
                        "(DOCKER_BUILDKIT=0)", keep=True)
    run_build(req, ctx)
