"""Where the local daemons live (no asyncio here: one-shot CLI commands import this).

The directories are worked out as strings with :mod:`os.path`, so that a one-shot command
finding the daemon's socket (:func:`local_socket`) loads neither :mod:`pathlib` nor
:mod:`dataclasses`; :class:`DaemonPaths` hands out :class:`~pathlib.Path` objects.
"""

from __future__ import annotations

import os

from drivers.records import record
from drivers.xdg import virtdeck_dir

TYPE_CHECKING = False  # not typing's: see drivers/records.py (one-shot CLI start-up)
if TYPE_CHECKING:
    from pathlib import Path

SYSTEM_STATE = "/var/lib/virtdeck"
SYSTEM_RUNTIME = "/run/virtdeck"
SOCKET_NAME = "virtdeckd.sock"


@record
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


def _session_dirs() -> tuple[str, str]:
    """The per-user daemon's (state, runtime) directories (XDG base directories)."""
    runtime_home = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_home:
        runtime = os.path.join(runtime_home, "virtdeck")
    else:
        runtime = os.path.join(os.environ.get("TMPDIR") or "/tmp", f"virtdeck-{os.getuid()}")
    return virtdeck_dir("XDG_DATA_HOME", os.path.join(".local", "share")), runtime


def local_socket(uri: str) -> str | None:
    """The socket of the local daemon ``uri`` names (qemu:///session or qemu:///system)."""
    if uri == "qemu:///session":
        return os.path.join(_session_dirs()[1], SOCKET_NAME)
    if uri == "qemu:///system":
        return os.path.join(SYSTEM_RUNTIME, SOCKET_NAME)
    return None


def session_paths() -> DaemonPaths:
    """The per-user daemon's directories."""
    from pathlib import Path

    state, runtime = _session_dirs()
    return DaemonPaths(state=Path(state), runtime=Path(runtime))


def system_paths() -> DaemonPaths:
    from pathlib import Path

    return DaemonPaths(state=Path(SYSTEM_STATE), runtime=Path(SYSTEM_RUNTIME))
