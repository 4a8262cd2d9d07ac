"""A tiny cooperating x86_64 Linux guest for the test suite.

``guest_image()`` builds (once, cached on disk; see ``tests/guest/build.py``) a
Debian cloud kernel plus a busybox initramfs whose /init speaks a line protocol
on the serial console (ttyS0):

* once per boot it prints ``VIRTDECK-GUEST-READY uptime=<s> kernel=<release>``
  (``READY_RE``);
* then it reads commands, one per line: ``ping`` (answers ``VIRTDECK-PONG``),
  ``reboot``, ``poweroff``, ``panic`` (sysrq crash; reported by pvpanic as
  GUEST_PANICKED), ``sh <cmd>`` (answers ``VIRTDECK-DONE rc=<n>``); anything else
  answers ``VIRTDECK-UNKNOWN <line>``;
* the kernel parameter ``virtdeck.cmd=<cmd>`` (``virtdeck.cmd="<cmd with
  spaces>"``) runs a command right after READY (for write-only consoles);
* ACPI power button (QMP ``system_powerdown``) powers it off.

Boot it with e.g.::

    qemu-system-x86_64 -machine q35 -accel tcg -m 256 -nodefaults -display none
        -kernel IMG.kernel -initrd IMG.initrd -append IMG.cmdline
        -chardev socket,id=ser0,path=SOCK,server=on,wait=off -serial chardev:ser0
        -device pvpanic

Always ``-accel tcg``: the test machine's /dev/kvm cannot run Linux guests.
``SerialConsole`` is an asyncio client for the serial chardev socket.

This module imports only the standard library (pytest lazily in
``require_guest``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NoReturn

__all__ = [
    "CMDLINE",
    "DONE_RE",
    "PONG_RE",
    "QEMU_BINARY",
    "READY_RE",
    "UNKNOWN_RE",
    "GuestBuildError",
    "GuestImage",
    "SerialConsole",
    "guest_image",
    "require_guest",
]

#: Kernel command line for the guest (panic=-1: reboot at once after a panic
#: when QEMU lets the guest run on, e.g. ``-action panic=none``; the kernel prints
#: to the VGA text console too, and /dev/console is the serial line, the last one).
CMDLINE = "console=tty0 console=ttyS0 panic=-1 quiet"
QEMU_BINARY = "qemu-system-x86_64"

READY_RE: re.Pattern[str] = re.compile(
    r"^VIRTDECK-GUEST-READY uptime=(?P<uptime>\d+(?:\.\d+)?) kernel=(?P<kernel>\S+)$"
)
PONG_RE: re.Pattern[str] = re.compile(r"^VIRTDECK-PONG$")
DONE_RE: re.Pattern[str] = re.compile(r"^VIRTDECK-DONE rc=(?P<rc>\d+)$")
UNKNOWN_RE: re.Pattern[str] = re.compile(r"^VIRTDECK-UNKNOWN (?P<cmd>.*)$")


class GuestBuildError(Exception):
    """The tiny guest image could not be built (message says why and what to do)."""


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path
    cmdline: str
    kernel_version: str


_lock = threading.Lock()
_image: GuestImage | None = None
_error: GuestBuildError | None = None


def guest_image() -> GuestImage:
    """Return the guest image, building it on first use (cached on disk).

    The result (or the failure) is remembered for the rest of the process.
    Raises GuestBuildError.
    """
    global _image, _error
    with _lock:
        if _image is not None:
            return _image
        if _error is not None:
            raise _error
        from tests.guest import build  # lazy: keeps `python -m tests.guest.build` clean

        try:
            _image = build.build()
        except GuestBuildError as exc:
            _error = exc
            raise
        return _image


def require_guest() -> GuestImage:
    """For tests: the guest image, or skip (fail when ``CI=true``) if QEMU or
    the image is unavailable."""
    import pytest

    def unavailable(reason: str) -> NoReturn:
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)

    if shutil.which(QEMU_BINARY) is None:
        unavailable(f"{QEMU_BINARY} not found on PATH")
    try:
        return guest_image()
    except GuestBuildError as exc:
        unavailable(f"tiny test guest unavailable: {exc}")


class SerialConsole:
    """asyncio client of a QEMU serial chardev unix socket (QEMU is the server).

    A background task reads everything into ``lines`` (one entry per line,
    ``\\r`` removed; a trailing partial line is added when the connection
    closes).  ``wait_for`` scans ``lines`` from a cursor and moves the cursor
    past the line it returns, so each line is consumed at most once.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.lines: list[str] = []
        self._reader = reader
        self._writer = writer
        self._cursor = 0
        self._partial = b""
        self._eof = False
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read_loop(), name="virtdeck-serial-reader")

    @classmethod
    async def connect(cls, path: str | Path, timeout: float = 5.0) -> SerialConsole:
        """Connect, retrying until the socket exists and accepts (QEMU starting)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(os.fspath(path))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if loop.time() >= deadline:
                    raise TimeoutError(
                        f"serial socket {path} did not accept within {timeout}s: {exc}"
                    ) from exc
                await asyncio.sleep(0.01)
            else:
                return cls(reader, writer)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                *complete, self._partial = (self._partial + data).split(b"\n")
                if complete:
                    self.lines.extend(self._decode(line) for line in complete)
                    self._changed.set()
        except (ConnectionError, OSError):
            pass
        finally:
            if self._partial:
                self.lines.append(self._decode(self._partial))
                self._partial = b""
            self._eof = True
            self._changed.set()

    @staticmethod
    def _decode(raw: bytes) -> str:
        return raw.decode("utf-8", errors="replace").replace("\r", "")

    @property
    def cursor(self) -> int:
        """Index into ``lines`` where the next ``wait_for`` starts scanning."""
        return self._cursor

    def mark(self) -> None:
        """Skip everything received so far (next ``wait_for`` sees only new lines)."""
        self._cursor = len(self.lines)

    def _tail(self, n: int = 20) -> str:
        tail = self.lines[-n:]
        if self._partial:
            tail = [*tail, self._decode(self._partial) + "  <partial>"]
        return "\n".join(f"  | {line}" for line in tail) or "  (nothing received)"

    async def wait_for(
        self, pattern: str | re.Pattern[str], timeout: float = 15.0
    ) -> re.Match[str]:
        """Return the first line after the cursor that ``pattern`` matches
        (``re.search``) and move the cursor past it.

        Raises TimeoutError (or EOFError if the connection closed) with the
        last ~20 lines in the message.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = self._cursor
        while True:
            self._changed.clear()
            while index < len(self.lines):
                match = regex.search(self.lines[index])
                index += 1
                if match:
                    self._cursor = index
                    return match
            if self._eof:
                raise EOFError(
                    f"serial console closed while waiting for {regex.pattern!r}; "
                    f"last lines:\n{self._tail()}"
                )
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                raise TimeoutError(
                    f"no line matching {regex.pattern!r} within {timeout}s; "
                    f"last lines:\n{self._tail()}"
                ) from None

    async def send(self, line: str) -> None:
        """Send one line (a newline is appended)."""
        self._writer.write(line.encode() + b"\n")
        await self._writer.drain()

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def __aenter__(self) -> SerialConsole:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
