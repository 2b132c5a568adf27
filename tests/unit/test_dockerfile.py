"""The Dockerfile parser, variable expansion and ignore files, on the forms docker documents."""

from __future__ import annotations

import pytest

from rootlet.registry.errors import BuildError
from rootlet.runtime.build.dockerfile import parse, split_stages
from rootlet.runtime.build.expand import expand, expand_words, key_values
from rootlet.runtime.build.ignore import IgnoreRules

DOCKERFILE = """\
# syntax=docker/dockerfile:1
# escape=\\
ARG BASE=alpine
FROM $BASE AS build
# a comment
RUN apk add \\
    # a comment inside a continuation
    gcc \\
  && echo done
COPY --chown=1000:1000 --chmod=755 src/ /app/
RUN <<EOF
echo one
echo two
EOF
COPY <<-"END" /etc/conf
	literal $NOT
	END
CMD ["run", "it"]
FROM build
ENTRYPOINT app
"""


def test_directives_continuations_heredocs_flags_and_json_forms() -> None:
    df = parse(DOCKERFILE, "Containerfile")
    assert df.syntax == "docker/dockerfile:1" and df.escape == "\\"
    keywords = [i.keyword for i in df.instructions]
    assert keywords == ["ARG", "FROM", "RUN", "COPY", "RUN", "COPY", "CMD", "FROM", "ENTRYPOINT"]
    run = df.instructions[2]
    assert run.args == "apk add     gcc   && echo done" and run.line == 6
    copy = df.instructions[3]
    assert copy.flag("chown") == "1000:1000" and copy.flag("chmod") == "755" and copy.args == "src/ /app/"
    heredoc = df.instructions[4].heredocs[0]
    assert heredoc.name == "EOF" and heredoc.body == "echo one\necho two\n" and heredoc.expand
    literal = df.instructions[5].heredocs[0]
    assert literal.body == "literal $NOT\n" and not literal.expand
    assert df.instructions[6].json == ("run", "it")
    head, stages = split_stages(df)
    assert [i.keyword for i in head] == ["ARG"] and len(stages) == 2


def test_backtick_escape_directive() -> None:
    df = parse("# escape=`\nFROM scratch\nRUN a `\n  b\n")
    assert df.instructions[1].args == "a   b"


@pytest.mark.parametrize("text, phrase", [
    ("FROM a\nFROB x\n", "Dockerfile:2: unknown instruction: FROB"),
    ("RUN x\n", "no FROM"),
    ("ENV a=b\nFROM x\n", "ENV before the first FROM"),
    ("FROM a\nCOPY --frm=x a b\n", "does not take --frm"),
    ("FROM a\nRUN <<EOF\nnever closed\n", "has no closing EOF"),
    ("FROM a\nSHELL /bin/sh -c\n", "SHELL needs the JSON form"),
    ("FROM a\nWORKDIR\n", "WORKDIR needs arguments"),
    ("# escape=x\nFROM a\n", "invalid escape"),
])
def test_syntax_errors_name_file_line_and_instruction(text: str, phrase: str) -> None:
    with pytest.raises(BuildError) as info:
        parse(text)
    assert phrase in info.value.message


def test_expansion_forms() -> None:
    env = {"A": "x", "EMPTY": "", "SP": "a b"}
    assert expand("$A/${A}/${MISSING:-d}/${EMPTY:-e}/${EMPTY-f}/${A:+alt}/${MISSING:+no}", env) == "x/x/d/e//alt/"
    assert expand("'$A' \"$A\" \\$A", env) == "$A x $A"
    assert expand_words('one "two words" $SP', env) == ["one", "two words", "a", "b"]
    assert key_values('K=$A K2="v 2" K3=${MISSING:-z}', env, "ENV") == [("K", "x"), ("K2", "v 2"), ("K3", "z")]
    assert key_values("OLD value with spaces", env, "ENV") == [("OLD", "value with spaces")]
    with pytest.raises(BuildError):
        expand("${A", env)
    with pytest.raises(BuildError):
        expand("${MISSING:?must be set}", env)


def test_ignore_rules_with_double_star_and_exceptions() -> None:
    rules = IgnoreRules(["# comment", "*.log", "**/tmp", "docs", "!docs/keep.md", "/build/", "a?c", "[xy].txt"])
    assert rules.excluded("error.log") and not rules.excluded("sub/error.log")
    assert rules.excluded("tmp") and rules.excluded("x/y/tmp") and rules.excluded("x/tmp/file")
    assert rules.excluded("docs/a.md") and not rules.excluded("docs/keep.md")
    assert rules.excluded("build/out.o") and rules.excluded("abc") and not rules.excluded("abbc")
    assert rules.excluded("x.txt") and not rules.excluded("z.txt")
    assert not IgnoreRules([]).excluded("anything")
