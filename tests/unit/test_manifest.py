"""Manifest parsing and platform selection on real documents (the busybox index from Docker Hub)."""

import json
from pathlib import Path

import pytest

from rootlet.registry import mediatypes as mt
from rootlet.registry.errors import ManifestError, PlatformNotFound, UsageError
from rootlet.registry.manifest import (ImageIndex, ImageManifest, Platform, chain_ids, parse_config,
                                       parse_manifest)


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def _busybox_index(shared_images: Path) -> ImageIndex:
    layout = shared_images / "busybox"
    outer = json.loads((layout / "index.json").read_text())
    entry = outer["manifests"][0]
    doc = parse_manifest(_blob(layout, entry["digest"]), entry["mediaType"])
    assert isinstance(doc, ImageIndex)
    return doc


def test_busybox_index_offers_amd64_and_arm64(shared_images: Path) -> None:
    index = _busybox_index(shared_images)
    names = {str(p) for p in index.platforms()}
    assert "linux/amd64" in names
    assert "linux/arm64/v8" in names


@pytest.mark.parametrize("wanted", ["linux/arm64", "linux/arm64/v8", "linux/aarch64"])
def test_arm64_selection_accepts_variant_aliases(shared_images: Path, wanted: str) -> None:
    chosen = _busybox_index(shared_images).select(Platform.parse(wanted))
    assert chosen.platform is not None and chosen.platform.architecture == "arm64"


def test_missing_platform_names_the_available_ones(shared_images: Path) -> None:
    with pytest.raises(PlatformNotFound) as info:
        _busybox_index(shared_images).select(Platform.parse("linux/s390x"))
    assert "linux/amd64" in info.value.message and "--platform" in (info.value.hint or "")


def test_image_manifest_and_config_parse(shared_images: Path) -> None:
    layout = shared_images / "alpine-3.20"
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
