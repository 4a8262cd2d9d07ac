"""What the chaos tests look at from outside: QEMU processes by domain UUID, the state
directory's definitions, and bounded waits."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import TypeVar

from drivers.domxml import parse_domain

T = TypeVar("T")


def qemu_pids(uuids: Iterable[str]) -> dict[str, list[int]]:
    """The live QEMU processes of each UUID, found by ``-uuid`` on their command lines."""
    wanted: dict[str, list[int]] = {u.lower(): [] for u in uuids}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if not argv or b"qemu-system" not in argv[0]:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue  # exited, not yet reaped
        for i, word in enumerate(argv[:-1]):
            if word == b"-uuid":
                uuid = argv[i + 1].decode().lower()
                if uuid in wanted:
                    wanted[uuid].append(int(proc.name))
    return wanted


def kill_qemus(uuids: Iterable[str]) -> list[int]:
    """SIGKILL every QEMU of these UUIDs (the cleanup of a test that may have orphaned
    some); returns the pids it had to kill."""
    killed = []
    for pids in qemu_pids(uuids).values():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(pid)
    deadline = time.monotonic() + 5
    while killed and any(qemu_pids(uuids).values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return killed


def definitions(state_dir: Path) -> dict[str, str]:
    """Every definition file under ``state_dir/domains``: name → UUID; each must parse
    and name itself (a torn file fails here)."""
    found = {}
    for path in sorted((state_dir / "domains").glob("*.xml")):
        defn = parse_domain(path.read_bytes())
        assert defn.name == path.stem, f"{path} defines '{defn.name}'"
        found[defn.name] = defn.uuid
    return found


async def bounded(what: str, awaitable: Awaitable[T], seconds: float) -> T:
    """``awaitable``, or an AssertionError naming ``what`` after ``seconds``: a hang fails."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise AssertionError(f"{what} did not return within {seconds:g} s") from None
