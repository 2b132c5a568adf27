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
