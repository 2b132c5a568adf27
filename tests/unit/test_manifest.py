"""Manifest parsing and platform selection on real documents: the test images' index of indexes, and
the real Docker Hub layouts of ../shared when they are there."""

import json
from pathlib import Path

import pytest

from rootlet.registry import mediatypes as mt
from rootlet.registry.errors import ManifestError, PlatformNotFound, UsageError
from rootlet.registry.manifest import (ImageIndex, ImageManifest, Platform, chain_ids, parse_config,
                                       parse_manifest)


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def _busybox_index(test_images: Path) -> ImageIndex:
    layout = test_images / "busybox"
    outer = json.loads((layout / "index.json").read_text())
    entry = outer["manifests"][0]
    doc = parse_manifest(_blob(layout, entry["digest"]), entry["mediaType"])
    assert isinstance(doc, ImageIndex)
    return doc


def test_busybox_index_offers_amd64_and_arm64(test_images: Path) -> None:
    index = _busybox_index(test_images)
    names = {str(p) for p in index.platforms()}
    assert "linux/amd64" in names
    assert "linux/arm64/v8" in names


@pytest.mark.parametrize("wanted", ["linux/arm64", "linux/arm64/v8", "linux/aarch64"])
def test_arm64_selection_accepts_variant_aliases(test_images: Path, wanted: str) -> None:
    chosen = _busybox_index(test_images).select(Platform.parse(wanted))
    assert chosen.platform is not None and chosen.platform.architecture == "arm64"


def test_missing_platform_names_the_available_ones(test_images: Path) -> None:
    with pytest.raises(PlatformNotFound) as info:
        _busybox_index(test_images).select(Platform.parse("linux/s390x"))
    assert "linux/amd64" in info.value.message and "--platform" in (info.value.hint or "")


def test_image_manifest_and_config_parse(test_images: Path) -> None:
    layout = test_images / "alpine-3.20"
    entry = json.loads((layout / "index.json").read_text())["manifests"][0]
    manifest = parse_manifest(_blob(layout, entry["digest"]), entry["mediaType"])
    assert isinstance(manifest, ImageManifest)
    assert len(manifest.layers) == 1 and manifest.layers[0].media_type in mt.LAYER_COMPRESSION
    config = parse_config(_blob(layout, manifest.config.digest))
    assert config.config["Cmd"] == ["/bin/sh"]
    assert len(config.diff_ids) == 1


def test_schema1_is_refused_with_a_hint() -> None:
    doc = json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode()
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc, mt.DOCKER_SCHEMA1_SIGNED)
    assert "schema 1" in info.value.message and info.value.hint


def test_descriptor_with_bad_digest_is_refused() -> None:
    doc = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                      "config": {"digest": "sha256:../../etc/passwd", "size": 1}, "layers": []}).encode()
    with pytest.raises(ManifestError):
        parse_manifest(doc, mt.OCI_MANIFEST)


def test_chain_ids_follow_the_image_spec() -> None:
    import hashlib

    a, b = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    assert chain_ids([a, b]) == [a, "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()]


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d"])
def test_bad_platform_strings_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        Platform.parse(text)


@pytest.mark.parametrize("layout", ["busybox", "busybox-musl", "alpine-3.19", "alpine-3.20"])
def test_the_real_docker_hub_layouts_parse(real_images: Path, layout: str) -> None:
    """The same parsers on the real images of ../shared (Docker Hub's bytes, attestations and all)."""
    root = real_images / layout
    entry = json.loads((root / "index.json").read_text())["manifests"][0]
    doc = parse_manifest(_blob(root, entry["digest"]), entry["mediaType"])
    if isinstance(doc, ImageIndex):
        chosen = doc.select(Platform.parse("linux/amd64"))
        doc = parse_manifest(_blob(root, chosen.digest), chosen.media_type)
    assert isinstance(doc, ImageManifest) and doc.layers
    assert parse_config(_blob(root, doc.config.digest)).diff_ids
