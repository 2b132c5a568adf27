"""``history``: an image's build steps, newest first, as podman lists them.

The steps are the config's ``history`` entries; each one that is not an ``empty_layer`` made the
next layer, whose unpacked size it shows. The ID column is podman's: the image's own id on the
newest step, the id of another local image whose top layer that step made (its base, typically),
else ``<missing>``. Layers the history does not account for (an image built by a tool that wrote
no history) get steps of their own with nothing but their size.
"""

from __future__ import annotations

from rootlet.registry import jsoncodec
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.image.layers import LayerStore


class HistoryRow(Record):
    id: str
    created: str | None
    created_by: str
    size: int
    comment: str = ""
    empty_layer: bool = False
    tags: list[str] = []


def image_history(store: ImageStore, name: str) -> list[HistoryRow]:
    """The steps of image *name*, newest first."""
    images = store.load()
    rec = store.resolve(name)
    doc = jsoncodec.loads(store.read_blob(rec.config_digest))
    entries = [h for h in (doc.get("history") or []) if isinstance(h, dict)]
    layers = LayerStore(store)
    by_top = {tuple(other.layers): other for other in images.values()}
    rows: list[HistoryRow] = []
    layer_index = 0
    for entry in entries:
        empty = bool(entry.get("empty_layer"))
        size = 0
        image_id = "<missing>"
        tags: list[str] = []
        if not empty and layer_index < len(rec.layers):
            chain = rec.layers[layer_index]
            size = layers.info(chain).size if layers.has(chain) else 0
            owner = by_top.get(tuple(rec.layers[:layer_index + 1]))
            if owner is not None:
                image_id, tags = owner.id, list(owner.repo_tags)
            layer_index += 1
        rows.append(HistoryRow(id=image_id, created=entry.get("created"),
                               created_by=str(entry.get("created_by") or ""), size=size,
                               comment=str(entry.get("comment") or ""), empty_layer=empty, tags=tags))
    for chain in rec.layers[layer_index:]:
        rows.append(HistoryRow(id="<missing>", created=None, created_by="",
                               size=layers.info(chain).size if layers.has(chain) else 0))
    rows.reverse()
    if rows:
        rows[0] = rows[0].replace(id=rec.id, tags=list(rec.repo_tags))
    return rows
