"""Images the system tests run, pulled from the real local registry into each test's fresh store."""

from __future__ import annotations

import pytest

from tests.conftest import RunRootlet


@pytest.fixture
def alpine(rootlet: RunRootlet, registry: str) -> str:
    """library/alpine:3.20, pulled; its reference."""
    ref = f"{registry}/library/alpine:3.20"
    rootlet("pull", "-q", ref, check=True)
    return ref


@pytest.fixture
def busybox(rootlet: RunRootlet, registry: str) -> str:
    """library/busybox:latest, pulled; its reference."""
    ref = f"{registry}/library/busybox:latest"
    rootlet("pull", "-q", ref, check=True)
    return ref
