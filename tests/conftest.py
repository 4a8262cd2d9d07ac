"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI") == "true"


def require(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is missing, but fail under CI=true (CI must test it all)."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing prerequisite under CI=true: {reason}")
    pytest.skip(reason)


def require_qemu() -> str:
    path = shutil.which("qemu-system-x86_64")
    require(
        path is not None, "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    )
    assert path is not None
    return path


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path (unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="vd-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_test_driver() -> Iterator[None]:
    """Every test starts from the seeded test:///default."""
    from drivers.test.driver import reset_default

    reset_default()
    yield
    reset_default()
