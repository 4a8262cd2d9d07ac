"""Files written so that a crash leaves either the old or the new content, never a mix."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, data: bytes | str, mode: int = 0o600, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename: readers see the old
    file or the new one, never a part. ``durable``: fsync too, so that the new one also
    survives a crash (a cache can do without)."""
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(path.parent)


def describe(err: OSError, where: Path) -> str:
    """What went wrong with a file under ``where``, and what to do, for a user: a full
    disk names the file system and says to free space there and retry."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on the file system holding {where} (or its quota is used up); "
            "free some space there and retry"
        )
    if err.errno == errno.EROFS:
        return f"{where} is on a read-only file system; remount it read-write and retry"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied under {where}; check who owns it"
    return f"{err.strerror or err} (under {where})"


def remove(path: Path) -> None:
    """Remove ``path`` if it exists, durably."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class WriteBehind:
    """Atomic writes done by a background thread, newest content per path first.

    The QEMU driver commits a state change in memory and delivers its event at once; the
    status file (fsync'd, so 1-2 ms on ordinary disks) follows off the event path. A later
    write to the same path replaces a pending one, and ``None`` removes the file. A write
    that fails (a full disk) is tried again every :data:`RETRY` seconds until it lands or
    a newer one replaces it, so the file catches up once space is freed. Should the
    process die in between, reconnecting reconciles the state from QEMU itself.
    """

    #: Seconds between attempts at a write that failed.
    RETRY = 1.0

    def __init__(self) -> None:
        self._pending: dict[Path, bytes | str | Callable[[], str] | None] = {}
        self._failed: dict[Path, bytes | str | Callable[[], str] | None] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def submit(self, path: Path, data: bytes | str | Callable[[], str] | None) -> None:
        """Write ``data`` (or what the callable returns, computed in the thread) to ``path``."""
        with self._cond:
            self._pending[path] = data
            self._failed.pop(path, None)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="virtdeck-status-writer", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._busy = False
                    self._cond.notify_all()
                    if self._failed:
                        self._cond.wait(self.RETRY)
                        for path, data in self._failed.items():
                            self._pending.setdefault(path, data)
                        self._failed.clear()
                    else:
                        self._cond.wait()
                path, data = next(iter(self._pending.items()))
                del self._pending[path]
                self._busy = True
            try:
                if data is None:
                    remove(path)
                else:
                    atomic_write(path, data() if callable(data) else data)
            except OSError as err:
                with self._cond:
                    if path not in self._pending:  # else a newer write replaces it
                        self._failed[path] = data
                    if len(self.errors) < 100:
                        self.errors.append(f"{path}: {err.strerror}")

    @property
    def failing(self) -> list[Path]:
        """Paths whose last write failed and waits to be tried again."""
        with self._cond:
            return sorted(self._failed)

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every submitted write is on disk or has failed; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)
