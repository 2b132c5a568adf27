"""The builder's pure parts: config instructions, RUN's argv and mounts, COPY's archive test."""

from __future__ import annotations

from pathlib import Path

import pytest

from rootlet.registry.errors import BuildError
from rootlet.runtime.build import config as configs
from rootlet.runtime.build.copystep import is_archive, parse_chmod
from rootlet.runtime.build.dockerfile import parse
from rootlet.runtime.build.runstep import parse_mounts, parse_secrets, shell_argv


def _apply(lines: str, config: dict | None = None) -> tuple[dict, list[str]]:
    config = {} if config is None else config
    shell = configs.DEFAULT_SHELL
    history = []
    for inst in parse("FROM x\n" + lines).instructions[1:]:
        line, shell = configs.apply(inst, config, configs.env_map(config) | {"V": "9"}, shell, "\\")
        history.append(line)
    return config, history


def test_entrypoint_drops_the_base_images_cmd_and_cmd_after_it_stays() -> None:
    config, _ = _apply('ENTRYPOINT ["/app"]\n', {"Cmd": ["/bin/sh"]})
    assert config["Entrypoint"] == ["/app"] and "Cmd" not in config
    config, _ = _apply('ENTRYPOINT ["/app"]\nCMD ["--serve"]\n', {"Cmd": ["/bin/sh"]})
    assert config["Cmd"] == ["--serve"]


def test_shell_form_goes_through_the_stages_shell() -> None:
    config, _ = _apply('SHELL ["/bin/bash", "-eo", "pipefail", "-c"]\nCMD echo $HOME\n')
    assert config["Cmd"] == ["/bin/bash", "-eo", "pipefail", "-c", "echo $HOME"]


def test_env_replaces_in_place_and_history_says_nop() -> None:
    config, history = _apply("ENV A=1 B=$V\nENV A=2\n", {"Env": ["PATH=/bin"]})
    assert config["Env"] == ["PATH=/bin", "A=2", "B=9"]
    assert history[0] == "/bin/sh -c #(nop) ENV A=1 B=9"


def test_expose_volume_stopsignal_user_workdir_label() -> None:
    config, _ = _apply("EXPOSE 80 53/udp\nVOLUME /a /b\nSTOPSIGNAL int\nUSER app:grp\nWORKDIR /srv\nWORKDIR sub\n"
                       'LABEL a=b "c d"="e f"\n')
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Volumes"] == {"/a": {}, "/b": {}}
    assert config["StopSignal"] == "SIGINT" and config["User"] == "app:grp"
    assert config["WorkingDir"] == "/srv/sub" and config["Labels"] == {"a": "b", "c d": "e f"}


@pytest.mark.parametrize("line, phrase", [
    ("EXPOSE 70000", "out of range"), ("EXPOSE 80/icmp", "invalid port"), ("STOPSIGNAL SIGNOPE", "unknown signal"),
    ("HEALTHCHECK --interval=fast CMD true", "not a duration"), ("HEALTHCHECK --retries=0 CMD true", "positive"),
    ("HEALTHCHECK true", "needs CMD"), ("ONBUILD FROM x", "cannot trigger"),
])
def test_bad_config_instructions_say_what_is_wrong(line: str, phrase: str) -> None:
    with pytest.raises(BuildError, match=phrase):
        _apply(line + "\n")


def test_healthcheck_is_stored_as_docker_stores_it() -> None:
    config, _ = _apply("HEALTHCHECK --interval=5s --retries=2 CMD curl -f http://localhost/\n")
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 5_000_000_000,
                                     "Retries": 2}
    config, _ = _apply('HEALTHCHECK CMD ["/bin/check", "x"]\n')
    assert config["Healthcheck"] == {"Test": ["CMD", "/bin/check", "x"]}
    config, _ = _apply("HEALTHCHECK NONE\nONBUILD RUN make\n")
    assert config["Healthcheck"] == {"Test": ["NONE"]} and config["OnBuild"] == ["RUN make"]


def test_run_heredoc_alone_is_the_script_and_with_a_command_is_fed_to_it() -> None:
    insts = parse("FROM x\nRUN <<EOF\necho a\nEOF\nRUN cat <<EOF > /f\nhi\nEOF\nRUN [\"ls\", \"-l\"]\n").instructions
    argv, _ = shell_argv(insts[1].args, insts[1].heredocs, insts[1].json, configs.DEFAULT_SHELL)
    assert argv == ["/bin/sh", "-c", "echo a\n"]
    argv, _ = shell_argv(insts[2].args, insts[2].heredocs, insts[2].json, configs.DEFAULT_SHELL)
    assert argv == ["/bin/sh", "-c", "cat <<EOF > /f\nhi\nEOF\n"]
    argv, line = shell_argv(insts[3].args, insts[3].heredocs, insts[3].json, configs.DEFAULT_SHELL)
    assert argv == ["ls", "-l"] and line == "ls -l"


def _mounts(specs: list[str], tmp_path: Path, secrets: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    (tmp_path / "ctx").mkdir(exist_ok=True)
    return parse_mounts(specs, what="RUN", context=str(tmp_path / "ctx"), cache_root=str(tmp_path / "cache"),
                        secrets=secrets or {}, workdir="/w", from_files=lambda ref, path: f"{tmp_path}/ctx{path}")


def test_run_mounts_become_engine_mounts(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "src").mkdir()
    (tmp_path / "ctx" / "out").mkdir()
    got = _mounts(["type=cache,target=/var/cache/apt", "type=secret,id=tok", "type=bind,source=src,target=rel",
                   "type=bind,from=build,source=/out,target=/o", "type=tmpfs,target=/t,size=1m"], tmp_path,
                  {"tok": "/s/tok"})
    cache, secret, bind, from_bind, tmpfs = got.mounts
    assert cache.startswith(f"type=bind,source={tmp_path}/cache/") and cache.endswith(",target=/var/cache/apt")
    assert secret == "type=bind,source=/s/tok,target=/run/secrets/tok,ro"
    assert bind == f"type=bind,source={tmp_path}/ctx/src,target=/w/rel,ro"
    assert from_bind == f"type=bind,source={tmp_path}/ctx/out,target=/o,ro"
    assert tmpfs == "type=tmpfs,target=/t,tmpfs-size=1m"
    assert got.placeholders == ("run/secrets/tok",)
    assert _mounts(["type=secret,id=absent"], tmp_path).mounts == ()  # optional: not mounted, as docker


@pytest.mark.parametrize("spec, phrase", [
    ("type=secret,id=absent,required", "is required"), ("type=ssh", "ssh is not supported"),
    ("type=bind,source=../x", "outside the build context"), ("type=cache", "needs target"),
    ("type=bind,source=.,rw", "read-write"), ("type=cache,target=/c,from=x", "bind mounts only"),
    ("type=cache,target=/c,bogus=1", "unsupported --mount option.s. bogus"), ("type=nfs,target=/x", "unknown mount"),
])
def test_bad_run_mounts_are_refused(spec: str, phrase: str, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=phrase):
        _mounts([spec], tmp_path)


def test_secrets_from_files_and_the_environment(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    out, made = parse_secrets((f"id=a,src={f}", "id=b,env=TOKEN"), {"TOKEN": "t0k"}, str(tmp_path))
    assert out["a"] == str(f) and Path(out["b"]).read_text() == "t0k" and made == [out["b"]]
    assert Path(out["b"]).stat().st_mode & 0o077 == 0
    for bad in ("id=a", "src=/x", f"id=a,src={tmp_path}/none", "id=a,env=UNSET"):
        with pytest.raises(BuildError):
            parse_secrets((bad,), {}, str(tmp_path))


def test_archives_are_known_by_their_first_bytes(tmp_path: Path) -> None:
    import gzip
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("x"))
    (tmp_path / "plain.tar").write_bytes(buf.getvalue())
    (tmp_path / "x.tgz").write_bytes(gzip.compress(buf.getvalue()))
    (tmp_path / "text.tar.gz").write_text("not an archive")
    assert is_archive(str(tmp_path / "plain.tar")) and is_archive(str(tmp_path / "x.tgz"))
    assert not is_archive(str(tmp_path / "text.tar.gz"))
    assert parse_chmod("755", "COPY") == 0o755
    with pytest.raises(BuildError, match="invalid --chmod"):
        parse_chmod("rwx", "COPY")
