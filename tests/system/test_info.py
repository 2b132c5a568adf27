"""`rootlet info`: the rootless set-up as rootlet sees it, in both output forms."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.conftest import RunRootlet

pytestmark = pytest.mark.system


def test_info_json_describes_id_maps_and_checks(rootlet: RunRootlet) -> None:
    proc = rootlet("info", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["host"]["uid"] == os.getuid()
    first = doc["host"]["plan"]["uid_map"][0]
    assert first["inner"] == 0 and first["outer"] == os.getuid()
    assert "root" in doc["store"]


def test_info_table_lists_each_check_with_a_verdict(rootlet: RunRootlet) -> None:
    proc = rootlet("info")
    assert proc.returncode == 0, proc.stderr
    checks = [line.strip() for line in proc.stdout.splitlines() if line.lstrip().startswith("[")]
    assert checks and all(re.match(r"\[(ok|!!)\] [\w /.-]+: \S", line) for line in checks), checks
    names = {line.split("] ", 1)[1].split(":", 1)[0] for line in checks}
    assert {"subuid", "newuidmap", "/dev/fuse", "kernel overlay"} <= names


def test_version_command_matches_the_flag_and_the_installed_distribution(rootlet: RunRootlet) -> None:
    """``rootlet version`` as podman's: the installed version, Python's and the platform; a
    template picks one field, and ``--version`` says the same version."""
    import platform
    from importlib.metadata import version

    table = rootlet("version")
    assert table.returncode == 0, table.stderr
    lines = dict(line.split(":", 1) for line in table.stdout.splitlines())
    assert lines["Version"].strip() == version("rootlet")
    assert lines["Python Version"].strip() == platform.python_version()
    assert lines["OS/Arch"].strip().startswith("linux/")
    assert rootlet("version", "--format", "{{.Client.Version}}").stdout == version("rootlet") + "\n"
    assert json.loads(rootlet("version", "--format", "json").stdout)["Client"]["Version"] == version("rootlet")
    assert rootlet("--version").stdout == f"rootlet version {version('rootlet')}\n"


def _bash_complete(rootlet_env: dict[str, str], words: str) -> list[str]:
    """What bash completes for the command line ``words`` (the last word is being typed), with the
    script of ``rootlet completion bash`` loaded: the real shell, calling the real command back.
    The script runs ``rootlet`` from PATH (through env), as an installed rootlet is found."""
    import os
    import shlex
    import subprocess

    from tests.conftest import rootlet_command

    command = rootlet_command()
    if len(command) != 1 or os.path.basename(command[0]) != "rootlet":
        pytest.skip("the completion script calls `rootlet` from PATH: needs the installed command")
    env = dict(rootlet_env, PATH=os.path.dirname(command[0]) + os.pathsep + rootlet_env["PATH"])
    script = (f"source <({shlex.quote(command[0])} completion bash)\n"
              f"COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n"
              "_rootlet_completion rootlet\n"
              "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_bash_completion_completes_commands_and_flags(rootlet_env: dict[str, str]) -> None:
    assert sorted(_bash_complete(rootlet_env, "rootlet im")) == ["image", "images", "import"]
    assert "--filter" in _bash_complete(rootlet_env, "rootlet ps --fi")
    assert {"run", "rm", "rmi"} <= set(_bash_complete(rootlet_env, "rootlet r"))


@pytest.mark.parametrize("shell", ["zsh", "fish", "powershell"])
def test_completion_scripts_for_other_shells_call_rootlet_back(rootlet: RunRootlet, shell: str) -> None:
    proc = rootlet("completion", shell)
    assert proc.returncode == 0 and "_ROOTLET_COMPLETE" in proc.stdout, proc.stderr


def test_completion_refuses_an_unknown_shell_with_a_hint(rootlet: RunRootlet) -> None:
    proc = rootlet("completion", "tcsh")
    assert proc.returncode == 125 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["Error: unsupported shell 'tcsh' for completion",
                                        "Hint: use bash, zsh, fish or powershell"]
