"""Fixtures for end-to-end tests: an embed root whose QEMU processes are always ended."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import drivers
from drivers.api import Connection
from tests.conftest import require_qemu
from tests.guest import GuestImage, require_guest


def kill_root_processes(root: Path, run_subdir: str = "run") -> None:
    """SIGKILL every QEMU whose pid a runtime status file under ``root`` names."""
    for status in (root / run_subdir).glob("*.json"):
        try:
            pid = int(json.loads(status.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu" in cmdline:
            os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.01)


@pytest.fixture
def embed_root(short_tmp: Path) -> Iterator[Path]:
    require_qemu()
    root = short_tmp / "root"
    try:
        yield root
    finally:
        kill_root_processes(root)


@pytest.fixture
async def conn(embed_root: Path) -> AsyncIterator[Connection]:
    connection = await drivers.open(f"qemu:///embed?root={embed_root}")
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def guest() -> GuestImage:
    return require_guest()
