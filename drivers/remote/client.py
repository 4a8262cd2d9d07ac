"""RemoteConnection: the API spoken to a virtdeckd over any byte stream.

The stream is a unix socket (``qemu:///session``, ``qemu:///system``) or an SSH channel
(``qemu+ssh://``). Calls are concurrent (each has an id); events are pushed by the daemon
and fanned out to this connection's subscribers. When the stream breaks, calls in flight
raise :class:`~drivers.errors.ConnectionLost` and every event stream ends with a
:class:`~drivers.model.ConnectionClosedEvent` marked ``lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from drivers.api import Connection, ConsoleStream, Domain, EventHub, EventStream
from drivers.errors import (
    ConnectionFailed,
    ConnectionLost,
    OperationInvalid,
    ProtocolError,
    VirtError,
)
from drivers.model import (
    ConnectionClosedEvent,
    ConsoleLine,
    DiskCopy,
    DomainSummary,
    HostInfo,
    IncomingMigration,
    PoolInfo,
    Screenshot,
    StatsSample,
    VolumeInfo,
)
from drivers.remote import protocol as p
from drivers.remote.calls import DomainCalls
from drivers.uri import is_read_only, parse_uri
from drivers.version import VERSION

log = logging.getLogger(__name__)

#: Longer than a session daemon takes to start (local.AUTOSTART_TIMEOUT) behind a relay.
HANDSHAKE_TIMEOUT = 20.0
#: Below the daemon's limit per client (server.MAX_IN_FLIGHT), so no call is refused for it.
MAX_CALLS_IN_FLIGHT = 200

#: What a stream's queue holds: a byte frame's data, a stream-data message's payload, or
#: None for the end.
StreamItem = bytes | list[Any] | dict[str, Any] | None


class RemoteDomain(DomainCalls, Domain):
    """A domain of a daemon reached over asyncio."""

    @property
    def connection(self) -> RemoteConnection:
        assert isinstance(self._conn, RemoteConnection)
        return self._conn

    async def console(self, force: bool = False) -> ConsoleStream:
        conn = self.connection
        stream, queue = conn._open_stream()
        try:
            await conn.call("console.open", uuid=self.uuid, stream=stream, force=force)
        except BaseException:
            conn._streams.pop(stream, None)
            raise
        return _RemoteConsole(conn, stream, queue)

    async def console_log(
        self, since: float | None = None, follow: bool = False
    ) -> AsyncIterator[ConsoleLine]:
        conn = self.connection
        stream, queue = conn._open_stream()
        try:
            await conn.call("console.log", uuid=self.uuid, stream=stream, since=since,
                            follow=follow)  # fmt: skip
            while (item := await queue.get()) is not None:
                assert isinstance(item, list)
                for wall, text, exact in item:
                    yield ConsoleLine(float(wall), str(text), bool(exact))
        finally:
            await conn._end_stream(stream)

    async def screenshot(self, format: str = "png") -> Screenshot:  # noqa: A002 - virsh's word
        conn = self.connection
        stream, queue = conn._open_stream()
        try:
            await conn.call("screen.capture", uuid=self.uuid, stream=stream, format=format)
            item = await queue.get()
            if not isinstance(item, bytes):
                reason = conn._stream_reasons.pop(stream, None) or "the stream ended"
                raise ConnectionLost(f"The screenshot did not arrive: {reason}.")
            return p.screenshot_from_wire(item)
        finally:
            await conn._end_stream(stream)

    async def screen_frames(
        self, fps: float = 10.0, idle_fps: float = 1.0
    ) -> AsyncIterator[Screenshot]:
        conn = self.connection
        stream, queue = conn._open_stream()
        try:
            await conn.call("screen.open", uuid=self.uuid, stream=stream, fps=fps,
                            idle_fps=idle_fps)  # fmt: skip
        except BaseException:
            conn._streams.pop(stream, None)
            raise
        return _screen_frames(conn, stream, queue)


async def _screen_frames(
    conn: RemoteConnection, stream: int, queue: asyncio.Queue[StreamItem]
) -> AsyncIterator[Screenshot]:
    """The frames of a screen stream; when frames came faster than they were taken, only
    the newest of them (a viewer wants the screen as it is, not a backlog)."""
    try:
        while True:
            item = await queue.get()
            while isinstance(item, bytes) and not queue.empty():
                newer = queue.get_nowait()
                if not isinstance(newer, bytes):
                    queue.put_nowait(newer)  # the end: after this frame
                    break
                item = newer
            if not isinstance(item, bytes):
                reason = conn._stream_reasons.pop(stream, None)
                if reason and reason != "the screen closed":
                    from drivers.errors import OperationFailed

                    raise OperationFailed(f"The screen stream ended: {reason}")
                return
            yield p.screenshot_from_wire(item)
    finally:
        await conn._end_stream(stream)


class _RemoteConsole(ConsoleStream):
    """A console held through a daemon: its bytes travel in the stream's frames."""

    def __init__(
        self, conn: RemoteConnection, stream: int, queue: asyncio.Queue[StreamItem]
    ) -> None:
        self._conn = conn
        self._stream = stream
        self._queue = queue

    async def read(self) -> bytes:
        if self.ended is not None:
            return b""
        item = await self._queue.get()
        if isinstance(item, bytes):
            return item
        self.ended = self._conn._stream_reasons.pop(self._stream, None) or "the console closed"
        return b""

    async def write(self, data: bytes) -> None:
        if self.ended is not None:
            raise OperationInvalid(f"The console is closed: {self.ended}.")
        await self._conn._send_frame(p.encode_bytes(self._stream, data))

    async def close(self) -> None:
        if self.ended is None:
            self.ended = "closed"
        await self._conn._end_stream(self._stream)


class _StreamSink:
    """The client's sending end of a byte stream to the daemon."""

    def __init__(self, conn: RemoteConnection, stream: int) -> None:
        self._conn = conn
        self._stream = stream

    async def write(self, data: bytes) -> None:
        await self._conn._send_frame(p.encode_bytes(self._stream, data))

    async def close(self) -> None:
        with contextlib.suppress(VirtError):
            await self._conn._send_frame(
                p.encode_message({"type": "stream-end", "stream": self._stream})
            )


class RemoteConnection(Connection):
    """A connection to a daemon over ``reader``/``writer``."""

    def __init__(
        self,
        reader: p.ByteReader,
        writer: p.ByteWriter,
        uri: str,
        on_close: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._uri = uri
        # Messages name the URI without its query (which may hold long ssh commands).
        try:
            parsed = parse_uri(uri)
            self._name = str(parsed.without_params())
            self.read_only = is_read_only(parsed)
        except VirtError:
            self._name = uri
            self.read_only = False
        self._on_close = on_close
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._slots = asyncio.Semaphore(MAX_CALLS_IN_FLIGHT)
        self._hub = EventHub()
        self._closed = False
        self._lost_reason: str | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.welcome: dict[str, Any] = {}
        self._stream_ids = itertools.count(1)
        #: Streams the daemon sends on, by id: byte frames (bytes), stream-data messages
        #: (their payload) and, last, None for the stream's end.
        self._streams: dict[int, asyncio.Queue[StreamItem]] = {}
        #: Why a stream ended, as the daemon said.
        self._stream_reasons: dict[int, str] = {}

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self.welcome.get("capabilities", ()))

    @property
    def closed(self) -> bool:
        return self._closed

    async def handshake(self) -> None:
        """Exchange hello/welcome; raises ConnectionFailed if the peer is no daemon."""
        self._writer.write(
            p.encode_message(
                {
                    "type": "hello",
                    "protocol": p.PROTOCOL_VERSION,
                    "client": f"virtdeck/{VERSION}",
                    "read_only": self.read_only,
                }
            )
        )
        try:
            await self._writer.drain()
            frame = await asyncio.wait_for(p.read_frame(self._reader), HANDSHAKE_TIMEOUT)
            message = p.decode_message(frame)
        except (EOFError, ConnectionError, OSError) as err:
            raise ConnectionFailed(
                f"The daemon behind {self._name} closed the connection during the handshake."
            ) from err
        except TimeoutError as err:
            raise ConnectionFailed(
                f"No virtdeck daemon answered on {self._name} within {HANDSHAKE_TIMEOUT:g} s."
            ) from err
        except ProtocolError as err:
            raise ConnectionFailed(
                f"What answered on {self._name} does not speak the virtdeck protocol ({err})."
            ) from err
        if message.get("type") == "bye":
            raise ConnectionFailed(f"The daemon refused the connection: {message.get('reason')}")
        if message.get("type") != "welcome":
            raise ConnectionFailed(f"Unexpected first message from the daemon: {message}.")
        self.welcome = message
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"remote-{self._uri}")

    async def _read_loop(self) -> None:
        reason = "the daemon closed the connection"
        try:
            while True:
                frame = await p.read_frame(self._reader)
                if frame.kind != p.JSON:
                    stream, data = p.decode_bytes(frame)
                    queue = self._streams.get(stream)
                    if queue is not None:
                        # Waiting here when the consumer lags is the tunnel's flow control.
                        await queue.put(data)
                    continue
                message = p.decode_message(frame)
                kind = message["type"]
                if kind == "reply":
                    self._settle(message)
                elif kind == "stream-data":
                    queue = self._streams.get(message.get("stream", -1))
                    if queue is not None:
                        await queue.put(message.get("data"))
                elif kind == "stream-end":
                    stream = message.get("stream", -1)
                    queue = self._streams.get(stream)
                    if queue is not None:
                        if isinstance(message.get("reason"), str):
                            self._stream_reasons[stream] = message["reason"]
                        await queue.put(None)
                elif kind == "event":
                    self._hub.publish(p.event_from_wire(message["event"]))
                elif kind == "bye":
                    reason = f"the daemon closed the connection: {message.get('reason')}"
                    break
        except EOFError:
            pass
        except ProtocolError as err:
            reason = f"the daemon broke the protocol: {err.message}"
        except (ConnectionError, OSError) as err:
            reason = f"the link to the daemon broke: {err}"
        except asyncio.CancelledError:
            if self._closed:
                return
            raise
        except Exception as err:  # whatever a transport raises, the link is gone
            reason = f"the link to the daemon failed: {err!r}"
        self._lose(reason)

    def _settle(self, message: dict[str, Any]) -> None:
        future = self._pending.pop(message.get("id", -1), None)
        if future is None or future.done():
            return
        if "error" in message:
            future.set_exception(p.error_from_wire(message["error"]))
        else:
            future.set_result(message.get("result"))

    def _lose(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._lost_reason = reason
        error = ConnectionLost(f"The connection to {self._name} was lost: {reason}.")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        self._end_streams()
        self._hub.close(ConnectionClosedEvent(reason=reason, lost=True))
        with contextlib.suppress(Exception):
            self._writer.close()
        task = self._reader_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if self._on_close is not None:
            asyncio.get_running_loop().create_task(self._on_close())

    def _end_streams(self) -> None:
        for queue in self._streams.values():
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    def lose(self, reason: str) -> None:
        """Declare the link dead (a transport noticed it first, e.g. SSH keepalives)."""
        self._lose(reason)

    async def call(self, method: str, **args: Any) -> Any:
        if self._closed:
            if self._lost_reason is not None:
                raise ConnectionLost(
                    f"The connection to {self._name} was lost: {self._lost_reason}; reconnect."
                )
            raise OperationInvalid("This connection is closed; open a new one.")
        # The daemon serves a bounded number of calls per client; more wait here.
        async with self._slots:
            call_id = next(self._ids)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending[call_id] = future
            try:
                frame = p.encode_call(call_id, method, args)
            except VirtError:
                del self._pending[call_id]
                raise
            try:
                self._writer.write(frame)
                await self._writer.drain()
            except (ConnectionError, OSError) as err:
                self._lose(f"writing to the daemon failed: {err}")
            return await future

    def _domain(self, data: dict[str, Any]) -> RemoteDomain:
        return RemoteDomain(self, str(data["name"]), str(data["uuid"]))

    async def list_domains(self) -> list[Domain]:
        return [RemoteDomain(self, s.name, s.uuid) for s in await self.list_summaries()]

    async def list_summaries(self) -> list[DomainSummary]:
        return [p.summary_from_wire(d) for d in await self.call("list_summaries")]

    async def lookup(self, name: str) -> Domain:
        return self._domain(await self.call("lookup", name=name))

    async def lookup_by_uuid(self, uuid: str) -> Domain:
        return self._domain(await self.call("lookup_by_uuid", uuid=uuid))

    async def define_xml(self, xml: str) -> Domain:
        return self._domain(await self.call("define_xml", xml=xml))

    def events(self) -> EventStream:
        if self._closed:
            raise OperationInvalid("This connection is closed; open a new one.")
        return self._hub.subscribe()

    async def host_info(self) -> HostInfo:
        return p.host_from_wire(await self.call("host_info"))

    async def pool_info(self) -> PoolInfo:
        return p.pool_from_wire(await self.call("storage.pool_info"))

    async def list_volumes(self) -> list[VolumeInfo]:
        return [p.volume_from_wire(v) for v in await self.call("storage.list_volumes")]

    async def create_volume(
        self, name: str, capacity_bytes: int, fmt: str | None = None
    ) -> VolumeInfo:
        args: dict[str, Any] = {"name": name, "capacity_bytes": capacity_bytes}
        if fmt is not None:
            args["format"] = fmt
        volume = await self.call("storage.create_volume", **args)
        return p.volume_from_wire(volume)

    async def delete_volume(self, name: str) -> None:
        await self.call("storage.delete_volume", name=name)

    async def free_memory(self) -> int:
        return int(await self.call("free_memory"))

    async def migrate_preflight(self, xml: str, copy_storage: bool = False) -> tuple[str, ...]:
        reasons = await self.call("migrate_preflight", xml=xml, copy_storage=copy_storage)
        return tuple(str(r) for r in reasons)

    async def migrate_prepare(
        self,
        xml: str,
        *,
        started_wall: float | None = None,
        copy_disks: tuple[DiskCopy, ...] = (),
        tunnelled: bool = False,
    ) -> IncomingMigration:
        result = await self.call(
            "migrate_prepare",
            xml=xml,
            started_wall=started_wall,
            copy_disks=p.disks_to_wire(copy_disks),
            tunnelled=tunnelled,
        )
        return p.incoming_from_wire(result)

    async def migrate_finish(
        self,
        uuid: str,
        *,
        success: bool,
        persistent_xml: str | None = None,
        paused: bool = False,
    ) -> None:
        await self.call(
            "migrate_finish",
            uuid=uuid,
            success=success,
            persistent_xml=persistent_xml,
            paused=paused,
        )

    def _open_stream(self, bounded: bool = False) -> tuple[int, asyncio.Queue[StreamItem]]:
        """A new stream id and its queue. A bounded queue makes a slow consumer slow the
        sender down (tunnels), but also holds up every other reply and event of this
        connection meanwhile, so consoles and logs get unbounded ones."""
        stream = next(self._stream_ids)
        queue: asyncio.Queue[StreamItem] = asyncio.Queue(maxsize=16 if bounded else 0)
        self._streams[stream] = queue
        return stream, queue

    async def tunnel_out(self, uuid: str) -> tuple[str, AsyncIterator[bytes]]:
        """The source's end of a tunnelled migration (see drivers.migration.TunnelEnds)."""
        stream, queue = self._open_stream(bounded=True)
        try:
            result = await self.call("tunnel.out", uuid=uuid, stream=stream)
        except BaseException:
            self._streams.pop(stream, None)
            raise

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while isinstance(data := await queue.get(), bytes):
                    yield data
            finally:
                self._streams.pop(stream, None)

        return str(result["uri"]), chunks()

    async def tunnel_in(self, uuid: str) -> _StreamSink:
        """The destination's end of a tunnelled migration."""
        stream = next(self._stream_ids)
        await self.call("tunnel.in", uuid=uuid, stream=stream)
        return _StreamSink(self, stream)

    async def _send_frame(self, frame: bytes) -> None:
        if self._closed:
            raise ConnectionLost(f"The connection to {self._name} is closed.")
        try:
            self._writer.write(frame)
            await self._writer.drain()
        except (ConnectionError, OSError) as err:
            self._lose(f"writing to the daemon failed: {err}")
            raise ConnectionLost(f"The connection to {self._name} was lost: {err}.") from err

    async def stats_stream(self, interval: float = 1.0) -> AsyncIterator[StatsSample]:
        stream, queue = self._open_stream()
        try:
            await self.call("stats.subscribe", stream=stream, interval=interval)
            while (item := await queue.get()) is not None:
                yield p.sample_from_wire(item)
        finally:
            await self._end_stream(stream)

    async def _end_stream(self, stream: int) -> None:
        """Stop a stream the daemon sends on (if it has not ended by itself)."""
        if self._streams.pop(stream, None) is not None and not self._closed:
            with contextlib.suppress(VirtError):
                await self._send_frame(p.encode_message({"type": "stream-end", "stream": stream}))

    async def ping(self) -> float:
        """Round-trip time of one call, in seconds."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self.call("ping")
        return loop.time() - start

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._writer.write(p.encode_message({"type": "bye", "reason": "client closed"}))
            await asyncio.wait_for(self._writer.drain(), 1.0)
        with contextlib.suppress(Exception):
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
        self._end_streams()
        error = OperationInvalid("This connection was closed while the call was in flight.")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        self._hub.close(ConnectionClosedEvent(reason="the connection was closed", lost=False))
        if self._on_close is not None:
            await self._on_close()
