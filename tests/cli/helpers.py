"""Helpers for the CLI tests: running ``virtdeck`` as a process, reading its pipe, cleanup."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: A domain QEMU starts in well under a second: no disk, no NIC, no balloon.
DISKLESS_XML = (
    "<domain type='qemu'><name>c1</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
    "<os><type arch='x86_64' machine='q35'>hvm</type></os>"
    "<devices><memballoon model='none'/></devices></domain>"
)


def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``python -m tui.cli ARGS`` in a fresh interpreter, as a user's shell would run it."""
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )


def read_lines_until(
    proc: subprocess.Popen[bytes], done: Callable[[list[str]], bool], timeout: float
) -> list[str]:
    """Lines from ``proc``'s stdout as they arrive, until ``done(lines)`` or ``timeout``.

    Reads the pipe without waiting for the process to end, so a line only shows up here
    if the process flushed it.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buffer = b""
    lines: list[str] = []
    while not done(lines):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out; lines so far: {lines!r}, partial: {buffer!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"output ended early; lines: {lines!r}, partial: {buffer!r}")
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        lines.extend(line.decode() for line in complete)
    return lines


def kill_leftovers(root: Path) -> None:
    """SIGKILL every QEMU a runtime status file under the embed ``root`` names."""
    for status in (root / "run").glob("*.json"):
        try:
            pid = int(json.loads(status.read_text())["pid"])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if b"qemu" in cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            for _ in range(200):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.01)
