"""``--change`` instructions: each edits the image config as docker's and podman's do."""

from __future__ import annotations

import pytest

from rootlet.registry.errors import UsageError
from rootlet.runtime.image.changes import apply_changes


def test_exec_and_shell_forms_of_cmd_and_entrypoint() -> None:
    config = apply_changes({}, ['CMD ["a", "b c"]', "ENTRYPOINT run it"])
    assert config["Cmd"] == ["a", "b c"]
    assert config["Entrypoint"] == ["/bin/sh", "-c", "run it"]
    # Not a JSON array of strings: docker's rule makes it the shell form.
    assert apply_changes({}, ["CMD [1, 2]"])["Cmd"] == ["/bin/sh", "-c", "[1, 2]"]


def test_env_replaces_a_name_and_keeps_the_others() -> None:
    config = apply_changes({"Env": ["PATH=/bin", "A=old"]}, ['ENV A=new B="two words"', "ENV C plain value"])
    assert config["Env"] == ["PATH=/bin", "A=new", "B=two words", "C=plain value"]


def test_labels_ports_volumes_onbuild_and_the_simple_ones() -> None:
    config = apply_changes({"Labels": {"x": "1"}}, [
        "LABEL a=b c=d", "EXPOSE 80 53/udp", 'VOLUME ["/data", "/logs"]', "VOLUME /cache",
        "ONBUILD RUN make", "USER 1000:1000", "WORKDIR /srv", "WORKDIR app", "STOPSIGNAL SIGINT",
        "stopsignal 9",
    ])
    assert config["Labels"] == {"x": "1", "a": "b", "c": "d"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert set(config["Volumes"]) == {"/data", "/logs", "/cache"}
    assert config["OnBuild"] == ["RUN make"]
    assert config["User"] == "1000:1000" and config["WorkingDir"] == "/srv/app"
    assert config["StopSignal"] == "9"


@pytest.mark.parametrize("change", [
    "RUN make", "FROM alpine", "", "EXPOSE http", "EXPOSE 70000", "EXPOSE 80/icmp", "VOLUME relative",
    "ENV", "ENV =x", "LABEL", "STOPSIGNAL SIGNOPE", "USER", "ONBUILD", "CMD", 'ENV A="unclosed',
])
def test_bad_instructions_are_usage_errors(change: str) -> None:
    with pytest.raises(UsageError):
        apply_changes({}, [change])
