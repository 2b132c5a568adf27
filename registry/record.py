"""``Record``: plain data classes declared by annotations, without the cost of ``dataclasses``.

``dataclasses`` generates each class's methods with ``exec`` and imports ``inspect`` (and with it
``ast``, ``dis``, ``tokenize``): about 15 ms to import and 1-2 ms per class. On the ``run`` and
``exec`` paths, which are measured against podman in milliseconds, that was a fifth of the
start-up. A Record is declared the same way (annotated fields, class-level defaults), and its
``__init__``, ``__eq__`` and ``__repr__`` are shared generic methods, so defining one costs
microseconds.

Differences from a dataclass: a mutable default (``labels: dict[str, str] = {}``) is copied for
each instance (no ``field(default_factory=…)`` needed); records are not frozen, by convention they
are not mutated after construction unless documented; ``to_dict`` is shallow, ``to_json`` and
``from_json`` convert nested records (declared in the class's ``_nested``) for files on disk.
"""

from __future__ import annotations

_MUTABLE = (list, dict, set)


class Record:
    """Base class: fields are the annotated names of the class and its bases, in order."""

    #: Per class, computed when it is first used (``_prepare``), not when it is defined: a command
    #: imports dozens of record classes and instantiates a few (``exec`` imports 80, about 0.6 ms
    #: of set-up when each was prepared at definition). Instances are made by the thousand (``ps``
    #: of 500 containers builds 2,500), so what ``__init__`` needs is precomputed: the field names
    #: as a set, each default, the fields whose default is mutable (copied per instance) and those
    #: whose default is a tuple (from_json).
    _fields: tuple[str, ...] = ()
    _field_set: frozenset[str] = frozenset()
    _defaults: dict[str, object] = {}
    _mutable: frozenset[str] = frozenset()
    _tuples: frozenset[str] = frozenset()
    #: Fields holding a Record, or a list of Records: field name → Record class, or
    #: ``"module:Class"`` for one imported only when such a field holds a value. Subclasses that
    #: nest records declare it (unannotated, so it is not a field), for to_json/from_json.
    _nested = {}  # type: ignore[var-annotated]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # Until it is prepared, the class's own __init__ prepares it first. Its bases' field
        # tables are never used for it: ``fields`` and the class methods prepare it too. A class
        # that has an __init__ of its own, or inherits one, is prepared now: that __init__ may
        # call Record's, which takes the tables as they are.
        if any(klass.__dict__.get("__init__", _first_init) is not _first_init
               for klass in cls.__mro__ if klass is not Record and klass is not object):
            _prepare(cls)
        else:
            cls.__init__ = _first_init  # type: ignore[method-assign]

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The field names, in order (the base classes' first)."""
        if "_fields" not in cls.__dict__:
            _prepare(cls)
        return cls._fields

    def __init__(self, *args: object, **kwargs: object) -> None:
        cls = type(self)
        fields = cls._fields
        if args:
            if len(args) > len(fields):
                raise TypeError(f"{cls.__name__} takes {len(fields)} positional arguments, {len(args)} given")
            for name, value in zip(fields, args):
                if name in kwargs:
                    raise TypeError(f"{cls.__name__} got field {name!r} twice")
                kwargs[name] = value
        for key in kwargs.keys() - cls._field_set:
            raise TypeError(f"{cls.__name__} has no field {key!r}")
        defaults, mutable, values = cls._defaults, cls._mutable, self.__dict__
        for name in fields:
            if name in kwargs:
                values[name] = kwargs[name]
            elif name in mutable:
                default = defaults[name]
                values[name] = type(default)(default)  # type: ignore[call-arg]
            elif name in defaults:
                values[name] = defaults[name]
            else:
                raise TypeError(f"{cls.__name__} needs field {name!r}")
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def _values(self) -> tuple[object, ...]:
        return tuple(self.__dict__[name] for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={self.__dict__[name]!r}" for name in self._fields)
        return f"{type(self).__name__}({inner})"

    def to_dict(self) -> dict[str, object]:
        """The fields as a dict (values are not copied)."""
        return {name: self.__dict__[name] for name in self._fields}

    def replace(self, **changes: object):  # -> Self
        """A copy with some fields changed."""
        values = self.to_dict()
        values.update(changes)
        return type(self)(**values)

    @classmethod
    def from_dict(cls, doc: dict[str, object]):  # -> Self
        """An instance from a dict, ignoring keys that are not fields (records written by other versions)."""
        if "_fields" not in cls.__dict__:
            _prepare(cls)
        return cls(**{k: v for k, v in doc.items() if k in cls._field_set})

    def to_json(self) -> dict[str, object]:
        """The fields as JSON-ready values: nested records become dicts, tuples lists."""
        return {name: _plain(self.__dict__[name]) for name in self._fields}

    @classmethod
    def from_json(cls, doc: dict[str, object]):  # -> Self
        """An instance from ``to_json`` output: nested records rebuilt, lists made tuples where the
        field's default is a tuple; keys that are not fields are ignored."""
        if "_fields" not in cls.__dict__:
            _prepare(cls)
        values: dict[str, object] = {}
        fields, nested_fields, tuples = cls._field_set, cls._nested, cls._tuples
        for key, value in doc.items():
            if key not in fields:
                continue
            nested = nested_fields.get(key)
            if nested is not None and value is not None and (value or isinstance(value, dict)):
                if isinstance(nested, str):  # an empty list needs no class: its module stays unloaded
                    nested = nested_fields[key] = _resolve(nested)
                if isinstance(value, list):
                    value = [nested.from_json(v) if isinstance(v, dict) else v for v in value]
                elif isinstance(value, dict):
                    value = nested.from_json(value)
            if key in tuples and isinstance(value, list):
                value = tuple(value)
            values[key] = value
        return cls(**values)


def _prepare(cls: type[Record]) -> None:
    """Compute *cls*'s field tables, and give it the plain ``__init__``."""
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name, annotation in klass.__dict__.get("__annotations__", {}).items():
            if name.startswith("_") or "ClassVar" in str(annotation) or name in names:
                continue
            names.append(name)
    missing = object()
    defaults = {n: v for n in names if (v := getattr(cls, n, missing)) is not missing}
    cls._field_set = frozenset(names)
    cls._defaults = defaults
    cls._mutable = frozenset(n for n, v in defaults.items() if isinstance(v, _MUTABLE))
    cls._tuples = frozenset(n for n, v in defaults.items() if isinstance(v, tuple))
    # In this order: another thread that finds "_fields" in the class's __dict__ takes it as
    # prepared, and one that calls the plain __init__ needs every table already there.
    cls._fields = tuple(names)
    if cls.__dict__.get("__init__") is _first_init:
        cls.__init__ = Record.__init__  # type: ignore[method-assign]


def _first_init(self: Record, *args: object, **kwargs: object) -> None:
    """The ``__init__`` of a record class until it is prepared (no class between it and Record
    has an ``__init__`` of its own), or of a base class reached through ``super().__init__``."""
    cls = type(self)
    if "_fields" not in cls.__dict__:
        _prepare(cls)
    Record.__init__(self, *args, **kwargs)


def _resolve(name: str) -> type[Record]:
    """The class ``"module:Class"`` names (a ``_nested`` entry)."""
    module, _, attr = name.partition(":")
    return getattr(__import__(module, fromlist=[attr]), attr)  # type: ignore[no-any-return]


def _plain(value: object) -> object:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
