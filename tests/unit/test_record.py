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

    assert Point3.fields() == ("x", "y", "tags", "z")
    assert Point3(1, 2, [], 3).z == 3
    assert Point3(1) != Point(1)


def test_hash_follows_equality() -> None:
    class Pair(Record):
        a: int
        b: str

    assert len({Pair(1, "x"), Pair(1, "x"), Pair(2, "x")}) == 2


def test_a_class_is_prepared_at_its_first_use_not_at_its_definition() -> None:
    class Late(Record):
        a: int
        b: list[int] = []

    assert "_fields" not in Late.__dict__  # defining it computed nothing
    assert Late(1).to_dict() == {"a": 1, "b": []}
    assert "_fields" in Late.__dict__ and Late.__dict__["__init__"] is Record.__init__


def test_class_methods_prepare_the_class_too() -> None:
    class FromJson(Record):
        a: int
        t: tuple[int, ...] = ()

    class FromDict(Record):
        a: int = 0

    assert FromJson.from_json({"a": 1, "t": [2, 3], "other": 0}) == FromJson(1, (2, 3))
    assert FromDict.from_dict({"a": 4, "other": 0}) == FromDict(4)


def test_subclasses_are_prepared_apart_from_their_bases() -> None:
    class Base(Record):
        a: int = 1

    assert Base().a == 1  # Base prepared first

    class Child(Base):
        b: int = 2

    class Grandchild(Child):
        c: int = 3

    assert Grandchild().to_dict() == {"a": 1, "b": 2, "c": 3}  # Child still unprepared
    assert Child().to_dict() == {"a": 1, "b": 2}
    assert "c" not in Child.fields()


def test_a_class_with_its_own_init_is_prepared_when_defined() -> None:
    class Custom(Record):
        a: int
        b: int = 0

        def __init__(self, total: int) -> None:
            super().__init__(a=total, b=total * 2)

    assert Custom(3).to_dict() == {"a": 3, "b": 6}

    class Derived(Custom):  # inherits that __init__
        c: int = 7

    class Further(Derived):
        d: int = 8

    assert Further(2).to_dict() == {"a": 2, "b": 4, "c": 7, "d": 8}
    assert Derived(1).to_dict() == {"a": 1, "b": 2, "c": 7}


def test_an_init_of_its_own_over_a_base_not_yet_prepared() -> None:
    class Base(Record):
        a: int
        b: int = 0

    class Doubling(Base):  # its super().__init__ reaches Base's, which prepares nothing more
        def __init__(self, total: int) -> None:
            super().__init__(a=total, b=total * 2)

    assert Doubling(5).to_dict() == {"a": 5, "b": 10}
    assert Base(1).to_dict() == {"a": 1, "b": 0}


def test_preparing_a_class_from_several_threads_at_once() -> None:
    """No thread sees a half-prepared class (the tables are set before the marker and the plain
    __init__): thread switches are forced every microsecond to make the race likely (with the
    marker set before the tables, 4 runs in 5 failed)."""
    import sys

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _race_preparations()
    finally:
        sys.setswitchinterval(interval)


def _race_preparations() -> None:
    import threading

    for _ in range(1000):
        class Raced(Record):
            a: int
            b: list[int] = []

        barrier = threading.Barrier(4)
        made: list[Raced] = []

        def make(n: int, cls: type[Raced] = Raced) -> None:
            barrier.wait()
            made.append(cls(n))

        threads = [threading.Thread(target=make, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.a for r in made) == [0, 1, 2, 3] and all(r.b == [] for r in made)


class Inner(Record):
    v: int = 0


class Outer(Record):
    _nested = {"one": Inner, "many": "tests.unit.test_record:Inner"}
    one: Inner | None = None
    many: list[Inner] = []


def test_nested_records_by_class_or_by_module_name() -> None:
    doc = Outer(Inner(1), [Inner(2), Inner(3)]).to_json()
    assert doc == {"one": {"v": 1}, "many": [{"v": 2}, {"v": 3}]}
    assert Outer.from_json(doc) == Outer(Inner(1), [Inner(2), Inner(3)])
    assert Outer.from_json({"one": {}}).one == Inner()  # an empty object is still a record


def test_a_nested_class_named_by_module_is_not_imported_for_an_empty_list() -> None:
    class Lazy(Record):
        _nested = {"items": "rootlet.tests_no_such_module:Thing"}
        items: list[object] = []

    assert Lazy.from_json({"items": []}) == Lazy()
    with pytest.raises(ModuleNotFoundError):
        Lazy.from_json({"items": [{"x": 1}]})
