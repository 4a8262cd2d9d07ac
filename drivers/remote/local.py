"""Reaching the local daemons: ``qemu:///session`` (started on demand) and ``qemu:///system``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

from drivers.errors import AccessDenied, ConnectionFailed
from drivers.remote.client import RemoteConnection
from drivers.remote.paths import DaemonPaths, session_paths, system_paths

#: How long a client waits for a session daemon it started to accept connections.
AUTOSTART_TIMEOUT = 15.0


def private_dir(path: Path) -> None:
    """Create ``path`` 0700, and refuse one that someone else owns or that others can enter."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.lstat()
    if path.is_symlink() or info.st_uid != os.getuid():
        raise ConnectionFailed(
            f"{path} is not a directory of yours; remove it so virtdeck can create its own."
        )
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)


async def connect_unix(path: Path, uri: str) -> RemoteConnection:
    """A handshaken connection to the daemon listening on ``path``."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 23)
    except PermissionError as err:
        raise AccessDenied(
            f"You may not use the daemon socket {path}; ask an administrator to add you to "
            "its group."
        ) from err
    except (FileNotFoundError, ConnectionRefusedError) as err:
        raise ConnectionFailed(f"No daemon is listening on {path}.") from err
    except OSError as err:
        raise ConnectionFailed(f"Cannot connect to {path}: {err.strerror}.") from err
    conn = RemoteConnection(reader, writer, uri)
    try:
        await conn.handshake()
    except BaseException:
        writer.close()
        raise
    return conn


def daemon_command() -> list[str]:
    """How to run virtdeckd: $VIRTDECKD_COMMAND, else this interpreter's module."""
    override = os.environ.get("VIRTDECKD_COMMAND")
    if override:
        return override.split()
    return [sys.executable, "-m", "drivers.daemon"]


def spawn_session_daemon(paths: DaemonPaths) -> None:
    """Start a session daemon detached from this process (it outlives us)."""
    private_dir(paths.runtime)
    with open(paths.log, "ab") as log:
        # Through an intermediate process that exits at once: the daemon is re-parented
        # and never becomes a zombie of a long-running client.
        subprocess.run(
            [*daemon_command(), "--session", "--detach"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            check=False,
            start_new_session=True,
        )


async def open_session(uri: str) -> RemoteConnection:
    """Connect to the user's session daemon, starting it if it is not running.

    Two clients starting at once may both spawn a daemon; the daemons' lock lets one win
    and the other exit, and both clients connect to the winner.
    """
    paths = session_paths()
    with contextlib.suppress(ConnectionFailed):
        return await connect_unix(paths.socket, uri)
    await asyncio.to_thread(spawn_session_daemon, paths)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + AUTOSTART_TIMEOUT
    last: ConnectionFailed | None = None
    while loop.time() < deadline:
        try:
            return await connect_unix(paths.socket, uri)
        except ConnectionFailed as err:
            last = err
            await asyncio.sleep(0.01)
    tail = ""
    with contextlib.suppress(OSError):
        tail = paths.log.read_text(errors="replace").strip().splitlines()[-1]
    raise ConnectionFailed(
        f"The session daemon did not come up within {AUTOSTART_TIMEOUT:g} s"
        + (f" (its log ends: {tail})" if tail else "")
        + f"; see {paths.log}."
    ) from last


async def open_system(uri: str, socket: Path | None = None) -> RemoteConnection:
    path = socket or system_paths().socket
    try:
        return await connect_unix(path, uri)
    except AccessDenied:
        raise
    except ConnectionFailed as err:
        if isinstance(err.__cause__, FileNotFoundError | ConnectionRefusedError):
            raise ConnectionFailed(
                f"The system daemon is not running (no one listens on {path}); start it as "
                "root with 'virtdeckd --system'."
            ) from err
        raise


__all__ = [
    "DaemonPaths",
    "connect_unix",
    "open_session",
    "open_system",
    "private_dir",
    "session_paths",
    "system_paths",
]
