"""The daemon's ends of a tunnelled migration: a local QEMU socket joined to a client's stream.

A tunnelled migration's bytes travel in the protocol's byte frames (type ``B``, a stream id
chosen by the client), inside the connection the client already has with each host:

- on the source, :func:`open_out` listens on a unix socket that the source's QEMU
  ``migrate``\\ s to, and sends everything QEMU writes to the client;
- on the destination, :func:`open_in` connects to the unix socket the destination's QEMU
  waits on (``migrate-incoming unix:``) and writes into it what the client sends.

Either end's close is a ``stream-end`` message. Flow control comes from the transports: a
sender waits for its writer to drain, so a slow link slows QEMU down instead of filling
memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from drivers.api import ConsoleStream
from drivers.errors import OperationFailed, VirtError
from drivers.remote import protocol as p

log = logging.getLogger(__name__)

#: How much of QEMU's stream goes in one frame.
CHUNK = 256 * 1024
#: How long the source's QEMU has to connect once Perform has begun.
ACCEPT_TIMEOUT = 60.0

Send = Callable[[bytes], Awaitable[None]]
"""Writes one encoded frame to the client and waits until the transport has taken it."""


class StreamEnd:
    """One stream of a session: what the client sends goes into ``writer``.

    Subclasses carry other ends (a console); the session calls :meth:`feed` with every
    byte frame of the stream, :meth:`end` when the client ends it and :meth:`close` when
    the session goes."""

    def __init__(self, stream: int) -> None:
        self.stream = stream
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.server: asyncio.base_events.Server | None = None

    async def feed(self, data: bytes) -> None:
        if self.writer is None:
            return
        self.writer.write(data)
        await self.writer.drain()

    def end(self) -> None:
        """The client closed its side: no more input, or (a stream that only sends) stop."""
        if self.writer is not None:
            with contextlib.suppress(OSError):
                self.writer.write_eof()
        elif self.task is not None:
            self.task.cancel()

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.server is not None:
            self.server.close()
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()


async def _pump_out(
    reader: asyncio.StreamReader, stream: int, send: Send, end: Callable[[], None]
) -> None:
    try:
        while data := await reader.read(CHUNK):
            await send(p.encode_bytes(stream, data))
    except (ConnectionError, OSError) as err:
        log.info("tunnel %d: the source QEMU's stream broke: %s", stream, err)
    finally:
        end()


async def open_out(path: Path, stream: int, send: Send, end: Callable[[], None]) -> StreamEnd:
    """Listen on ``path`` for the source QEMU's one connection and relay it to the client."""
    tunnel = StreamEnd(stream)
    path.unlink(missing_ok=True)
    accepted = asyncio.get_running_loop().create_future()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if accepted.done():
            writer.close()
            return
        accepted.set_result(None)
        tunnel.writer = writer
        tunnel.task = asyncio.create_task(_pump_out(reader, stream, send, end))
        if tunnel.server is not None:
            tunnel.server.close()

    tunnel.server = await asyncio.start_unix_server(on_connect, path=str(path), limit=CHUNK)
    return tunnel


async def open_in(path: Path, stream: int) -> StreamEnd:
    """Connect to the destination QEMU's waiting socket at ``path``."""
    tunnel = StreamEnd(stream)
    try:
        _reader, tunnel.writer = await asyncio.open_unix_connection(str(path))
    except OSError as err:
        raise OperationFailed(
            f"The destination's QEMU does not wait at {path} for the tunnelled stream "
            f"({err.strerror}); the migration was not prepared, or it was already abandoned."
        ) from err
    return tunnel


class ConsoleEnd(StreamEnd):
    """An interactive console held for a client: its keys go to the guest."""

    def __init__(self, stream: int, console: ConsoleStream) -> None:
        super().__init__(stream)
        self.console = console

    async def feed(self, data: bytes) -> None:
        with contextlib.suppress(VirtError):
            await self.console.write(data)

    def end(self) -> None:
        asyncio.get_running_loop().create_task(self.console.close())

    def close(self) -> None:
        super().close()
        self.end()


async def pump_console(
    console: ConsoleStream, stream: int, send: Send, end: Callable[[str], None]
) -> None:
    """Everything the guest writes, to the client, until the console ends."""
    try:
        while data := await console.read():
            await send(p.encode_bytes(stream, data))
    except (ConnectionError, OSError):
        pass
    finally:
        end(console.ended or "the console closed")
