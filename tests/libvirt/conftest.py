"""Fixtures for the libvirt driver's tests: libvirt-python, and libvirtd brought up by
bench/libvirt_peer.py (one per test module: it holds a machine-wide lock while it runs)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.libvirt_peer import LibvirtPeer, PeerUnavailable
from tests.conftest import require

#: Every domain these tests define on libvirtd is named so (the peer cleans them up).
PREFIX = "vdlv-"
SYSTEM = "libvirt:qemu:///system"


def require_binding() -> None:
    require(
        importlib.util.find_spec("libvirt") is not None,
        "libvirt-python is not installed (pip install virtdeck[libvirt]; needs libvirt-dev)",
    )


def start_peer(private: Path | None = None, host_uuid: str | None = None) -> LibvirtPeer:
    """A libvirtd of this test run (a failure under CI=true when it cannot come up)."""
    require_binding()
    require(os.geteuid() == 0, "libvirtd as a peer needs root (qemu:///system)")
    peer = LibvirtPeer(prefix=PREFIX, private=private, host_uuid=host_uuid)
    try:
        peer.start()
    except PeerUnavailable as err:
        peer.stop()
        require(False, f"libvirtd cannot come up here: {err}")
    return peer


@pytest.fixture(scope="module")
def libvirtd() -> Iterator[LibvirtPeer]:
    peer = start_peer()
    try:
        yield peer
    finally:
        peer.stop()
