"""Real Docker API clients against ``rootlet system service``: docker's CLI (28.x at
/usr/local/bin/docker, and Debian's docker.io 20.10 at /usr/bin/docker: both API generations),
docker-py and docker-compose 1.29, each with DOCKER_HOST on the service's socket and a private
DOCKER_CONFIG. Exit codes and output are compared with the same operations through rootlet's own
CLI on the same store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import io
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import RunRootlet
from tests.support.apiservice import Service, api, api_image, docker_env  # noqa: F401

pytestmark = pytest.mark.system

DOCKER = os.environ.get("ROOTLET_TEST_DOCKER", "/usr/local/bin/docker")
DOCKER_20 = "/usr/bin/docker"  # Debian's docker.io: the 20.10 CLI (its daemon is never started)


class Docker:
    """Runs a docker CLI against the service."""

    def __init__(self, binary: str, env: dict[str, str]) -> None:
        self.binary = binary
        self.env = env

    def __call__(self, *args: str, input: str | None = None, timeout: float = 120,
                 check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.binary, *args], input=input, capture_output=True, text=True, timeout=timeout,
                              env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def tty(self, args: str, keys: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``docker ARGS`` on a terminal (util-linux ``script``), with ``keys`` typed in."""
        command = f"stty rows 30 cols 100; exec {self.binary} {args}"
        return subprocess.run(["script", "-qec", command, "/dev/null"], input=keys, capture_output=True, text=True,
                              timeout=timeout, env=self.env)


@pytest.fixture
def docker(api: Service, tmp_path: Path) -> Docker:
    if not os.access(DOCKER, os.X_OK):
        pytest.skip(f"needs docker's CLI at {DOCKER} (the machines carry 28.x)")
    return Docker(DOCKER, docker_env(api, tmp_path))


# --- docker's CLI ---------------------------------------------------------------------------------------

def test_version_info_and_pull_with_progress(docker: Docker, rootlet: RunRootlet, registry: str) -> None:
    version = docker("version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}", check=True)
    assert version.stdout.split() == ["1.41", "1.41"]  # negotiated down from 1.50
    info = docker("info", "--format", "{{.OSType}} {{.Driver}} {{.Images}}", check=True)
    assert info.stdout.split() == ["linux", "overlay", "0"]
    pulled = docker("pull", f"{registry}/library/busybox:latest", check=True)
    assert "Pull complete" in pulled.stdout and "Digest: sha256:" in pulled.stdout
    assert pulled.stdout.strip().endswith(f"{registry}/library/busybox:latest")
    again = docker("pull", f"{registry}/library/busybox:latest", check=True)
    assert "Image is up to date" in again.stdout
    ours = rootlet("pull", "-q", f"{registry}/library/busybox:latest", check=True).stdout.strip()
    ids = docker("images", "--no-trunc", "--format", "{{.ID}}", check=True).stdout.split()
    assert ids == [f"sha256:{ours.removeprefix('sha256:')}"]
    missing = docker("pull", f"{registry}/library/nosuch:1")
    assert missing.returncode == 1 and "manifest unknown" in missing.stderr


def test_run_exit_codes_and_output_match_rootlets(docker: Docker, rootlet: RunRootlet, api_image: str) -> None:
    for command in (["sh", "-c", "echo out; echo err >&2; exit 3"], ["true"], ["sh", "-c", "kill -9 $$"],
                    ["nosuchcommand"], ["/etc"]):
        theirs = docker("run", "--rm", api_image, *command)
        ours = rootlet("run", "--rm", api_image, *command)
        assert theirs.returncode == ours.returncode, (command, theirs, ours)
        assert theirs.stdout == ours.stdout, command
        if ours.returncode < 125:
            assert theirs.stderr == ours.stderr, command
    assert docker("ps", "-aq").stdout == ""  # every --rm container went, the failed ones too


def test_run_flags(docker: Docker, api_image: str, tmp_path: Path) -> None:
    host = tmp_path / "bind"
    host.mkdir()
    (host / "in.txt").write_text("from the host\n")
    out = docker("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "123:45", "-v", f"{host}:/mnt:ro", api_image,
                 "sh", "-c", "echo $A; pwd; id -u; id -g; cat /mnt/in.txt", check=True)
    assert out.stdout.split("\n")[:5] == ["1", "/tmp", "123", "45", "from the host"]
    docker("run", "--rm", "-v", "named:/data", api_image, "sh", "-c", "echo kept > /data/f", check=True)
    assert docker("run", "--rm", "-v", "named:/data", api_image, "cat", "/data/f", check=True).stdout == "kept\n"
    ep = docker("run", "--rm", "--entrypoint", "echo", api_image, "via", "entrypoint", check=True)
    assert ep.stdout == "via entrypoint\n"
    docker("run", "-d", "--name", "web", "-p", "127.0.0.1::8080", "--network", "bridge", api_image, "sleep", "300",
           check=True)
    port = docker("port", "web", "8080/tcp", check=True).stdout.strip()
    assert port.startswith("127.0.0.1:")
    assert docker("run", "--rm", "--network", "host", api_image, "true").returncode == 0
    refused = docker("run", "--rm", "--network", "mynet", api_image, "true")
    assert refused.returncode == 125 and "network not found" in refused.stderr
    assert docker("run", "--rm", "--memory", "64m", api_image, "true").returncode == 125


def test_run_interactive_and_tty(docker: Docker, api_image: str) -> None:
    piped = docker("run", "--rm", "-i", api_image, "sh", "-c", "cat; echo end", input="line one\nline two\n",
                   check=True)
    assert piped.stdout == "line one\nline two\nend\n"
    # docker's CLI sizes the pty once the container runs: the shell reads the size a moment later
    shell = docker.tty(f"run -it --rm {api_image} sh", "sleep 1; stty size; echo $((6*7))\nexit 5\n")
    assert shell.returncode == 5, shell
    assert "30 100" in shell.stdout and "42" in shell.stdout
    docker("run", "-d", "-t", "--name", "tty", api_image, "sleep", "300", check=True)
    inside = docker.tty("exec -it tty sh", "sleep 1; tty; stty size\nexit 7\n")
    assert inside.returncode == 7 and "/dev/pts/" in inside.stdout and "30 100" in inside.stdout


def test_lifecycle_through_docker_and_rootlet_agree(docker: Docker, rootlet: RunRootlet, api_image: str) -> None:
    cid = docker("create", "--name", "c1", api_image, "sh", "-c", "echo created-run; exit 2", check=True).stdout.strip()
    attached = docker("start", "-a", "c1")
    assert (attached.returncode, attached.stdout) == (2, "created-run\n")
    assert docker("logs", "c1").stdout == rootlet("logs", "c1").stdout == "created-run\n"
    docker("run", "-d", "--name", "svc", api_image, "sh", "-c",
           "trap 'exit 0' TERM; i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done", check=True)
    fmt = "{{.Names}}"
    assert docker("ps", "--format", fmt).stdout.split() == rootlet("ps", "--format", fmt).stdout.split() == ["svc"]
    assert sorted(docker("ps", "-a", "--format", fmt).stdout.split()) == ["c1", "svc"]
    follow = subprocess.Popen([docker.binary, "logs", "-f", "svc"], stdout=subprocess.PIPE, text=True, env=docker.env)
    assert follow.stdout.readline() == "tick0\n"  # type: ignore[union-attr]
    assert docker("exec", "svc", "sh", "-c", "echo in-exec; exit 4").returncode == 4
    assert docker("exec", "svc", "nosuchcommand").returncode == rootlet("exec", "svc", "nosuchcommand").returncode
    top = docker("top", "svc", check=True).stdout
    assert "PID" in top and "sleep" in top
    doc = json.loads(docker("inspect", "svc", check=True).stdout)[0]
    assert (doc["Name"], doc["State"]["Running"], doc["Id"]) == ("/svc", True, rootlet("inspect", "-f", "{{.Id}}",
                                                                                       "svc").stdout.strip())
    docker("rename", "svc", "svc2", check=True)
    docker("restart", "-t", "5", "svc2", check=True)
    assert docker("inspect", "-f", "{{.RestartCount}} {{.State.Running}}", "svc2").stdout.split()[1] == "true"
    docker("stop", "svc2", check=True)
    follow.wait(timeout=30)
    assert docker("wait", "svc2").stdout.strip() == "0"
    killed = docker("kill", "svc2")  # not running: a 409, which docker's CLI turns into its exit 1
    assert killed.returncode == 1 and "running" in killed.stderr
    assert rootlet("kill", "svc2").returncode == 125
    assert docker("rm", "nosuch").returncode == 1
    docker("rm", "c1", "svc2", check=True)
    assert rootlet("ps", "-aq").stdout == ""
    assert cid


def test_cp_both_ways_and_events(docker: Docker, api_image: str, tmp_path: Path) -> None:
    docker("run", "-d", "--name", "box", api_image, "sleep", "300", check=True)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("copied in\n")
    docker("cp", str(src), "box:/tmp/dst", check=True)
    assert docker("exec", "box", "cat", "/tmp/dst/sub/f.txt", check=True).stdout == "copied in\n"
    docker("cp", "box:/etc/alpine-release", str(tmp_path / "release"), check=True)
    assert (tmp_path / "release").read_text().startswith("3.20")
    docker("cp", "box:/tmp/dst", str(tmp_path / "back"), check=True)
    assert (tmp_path / "back" / "sub" / "f.txt").read_text() == "copied in\n"
    assert docker("cp", "box:/nope", str(tmp_path / "x")).returncode == 1
    events = subprocess.Popen([docker.binary, "events", "--filter", "type=container", "--filter", "event=die",
                               "--format", "{{.Action}} {{.Actor.Attributes.name}}"], stdout=subprocess.PIPE,
                              text=True, env=docker.env)
    time.sleep(0.5)
    docker("run", "--rm", "--name", "brief", api_image, "true", check=True)
    assert events.stdout.readline() == "die brief\n"  # type: ignore[union-attr]
    events.terminate()
    events.wait(timeout=10)


def test_images_tag_push_save_load_rmi(docker: Docker, rootlet: RunRootlet, api_image: str, registry: str,
                                       tmp_path: Path) -> None:
    target = f"{registry}/pushed/alpine:api"
    docker("tag", api_image, target, check=True)
    pushed = docker("push", target, check=True)
    assert "digest: sha256:" in pushed.stdout
    assert docker("rmi", target, check=True).stdout.strip() == f"Untagged: {target}"
    assert docker("pull", target, check=True).returncode == 0
    archive = tmp_path / "img.tar"
    docker("save", "-o", str(archive), target, check=True)
    docker("rmi", target, check=True)
    loaded = docker("load", "-i", str(archive), check=True)
    assert f"Loaded image: {target}" in loaded.stdout
    inspect = json.loads(docker("image", "inspect", target, check=True).stdout)[0]
    assert inspect["Id"] == rootlet("image", "inspect", "--format", "{{.Id}}", target).stdout.strip()
    assert docker("rmi", "nosuch:1").returncode == rootlet("rmi", "nosuch:1").returncode == 1
    assert docker("rmi", target, check=True).stdout.strip() == f"Untagged: {target}"  # the image has another name
    docker("run", "--name", "user", api_image, "true", check=True)
    refused = docker("rmi", api_image)
    assert refused.returncode == 1 and "in use" in refused.stderr  # a 409, docker's CLI's exit 1
    assert rootlet("rmi", api_image).returncode == 2  # podman's code for the same refusal
    history = docker("history", api_image, check=True).stdout
    assert "ADD" in history or "IMAGE" in history


def test_volume_network_and_system_df(docker: Docker, rootlet: RunRootlet, api_image: str) -> None:
    docker("volume", "create", "v1", check=True)
    assert docker("volume", "ls", "-q").stdout.split() == rootlet("volume", "ls", "-q").stdout.split() == ["v1"]
    assert docker("volume", "inspect", "-f", "{{.Driver}}", "v1").stdout.strip() == "local"
    docker("volume", "rm", "v1", check=True)
    assert docker("volume", "inspect", "v1").returncode == 1
    assert docker("network", "ls", "--format", "{{.Name}}").stdout.split() == ["bridge", "host", "none"]
    docker("network", "create", "--subnet", "10.89.77.0/24", "n1", check=True)
    assert sorted(docker("network", "ls", "--format", "{{.Name}}").stdout.split()) == ["bridge", "host", "n1", "none"]
    assert rootlet("network", "ls", "--format", "{{.Name}}").stdout.split() == ["n1"]
    assert docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "n1").stdout.strip() == \
        "10.89.77.0/24"
    assert docker("network", "create", "n1").returncode == 1  # a 409: it exists
    assert docker("network", "rm", "bridge").returncode == 1
    docker("network", "rm", "n1", check=True)
    df = docker("system", "df", check=True).stdout
    assert df.splitlines()[1].split()[:2] == ["Images", "1"]


def test_build_with_the_classic_builder(docker: Docker, api_image: str, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "f.txt").write_text("from the context\n")
    (context / "Dockerfile").write_text(f"FROM {api_image}\nRUN echo step-output\nCOPY f.txt /f.txt\n"
                                        'CMD ["cat", "/f.txt"]\n')
    built = docker("build", "-t", "built:1", str(context), check=True)
    assert "step-output" in built.stdout and "Successfully built" in built.stdout
    assert docker("run", "--rm", "built:1", check=True).stdout == "from the context\n"
    quiet = docker("build", "-q", str(context), check=True).stdout.strip()
    assert quiet.startswith("sha256:")
    (context / "Dockerfile").write_text(f"FROM {api_image}\nRUN exit 7\n")
    failed = docker("build", str(context))
    assert failed.returncode == 7


def test_docker_20_10_cli(api: Service, api_image: str, tmp_path: Path) -> None:
    if not os.access(DOCKER_20, os.X_OK):
        pytest.skip(f"needs Debian's docker.io CLI at {DOCKER_20} (apt-get install docker.io; never start its daemon)")
    old = Docker(DOCKER_20, docker_env(api, tmp_path))
    assert old("version", "--format", "{{.Client.Version}}").stdout.startswith("20.10")
    ran = old("run", "--rm", api_image, "sh", "-c", "echo twenty; exit 3")
    assert (ran.returncode, ran.stdout) == (3, "twenty\n")
    old("run", "-d", "--name", "old", api_image, "sleep", "300", check=True)
    assert old("exec", "old", "echo", "ok").stdout == "ok\n"
    assert old("ps", "--format", "{{.Names}}").stdout.split() == ["old"]
    old("rm", "-f", "old", check=True)


# --- docker-py -------------------------------------------------------------------------------------

def test_docker_py(api: Service, api_image: str, tmp_path: Path) -> None:
    docker_py = pytest.importorskip("docker", reason="needs docker-py (pip install docker: the test extra)")
    os.environ.update(docker_env(api, tmp_path))  # from_env reads the process's environment
    client = docker_py.from_env()
    try:
        assert client.version()["ApiVersion"] == "1.41"
        assert client.containers.run(api_image, ["echo", "py-hello"], remove=True) == b"py-hello\n"
        with pytest.raises(docker_py.errors.ContainerError):
            client.containers.run(api_image, ["sh", "-c", "exit 3"], remove=True)
        ct = client.containers.run(api_image, ["sh", "-c", "for i in 1 2 3; do echo l$i; sleep 0.1; done"],
                                   detach=True)
        assert b"".join(ct.logs(stream=True, follow=True)) == b"l1\nl2\nl3\n"
        assert ct.wait()["StatusCode"] == 0
        ct.remove()
        ct = client.containers.run(api_image, ["sleep", "300"], detach=True, name="pyctr")
        assert tuple(ct.exec_run(["sh", "-c", "echo exec-out; exit 3"])) == (3, b"exec-out\n")
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            info = tarfile.TarInfo("put.txt")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"data\n"))
        assert ct.put_archive("/tmp", data.getvalue())
        bits, stat = ct.get_archive("/tmp/put.txt")
        with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
            assert tar.extractfile("put.txt").read() == b"data\n"  # type: ignore[union-attr]
        assert stat["name"] == "put.txt"
        ct.remove(force=True)
        pulled = client.images.pull(api_image)
        assert pulled.id.startswith("sha256:")
        image, logs = client.images.build(fileobj=io.BytesIO(f"FROM {api_image}\nRUN echo built\n".encode()),
                                          tag="pybuilt:1")
        assert any("built" in line.get("stream", "") for line in logs)
        assert client.containers.run(image.id, ["echo", "ok"], remove=True) == b"ok\n"
        assert [n.name for n in client.networks.list()] == ["bridge", "host", "none"]
        vol = client.volumes.create("pyvol")
        assert [v.name for v in client.volumes.list()] == ["pyvol"]
        vol.remove()
    finally:
        client.close()
        for key in ("DOCKER_HOST", "DOCKER_CONFIG"):
            os.environ.pop(key, None)


# --- docker-compose --------------------------------------------------------------------------------

def compose(project: Path, env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(["docker-compose", "--ansi", "never", *args], cwd=project, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def compose_env(api: Service, tmp_path: Path) -> dict[str, str]:
    if shutil.which("docker-compose") is None:
        pytest.skip("needs docker-compose (apt-get install docker-compose)")
    return docker_env(api, tmp_path)


def test_compose_up_ps_logs_exec_down(compose_env: dict[str, str], api_image: str, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "docker-compose.yml").write_text(f"""version: "3"
services:
  web:
    image: {api_image}
    command: sh -c "trap 'exit 0' TERM; echo web-started; sleep 300 & wait"
    network_mode: bridge
  worker:
    image: {api_image}
    command: sh -c "trap 'exit 0' TERM; echo worker-up; sleep 300 & wait"
    network_mode: bridge
    volumes:
      - data:/data
volumes:
  data:
""")
    up = compose(project, compose_env, "up", "-d")
    assert up.returncode == 0, up.stderr
    ps = compose(project, compose_env, "ps")
    assert ps.stdout.count("Up") == 2, ps.stdout
    logs = compose(project, compose_env, "logs", "--no-color")
    assert "web-started" in logs.stdout and "worker-up" in logs.stdout
    ex = compose(project, compose_env, "exec", "-T", "worker", "sh", "-c", "echo x > /data/x; cat /data/x")
    assert (ex.returncode, ex.stdout) == (0, "x\n")
    down = compose(project, compose_env, "down", "-v")
    assert down.returncode == 0, down.stderr
    assert "Removing volume proj_data" in down.stderr


def test_compose_services_reach_each_other_by_name(compose_env: dict[str, str], api_image: str,
                                                   tmp_path: Path) -> None:
    project = tmp_path / "named"
    project.mkdir()
    (project / "docker-compose.yml").write_text(f"""version: "3"
services:
  server:
    image: {api_image}
    command: sh -c "echo pong > /tmp/index.html; httpd -f -p 8080 -h /tmp"
  client:
    image: {api_image}
    command: sh -c "sleep 300"
""")
    try:
        up = compose(project, compose_env, "up", "-d")
        assert up.returncode == 0, up.stderr
        got = compose(project, compose_env, "exec", "-T", "client", "wget", "-qO-", "http://server:8080/")
        assert got.stdout == "pong\n"
    finally:
        compose(project, compose_env, "down", "-v")
