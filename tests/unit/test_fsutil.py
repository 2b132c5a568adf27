"""registry/fsutil.py: JSON records read back whole, bounded, and missing ones defaulted."""

from pathlib import Path

import pytest

from rootlet.registry.fsutil import atomic_write_json, read_json


def test_a_record_reads_back_as_written(tmp_path: Path) -> None:
    doc = {"name": "é", "ids": [1, 2, 3], "nested": {"ok": True, "none": None}}
    atomic_write_json(str(tmp_path / "r.json"), doc)
    assert read_json(str(tmp_path / "r.json")) == doc


def test_a_missing_record_is_the_default(tmp_path: Path) -> None:
    assert read_json(str(tmp_path / "absent.json"), default={"x": 1}) == {"x": 1}


def test_a_record_over_the_bound_is_refused_and_one_at_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text('"' + "a" * 98 + '"')  # 100 bytes
    assert read_json(str(path), max_bytes=100) == "a" * 98
    with pytest.raises(ValueError, match="is larger than 99 bytes"):
        read_json(str(path), max_bytes=99)


def test_an_empty_record_is_an_error_not_a_value(tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_bytes(b"")
    with pytest.raises(ValueError):
        read_json(str(tmp_path / "empty.json"))
