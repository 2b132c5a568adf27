"""Reference parsing follows docker's grammar and normalisation."""

import random
import re

import pytest

from rootlet.registry.errors import InvalidReference
from rootlet.registry.reference import is_digest, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, expected, short", [
    ("alpine", "docker.io/library/alpine:latest", True),
    ("alpine:3.20", "docker.io/library/alpine:3.20", True),
    ("library/alpine", "docker.io/library/alpine:latest", True),
    ("docker.io/alpine", "docker.io/library/alpine:latest", False),
    ("index.docker.io/team/app", "docker.io/team/app:latest", False),
    ("127.0.0.1:5000/ns/name:tag", "127.0.0.1:5000/ns/name:tag", False),
    ("localhost/app", "localhost/app:latest", False),
    ("quay.io/a/b/c:v1.2-rc_3", "quay.io/a/b/c:v1.2-rc_3", False),
    (f"alpine@{DIGEST}", f"docker.io/library/alpine@{DIGEST}", True),
    (f"alpine:3.20@{DIGEST}", f"docker.io/library/alpine:3.20@{DIGEST}", True),
    ("[::1]:5000/app", "[::1]:5000/app:latest", False),
])
def test_references_normalise_like_docker(text: str, expected: str, short: bool) -> None:
    ref = parse_reference(text)
    assert str(ref) == expected
    assert ref.short is short


def test_digest_only_reference_has_no_tag() -> None:
    ref = parse_reference(f"busybox@{DIGEST}")
    assert ref.tag is None and ref.digest == DIGEST
    assert ref.tagged() == "docker.io/library/busybox:latest"


def test_short_name_moves_to_search_registry_without_library_prefix() -> None:
    ref = parse_reference("alpine:3.20")
    assert str(ref.with_registry("quay.io")) == "quay.io/alpine:3.20"
    assert str(ref.with_registry("docker.io")) == "docker.io/library/alpine:3.20"


@pytest.mark.parametrize("text", [
    "", "Alpine", "a/B", "alpine:", "alpine:bad/tag", ":tag", "a::b", "x@sha256:12", "x@md5:" + "a" * 32,
    "alpine latest", "-alpine", "a//b", "a/../b", "host:5000/", "a" * 300,
])
def test_invalid_references_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert info.value.hint
    assert info.value.exit_code == 125


# distribution/reference's grammar as regular expressions: the oracle for the hand-written matchers.
COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}\Z")
HOST_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                     r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\Z")


def _fuzz(rng: random.Random, tokens: str, length: int) -> str:
    return "".join(rng.choice(tokens) for _ in range(rng.randrange(length + 1)))


def _parses(text: str) -> bool:
    try:
        parse_reference(text)
    except InvalidReference:
        return False
    return True


def test_path_components_follow_the_grammar_on_random_input() -> None:
    rng = random.Random(1)
    for _ in range(20000):
        comp = _fuzz(rng, "ab0_.-_-A9é", 8)
        assert _parses(f"localhost/{comp}") == bool(COMPONENT_RE.match(comp)), comp


def test_tags_follow_the_grammar_on_random_input() -> None:
    rng = random.Random(2)
    for _ in range(20000):
        tag = _fuzz(rng, "aZ09_.-é+", 6) if rng.random() < 0.95 else "a" * rng.randrange(126, 131)
        assert _parses(f"alpine:{tag}") == bool(TAG_RE.match(tag)), tag


def test_registry_hosts_follow_the_grammar_on_random_input() -> None:
    rng = random.Random(3)
    edges = ["h:1", "h:12345", "h:123456", "h:", "h:1a", "h:١", "[::1]", "[::1]:0", "[::1]:123456", "[]", "[::1]x",
             "[::1]]", "a-b.c", "a.-b", "a..b", ".a", "a.", "A-9.z:80", "x" * 63 + ".io"]
    for host in edges + [_fuzz(rng, "aZ9-..:[]1f_é", 10) for _ in range(20000)]:
        if not host or "." not in host and ":" not in host and host == host.lower():
            continue  # not taken for a host: the first path component
        assert _parses(f"{host}/app") == bool(HOST_RE.match(host)), host


def test_digests_follow_the_grammar_on_random_input() -> None:
    rng = random.Random(4)
    for _ in range(20000):
        hexpart = "".join(rng.choice("0123456789abcdef") for _ in range(64))
        mutated = list("sha256:" + hexpart)
        for _ in range(rng.randrange(3)):
            mutated.insert(rng.randrange(len(mutated) + 1), rng.choice("aF0g:٣\n"))
        text = "".join(mutated)
        assert is_digest(text) == bool(DIGEST_RE.match(text)), text
