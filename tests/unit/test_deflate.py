"""The deflate engine: ISA-L when installed, zlib otherwise or with ``ROOTLET_NO_ISAL=1``, and the
two read and write the same gzip (CI runs the compression tests a second time without ISA-L)."""

from __future__ import annotations

import gzip
import importlib.util
import os
import subprocess
import sys

import pytest

_SHOW_ENGINE = "from rootlet.runtime.image import deflate; print(deflate.ENGINE)"

# Deflates a known text with the engine chosen, inflates it again, and inflates the same text
# deflated by the standard library (so each engine reads the other's output).
_ROUND_TRIP = """
import gzip, sys
from rootlet.runtime.image import deflate
text = bytes(range(256)) * 4000 + b"rootlet" * 10000
c = deflate.gzip_compressobj(1)
ours = c.compress(text) + c.flush()
assert gzip.decompress(ours) == text
for blob in (ours, gzip.compress(text, 6)):
    d = deflate.decompressobj()
    assert d.decompress(blob) == text and d.eof
print(deflate.ENGINE)
"""


def _run(code: str, no_isal: str | None) -> str:
    """*code* in a fresh interpreter (the engine is chosen at import), with ROOTLET_NO_ISAL set to
    *no_isal* or unset."""
    env = {k: v for k, v in os.environ.items() if k != "ROOTLET_NO_ISAL"}
    if no_isal is not None:
        env["ROOTLET_NO_ISAL"] = no_isal
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_rootlet_no_isal_selects_zlib() -> None:
    assert _run(_SHOW_ENGINE, "1") == "zlib"


@pytest.mark.parametrize("value", [None, "", "0"], ids=["unset", "empty", "zero"])
def test_isal_is_the_engine_when_installed_and_not_turned_off(value: str | None) -> None:
    expected = "isa-l" if importlib.util.find_spec("isal") is not None else "zlib"
    assert _run(_SHOW_ENGINE, value) == expected


@pytest.mark.parametrize("no_isal", [None, "1"], ids=["default", "no-isal"])
def test_each_engine_writes_and_reads_plain_gzip(no_isal: str | None) -> None:
    assert _run(_ROUND_TRIP, no_isal) == _run(_SHOW_ENGINE, no_isal)


def test_this_process_engine_matches_its_environment() -> None:
    """The engine of the running suite is the one its environment asks for (the CI pass with
    ROOTLET_NO_ISAL=1 really runs on zlib)."""
    from rootlet.runtime.image import deflate

    if os.environ.get("ROOTLET_NO_ISAL", "") not in ("", "0"):
        assert deflate.ENGINE == "zlib"
    else:
        assert deflate.ENGINE == ("isa-l" if importlib.util.find_spec("isal") is not None else "zlib")
    c = deflate.gzip_compressobj()
    assert gzip.decompress(c.compress(b"rootlet") + c.flush()) == b"rootlet"
