"""Kubernetes YAML in and out: PyYAML's safe loader with limits, and typed reads of its fields.

The loader never constructs objects (PyYAML's ``SafeLoader``), and before anything is built the
composed node graph is walked with every alias counted where it is used: a "billion laughs"
document, or one nested deeper than any manifest is, is refused as it is, without expanding it.
``Doc`` reads a document's fields with their types checked, so that a wrong type names the
document, the field and what was expected.
"""

from __future__ import annotations

from rootlet.registry.errors import KubeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: A manifest file larger than this is refused before parsing.
MAX_BYTES = 8 << 20
#: Nodes (aliases counted each time they are used) and nesting depth a file may have.
MAX_NODES = 200_000
MAX_DEPTH = 64


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    """The YAML documents of ``text`` (empty ones skipped), each a mapping."""
    import yaml

    if len(text) > MAX_BYTES:
        raise KubeError(f"{source}: larger than {MAX_BYTES >> 20} MiB", "is it really a Kubernetes manifest?")
    docs: list[dict[str, Any]] = []
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            _check_size(node, source, len(docs) + 1)
            doc = loader.construct_document(node)
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise KubeError(f"{source}: document {len(docs) + 1} is a {type(doc).__name__}, not a mapping",
                                "each document is a Kubernetes object: apiVersion, kind, metadata, spec")
            docs.append(doc)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise KubeError(f"{source}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()
    return docs


def _check_size(root: object, source: str, number: int) -> None:
    import yaml

    count = 0
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise KubeError(f"{source}: document {number} expands to more than {MAX_NODES} nodes",
                            "a YAML alias bomb, or a manifest far larger than any real one")
        if depth > MAX_DEPTH:
            raise KubeError(f"{source}: document {number} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))


def dump_documents(docs: list[dict[str, Any]]) -> str:
    """YAML for ``docs``, ``---`` between them, keys in the order given."""
    import yaml

    return "---\n".join(yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in docs)


class Doc:
    """Typed reads of one object: ``where`` names it in messages (``Pod web, spec.containers[0]``)."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def _get(self, key: str, kind: type | tuple[type, ...], what: str, default: Any) -> Any:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise KubeError(f"{self.where}: {key} must be {what}, not {type(value).__name__} {value!r}"[:300])
        return value

    def str(self, key: str, default: str | None = None) -> str | None:
        value = self._get(key, (str, int, float), "a string", default)
        return None if value is None else str(value)

    def need_str(self, key: str) -> str:
        value = self.str(key)
        if not value:
            raise KubeError(f"{self.where}: {key} is required")
        return value

    def int(self, key: str, default: int | None = None) -> int | None:
        return self._get(key, int, "an integer", default)  # type: ignore[no-any-return]

    def bool(self, key: str, default: bool | None = None) -> bool | None:
        return self._get(key, bool, "true or false", default)  # type: ignore[no-any-return]

    def strings(self, key: str) -> list[str]:
        values = self._get(key, list, "a list of strings", [])
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise KubeError(f"{self.where}: {key} must be a list of strings")
        return [str(v) for v in values]

    def mapping(self, key: str) -> dict[str, Any]:
        return self._get(key, dict, "a mapping", {})  # type: ignore[no-any-return]

    def string_map(self, key: str) -> dict[str, str]:
        out = {}
        for k, v in self.mapping(key).items():
            if v is None or isinstance(v, (dict, list)):
                raise KubeError(f"{self.where}: {key}.{k} must be a string")
            out[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
        return out

    def child(self, key: str) -> Doc:
        return Doc(self.mapping(key), f"{self.where}, {key}")

    def children(self, key: str) -> list[Doc]:
        items = self._get(key, list, "a list", [])
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise KubeError(f"{self.where}: {key}[{i}] must be a mapping, not {type(item).__name__}")
            out.append(Doc(item, f"{self.where}, {key}[{i}]"))
        return out
