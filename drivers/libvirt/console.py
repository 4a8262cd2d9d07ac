"""A domain's serial console over a libvirt stream (``virDomainOpenConsole``).

The stream is non-blocking and watched by libvirt's event loop (libvirtaio, on the asyncio
loop): what the guest writes arrives in a stream callback, and writes that would block wait
for the stream to become writable. No thread is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from drivers.api import ConsoleStream

CHUNK = 65536
EAGAIN = -2


class LibvirtConsole(ConsoleStream):
    def __init__(
        self, libvirt: Any, stream: Any, name: str, finish: Callable[[Any], Awaitable[None]]
    ) -> None:
        self._lv = libvirt
        self._stream = stream
        self._name = name
        self._finish = finish
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._writable = asyncio.Event()
        self._trouble = int(libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP)
        self._reading = int(libvirt.VIR_STREAM_EVENT_READABLE) | self._trouble
        self._watching = self._reading
        self._closed = False
        stream.eventAddCallback(self._watching, self._on_event, None)

    def _end(self, why: str) -> None:
        if self.ended is None:
            self.ended = why
            self._queue.put_nowait(b"")
            self._writable.set()
            with contextlib.suppress(Exception):
                self._stream.eventRemoveCallback()

    def _on_event(self, stream: Any, events: int, _opaque: Any) -> None:
        lv = self._lv
        if events & lv.VIR_STREAM_EVENT_READABLE:
            while self.ended is None:
                try:
                    data = stream.recv(CHUNK)
                except lv.libvirtError as err:
                    self._end(f"the console of '{self._name}' failed: {err.get_error_message()}")
                    break
                if data == EAGAIN:
                    break
                if not data:
                    self._end(f"the console of '{self._name}' closed (the domain stopped)")
                    break
                self._queue.put_nowait(bytes(data))
        if events & lv.VIR_STREAM_EVENT_WRITABLE:
            self._writable.set()
            self._watch(writable=False)
        if events & self._trouble and self.ended is None:
            self._end(
                f"the console of '{self._name}' was closed by libvirt (the domain stopped, "
                "or another client took the console over)"
            )

    def _watch(self, writable: bool) -> None:
        wanted = self._reading
        if writable:
            wanted |= self._lv.VIR_STREAM_EVENT_WRITABLE
        if wanted != self._watching and self.ended is None:
            self._watching = wanted
            self._stream.eventUpdateCallback(wanted)

    async def read(self) -> bytes:
        if self.ended is not None and self._queue.empty():
            return b""
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self.ended is None:
            try:
                sent = self._stream.send(bytes(view))
            except self._lv.libvirtError as err:
                self._end(f"the console of '{self._name}' failed: {err.get_error_message()}")
                return
            if sent == EAGAIN:
                self._writable.clear()
                self._watch(writable=True)
                await self._writable.wait()
                continue
            view = view[int(sent) :]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._end("the console was closed")
        await self._finish(self._stream)
