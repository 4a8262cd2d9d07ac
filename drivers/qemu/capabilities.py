"""What the installed QEMU is, asked once per emulator binary."""

from __future__ import annotations

import functools
import re
import subprocess


@functools.cache
def qemu_version(emulator: str) -> str | None:
    """The version QEMU reports (e.g. '7.2.22'), or None if it cannot be run."""
    try:
        out = subprocess.run(
            [emulator, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"version (\d+\.\d+(?:\.\d+)?)", out)
    return match.group(1) if match else None


@functools.cache
def machine_types(emulator: str) -> frozenset[str]:
    """The machine types (and their aliases) QEMU offers; empty if it cannot be run."""
    try:
        out = subprocess.run(
            [emulator, "-machine", "help"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        parts = line.split()
        if parts:
            names.add(parts[0])
        alias = re.search(r"\(alias of (\S+)\)", line)
        if alias:
            names.add(alias.group(1))
    return frozenset(names)


def mem_available() -> int:
    """Bytes of memory this host can still give out (MemAvailable of /proc/meminfo)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
