"""The engine's verb table (runtime/engine/verbs.py) against the mixin classes it points to: an
Engine finds each verb through it, so a verb missing there would be missing from the engine."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from importlib import import_module

from rootlet.registry.errors import RootletError
from rootlet.runtime.engine import Engine
from rootlet.runtime.engine.verbs import FAMILIES, VERBS


def _defined() -> dict[str, list[str]]:
    """Each attribute name the families define -> the families defining it."""
    found: dict[str, list[str]] = {}
    for module, cls in FAMILIES.items():
        for name in vars(getattr(import_module(f"rootlet.runtime.engine.{module}"), cls)):
            if not (name.startswith("__") and name.endswith("__")):
                found.setdefault(name, []).append(module)
    return found


def _table(found: dict[str, list[str]]) -> str:
    return "\n".join(f'    "{name}": "{families[0]}",' for name, families in sorted(found.items()))


def test_every_verb_of_every_family_is_in_the_table_once() -> None:
    found = _defined()
    twice = {name: families for name, families in found.items() if len(families) > 1}
    assert not twice, f"defined by two families (the first joined would win): {twice}"
    assert VERBS == {name: families[0] for name, families in found.items()}, \
        "runtime/engine/verbs.py's VERBS is out of date; its entries should be:\n" + _table(found)


def test_an_engine_answers_every_verb_and_refuses_what_is_none() -> None:
    engine = Engine("/nonexistent-rootlet-root")
    for name, family in VERBS.items():
        mixin = getattr(import_module(f"rootlet.runtime.engine.{family}"), FAMILIES[family])
        with contextlib.suppress(RootletError, OSError):  # a property may look at the (missing) store
            getattr(engine, name)
        assert vars(Engine)[name] is vars(mixin)[name], name
    assert callable(engine.ps) and callable(engine.pod_rm)
    try:
        engine.no_such_verb  # noqa: B018 - the attribute access is the test
    except AttributeError as exc:
        assert "no_such_verb" in str(exc)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")


def test_importing_the_engine_imports_no_verb_family() -> None:
    code = ("import sys; import rootlet.runtime.engine as e; e.Engine('/x'); "
            "print(sorted(m for m in sys.modules if m.startswith('rootlet.runtime.engine.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['rootlet.runtime.engine.verbs']"
