"""registry/jsoncodec.py: the same text and values as the json package, without importing it."""

import json
import random
import subprocess
import sys

import pytest

from rootlet.registry import jsoncodec

STRINGS = ["", "plain", "é ü ß", "tab\there", "quote\" back\\slash", "\x00\x1f\x7f", "😀 astral",
           "\ud800 lone surrogate", "/slash", "</script>"]
NUMBERS = [0, -1, 2**70, -(2**64) - 1, 0.0, -0.0, 1.5, 1e300, 1e-300, 3.141592653589793, 12345678.9,
           float("inf"), float("-inf")]


def _random_doc(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 5 else 4)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return rng.choice(NUMBERS)
    if kind == 2:
        return rng.choice([None, True, False])
    if kind == 3:
        return rng.randrange(-10**6, 10**6)
    if kind in (4, 5):
        return {rng.choice(STRINGS) + str(i): _random_doc(rng, depth + 1) for i in range(rng.randrange(4))}
    items = [_random_doc(rng, depth + 1) for _ in range(rng.randrange(4))]
    return tuple(items) if kind == 6 else items


DOCS = [_random_doc(random.Random(seed)) for seed in range(300)]


@pytest.mark.parametrize("sort_keys", [False, True])
@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_compact_text_is_json_dumps_text(sort_keys: bool, ensure_ascii: bool) -> None:
    for doc in DOCS:
        expected = json.dumps(doc, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii)
        assert jsoncodec.dumps(doc, sort_keys=sort_keys, ensure_ascii=ensure_ascii) == expected


@pytest.mark.parametrize("indent", [1, 4])
def test_indented_text_is_json_dumps_text(indent: int) -> None:
    for doc in DOCS:
        assert jsoncodec.dumps_indented(doc, indent) == json.dumps(doc, indent=indent)


def test_indented_text_with_non_string_keys_is_json_dumps_text() -> None:
    doc = {"a": {1: "one", None: [], 2.5: {}, True: "t"}}
    assert jsoncodec.dumps_indented(doc) == json.dumps(doc, indent=4)


def test_values_read_back_are_json_loads_values() -> None:
    for doc in DOCS:
        for text in (json.dumps(doc), json.dumps(doc, indent=2), " \n" + json.dumps(doc) + "\r\n\t"):
            assert repr(jsoncodec.loads(text)) == repr(json.loads(text))
            assert repr(jsoncodec.loads(text.encode("utf-8", "surrogatepass"))) == \
                repr(json.loads(text.encode("utf-8", "surrogatepass")))


@pytest.mark.parametrize("text", ["", "   ", "{", '{"a": 1} x', '{"a": 1}{}', "[1,]", "nul", '"\x01"',
                                  "\ufeff{}", "[" * 100000 + "]" * 100000])
def test_invalid_input_raises_what_json_raises(text: str) -> None:
    with pytest.raises(Exception) as ours:  # noqa: PT011 - compared with the json package's below
        jsoncodec.loads(text)
    with pytest.raises(Exception) as theirs:  # noqa: PT011
        json.loads(text)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


@pytest.mark.parametrize("data", [b"\xef\xbb\xbf{\"bom\": 1}", '{"utf16": "é"}'.encode("utf-16"),
                                  '["utf-32"]'.encode("utf-32-be"), b'"\xed\xa0\x80"'])
def test_bytes_in_other_encodings_are_read_as_json_reads_them(data: bytes) -> None:
    assert repr(jsoncodec.loads(data)) == repr(json.loads(data))


def test_unserialisable_value_raises_type_error_as_json_does() -> None:
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        jsoncodec.dumps({"a": {1}})
    with pytest.raises(TypeError, match="Object of type bytes is not JSON serializable"):
        jsoncodec.dumps_indented([b"x"])


def test_reading_and_writing_does_not_import_re_or_the_json_package() -> None:
    # The module's own file in a bare interpreter (-I -S): an installed site may import re itself
    # (setuptools' editable finder does), which would hide the import this test is about.
    code = ("import sys; j = {}; exec(compile(open(sys.argv[1]).read(), sys.argv[1], 'exec'), j); "
            "j['loads'](j['dumps']({'a': [1, 2.5, None, 'é']}, sort_keys=True)); j['dumps_indented']({'a': []}); "
            "print(sorted(m for m in ('re', 'enum', 'json', 'json.decoder') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, jsoncodec.__file__],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
