"""registry/record.py: the light data classes used instead of dataclasses on the hot paths."""

from __future__ import annotations

import pytest

from rootlet.registry.record import Record


class Point(Record):
    x: int
    y: int = 0
    tags: list[str] = []


def test_fields_positional_keyword_and_defaults() -> None:
    assert Point(1).to_dict() == {"x": 1, "y": 0, "tags": []}
    assert Point(1, 2) == Point(x=1, y=2)
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=[])"


def test_mutable_defaults_are_not_shared() -> None:
    a, b = Point(1), Point(2)
    a.tags.append("a")
    assert b.tags == [] and Point.tags == []


def test_missing_unknown_and_duplicate_fields_are_errors() -> None:
    with pytest.raises(TypeError, match="needs field 'x'"):
        Point()
    with pytest.raises(TypeError, match="no field 'z'"):
        Point(1, z=3)
    with pytest.raises(TypeError, match="twice"):
        Point(1, x=2)


def test_replace_and_from_dict_ignore_unknown_keys() -> None:
    p = Point(1, 2).replace(y=5)
    assert (p.x, p.y) == (1, 5)
    assert Point.from_dict({"x": 3, "future_field": True}) == Point(3)


def test_subclass_adds_fields_after_the_base_ones() -> None:
    class Point3(Point):
        z: int = 9

    assert Point3._fields == ("x", "y", "tags", "z")
    assert Point3(1, 2, [], 3).z == 3
    assert Point3(1) != Point(1)


def test_hash_follows_equality() -> None:
    class Pair(Record):
        a: int
        b: str

    assert len({Pair(1, "x"), Pair(1, "x"), Pair(2, "x")}) == 2
