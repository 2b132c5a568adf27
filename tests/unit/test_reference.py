"""Reference parsing follows docker's grammar and normalisation."""

import pytest

from rootlet.registry.errors import InvalidReference
from rootlet.registry.reference import parse_reference

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
