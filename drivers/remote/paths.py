"""Where the local daemons live (no asyncio here: one-shot CLI commands import this)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SYSTEM_STATE = Path("/var/lib/virtdeck")
SYSTEM_RUNTIME = Path("/run/virtdeck")
SOCKET_NAME = "virtdeckd.sock"


@dataclass(frozen=True)
class DaemonPaths:
    state: Path  # definitions, images, logs
    runtime: Path  # socket, pid file, runtime status of guests

    @property
    def socket(self) -> Path:
        return self.runtime / SOCKET_NAME

    @property
    def pidfile(self) -> Path:
        return self.runtime / "virtdeckd.pid"

    @property
    def log(self) -> Path:
        return self.runtime / "virtdeckd.log"


def session_paths() -> DaemonPaths:
    """The per-user daemon's directories (XDG base directories)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    runtime_home = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_home:
        runtime = Path(runtime_home) / "virtdeck"
    else:
        runtime = Path(os.environ.get("TMPDIR") or "/tmp") / f"virtdeck-{os.getuid()}"
    return DaemonPaths(state=Path(data_home) / "virtdeck", runtime=runtime)


def system_paths() -> DaemonPaths:
    return DaemonPaths(state=SYSTEM_STATE, runtime=SYSTEM_RUNTIME)
