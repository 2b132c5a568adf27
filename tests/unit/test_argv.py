"""The fast flag table of run/create/exec (``rootlet.cli.argv``): parsing as docker's pflag does."""

from __future__ import annotations

import pytest

from rootlet.cli.argv import Parsed, parse
from rootlet.cli.exec import EXEC_FLAGS
from rootlet.cli.run import CREATE_FLAGS, RUN_FLAGS
from rootlet.registry.errors import UsageError


@pytest.mark.parametrize("flags", [RUN_FLAGS, CREATE_FLAGS, EXEC_FLAGS], ids=["run", "create", "exec"])
def test_no_flag_lands_on_an_attribute_of_the_parsed_record(flags: tuple) -> None:
    """Values are read as attributes (``p.rm``); a dest named like a method of the record
    (``replace``) would read the method, always true, and never the flag."""
    taken = set(dir(Parsed))
    assert [f.dest for f in flags if f.dest in taken] == []


def test_clusters_inline_values_and_the_end_of_options() -> None:
    p = parse(["-it", "-eA=1", "--env=B=2", "--rm=false", "--name", "x", "img", "--rm", "cmd"], RUN_FLAGS, "run")
    assert (p.interactive, p.tty, p.env, p.rm, p.name) == (True, True, ["A=1", "B=2"], False, "x")
    assert p.positional == ["img", "--rm", "cmd"]
    assert parse(["--replace", "img"], RUN_FLAGS, "run").replace_existing is True


@pytest.mark.parametrize("argv, message", [(["--bogus", "img"], "unknown flag: --bogus"),
                                           (["-Q", "img"], "unknown shorthand flag"),
                                           (["--rm=maybe", "img"], "must be true or false"),
                                           (["--name"], "flag needs an argument: --name")])
def test_bad_flags_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(argv, RUN_FLAGS, "run")
