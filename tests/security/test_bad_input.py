"""Bad input gets a one-line error that names what is wrong (exit 125), never a raw Python error.

The table holds the inputs that used to escape as ``internal error: …``; the fuzz runs every
``run`` flag with hostile values through the real parser and engine (in this process, so it is
fast) and checks that none reaches the error boundary as an unexpected exception.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RunRootlet
from tests.security.conftest import push_image
from tests.support.layouts import busybox_members

pytestmark = pytest.mark.system


def _one_clean_error(proc: object, *fragments: str, code: int = 125) -> None:
    err = proc.stderr  # type: ignore[attr-defined]
    assert proc.returncode == code, (proc.returncode, err)  # type: ignore[attr-defined]
    assert "internal error" not in err and "Traceback" not in err, err
    first = err.splitlines()[0] if err else ""
    assert first.startswith("Error: "), err
    for fragment in fragments:
        assert fragment in first, err


def test_bad_flag_values_are_named(rootlet: RunRootlet, tiny: str, tmp_path: Path) -> None:
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"\xff\xfe\x00garbage\x80")
    cases = [
        (["--env-file", str(binary)], "--env-file"),
        (["--log-opt", "max-size=inf"], "max-size"),
        (["--log-opt", "max-size=nan"], "max-size"),
        (["--log-opt", "max-size=1e400"], "max-size"),
        (["--ulimit", "nproc=18446744073709551616"], "--ulimit"),
        (["--user", "4294967296"], "--user"),
        (["--group-add", "99999999999"], "--group-add"),
        (["-e", "A=\x01"], None),  # not an error: a control character is a valid value
    ]
    for flags, fragment in cases:
        proc = rootlet("run", "--rm", *flags, tiny, "true")
        if fragment is None:
            assert proc.returncode == 0, proc.stderr
            continue
        _one_clean_error(proc, fragment)


@pytest.mark.parametrize("entrypoint, fragment", [
    (["/bin/sh", "-c", "echo hi\u0000there"], "NUL"),
    ("/bin/sh -c true", "Entrypoint is not a list"),
])
def test_a_malformed_image_config_is_named(rootlet: RunRootlet, registry: str, tmp_path: Path,
                                           entrypoint: object, fragment: str) -> None:
    image = push_image(registry, tmp_path, "security/bad-config", busybox_members(),
                       config={"Entrypoint": entrypoint, "Cmd": None})
    rootlet("pull", "-q", image, check=True)
    _one_clean_error(rootlet("run", "--rm", image), fragment)


def test_exec_in_a_missing_workdir_fails_like_podman(rootlet: RunRootlet, tiny: str) -> None:
    rootlet("run", "-d", "--name", "w", tiny, "sleep", "60", check=True)
    try:
        proc = rootlet("exec", "-w", "/nonexistent", "w", "true")
        _one_clean_error(proc, "/nonexistent", code=127)
        assert rootlet("exec", "w", "ls", "-d", "/nonexistent").returncode != 0  # not created
    finally:
        rootlet("rm", "-f", "w")


@pytest.mark.parametrize("template", ["{{", "}}", "{{.Names", "x {{json}} y"])
def test_a_broken_format_template_is_refused(rootlet: RunRootlet, tiny: str, template: str) -> None:
    rootlet("create", "--name", "t", tiny, "true", check=True)
    _one_clean_error(rootlet("ps", "-a", "--format", template), "template")


HOSTILE = ["", " ", "\n", "=", ":", "::::", "/", "../..", "-1", "0", "1e400", "nan", "inf", "9" * 30,
           "\udcff", "é", "x" * 5000, "a=b=c", "[", '["x"', "{{", "%s", "--", "-", "host-gateway", "0:0:0"]


def test_no_flag_value_reaches_the_boundary_as_an_internal_error(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Every value flag of ``run``/``create`` × hostile values, through the real parser and engine
    up to the image lookup (an image that is not there: nothing is pulled or started)."""
    from rootlet.cli.main import main
    from rootlet.cli.run import RUN_FLAGS

    root = str(tmp_path / "store")
    seen = 0
    for flag in RUN_FLAGS:
        if flag.kind == "bool" or flag.dest in ("help", "pull"):
            continue
        for value in HOSTILE:
            code = main(["--root", root, "create", "--pull=never", f"{flag.names[-1]}={value}", "no/such:image"])
            err = capsys.readouterr().err
            assert code == 125, (flag.names, value, err)
            assert "internal error" not in err and "Traceback" not in err, (flag.names, value, err)
            seen += 1
    assert seen > 500
    for args in (["create"], ["create", "--nope"], ["exec"], ["exec", "x"], ["run", "-"], ["run", "--env"]):
        code = main(["--root", root, *args])
        err = capsys.readouterr().err
        assert code == 125 and "internal error" not in err, (args, err)
    assert json.loads(json.dumps(seen)) == seen
