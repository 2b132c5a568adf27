"""build through the real rootlet command: the Dockerfiles of build_cases/ built with rootlet and,
where podman 4.3 understands them, with the real `podman build`, then compared."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command
from tests.support.podman import Podman, podman  # noqa: F401  (the fixture)

pytestmark = pytest.mark.system

CASES = Path(__file__).parent / "build_cases"
#: The config fields a build sets (podman adds its io.buildah.version label, left out).
CONFIG_KEYS = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels", "StopSignal",
               "OnBuild", "Healthcheck")
#: What the file-tree listing shows: name, mode, owner, size, type and link target.
LISTING = "find {dirs} -xdev 2>/dev/null | sort | while read f; do stat -c '%n|%a|%u:%g|%s|%F' \"$f\"; " \
          "[ -L \"$f\" ] && readlink \"$f\"; done; true"


def _context(tmp_path: Path, case: str) -> Path:
    dst = tmp_path / case
    shutil.copytree(CASES / case, dst, symlinks=True)
    return dst


def _config(doc: dict) -> dict:
    config = doc["Config"]
    labels = {k: v for k, v in (config.get("Labels") or {}).items() if k != "io.buildah.version"}
    out = {k: config.get(k) or None for k in CONFIG_KEYS}
    out["Labels"] = labels or None
    return out


def _rootlet_build(rootlet: RunRootlet, ctx: Path, tag: str, *args: str) -> str:
    proc = rootlet("build", "-q", "-t", tag, *args, str(ctx), check=True, timeout=300)
    return proc.stdout.strip().splitlines()[-1]


def _podman_build(podman: Podman, ctx: Path, tag: str, *args: str) -> None:
    podman("build", "-q", "--tls-verify=false", "--format", "oci", "-t", tag, *args, str(ctx), timeout=300)


@pytest.mark.parametrize("case, dirs, cmd", [
    ("app", "/srv /usr/local/bin /var/lib/app /etc/motd /home/app", ()),
    ("multistage", "/usr/local/bin /opt /build", ()),
])
def test_rootlet_and_podman_build_the_same_image(rootlet: RunRootlet, podman: Podman, registry: str,
                                                 tmp_path: Path, case: str, dirs: str, cmd: tuple[str, ...]) -> None:
    base = f"{registry}/library/alpine:3.20"
    ctx = _context(tmp_path, case)
    _rootlet_build(rootlet, ctx, case, "--build-arg", f"BASE={base}", "--tls-verify=false")
    _podman_build(podman, ctx, case, "--build-arg", f"BASE={base}")
    mine = _config(json.loads(rootlet("image", "inspect", case, check=True).stdout)[0])
    theirs = _config(json.loads(podman("image", "inspect", case).stdout)[0])
    assert mine == theirs
    listing = LISTING.format(dirs=dirs)
    mine_tree = rootlet("run", "--rm", "--entrypoint", "", case, "sh", "-c", listing, check=True).stdout
    theirs_tree = podman("run", "--rm", "--entrypoint", "", f"localhost/{case}", "sh", "-c", listing).stdout
    assert mine_tree == theirs_tree and mine_tree.strip()
    mine_out = rootlet("run", "--rm", case, *cmd, check=True).stdout
    theirs_out = podman("run", "--rm", f"localhost/{case}", *cmd).stdout
    assert mine_out == theirs_out and mine_out.strip()


def test_the_app_image_has_what_the_dockerfile_says(rootlet: RunRootlet, registry: str, tmp_path: Path) -> None:
    ctx = _context(tmp_path, "app")
    image_id = _rootlet_build(rootlet, ctx, "app", "--build-arg", f"BASE={registry}/library/alpine:3.20")
    out = rootlet("run", "--rm", "app", "x", check=True).stdout
    assert out == "app production in /srv/app as app: x\n1.2.3\n"
    files = rootlet("run", "--rm", "--entrypoint", "", "app", "sh", "-c",
                    "ls /srv/app /srv/app/sub; stat -c '%U %a' /srv/app/main.txt /usr/local/bin/run-app; "
                    "test -e /etc/motd || echo motd-gone", check=True).stdout.split()
    # .dockerignore: *.log and docs left out, the ! exception kept.
    assert "debug.log" not in files and "keep.log" in files and "guide.md" not in files
    assert files[-5:] == ["app", "644", "root", "755", "motd-gone"]
    history = json.loads(rootlet("history", "--format", "json", "app", check=True).stdout)
    assert history[0]["id"] == image_id
    assert any(h["CreatedBy"].startswith("/bin/sh -c #(nop) ENV APP_HOME") for h in history)


def test_an_unchanged_rebuild_runs_nothing_and_a_changed_file_reruns_from_its_step(
        rootlet: RunRootlet, registry: str, tmp_path: Path) -> None:
    ctx = _context(tmp_path, "app")
    args = ("--build-arg", f"BASE={registry}/library/alpine:3.20")
    first = _rootlet_build(rootlet, ctx, "app", *args)
    again = rootlet("build", "-t", "app", *args, str(ctx), check=True)
    assert again.stdout.strip().splitlines()[-1] == first
    blocks = again.stdout.split("STEP ")[1:]
    # Every step that makes an image came from the cache (FROM and ARG make none).
    assert all("--> Using cache" in b for b in blocks if ": FROM " not in b[:12] and ": ARG " not in b[:12])
    (ctx / "run.sh").write_text((ctx / "run.sh").read_text() + "echo changed\n")
    third = rootlet("build", "-t", "app", *args, str(ctx), check=True)
    assert third.stdout.strip().splitlines()[-1] != first
    steps = [b for b in third.stdout.split("STEP ")[1:] if ": FROM " not in b[:12] and ": ARG " not in b[:12]]
    copy_run = next(i for i, s in enumerate(steps) if "COPY --chmod=755 run.sh" in s)
    assert all("Using cache" in s for s in steps[:copy_run])
    assert all("Using cache" not in s for s in steps[copy_run:])
    assert "changed" in rootlet("run", "--rm", "app", check=True).stdout
    # app, the base, and the previous app, now <none> as in podman; the steps only with -a.
    assert rootlet("images", "--format", "{{.ID}}", check=True).stdout.count("\n") == 3
    assert rootlet("images", "-a", "-q", check=True).stdout.count("\n") > 3


def test_heredocs_in_run_and_copy(rootlet: RunRootlet, registry: str, tmp_path: Path) -> None:
    ctx = _context(tmp_path, "heredocs")
    _rootlet_build(rootlet, ctx, "here", "--build-arg", f"BASE={registry}/library/alpine:3.20")
    out = rootlet("run", "--rm", "here", check=True).stdout
    assert out == "first line\nfrom heredoc\nname=heredoc\nvalue=$WHO\npiped heredoc\n"


def test_a_cache_mount_outlives_the_build_and_stays_out_of_the_image(rootlet: RunRootlet, registry: str,
                                                                     tmp_path: Path) -> None:
    ctx = _context(tmp_path, "cachemount")
    args = ("--build-arg", f"BASE={registry}/library/alpine:3.20")
    _rootlet_build(rootlet, ctx, "cm", *args)
    assert rootlet("run", "--rm", "cm", check=True).stdout.strip() == "1"
    _rootlet_build(rootlet, ctx, "cm", "--no-cache", *args)
    assert rootlet("run", "--rm", "cm", check=True).stdout.strip() == "2"
    assert rootlet("run", "--rm", "cm", "ls", "-A", "/var/cache/demo", check=True).stdout == ""


def test_onbuild_triggers_run_in_the_child(rootlet: RunRootlet, registry: str, tmp_path: Path) -> None:
    _rootlet_build(rootlet, _context(tmp_path, "onbuild-base"), "obase",
                   "--build-arg", f"BASE={registry}/library/alpine:3.20")
    config = json.loads(rootlet("image", "inspect", "obase", check=True).stdout)[0]["Config"]
    assert len(config["OnBuild"]) == 2
    _rootlet_build(rootlet, _context(tmp_path, "onbuild-child"), "ochild", "--build-arg", "PARENT=localhost/obase")
    assert rootlet("run", "--rm", "ochild", check=True).stdout == "triggered in the child\nyes\n"


def test_a_secret_is_usable_in_run_and_never_stored(rootlet: RunRootlet, registry: str, tmp_path: Path) -> None:
    ctx = tmp_path / "secret"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(
        "ARG BASE\nFROM $BASE\n"
        "RUN --mount=type=secret,id=token sh -c 'wc -c < /run/secrets/token > /token-length'\n")
    secret = tmp_path / "token.txt"
    secret.write_text("s3cr3t-value")
    _rootlet_build(rootlet, ctx, "sec", "--secret", f"id=token,src={secret}",
                   "--build-arg", f"BASE={registry}/library/alpine:3.20")
    out = rootlet("run", "--rm", "sec", "sh", "-c", "cat /token-length; ls /run/secrets 2>&1; true",
                  check=True).stdout
    assert out.splitlines()[0].strip() == "12" and "token" not in out.splitlines()[1:]
    saved = tmp_path / "img.tar"
    history = rootlet("history", "--no-trunc", "sec", check=True).stdout
    assert "s3cr3t" not in history and not saved.exists()


@pytest.mark.parametrize("dockerfile, args, phrase, code", [
    ("FROM {base}\nFROB x\n", (), "Containerfile:2: unknown instruction: FROB", 125),
    ("FROM {base}\nCOPY ../outside /x\n", (), "outside the build context", 125),
    ("FROM {base}\nCOPY link /x\n", (), "outside the build context", 125),
    ("FROM {base}\nRUN exit 3\n", (), 'building at STEP "RUN exit 3"', 3),
    ("FROM {base} AS one\nRUN true\n", ("--target", "two"), "target stage 'two'", 125),
    ("FROM {base}\nCOPY --from=nostage /x /y\n", (), "COPY: image nostage", 125),
    ("FROM {base}\nHEALTHCHECK --interval=fast CMD true\n", (), "not a duration", 125),
])
def test_bad_builds_fail_in_one_line_and_leave_nothing_under_the_tag(
        rootlet: RunRootlet, registry: str, tmp_path: Path, dockerfile: str, args: tuple[str, ...], phrase: str,
        code: int) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (tmp_path / "outside").write_text("secret")
    (ctx / "link").symlink_to(tmp_path / "outside")
    (ctx / "Containerfile").write_text(dockerfile.format(base=f"{registry}/library/alpine:3.20"))
    proc = rootlet("build", "-t", "bad", *args, str(ctx), timeout=300)
    assert proc.returncode == code, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and phrase in errors[0] and "Traceback" not in proc.stderr
    assert rootlet("image", "exists", "bad").returncode == 1
    assert rootlet("ps", "-a", "-q", check=True).stdout == ""


def test_dockerfile_and_context_from_stdin(rootlet: RunRootlet, rootlet_env: dict[str, str], registry: str,
                                           tmp_path: Path) -> None:
    import io
    import tarfile

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "data.txt").write_text("from the context\n")
    dockerfile = f"FROM {registry}/library/alpine:3.20\nCOPY data.txt /data.txt\nCMD [\"cat\", \"/data.txt\"]\n"
    rootlet("build", "-q", "-t", "fromstdin", "-f", "-", str(ctx), input=dockerfile, check=True)
    assert rootlet("run", "--rm", "fromstdin", check=True).stdout == "from the context\n"
    (ctx / "Containerfile").write_text(dockerfile.replace("/data.txt\"]", "/data.txt\", \"/extra\"]")
                                       .replace("CMD", "COPY data.txt /extra\nCMD"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(ctx, arcname=".")
    proc = subprocess.run([*rootlet_command(), "build", "-q", "-t", "tarctx", "-"], input=buf.getvalue(),
                          capture_output=True, env=rootlet_env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert rootlet("run", "--rm", "tarctx", check=True).stdout == "from the context\n" * 2


def test_add_unpacks_local_archives_and_fetches_urls_with_a_checksum(rootlet: RunRootlet, registry: str,
                                                                   tmp_path: Path) -> None:
    import gzip
    import hashlib
    import http.server
    import io
    import tarfile
    import threading

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("pkg/inside.txt")
        info.size = 7
        tar.addfile(info, io.BytesIO(b"inside\n"))
    (ctx / "pkg.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    served = tmp_path / "www"
    served.mkdir()
    (served / "remote.txt").write_text("remote file\n")
    digest = "sha256:" + hashlib.sha256(b"remote file\n").hexdigest()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/remote.txt"
    try:
        (ctx / "Containerfile").write_text(
            f"FROM {registry}/library/alpine:3.20\nADD pkg.tar.gz /opt/\nADD --checksum={digest} {url} /srv/\n")
        _rootlet_build(rootlet, ctx, "added")
        out = rootlet("run", "--rm", "added", "sh", "-c", "cat /opt/pkg/inside.txt /srv/remote.txt; "
                      "stat -c %a /srv/remote.txt", check=True).stdout
        assert out == "inside\nremote file\n600\n"
        (ctx / "Containerfile").write_text(
            f"FROM {registry}/library/alpine:3.20\nADD --checksum=sha256:{'0' * 64} {url} /srv/\n")
        proc = rootlet("build", "-t", "badsum", str(ctx), timeout=300)
        assert proc.returncode == 125 and "not sha256:000" in proc.stderr
    finally:
        server.shutdown()



def test_scratch_stages_bind_mounts_from_a_stage_and_proxy_args(rootlet: RunRootlet, registry: str,
                                                                tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("hello\n")
    (ctx / "Containerfile").write_text(
        f"FROM {registry}/library/alpine:3.20 AS tools\n"
        "RUN mkdir -p /opt/t && echo tool > /opt/t/x && chown 7:7 /opt/t/x\n"
        "FROM scratch AS bare\n"
        "COPY a.txt /data/\n"
        "COPY --from=tools /opt/t /t\n"
        f"FROM {registry}/library/alpine:3.20\n"
        "RUN --mount=type=bind,from=tools,source=/opt/t,target=/mnt "
        "cat /mnt/x > /seen && stat -c %u /mnt/x >> /seen && echo \"proxy=$HTTP_PROXY\" >> /seen\n"
        "COPY --from=bare / /bare/\n"
        "WORKDIR /made/here\n"
        "CMD [\"sh\", \"-c\", \"cat /seen; cd /bare && find . | sort; stat -c %u t/x; test -e /mnt/x || echo gone; "
        "stat -c %a /made/here\"]\n")
    _rootlet_build(rootlet, ctx, "misc", "--build-arg", "HTTP_PROXY=http://proxy.invalid:3128")
    out = rootlet("run", "--rm", "misc", check=True).stdout
    assert out == "tool\n7\nproxy=http://proxy.invalid:3128\n.\n./data\n./data/a.txt\n./t\n./t/x\n7\ngone\n755\n"
    history = rootlet("history", "--no-trunc", "misc", check=True).stdout
    assert "proxy.invalid" not in history
    # The bare stage is one layer: FROM scratch adds none of its own.
    bare = rootlet("build", "-q", "--target", "bare", "-t", "bare", "--annotation", "org.example.note=hi",
                   "--label", "team=core", str(ctx), check=True).stdout.split()[-1]
    doc = json.loads(rootlet("image", "inspect", bare, check=True).stdout)[0]
    assert len(doc["RootFS"]["Layers"]) == 2 and doc["Config"]["Labels"] == {"team": "core"}
    rootlet("push", "-q", "bare", f"oci:{tmp_path}/layout:bare", check=True)
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((tmp_path / "layout" / "blobs" / "sha256" / digest).read_text())
    assert manifest["annotations"] == {"org.example.note": "hi"}


def test_copy_through_a_symlinked_directory_of_the_image_lands_in_its_target(rootlet: RunRootlet, registry: str,
                                                                             tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "tree" / "sub").mkdir(parents=True)
    (ctx / "a.txt").write_text("a\n")
    (ctx / "tree" / "sub" / "b.txt").write_text("b\n")
    (ctx / "Containerfile").write_text(
        f"FROM {registry}/library/alpine:3.20\n"
        "RUN mkdir -p /opt/real/sub && echo old > /opt/real/sub/old.txt && ln -s /opt/real /linkdir "
        "&& echo file > /etc/was-a-file\n"
        "COPY a.txt /linkdir/\n"
        "COPY tree/ /linkdir/\n"
        "COPY a.txt /etc/was-a-file\n"
        "CMD [\"sh\", \"-c\", \"readlink /linkdir; cd /opt/real && find . -type f | sort; cat /etc/was-a-file\"]\n")
    _rootlet_build(rootlet, ctx, "linked")
    out = rootlet("run", "--rm", "linked", check=True).stdout
    assert out == "/opt/real\n./a.txt\n./sub/b.txt\n./sub/old.txt\na\n"
