"""A domain's serial console: its log since boot, and an interactive attachment.

QEMU copies everything the guest writes on its console chardev to a log file
(``logfile=``, see :class:`~drivers.qemu.argv.LaunchContext`), from the first byte of boot,
whether or not anybody is attached — a socket chardev alone discards output while no
client is connected. :class:`ConsoleLog` follows that file while the domain runs: it
notes when each piece arrived (an index file beside the log, so the times survive a
daemon restart), hands new lines to followers, and rotates the log when it grows past
:data:`ROTATE_AT` (one older generation is kept).

:class:`Attachment` is the interactive side: the driver connects to the chardev itself (a
unix socket in bind mode, or the pty QEMU made) only while a client holds the console;
one client at a time, ``force`` takes it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

from drivers.api import ConsoleStream
from drivers.domxml import CharDevDef
from drivers.errors import NotSupported, OperationFailed
from drivers.model import ConsoleLine

log = logging.getLogger(__name__)

#: How often a running domain's log is looked at.
POLL = 0.1
#: Above this size the log is rotated (kept as NAME.console.log.1).
ROTATE_AT = 4 << 20
#: Lines kept in memory for quick access.
RING_LINES = 5000
#: Lines longer than this are cut (a guest that never writes a newline).
MAX_LINE = 8192


class _Marks:
    """When each part of a log file arrived, from its index file: (start, wall, exact) per
    part, and where the last part ended (how far the log has been read)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[tuple[int, float, bool]] = []
        self.end = 0
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                parts = line.split()
                with contextlib.suppress(ValueError, IndexError):
                    self.items.append((int(parts[0]), float(parts[2]), parts[3] == "1"))
                    self.end = int(parts[1])

    def add(self, start: int, end: int, wall: float, exact: bool) -> None:
        self.items.append((start, wall, exact))
        self.end = end
        with contextlib.suppress(OSError), open(self.path, "a") as index:
            index.write(f"{start} {end} {wall:.6f} {int(exact)}\n")

    def at(self, offset: int) -> tuple[float, bool]:
        """The arrival of the byte at ``offset`` (the mark at or before it)."""
        found = (0.0, False)
        for start, wall, exact in self.items:
            if start > offset:
                break
            found = (wall, exact)
        return found


def _older(path: Path) -> Path:
    """The rotated generation of ``path``."""
    return path.with_name(path.name + ".1")


def _lines(data: bytes, base: int, marks: _Marks) -> list[tuple[int, ConsoleLine]]:
    """Complete lines of ``data`` (which starts at file offset ``base``) with their
    offsets; a trailing partial line is left out."""
    found: list[tuple[int, ConsoleLine]] = []
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            break
        raw = data[start:end].rstrip(b"\r")[:MAX_LINE]
        wall, exact = marks.at(base + start)
        found.append((base + start, ConsoleLine(wall, raw.decode(errors="replace"), exact)))
        start = end + 1
    return found


class ConsoleLog:
    """One domain's console log file, followed while the domain runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index = path.with_name(path.name + ".idx")
        self._marks = _Marks(self.index)
        self._ring: deque[tuple[int, ConsoleLine]] = deque(maxlen=RING_LINES)
        #: How far the log has been read (by this daemon, or by an earlier one).
        self._offset = self._marks.end
        self._followers: set[asyncio.Queue[ConsoleLine | None]] = set()
        self._task: asyncio.Task[None] | None = None

    # --- following --------------------------------------------------------------------

    def start(self) -> None:
        # What was written while no daemon followed the log (a restart, an earlier boot)
        # gets this moment as its time, marked inexact; from now on the times are exact.
        self._poll(exact=False)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._follow(), name=f"console-log-{self.path.name}"
            )

    async def stop(self) -> None:
        """The domain stopped: read what QEMU wrote last, end the followers."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._poll()
        for queue in self._followers:
            queue.put_nowait(None)

    async def _follow(self) -> None:
        while True:
            try:
                self._poll()
            except Exception:  # a broken file must not end the follower
                log.exception("reading %s", self.path)
            await asyncio.sleep(POLL)

    def _poll(self, exact: bool = True) -> None:
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        if size < self._offset:  # truncated by someone else: start over
            self._offset = 0
        if size == self._offset:
            return
        with open(self.path, "rb") as file:
            file.seek(self._offset)
            data = file.read(size - self._offset)
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) < MAX_LINE:
                return  # only part of a line so far
            cut = len(data)
            data = data + b"\n"  # a line that never ends is cut into pieces
        self._marks.add(self._offset, self._offset + cut, time.time(), exact)
        for offset, line in _lines(data[:cut] if data[cut - 1 : cut] == b"\n" else data,
                                   self._offset, self._marks):  # fmt: skip
            self._ring.append((offset, line))
            for queue in self._followers:
                queue.put_nowait(line)
        self._offset += cut
        if self._offset >= ROTATE_AT:
            self._rotate()

    def _rotate(self) -> None:
        old = _older(self.path)
        try:
            # Copy, then truncate: QEMU keeps the file open in append mode.
            with open(self.path, "rb") as src, open(old, "wb") as dst:
                dst.write(src.read(self._offset))
            os.truncate(self.path, 0)
            os.replace(self.index, _older(self.index))
        except OSError as err:
            log.warning("could not rotate %s: %s", self.path, err)
            return
        self._marks = _Marks(self.index)
        self._offset = 0

    # --- reading ----------------------------------------------------------------------

    def history(self, since: float | None = None) -> list[ConsoleLine]:
        """Every kept line (the older generation first), from ``since`` on."""
        ring = self._ring
        if since is not None and ring and ring[0][1].wall < since:
            # Recent enough for the lines kept in memory: no need to read the files.
            return [line for _, line in ring if line.wall >= since]
        lines: list[ConsoleLine] = []
        older = (_older(self.path), _older(self.index))
        for path, index in (older, (self.path, self.index)):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            marks = self._marks if path == self.path else _Marks(index)
            end = data.rfind(b"\n") + 1
            lines.extend(line for _, line in _lines(data[:end], 0, marks))
        if since is not None:
            lines = [line for line in lines if line.wall >= since]
        return lines

    async def lines(self, since: float | None, follow: bool) -> AsyncIterator[ConsoleLine]:
        queue: asyncio.Queue[ConsoleLine | None] = asyncio.Queue()
        if follow:
            self._followers.add(queue)
        try:
            self._poll()
            for line in self.history(since):
                yield line
            if not follow or self._task is None:
                return
            while (new := await queue.get()) is not None:
                yield new
        finally:
            self._followers.discard(queue)


# --- attaching ----------------------------------------------------------------------------


class Attachment(ConsoleStream):
    """The driver's own connection to a running domain's console chardev."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, on_close: object
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_close = on_close

    async def read(self) -> bytes:
        if self.ended is not None:
            return b""
        try:
            data = await self._reader.read(65536)
        except (ConnectionError, OSError) as err:
            data = b""
            self.ended = f"the console broke ({err})"
        if not data and self.ended is None:
            self.ended = "the domain's console closed (the domain stopped)"
        return data

    async def write(self, data: bytes) -> None:
        if self.ended is not None:
            raise OperationFailed(f"The console is closed: {self.ended}.")
        self._writer.write(data)
        await self._writer.drain()

    def end(self, reason: str) -> None:
        """Taken away (another client forced it, the domain stopped)."""
        if self.ended is None:
            self.ended = reason
        self._reader.feed_eof()
        with contextlib.suppress(Exception):
            self._writer.close()

    async def close(self) -> None:
        self.end("closed")
        callback = self._on_close
        if callable(callback):
            callback(self)


async def attach(dev: CharDevDef, name: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the host side of ``dev``: connect to its unix socket or open its pty."""
    if dev.type == "unix" and dev.source_mode == "bind" and dev.source_path:
        try:
            return await asyncio.open_unix_connection(dev.source_path)
        except OSError as err:
            raise OperationFailed(
                f"Cannot reach the console of '{name}' at {dev.source_path}: {err.strerror}."
            ) from err
    if dev.type == "pty" and dev.source_path:
        return await _open_pty(dev.source_path, name)
    raise NotSupported(
        f"The console of '{name}' is a <serial type='{dev.type}'>, which virtdeck cannot "
        "attach to; use type='pty' or a unix socket in bind mode (the log is kept either way)."
    )


async def _open_pty(path: str, name: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    import termios
    import tty

    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as err:
        raise OperationFailed(
            f"Cannot open the console of '{name}' ({path}): {err.strerror}."
        ) from err
    with contextlib.suppress(termios.error):
        tty.setraw(fd)  # bytes as they are: no echo, no line discipline on our side
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    read_file = os.fdopen(fd, "rb", buffering=0, closefd=False)
    write_file = os.fdopen(os.dup(fd), "wb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), read_file)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, write_file
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer
