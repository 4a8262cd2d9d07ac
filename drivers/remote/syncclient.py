"""A blocking client of a local daemon, for one-shot commands that must start fast.

``virtdeck list --all`` is over before asyncio would have finished importing. This client
speaks the same protocol over a plain unix socket with blocking calls. Its methods are
``async def`` so the CLI's commands run on it unchanged, but they never suspend: a command
coroutine driven with :func:`run_to_completion` finishes in one step, without an event
loop. Its event stream (:class:`SyncEventStream`) blocks in the same way, for ``event``.
"""

from __future__ import annotations

import _socket  # not socket: its enum conversions and selectors cost ~3 ms at import
import os
import time
from collections.abc import Coroutine

from drivers.errors import ConnectionFailed, ConnectionLost
from drivers.model import (
    ConnectionClosedEvent,
    DomainSummary,
    Event,
    HostInfo,
)
from drivers.remote import protocol as p
from drivers.remote.calls import DomainCalls
from drivers.version import VERSION

TYPE_CHECKING = False  # not typing's: see drivers/records.py (one-shot CLI start-up)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _T = TypeVar("_T")

TIMEOUT = 120.0  # long enough for a start or a destroy with its grace period


class SyncRemoteConnection:
    """One blocking connection to the daemon listening on ``path``."""

    def __init__(self, path: str | os.PathLike[str], uri: str) -> None:
        self.uri = uri
        self._sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self._sock.settimeout(TIMEOUT)
        try:
            self._sock.connect(str(path))
        except OSError as err:
            self._sock.close()
            raise ConnectionFailed(f"No daemon is listening on {path}.") from err
        self._buffer = bytearray()
        self._ids = 0
        self._send(
            {"type": "hello", "protocol": p.PROTOCOL_VERSION, "client": f"virtdeck/{VERSION}"}
        )
        welcome = self._receive()
        if welcome.get("type") != "welcome":
            self.close_now()
            raise ConnectionFailed(f"The daemon refused the connection: {welcome.get('reason')}")
        self.capabilities = frozenset(welcome.get("capabilities", ()))

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self._sock.sendall(p.encode_message(message))
        except OSError as err:
            raise ConnectionLost(f"The connection to {self.uri} was lost: {err}.") from err

    def _read(self, n: int) -> bytes:
        """Exactly ``n`` bytes of the stream (from the buffer, then the socket)."""
        while len(self._buffer) < n:
            try:
                chunk = self._sock.recv(1 << 16)
            except TimeoutError as err:
                raise ConnectionLost(f"The daemon behind {self.uri} stopped answering.") from err
            except OSError as err:
                raise ConnectionLost(f"The connection to {self.uri} was lost: {err}.") from err
            if not chunk:
                raise ConnectionLost(f"The daemon behind {self.uri} closed the connection.")
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def _wait_readable(self, deadline: float) -> None:
        """Block until a frame starts arriving; TimeoutError at ``deadline``."""
        if self._buffer:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(1 << 16)
        except TimeoutError:
            raise
        except OSError as err:
            raise ConnectionLost(f"The connection to {self.uri} was lost: {err}.") from err
        finally:
            self._sock.settimeout(TIMEOUT)
        if not chunk:
            raise ConnectionLost(f"The daemon behind {self.uri} closed the connection.")
        self._buffer += chunk

    def _receive(self) -> dict[str, Any]:
        length, kind = p.read_header(self._read(p.HEADER_SIZE))
        frame = p.Frame(kind, self._read(length - 1))
        if kind != p.JSON:
            return {"type": "ignored"}
        return p.decode_message(frame)

    async def call(self, method: str, **args: Any) -> Any:
        """The same as :meth:`call_now`, for :class:`DomainCalls` (it never suspends)."""
        return self.call_now(method, **args)

    def call_now(self, method: str, **args: Any) -> Any:
        self._ids += 1
        call_id = self._ids
        try:
            self._sock.sendall(p.encode_call(call_id, method, args))
        except OSError as err:
            raise ConnectionLost(f"The connection to {self.uri} was lost: {err}.") from err
        while True:
            message = self._receive()
            kind = message.get("type")
            if kind == "bye":
                raise ConnectionLost(f"The daemon closed the connection: {message.get('reason')}.")
            if kind == "reply" and message.get("id") == call_id:
                if "error" in message:
                    raise p.error_from_wire(message["error"])
                return message.get("result")
            # events pushed meanwhile are of no interest to a one-shot command

    def _domain(self, data: dict[str, Any]) -> DomainCalls:
        return DomainCalls(self, str(data["name"]), str(data["uuid"]))

    async def list_domains(self) -> list[DomainCalls]:
        return [DomainCalls(self, s.name, s.uuid) for s in await self.list_summaries()]

    async def list_summaries(self) -> list[DomainSummary]:
        return [p.summary_from_wire(d) for d in self.call_now("list_summaries")]

    async def lookup(self, name: str) -> DomainCalls:
        return self._domain(self.call_now("lookup", name=name))

    async def lookup_by_uuid(self, uuid: str) -> DomainCalls:
        return self._domain(self.call_now("lookup_by_uuid", uuid=uuid))

    async def define_xml(self, xml: str) -> DomainCalls:
        return self._domain(self.call_now("define_xml", xml=xml))

    async def host_info(self) -> HostInfo:
        return p.host_from_wire(self.call_now("host_info"))

    #: Tells callers that every call blocks (no event loop is involved).
    blocking = True

    def events(self) -> SyncEventStream:
        """The daemon's events from now on, read with blocking calls."""
        return SyncEventStream(self)

    def next_event(self, deadline: float | None) -> Event:
        """The next pushed event; TimeoutError once ``deadline`` (monotonic) has passed."""
        while True:
            try:
                if deadline is not None:
                    self._wait_readable(deadline)
                message = self._receive()
            except ConnectionLost as err:
                return ConnectionClosedEvent(reason=str(err), lost=True)
            kind = message.get("type")
            if kind == "event":
                return p.event_from_wire(message["event"])
            if kind == "bye":
                return ConnectionClosedEvent(
                    reason=f"the daemon closed the connection: {message.get('reason')}", lost=True
                )

    def close_now(self) -> None:
        try:
            self._sock.sendall(p.encode_message({"type": "bye", "reason": "client closed"}))
        except OSError:
            pass
        self._sock.close()

    async def close(self) -> None:
        self.close_now()


class SyncEventStream:
    """An event stream whose ``__anext__`` blocks instead of suspending."""

    def __init__(self, conn: SyncRemoteConnection) -> None:
        self._conn = conn
        self._closed = False
        #: ``time.monotonic()`` after which reading raises TimeoutError.
        self.deadline: float | None = None

    def __aiter__(self) -> SyncEventStream:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        return self._conn.next_event(self.deadline)

    def close(self) -> None:
        self._closed = True


def run_to_completion(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine that never suspends (it only awaits this module's methods)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a command awaited something only an event loop can provide")
