"""The shape of the code base: layering, no import cycles, no reaching into another module's
private names, modules of one concern each.

These read the source (``ast``) and import the real modules in fresh interpreters; they guard the
rules README "Layout" states, so a change that breaks one fails here with the offending import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CODE = ("cli", "registry", "runtime")

#: Modules allowed to be longer than MAX_LINES, each one concern, with the reason.
LONG_MODULES = {
    "rootlet.runtime.image.applier": "one tar entry type per method of one applier class",
    "rootlet.registry.client": "the registry HTTP protocol: requests, auth challenges, blobs, retries",
    "rootlet.runtime.image.tarstream": "the tar format: headers, PAX and GNU records, bounds",
    "rootlet.runtime.net.usermode": "the two user-mode network helpers, slirp4netns and pasta",
    "rootlet.cli.template": "Go's text/template language: lexer, parser, evaluator, fmt verbs, podman's tables",
}
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    out = {}
    for top in CODE:
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out["rootlet." + ".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if not MODULES[module].name == "__init__.py":
        package = package[:-1]
    package = package[:len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def _in_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return True
    return False


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every rootlet import of ``module`` that runs
    (function-local ones included; ``if TYPE_CHECKING:`` ones excluded)."""
    tree = ast.parse(MODULES[module].read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if _in_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("rootlet."):
                    found.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if not target.startswith("rootlet"):
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if submodules:
                found += [(m, [], node.lineno) for m in submodules]
                names = [n for n in names if f"{target}.{n}" not in MODULES]
            if names or not submodules:
                found.append((target, names, node.lineno))
    return found


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}


def test_no_import_cycles_even_through_function_local_imports() -> None:
    """A lazy import is for start-up time, never to hide a cycle: the whole import graph is a DAG."""
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def _layer(module: str) -> str:
    return module.split(".")[1]


def test_layers_point_one_way_cli_runtime_registry() -> None:
    rank = {"registry": 0, "runtime": 1, "cli": 2}
    upward = [f"{m} imports {t}" for m, targets in _graph().items() for t in targets
              if rank[_layer(t)] > rank[_layer(m)]]
    assert upward == []


#: The order of runtime's packages: each imports only from packages before it (and itself).
RUNTIME_ORDER = ("linux", "oci", "net", "image", "system", "container", "lifecycle", "build", "kube", "engine")


def test_runtime_packages_are_layered() -> None:
    def package(m: str) -> str | None:
        parts = m.split(".")
        return parts[2] if len(parts) > 3 and parts[1] == "runtime" else None

    wrong = []
    for m, targets in _graph().items():
        mine = package(m)
        for t in targets:
            theirs = package(t)
            if mine and theirs and RUNTIME_ORDER.index(theirs) > RUNTIME_ORDER.index(mine):
                wrong.append(f"{m} imports {t}")
    assert wrong == []


def test_cli_reaches_runtime_only_through_the_engine() -> None:
    # The exception hierarchy, the record base class, the JSON codec (what `inspect` prints with,
    # free of the json package's import cost) and the RFC 3339 reader (image and volume times, the
    # same one `logs --since` uses): utilities, not registry logic.
    allowed_registry = {"rootlet.registry.errors", "rootlet.registry.record", "rootlet.registry.jsoncodec",
                        "rootlet.registry.timestamps"}
    # The version constant: `--version` must not import the engine package (all of its verbs).
    allowed_runtime = {"rootlet.runtime.version"}
    wrong = []
    for m in MODULES:
        if _layer(m) != "cli":
            continue
        for t, _, line in _imports(m):
            if _layer(t) == "runtime" and not t.startswith("rootlet.runtime.engine") and t not in allowed_runtime:
                wrong.append(f"{m}:{line} imports {t}")
            if _layer(t) == "registry" and t not in allowed_registry:
                wrong.append(f"{m}:{line} imports {t}")
    assert wrong == []


def test_only_cli_imports_typer_and_rich() -> None:
    wrong = []
    for m, path in MODULES.items():
        if _layer(m) == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            wrong += [f"{m} imports {n}" for n in names if n.split(".")[0] in ("typer", "rich", "click")]
    assert wrong == []


def test_no_module_imports_another_modules_private_names() -> None:
    wrong = [f"{m}:{line} takes {n} from {t}" for m in MODULES for t, names, line in _imports(m)
             for n in names if n.startswith("_") and t != m]
    assert wrong == []


def test_modules_are_one_concern_and_not_too_long() -> None:
    long = [f"{m}: {len(p.read_text().splitlines())} lines" for m, p in MODULES.items()
            if len(p.read_text().splitlines()) > MAX_LINES and m not in LONG_MODULES]
    assert long == []


@pytest.mark.parametrize("order", ["alphabetical", "reverse"])
def test_every_module_imports_in_a_fresh_interpreter(order: str) -> None:
    names = sorted(MODULES, reverse=order == "reverse")
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    proc = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_package_is_in_the_regular_install() -> None:
    """``pip install .`` (scripts/setup's, not an editable one) installs only the packages
    pyproject.toml lists: a package missing there works from the source tree and fails installed."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {"rootlet." + ".".join(p.parent.relative_to(REPO).parts)
               for top in CODE for p in (REPO / top).rglob("__init__.py")}
    assert on_disk - listed == set()
