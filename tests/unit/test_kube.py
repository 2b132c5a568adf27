"""kube: the YAML guard, the play plan from manifests, and generate's objects against the
Kubernetes schemas (kubernetes-validate, offline)."""

from __future__ import annotations

import pytest

from rootlet.registry.errors import KubeError
from rootlet.runtime.container.record import ContainerConfig, Mount
from rootlet.runtime.kube.generate import Member, dns_label, generate
from rootlet.runtime.kube.manifests import dump_documents, load_documents
from rootlet.runtime.kube.play import plan, teardown
from rootlet.runtime.net.ports import PortMapping

APP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {MODE: production, app.conf: "listen 80\\n"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
      - {name: setup, image: busybox, command: [sh, -c, "echo init"]}
      containers:
      - name: app
        image: busybox
        command: [httpd]
        args: [-f, -p, "80"]
        env:
        - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
        - {name: PLAIN, value: "1"}
        envFrom: [{configMapRef: {name: settings}, prefix: CFG_}]
        workingDir: /srv
        volumeMounts:
        - {name: conf, mountPath: /etc/app}
        - {name: store, mountPath: /data, readOnly: true}
        - {name: scratch, mountPath: /scratch}
        securityContext: {runAsUser: 1000, runAsGroup: 1000, readOnlyRootFilesystem: true,
                          capabilities: {drop: [NET_RAW]}, seLinuxOptions: {level: "s0"}}
      volumes:
      - {name: conf, configMap: {name: settings, items: [{key: app.conf, path: app.conf}]}}
      - {name: store, persistentVolumeClaim: {claimName: data}}
      - {name: scratch, emptyDir: {}}
"""


def test_a_deployment_plans_its_replicas_with_init_containers_configs_and_volumes() -> None:
    p = plan(load_documents(APP, "app.yaml"), "app.yaml")
    assert [pod.name for pod in p.pods] == ["web-pod-0", "web-pod-1"] and p.claims == ["data"]
    pod = p.pods[0]
    assert [c.name for c in pod.init] == ["setup"] and pod.init[0].run["restart"] == "no"
    app = pod.containers[0]
    assert app.run["name"] == "web-pod-0-app" and app.run["entrypoint"] == '["httpd"]'
    assert app.run["command"] == ("-f", "-p", "80") and app.run["workdir"] == "/srv"
    assert app.run["env"] == ("CFG_MODE=production", "CFG_app.conf=listen 80\n", "PASSWORD=s3cret", "PLAIN=1")
    assert app.run["volumes"] == ("data:/data:ro", "web-pod-0-scratch:/scratch")
    assert app.file_mounts == [("conf", "/etc/app", True, "")]
    assert pod.files[0].files == {"app.conf": b"listen 80\n"} and pod.shared_volumes == ["web-pod-0-scratch"]
    assert app.run["user"] == "1000:1000" and app.run["read_only"] and app.run["cap_drop"] == ("NET_RAW",)
    assert app.run["restart"] == "always"
    assert any("seLinuxOptions is not applied" in w for w in p.warnings)
    down = teardown(load_documents(APP, "app.yaml"), "app.yaml")
    assert [(q.name, q.shared_volumes) for q in down.pods] == [("web-pod-0", ["web-pod-0-scratch"]),
                                                              ("web-pod-1", ["web-pod-1-scratch"])]


@pytest.mark.parametrize("text, phrase", [
    ("kind: Frobnicator\nmetadata: {name: x}\n", "unsupported kind 'Frobnicator'"),
    ("kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b, envFrom: [{configMapRef: {name: nope}}]}]}\n",
     "ConfigMap 'nope' is not defined"),
    ("kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b}], volumes: [{name: h, hostPath: "
     "{path: /no/such/file, type: File}}]}\n", "/no/such/file does not exist"),
    ("kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b, ports: [{containerPort: 'http'}]}]}\n",
     "containerPort must be an integer"),
    ("kind: Pod\nmetadata: {name: x}\nspec: {containers: []}\n", "containers is required"),
    ("kind: Pod\nmetadata: {}\nspec: {containers: [{name: a, image: b}]}\n", "name is required"),
    ("kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b, volumeMounts: [{name: v, mountPath: /v}]}]}\n",
     "volume 'v' is not in the pod's volumes"),
    ("- just\n- a list\n", "not a mapping"),
    ("kind: Pod\nmetadata: {name: ../../escape}\nspec: {containers: [{name: a, image: b}]}\n", "not a DNS subdomain"),
    ("kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b}], volumes: [{name: ../v, emptyDir: {}}]}\n",
     "not a DNS label"),
    ("kind: Pod\nmetadata: {name: x\n", "not valid YAML"),
])
def test_bad_manifests_name_the_document_and_the_field(text: str, phrase: str) -> None:
    with pytest.raises(KubeError, match=phrase):
        plan(load_documents(text, "bad.yaml"), "bad.yaml")


def test_down_never_takes_a_name_for_a_path() -> None:
    text = "kind: Deployment\nmetadata: {name: ../../home}\nspec: {template: {spec: {containers: []}}}\n"
    with pytest.raises(KubeError, match="not a DNS subdomain"):
        teardown(load_documents(text, "x.yaml"), "x.yaml")


def test_a_billion_laughs_document_is_refused_without_expanding_it() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    with pytest.raises(KubeError, match="more than 200000 nodes"):
        load_documents("\n".join(lines) + "\n", "bomb.yaml")
    deep = "a: " + "[" * 100 + "]" * 100 + "\n"
    with pytest.raises(KubeError, match="nested more than"):
        load_documents(deep, "deep.yaml")
    with pytest.raises(KubeError, match="not valid YAML"):
        load_documents("!!python/object/apply:os.system ['true']\n", "evil.yaml")


def _container(**fields: object) -> ContainerConfig:
    base = dict(id="c" * 64, name="my_web", created=0.0, image_id="i" * 64,
                image_name="127.0.0.1:5000/library/busybox:latest", layers=[], argv=["httpd", "-f"],
                entrypoint=["httpd"], cmd=["-f"], env=["PATH=/bin", "HOSTNAME=x", "MODE=prod"], cwd="/srv",
                ports=[PortMapping(host_ip="", host_port=8080, container_port=80)],
                mounts=[Mount(type="volume", destination="/data", source="/s", name="data"),
                        Mount(type="bind", destination="/etc/x", source="/etc", readonly=True),
                        Mount(type="tmpfs", destination="/run/t")],
                caps=["CAP_CHOWN"], labels={"tier": "front", "bad label!": "x"}, user="1000")
    base.update(fields)
    return ContainerConfig(**base)


@pytest.mark.parametrize("kind", ["pod", "deployment", "daemonset", "job"])
def test_generated_objects_pass_the_kubernetes_schemas(kind: str) -> None:
    import kubernetes_validate

    member = Member(config=_container(), image_config={"Env": ["PATH=/bin"], "Cmd": ["sh"]})
    docs = generate("my_web", [member], None, kind, 3 if kind == "deployment" else 1, service=True)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
    workload = docs[0]
    spec = workload["spec"] if kind == "pod" else workload["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert c["name"] == "my-web" and c["command"] == ["httpd"] and c["args"] == ["-f"]
    assert c["env"] == [{"name": "MODE", "value": "prod"}] and c["workingDir"] == "/srv"
    assert c["ports"] == [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]
    assert c["securityContext"]["runAsUser"] == 1000 and "KILL" in c["securityContext"]["capabilities"]["drop"]
    assert {v["name"]: list(v)[1] for v in spec["volumes"]} == {
        "data-pvc": "persistentVolumeClaim", "host-etc": "hostPath", "tmpfs-run-t": "emptyDir"}
    meta = workload["metadata"] if kind == "pod" else workload["spec"]["template"]["metadata"]
    assert meta["labels"] == {"app": "my-web-pod", "tier": "front"} and meta["annotations"] == {"bad label!": "x"}
    assert docs[1]["kind"] == "Service" and docs[1]["spec"]["ports"][0]["port"] == 80


def test_generate_then_plan_gives_back_the_same_container() -> None:
    member = Member(config=_container(), image_config={"Env": ["PATH=/bin"], "Cmd": ["sh"]})
    text = dump_documents(generate("my_web", [member], None))
    p = plan(load_documents(text, "gen.yaml"), "gen.yaml")
    run = p.pods[0].containers[0].run
    assert p.pods[0].name == "my-web-pod" and p.pods[0].publish == ["8080:80/tcp"]
    assert run["image"] == "127.0.0.1:5000/library/busybox:latest" and run["env"] == ("MODE=prod",)
    assert run["entrypoint"] == '["httpd"]' and run["command"] == ("-f",) and run["user"] == "1000"
    assert run["volumes"] == ("data:/data", "/etc:/etc/x:ro") and run["tmpfs"] == ("/run/t",)


def test_names_become_dns_labels() -> None:
    assert dns_label("My_App.v2") == "my-app-v2"
    with pytest.raises(KubeError):
        dns_label("___")


def test_hostpaths_that_may_be_created_are_made_at_play_time_not_while_planning(tmp_path) -> None:  # noqa: ANN001
    text = (f"kind: Pod\nmetadata: {{name: hp}}\nspec:\n  containers: [{{name: a, image: b, volumeMounts: "
            f"[{{name: d, mountPath: /d}}]}}]\n  volumes: [{{name: d, hostPath: {{path: {tmp_path}/new, "
            "type: DirectoryOrCreate}}]\n")
    pod = plan(load_documents(text, "hp.yaml"), "hp.yaml").pods[0]
    assert pod.host_paths == [(f"{tmp_path}/new", "DirectoryOrCreate")] and not (tmp_path / "new").exists()
    assert pod.containers[0].run["volumes"] == (f"{tmp_path}/new:/d",)
    with pytest.raises(KubeError, match="unknown type 'Dir'"):
        plan(load_documents(text.replace("DirectoryOrCreate", "Dir"), "hp.yaml"), "hp.yaml")
