"""kube generate and kube play through the real rootlet command: a container described, the YAML
checked against the Kubernetes schemas and played back to the same container; hand-written
manifests (a Deployment with a Service, a Pod with a ConfigMap volume and an init container, a
Job) played and taken down with nothing left; bad files refused with nothing made."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, free_port

pytestmark = pytest.mark.system


@pytest.fixture
def clean(rootlet: RunRootlet):  # noqa: ANN201
    yield
    rootlet("pod", "rm", "-f", "-a")
    rootlet("rm", "-f", "-a")


def _inspect(rootlet: RunRootlet, name: str) -> dict:
    return json.loads(rootlet("inspect", "--type", "container", name, check=True).stdout)[0]


def test_generate_validates_and_plays_back_the_same_container(rootlet: RunRootlet, busybox: str, tmp_path: Path,
                                                            clean: None) -> None:
    import kubernetes_validate
    import yaml

    port = free_port()
    rootlet("volume", "create", "kdata", check=True)
    rootlet("run", "-d", "--name", "orig", "-p", f"127.0.0.1:{port}:80", "-e", "MODE=prod", "-w", "/srv",
            "-v", "kdata:/data", "--cap-drop", "KILL", "--read-only", "--tmpfs", "/run/t", busybox,
            "httpd", "-f", "-p", "80", "-h", "/", check=True)
    text = rootlet("kube", "generate", "-s", "orig", check=True).stdout
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == ["Pod", "Service"]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
    before = _inspect(rootlet, "orig")
    rootlet("rm", "-f", "orig", check=True)
    (tmp_path / "orig.yaml").write_text(text)
    played = rootlet("kube", "play", str(tmp_path / "orig.yaml"), check=True).stdout
    assert "orig-pod" in played and "orig-pod-orig" in played
    after = _inspect(rootlet, "orig-pod-orig")
    for key in ("Image", "Env", "Cmd", "Entrypoint", "WorkingDir"):
        assert after["Config"][key] == before["Config"][key] or key == "Env" and \
            set(before["Config"]["Env"]) - {e for e in before["Config"]["Env"] if e.startswith("HOSTNAME=")} <= \
            set(after["Config"]["Env"]), key
    assert after["HostConfig"]["ReadonlyRootfs"] and after["HostConfig"]["CapDrop"] == before["HostConfig"]["CapDrop"] == ["CAP_KILL"]
    assert sorted(m["Destination"] for m in after["Mounts"]) == sorted(m["Destination"] for m in before["Mounts"])
    pod = json.loads(rootlet("pod", "inspect", "orig-pod", check=True).stdout)
    assert pod["InfraConfig"]["PortBindings"]["80/tcp"][0]["HostPort"] == str(port)
    rootlet("kube", "play", "--down", str(tmp_path / "orig.yaml"), check=True)
    assert rootlet("pod", "ps", "-q", check=True).stdout == "" and rootlet("ps", "-aq", check=True).stdout == ""
    assert rootlet("volume", "exists", "kdata").returncode == 0  # a claim's data stays, as podman keeps it


MANIFESTS = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: site}}
data:
  index.html: "hello from a configmap\\n"
  GREETING: hi
---
apiVersion: v1
kind: Pod
metadata: {{name: withinit, labels: {{app: withinit}}}}
spec:
  initContainers:
  - name: prepare
    image: {image}
    command: [sh, -c, "echo prepared > /work/ready"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: main
    image: {image}
    command: [sh, -c, "cat /work/ready /site/index.html; echo $GREETING-$SECRET; sleep 300"]
    env:
    - {{name: GREETING, valueFrom: {{configMapKeyRef: {{name: site, key: GREETING}}}}}}
    - {{name: SECRET, valueFrom: {{secretKeyRef: {{name: token, key: value}}}}}}
    volumeMounts:
    - {{name: work, mountPath: /work}}
    - {{name: site, mountPath: /site, readOnly: true}}
  volumes:
  - {{name: work, emptyDir: {{}}}}
  - {{name: site, configMap: {{name: site}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: token}}
data: {{value: czNjcjN0}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: httpd
        image: {image}
        command: [sh, -c, "mkdir -p /www && echo web > /www/index.html && exec httpd -f -p 80 -h /www"]
        ports: [{{containerPort: 80, hostPort: {port}, hostIP: 127.0.0.1}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{selector: {{app: web}}, ports: [{{port: 80}}]}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: once}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: job, image: {image}, command: [sh, -c, "echo job done"]}}]
"""


def _wait_logs(rootlet: RunRootlet, name: str, want: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        logs = rootlet("logs", name, check=True).stdout
        if want in logs or time.monotonic() > deadline:
            return logs
        time.sleep(0.2)


def test_play_pods_deployments_and_jobs_then_down_leaves_nothing(rootlet: RunRootlet, busybox: str,
                                                                tmp_path: Path, clean: None) -> None:
    import urllib.request

    port = free_port()
    path = tmp_path / "app.yaml"
    path.write_text(MANIFESTS.format(image=busybox, port=port))
    proc = rootlet("kube", "play", str(path), check=True)
    assert "a Service is not run by rootlet" in proc.stderr
    pods = set(rootlet("pod", "ps", "--format", "{{.Name}}", check=True).stdout.split())
    assert pods == {"withinit", "web-pod-0", "once-pod"}
    logs = _wait_logs(rootlet, "withinit-main", "hi-s3cr3t")
    assert logs == "prepared\nhello from a configmap\nhi-s3cr3t\n"
    assert _wait_logs(rootlet, "once-pod-job", "job done") == "job done\n"
    deadline = time.monotonic() + 20
    while True:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert body == b"web\n"
    again = rootlet("kube", "play", str(path))
    assert again.returncode == 125 and "exists already" in again.stderr
    rootlet("kube", "play", "--replace", str(path), check=True)
    down = rootlet("kube", "down", str(path), check=True).stdout
    assert "withinit" in down and "web-pod-0" in down
    assert rootlet("pod", "ps", "-q", check=True).stdout == ""
    assert rootlet("ps", "-aq", check=True).stdout == ""
    assert rootlet("volume", "ls", "-q", check=True).stdout == ""


@pytest.mark.parametrize("text, phrase", [
    ("kind: Frob\nmetadata: {name: x}\n", "unsupported kind 'Frob'"),
    ("kind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: a, image: IMG, "
     "envFrom: [{configMapRef: {name: absent}}]}]\n", "ConfigMap 'absent' is not defined"),
    ("kind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: a, image: IMG}]\n  volumes: "
     "[{name: h, hostPath: {path: /no/such/dir, type: Directory}}]\n", "/no/such/dir does not exist"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
     "more than 200000 nodes"),
    ("kind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: a, image: IMG}, {name: b, image: IMG, "
     "command: [/no/such/binary]}]\n", "no/such/binary"),
])
def test_bad_files_fail_in_one_line_and_make_nothing(rootlet: RunRootlet, busybox: str, tmp_path: Path,
                                                     text: str, phrase: str, clean: None) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("IMG", busybox))
    proc = rootlet("kube", "play", str(path))
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert proc.returncode != 0 and len(errors) == 1 and phrase in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert rootlet("pod", "ps", "-q", check=True).stdout == ""
    assert rootlet("ps", "-aq", check=True).stdout == ""
    assert rootlet("volume", "ls", "-q", check=True).stdout == ""


def test_play_build_makes_the_image_from_the_directory_named_after_it(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                                      busybox: str, tmp_path: Path, clean: None) -> None:
    import subprocess

    from tests.conftest import rootlet_command

    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "Containerfile").write_text(f"FROM {busybox}\nRUN echo built by kube play > /built\n")
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: fromsrc}\nspec:\n  containers:\n"
        "  - {name: app, image: myapp, command: [sh, -c, 'cat /built; sleep 300']}\n"
        f"  - {{name: other, image: {busybox}, command: [sleep, '300']}}\n")
    proc = subprocess.run([*rootlet_command(), "kube", "play", "--build", "pod.yaml"], cwd=tmp_path, env=rootlet_env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "busybox/Containerfile" in proc.stderr  # the image without a directory: said, used as it is
    assert _wait_logs(rootlet, "fromsrc-app", "built") == "built by kube play\n"
    assert rootlet("image", "exists", "localhost/myapp:latest").returncode == 0
