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
