"""libvirt's event loop is asyncio's: libvirtaio on the running loop, safe from any thread.

libvirt needs an event loop implementation before the first connection opens; it then adds,
changes and removes watches on its sockets and timers through six callbacks.
:mod:`libvirtaio` implements them on an asyncio loop, but only for callers on the loop's own
thread. The driver makes its blocking libvirt calls in worker threads (they must not stall
the loop), and libvirt calls those callbacks from whichever thread is inside it. So
:class:`ThreadSafeImpl` keeps libvirtaio's watches and timers but runs every change on the
loop, in the order the changes were asked for: a worker's change is queued and the loop is
woken; a change made on the loop first runs whatever is queued. Nobody ever waits for the
loop (a worker inside libvirt may hold a lock the loop's next callback needs).

libvirt takes an event implementation once per process. A process that runs one loop after
another (tests, ``asyncio.run`` twice) moves the one implementation to the new loop; a loop
still running elsewhere keeps it, and the new one gets a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from drivers.errors import NotSupported
from drivers.libvirt.binding import libvirt as _libvirt
from drivers.libvirt.binding import libvirtaio as _libvirtaio

libvirt: Any = _libvirt()
aio: Any = _libvirtaio()
_Base: Any = aio.virEventAsyncIOImpl

_ids = itertools.count(1)


def _quiet(_context: object, _error: object) -> None:
    """libvirt's default handler prints every error on stderr (over a TUI's screen); the
    driver reports them itself, as VirtErrors."""


libvirt.registerErrorHandler(_quiet, None)


class ThreadSafeImpl(_Base):  # type: ignore[misc]
    """libvirtaio's implementation, with every change to a watch or timer run on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._queued: deque[Callable[[], None]] = deque()

    # --- running changes on the loop, in order ---------------------------------------------

    def on_loop(self) -> bool:
        return threading.get_ident() == self.loop_thread

    def _apply(self, change: Callable[[], None]) -> None:
        if self.on_loop() and not self.loop.is_closed():
            self.flush()
            change()
            return
        with self._lock:
            self._queued.append(change)
        # A closed loop (its process is between loops) gets the change when the
        # implementation moves to the next one.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.flush)

    def flush(self) -> None:
        """Run the changes other threads queued, oldest first."""
        while True:
            with self._lock:
                if not self._queued:
                    return
                change = self._queued.popleft()
            change()

    # --- libvirt's six callbacks -------------------------------------------------------------

    def _add_handle(self, fd: int, event: int, cb: Any, opaque: Any) -> int:
        iden = next(_ids)

        def add() -> None:
            descriptor = self.descriptors[fd]
            callback = aio.FDCallback(self, cb, opaque, descriptor=descriptor, event=event)
            callback.iden = iden  # the number libvirt was already given
            self.callbacks[iden] = callback
            descriptor.add_handle(callback)
            self._pending_inc()

        self._apply(add)
        return iden

    def _update_handle(self, watch: int, event: int) -> None:
        def update() -> None:
            callback = self.callbacks.get(watch)
            if isinstance(callback, aio.FDCallback):
                callback.update(event=event)

        self._apply(update)

    def _remove_handle(self, watch: int) -> int:
        self._apply(lambda: super(ThreadSafeImpl, self)._remove_handle(watch))
        return 0

    def _add_timeout(self, timeout: int, cb: Any, opaque: Any) -> int:
        iden = next(_ids)

        def add() -> None:
            callback = aio.TimeoutCallback(self, cb, opaque)
            callback.iden = iden
            self.callbacks[iden] = callback
            callback.update(timeout=timeout)
            self._pending_inc()

        self._apply(add)
        return iden

    def _update_timeout(self, timer: int, timeout: int) -> None:
        def update() -> None:
            callback = self.callbacks.get(timer)
            if isinstance(callback, aio.TimeoutCallback):
                callback.update(timeout=timeout)

        self._apply(update)

    def _remove_timeout(self, timer: int) -> int:
        self._apply(lambda: super(ThreadSafeImpl, self)._remove_timeout(timer))
        return 0

    # --- one loop after another --------------------------------------------------------------

    def move_to(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch every descriptor and run every timer on ``loop`` from now on (the loop
        they were on has ended; whatever it had not run yet runs here)."""
        self.loop = loop
        self.loop_thread = threading.get_ident()
        for descriptor in list(self.descriptors.values()):
            descriptor.update()
        for callback in list(self.callbacks.values()):
            if isinstance(callback, aio.TimeoutCallback):
                timeout, callback._task = callback.timeout, None
                callback.update(timeout=timeout)
        self._pending = len(self.callbacks)
        self._finished = None
        self.flush()


_impl: ThreadSafeImpl | None = None
_impl_lock = threading.Lock()


def bind() -> ThreadSafeImpl:
    """The process's libvirt event implementation, on the running loop (registered with
    libvirt the first time: before any libvirt connection opens)."""
    global _impl
    loop = asyncio.get_running_loop()
    with _impl_lock:
        if _impl is None:
            _impl = ThreadSafeImpl(loop)
            _impl.register()
        elif _impl.loop is not loop:
            old = _impl.loop
            if not old.is_closed() and old.is_running():
                raise NotSupported(
                    "libvirt connections of one process must all be used from one asyncio "
                    "event loop, and another loop (in another thread) still runs them; open "
                    "this connection from that loop, or close those connections first."
                )
            _impl.move_to(loop)
        return _impl
