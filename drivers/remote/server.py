"""Serving one driver connection to many clients (what virtdeckd runs).

Each client gets every event, in order, through its own bounded outgoing queue: a client
that stops reading is disconnected with a reason once its queue is full, and never slows
the others down. Requests run concurrently; replies carry the request id. A malformed frame
ends that client's connection with a reason; the server keeps serving everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from drivers.api import Connection, Domain
from drivers.errors import (
    InvalidArgument,
    OperationFailed,
    ProtocolError,
    VirtError,
)
from drivers.model import ConsoleLine, Event, Screenshot
from drivers.remote import protocol as p
from drivers.remote import tunnel
from drivers.version import VERSION

log = logging.getLogger(__name__)

#: Outgoing messages a client may have queued before it counts as too slow.
MAX_QUEUE = 10_000
#: Requests one client may have in flight at once.
MAX_IN_FLIGHT = 256
HELLO_TIMEOUT = 10.0
#: Below this many bytes buffered in the socket, messages skip the queue.
DIRECT_WRITE_LIMIT = 64 * 1024
#: How long a dropped client gets to read its last messages and the bye.
DROP_GRACE = 10.0

Handler = Callable[[Connection, dict[str, Any]], Awaitable[Any]]


def _arg(args: dict[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    if name not in args:
        if default is ...:
            raise InvalidArgument(f"The call is missing its '{name}' argument.")
        return default
    value = args[name]
    if value is None and default is None:
        return None  # an optional argument sent as null
    if kind is bool and not isinstance(value, bool):
        raise InvalidArgument(f"Argument '{name}' must be true or false.")
    if kind is str and not isinstance(value, str):
        raise InvalidArgument(f"Argument '{name}' must be a string.")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidArgument(f"Argument '{name}' must be a whole number.")
    return value


async def _domain(conn: Connection, args: dict[str, Any]) -> Domain:
    return await conn.lookup_by_uuid(_arg(args, "uuid", str))


def _ident(dom: Domain) -> dict[str, str]:
    return {"name": dom.name, "uuid": dom.uuid}


async def _list_summaries(conn: Connection, args: dict[str, Any]) -> Any:
    return [p.summary_to_wire(s) for s in await conn.list_summaries()]


async def _lookup(conn: Connection, args: dict[str, Any]) -> Any:
    return _ident(await conn.lookup(_arg(args, "name", str)))


async def _lookup_by_uuid(conn: Connection, args: dict[str, Any]) -> Any:
    return _ident(await conn.lookup_by_uuid(_arg(args, "uuid", str)))


async def _define_xml(conn: Connection, args: dict[str, Any]) -> Any:
    return _ident(await conn.define_xml(_arg(args, "xml", str)))


async def _host_info(conn: Connection, args: dict[str, Any]) -> Any:
    return p.host_to_wire(await conn.host_info())


async def _ping(conn: Connection, args: dict[str, Any]) -> Any:
    return {}


async def _start(conn: Connection, args: dict[str, Any]) -> Any:
    await (await _domain(conn, args)).start(paused=_arg(args, "paused", bool, False))


def _simple(name: str) -> Handler:
    async def call(conn: Connection, args: dict[str, Any]) -> Any:
        method = getattr(await _domain(conn, args), name)
        await method()

    return call


async def _state(conn: Connection, args: dict[str, Any]) -> Any:
    state, reason = await (await _domain(conn, args)).state()
    return {"state": state.name, "reason": reason.name}


async def _info(conn: Connection, args: dict[str, Any]) -> Any:
    return p.info_to_wire(await (await _domain(conn, args)).info())


async def _xml(conn: Connection, args: dict[str, Any]) -> Any:
    return await (await _domain(conn, args)).xml(inactive=_arg(args, "inactive", bool, False))


async def _id(conn: Connection, args: dict[str, Any]) -> Any:
    return await (await _domain(conn, args)).id()


async def _pool_info(conn: Connection, args: dict[str, Any]) -> Any:
    return p.pool_to_wire(await conn.pool_info())


async def _list_volumes(conn: Connection, args: dict[str, Any]) -> Any:
    return [p.volume_to_wire(v) for v in await conn.list_volumes()]


async def _create_volume(conn: Connection, args: dict[str, Any]) -> Any:
    capacity = _arg(args, "capacity_bytes", int)
    volume = await conn.create_volume(
        _arg(args, "name", str), capacity, _arg(args, "format", str, None)
    )
    return p.volume_to_wire(volume)


async def _delete_volume(conn: Connection, args: dict[str, Any]) -> Any:
    await conn.delete_volume(_arg(args, "name", str))


async def _migrate_begin(conn: Connection, args: dict[str, Any]) -> Any:
    dom = await _domain(conn, args)
    begun = await dom.migrate_begin(
        _arg(args, "offline", bool, False), _arg(args, "copy_storage", bool, False)
    )
    return p.source_to_wire(begun)


def _optional_int(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    return None if value is None else _arg(args, name, int)


async def _migrate_perform(conn: Connection, args: dict[str, Any]) -> Any:
    dom = await _domain(conn, args)
    timeout = args.get("timeout_s")
    if timeout is not None and not isinstance(timeout, int | float):
        raise InvalidArgument("Argument 'timeout_s' must be a number of seconds.")
    disks = args.get("nbd_disks", [])
    if not isinstance(disks, list) or not all(isinstance(d, str) for d in disks):
        raise InvalidArgument("Argument 'nbd_disks' must be a list of disk names.")
    info = await dom.migrate_perform(
        _arg(args, "uri", str),
        live=_arg(args, "live", bool, True),
        bandwidth_mib=_optional_int(args, "bandwidth_mib"),
        max_downtime_ms=_optional_int(args, "max_downtime_ms"),
        timeout_s=None if timeout is None else float(timeout),
        nbd_host=_arg(args, "nbd_host", str, None),
        nbd_port=_arg(args, "nbd_port", int, 0),
        nbd_disks=tuple(disks),
    )
    return p.job_to_wire(info)


async def _migrate_confirm(conn: Connection, args: dict[str, Any]) -> Any:
    await (await _domain(conn, args)).migrate_confirm(
        _arg(args, "success", bool), _arg(args, "undefine_source", bool, False)
    )


async def _job_info(conn: Connection, args: dict[str, Any]) -> Any:
    return p.job_to_wire(await (await _domain(conn, args)).job_info())


async def _shutdown(conn: Connection, args: dict[str, Any]) -> Any:
    await (await _domain(conn, args)).shutdown(_arg(args, "mode", str, "acpi"))


async def _interface_addresses(conn: Connection, args: dict[str, Any]) -> Any:
    dom = await _domain(conn, args)
    found = await dom.interface_addresses(_arg(args, "source", str, "lease"))
    return p.interfaces_to_wire(found)


async def _send_input(conn: Connection, args: dict[str, Any]) -> Any:
    dom = await _domain(conn, args)
    await dom.send_input(p.input_from_wire(args.get("events")))


async def _free_memory(conn: Connection, args: dict[str, Any]) -> Any:
    return await conn.free_memory()


async def _migrate_preflight(conn: Connection, args: dict[str, Any]) -> Any:
    xml = _arg(args, "xml", str)
    return list(await conn.migrate_preflight(xml, _arg(args, "copy_storage", bool, False)))


METHODS: dict[str, Handler] = {
    "free_memory": _free_memory,
    "migrate_preflight": _migrate_preflight,
    "domain.migrate_begin": _migrate_begin,
    "domain.migrate_perform": _migrate_perform,
    "domain.migrate_confirm": _migrate_confirm,
    "domain.job_info": _job_info,
    "domain.send_input": _send_input,
    "storage.pool_info": _pool_info,
    "storage.list_volumes": _list_volumes,
    "storage.create_volume": _create_volume,
    "storage.delete_volume": _delete_volume,
    "ping": _ping,
    "list_summaries": _list_summaries,
    "lookup": _lookup,
    "lookup_by_uuid": _lookup_by_uuid,
    "define_xml": _define_xml,
    "host_info": _host_info,
    "domain.start": _start,
    "domain.state": _state,
    "domain.info": _info,
    "domain.xml": _xml,
    "domain.id": _id,
    "domain.shutdown": _shutdown,
    "domain.interface_addresses": _interface_addresses,
    **{
        f"domain.{name}": _simple(name)
        for name in (
            "reboot",
            "reset",
            "suspend",
            "resume",
            "destroy",
            "undefine",
            "abort_job",
        )
    },
}


SessionHandler = Callable[["ClientSession", dict[str, Any]], Awaitable[Any]]


async def _migrate_prepare(session: ClientSession, args: dict[str, Any]) -> Any:
    started = args.get("started_wall")
    if started is not None and not isinstance(started, int | float):
        raise InvalidArgument("Argument 'started_wall' must be a Unix time.")
    incoming = await session.conn.migrate_prepare(
        _arg(args, "xml", str),
        started_wall=None if started is None else float(started),
        copy_disks=p.disks_from_wire(args.get("copy_disks", [])),
        tunnelled=_arg(args, "tunnelled", bool, False),
    )
    # Until Finish, the migration belongs to this client: if it goes away, the
    # destination's copy is discarded (the guest stays on the source).
    session.incoming.add(incoming.uuid)
    return p.incoming_to_wire(incoming)


async def _migrate_finish(session: ClientSession, args: dict[str, Any]) -> Any:
    uuid = _arg(args, "uuid", str)
    session.incoming.discard(uuid)
    await session.conn.migrate_finish(
        uuid,
        success=_arg(args, "success", bool),
        persistent_xml=_arg(args, "persistent_xml", str, None),
        paused=_arg(args, "paused", bool, False),
    )


def _new_stream(session: ClientSession, args: dict[str, Any]) -> int:
    stream: int = _arg(args, "stream", int)
    if not 0 <= stream < 1 << 32:
        # byte frames carry the id in 4 bytes
        raise InvalidArgument(f"Stream ids are 0 to {(1 << 32) - 1}, not {stream}.")
    if stream in session.streams:
        raise InvalidArgument(f"Stream {stream} is already open on this connection.")
    return stream


async def _tunnel_out(session: ClientSession, args: dict[str, Any]) -> Any:
    stream = _new_stream(session, args)
    path = Path(await session.conn.tunnel_socket(_arg(args, "uuid", str), "out"))

    def end() -> None:
        session.send({"type": "stream-end", "stream": stream})
        session.streams.pop(stream, None)

    session.streams[stream] = await tunnel.open_out(path, stream, session.send_now, end)
    return {"uri": f"unix:{path}"}


async def _tunnel_in(session: ClientSession, args: dict[str, Any]) -> Any:
    stream = _new_stream(session, args)
    path = Path(await session.conn.tunnel_socket(_arg(args, "uuid", str), "in"))
    session.streams[stream] = await tunnel.open_in(path, stream)
    return {}


async def _console_open(session: ClientSession, args: dict[str, Any]) -> Any:
    stream = _new_stream(session, args)
    dom = await _domain(session.conn, args)
    console = await dom.console(force=_arg(args, "force", bool, False))
    end = tunnel.ConsoleEnd(stream, console)
    session.streams[stream] = end

    def ended(reason: str) -> None:
        session.streams.pop(stream, None)
        session.send({"type": "stream-end", "stream": stream, "reason": reason})

    end.task = asyncio.create_task(tunnel.pump_console(console, stream, session.send_now, ended))
    return {}


#: Console log lines sent in one message at most.
LOG_BATCH = 500


async def _console_log(session: ClientSession, args: dict[str, Any]) -> Any:
    stream = _new_stream(session, args)
    dom = await _domain(session.conn, args)
    since = args.get("since")
    if since is not None and not isinstance(since, int | float):
        raise InvalidArgument("Argument 'since' must be a Unix time.")
    lines = dom.console_log(
        since=None if since is None else float(since), follow=_arg(args, "follow", bool, False)
    )
    end = tunnel.StreamEnd(stream)
    session.streams[stream] = end

    async def send_lines() -> None:
        queue: asyncio.Queue[ConsoleLine | VirtError | None] = asyncio.Queue(maxsize=LOG_BATCH)

        async def read() -> None:
            try:
                async for line in lines:
                    await queue.put(line)
            except VirtError as err:
                await queue.put(err)
            await queue.put(None)

        reader = asyncio.create_task(read())
        reason = "end of the log"
        try:
            while True:
                # One message per wake-up: what has come since, in one batch.
                items = [await queue.get()]
                while not queue.empty() and len(items) < LOG_BATCH:
                    items.append(queue.get_nowait())
                batch = [[i.wall, i.text, i.exact] for i in items if isinstance(i, ConsoleLine)]
                if batch:
                    session.send({"type": "stream-data", "stream": stream, "data": batch})
                errors = [i for i in items if isinstance(i, VirtError)]
                if errors:
                    reason = errors[0].message
                if len(batch) < len(items):  # the end (None) or an error came
                    break
        finally:
            reader.cancel()
            session.streams.pop(stream, None)
            session.send({"type": "stream-end", "stream": stream, "reason": reason})

    end.task = asyncio.create_task(send_lines())
    return {}


async def _stats(session: ClientSession, args: dict[str, Any]) -> Any:
    stream = _new_stream(session, args)
    interval = args.get("interval", 1.0)
    if isinstance(interval, bool) or not isinstance(interval, int | float):
        raise InvalidArgument("Argument 'interval' must be a number of seconds.")
    samples = session.conn.stats_stream(float(interval))
    end = tunnel.StreamEnd(stream)
    session.streams[stream] = end

    async def send_samples() -> None:
        reason = "the statistics stopped"
        try:
            async for sample in samples:
                session.send(
                    {"type": "stream-data", "stream": stream, "data": p.sample_to_wire(sample)}
                )
        except VirtError as err:
            reason = err.message
        finally:
            session.streams.pop(stream, None)
            session.send({"type": "stream-end", "stream": stream, "reason": reason})

    end.task = asyncio.create_task(send_samples())
    return {}


def _screen_frame(stream: int, shot: Screenshot) -> bytes:
    frame = p.encode_bytes(stream, p.screenshot_to_wire(shot))
    if len(frame) - p.HEADER_SIZE + 1 > p.MAX_FRAME:
        raise OperationFailed(
            f"The screen's picture is {len(shot.data)} bytes, more than one message of the "
            f"daemon protocol carries ({p.MAX_FRAME >> 20} MiB); lower the guest's resolution."
        )
    return frame


async def _screen_capture(session: ClientSession, args: dict[str, Any]) -> Any:
    """One screenshot, sent on the client's stream as one byte frame, then the end."""
    stream = _new_stream(session, args)
    dom = await _domain(session.conn, args)
    shot = await dom.screenshot(_arg(args, "format", str, "png"))
    await session.send_now(_screen_frame(stream, shot))
    session.send({"type": "stream-end", "stream": stream, "reason": "the screenshot was sent"})
    return {"width": shot.width, "height": shot.height, "format": shot.format}


def _rate(args: dict[str, Any], name: str, default: float) -> float:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"Argument '{name}' must be a number of frames per second.")
    return float(value)


async def _screen_open(session: ClientSession, args: dict[str, Any]) -> Any:
    """The live screen: each changed picture as a byte frame of the client's stream. A
    frame is taken only once the last one was written to the transport, so a slow link
    gets fewer frames instead of a backlog."""
    stream = _new_stream(session, args)
    dom = await _domain(session.conn, args)
    shots = await dom.screen_frames(_rate(args, "fps", 10.0), _rate(args, "idle_fps", 1.0))
    end = tunnel.StreamEnd(stream)
    session.streams[stream] = end

    async def send_frames() -> None:
        reason = "the screen closed"
        try:
            async for shot in shots:
                await session.send_now(_screen_frame(stream, shot))
        except VirtError as err:
            reason = err.message
        except (ConnectionError, OSError):
            reason = "the client went away"
        finally:
            with contextlib.suppress(Exception):
                await shots.aclose()  # type: ignore[attr-defined]
            session.streams.pop(stream, None)
            session.send({"type": "stream-end", "stream": stream, "reason": reason})

    end.task = asyncio.create_task(send_frames())
    return {}


SESSION_METHODS: dict[str, SessionHandler] = {
    "screen.capture": _screen_capture,
    "screen.open": _screen_open,
    "stats.subscribe": _stats,
    "console.open": _console_open,
    "console.log": _console_log,
    "migrate_prepare": _migrate_prepare,
    "migrate_finish": _migrate_finish,
    "tunnel.out": _tunnel_out,
    "tunnel.in": _tunnel_in,
}


class ClientSession:
    """One connected client."""

    def __init__(
        self,
        server: Server,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=server.max_queue)
        self.ready = False
        self.read_only = False
        self.conn: Connection = server.conn
        """The connection this client's calls use (read-only clients get a guarded one)."""
        self.closed = False
        self._calls: set[asyncio.Task[None]] = set()
        self.writer_task: asyncio.Task[None] | None = None
        #: Byte streams this client has open (tunnelled migrations), by stream id.
        self.streams: dict[int, tunnel.StreamEnd] = {}
        #: Incoming migrations this client prepared and has not finished, by UUID.
        self.incoming: set[str] = set()

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message; a client whose queue is full is disconnected."""
        if self.closed:
            return
        try:
            data = p.encode_message(message)
        except VirtError as err:
            error = err
            result = message.get("result")
            if isinstance(result, str) and result.lstrip().startswith("<domain"):
                error = p.xml_too_large(result)  # a dumpxml of a definition over 4 MiB
            data = p.encode_message(
                {"type": "reply", "id": message.get("id"), "error": p.error_to_wire(error)}
            )
        self.send_frame(data)

    def send_frame(self, data: bytes) -> None:
        """Queue an encoded frame (see :meth:`send`)."""
        if self.closed:
            return
        if (
            self.queue.empty()
            and self.ready
            and self.writer.transport.get_write_buffer_size() < DIRECT_WRITE_LIMIT
        ):
            # Nothing is waiting and the socket keeps up: write now, skipping the writer
            # task's wake-up. Order holds: the writer task writes whatever it dequeues
            # before it next yields.
            self.writer.write(data)
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.drop(
                f"this client fell {self.server.max_queue} messages behind; reconnect to get "
                "the current state"
            )

    async def send_now(self, frame: bytes) -> None:
        """Write a stream's frame and wait until the transport has taken it (flow control
        for tunnels; ordering against queued messages does not matter for streams)."""
        if self.closed:
            raise ConnectionError("the client is gone")
        self.writer.write(frame)
        await self.writer.drain()

    def drop(self, reason: str) -> None:
        """Disconnect with ``reason``: pending messages are discarded, the bye goes last.

        The bye waits behind what the socket already holds; a client that never reads
        again is cut off after :data:`DROP_GRACE` seconds.
        """
        if self.closed:
            return
        self.closed = True
        log.info("dropping client %s: %s", self.peer, reason)
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(p.encode_message({"type": "bye", "reason": reason}))
        self.queue.put_nowait(None)
        asyncio.get_running_loop().call_later(DROP_GRACE, self.writer.transport.abort)

    async def _write_loop(self) -> None:
        try:
            while True:
                data = await self.queue.get()
                if data is None:
                    break
                self.writer.write(data)
                await self.writer.drain()
        except (ConnectionError, OSError):
            self.closed = True
        finally:
            with contextlib.suppress(Exception):
                self.writer.close()

    async def serve(self) -> None:
        self.writer_task = asyncio.create_task(self._write_loop())
        try:
            await self._handshake()
            while not self.closed:
                frame = await p.read_frame(self.reader)
                if frame.kind != p.JSON:
                    stream, data = p.decode_bytes(frame)
                    end = self.streams.get(stream)
                    if end is not None:  # else: a stream that just ended
                        await end.feed(data)
                    continue
                self._dispatch(p.decode_message(frame))
        except EOFError:
            pass
        except ProtocolError as err:
            self.drop(f"protocol error: {err.message}")
        except (ConnectionError, OSError, TimeoutError) as err:
            log.debug("client %s went away: %s", self.peer, err)
        finally:
            for task in list(self._calls):
                task.cancel()
            for end in self.streams.values():
                end.close()
            self.streams.clear()
            if self.incoming:
                with contextlib.suppress(Exception):
                    await self._abandon(set(self.incoming))
            if not self.closed:
                self.closed = True
                with contextlib.suppress(asyncio.QueueFull):
                    self.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer_task, 2.0)

    async def _handshake(self) -> None:
        frame = await asyncio.wait_for(p.read_frame(self.reader), HELLO_TIMEOUT)
        hello = p.decode_message(frame)
        if hello.get("type") != "hello":
            raise ProtocolError("The first message must be 'hello'.")
        version = hello.get("protocol")
        if version != p.PROTOCOL_VERSION:
            raise ProtocolError(
                f"This daemon speaks protocol {p.PROTOCOL_VERSION}, the client {version}; "
                "install matching virtdeck versions on both ends."
            )
        self.read_only = hello.get("read_only") is True
        if self.read_only:
            # The calls go through the same guard an in-process read-only connection has:
            # every changing method is refused there, none can be forgotten here.
            from drivers.readonly import ReadOnlyConnection

            self.conn = ReadOnlyConnection(self.server.conn)
        self.send(
            {
                "type": "welcome",
                "protocol": p.PROTOCOL_VERSION,
                "daemon": VERSION,
                "uri": self.server.uri,
                "hostname": socket.gethostname(),
                "capabilities": sorted(self.server.conn.capabilities),
            }
        )
        self.ready = True

    async def _abandon(self, uuids: set[str]) -> None:
        """The client left between Prepare and Finish: discard what it prepared."""
        for uuid in uuids:
            log.warning("client %s left during an incoming migration; discarding it", self.peer)
            try:
                await self.conn.migrate_finish(uuid, success=False)
            except VirtError as err:
                log.warning("discarding incoming migration %s: %s", uuid, err)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "bye":
            self.closed = True
            return
        if kind == "stream-end":
            stream = message.get("stream")
            if not isinstance(stream, int):
                raise ProtocolError("A 'stream-end' needs an integer 'stream'.")
            end = self.streams.pop(stream, None)
            if end is not None:
                end.end()
            return
        if kind != "call":
            raise ProtocolError(f"Unknown message type '{kind}'.")
        call_id = message.get("id")
        if not isinstance(call_id, int) or isinstance(call_id, bool):
            raise ProtocolError("A call needs an integer 'id'.")
        if len(self._calls) >= MAX_IN_FLIGHT:
            err = OperationFailed(
                f"Too many calls in flight ({MAX_IN_FLIGHT}); wait for replies before sending more."
            )
            self.send({"type": "reply", "id": call_id, "error": p.error_to_wire(err)})
            return
        task = asyncio.create_task(self._call(call_id, message.get("method"), message.get("args")))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _call(self, call_id: int, method: Any, args: Any) -> None:
        try:
            handler = METHODS.get(method) if isinstance(method, str) else None
            session_handler = SESSION_METHODS.get(method) if isinstance(method, str) else None
            if handler is None and session_handler is None:
                raise InvalidArgument(f"The daemon has no method '{method}'.")
            if args is None:
                args = {}
            if not isinstance(args, dict):
                raise InvalidArgument(f"The arguments of '{method}' must be an object.")
            if session_handler is not None:
                result = await session_handler(self, args)
            else:
                assert handler is not None
                result = await handler(self.conn, args)
            self.send({"type": "reply", "id": call_id, "result": result})
        except VirtError as err:
            self.send({"type": "reply", "id": call_id, "error": p.error_to_wire(err)})
        except Exception as err:  # a bug must not take the daemon down
            log.exception("method %s failed", method)
            failure = OperationFailed(f"The daemon failed on '{method}': {err}.")
            self.send({"type": "reply", "id": call_id, "error": p.error_to_wire(failure)})


class Server:
    """Serves ``conn`` to clients on unix sockets and/or stdio."""

    def __init__(self, conn: Connection, uri: str, max_queue: int = MAX_QUEUE) -> None:
        self.conn = conn
        self.uri = uri
        self.max_queue = max_queue
        self.sessions: set[ClientSession] = set()
        self._events = conn.events()
        # Fanned out from inside publish(): no task switch between the driver and clients.
        self._events.set_listener(self.broadcast)
        self._servers: list[asyncio.base_events.Server] = []
        self._seq = 0

    def broadcast(self, event: Event) -> None:
        self._seq += 1
        message = {"type": "event", "seq": self._seq, "event": p.event_to_wire(event)}
        data = p.encode_message(message)  # once, for every client
        for session in list(self.sessions):
            if session.ready:
                session.send_frame(data)

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str = "client"
    ) -> None:
        session = ClientSession(self, reader, writer, peer)
        self.sessions.add(session)
        try:
            await session.serve()
        finally:
            self.sessions.discard(session)

    async def listen_unix(self, path: Path, mode: int = 0o600, group: str | None = None) -> None:
        """Listen on ``path``: created with ``mode`` from the start, never wider."""
        # Bound and listening under a temporary name, then renamed into place: the socket
        # appears only once it accepts (a client that finds the file is never refused).
        staging = path.with_name(f".vd{os.getpid()}.sock")  # short: sun_path is 107 bytes
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o777 & ~mode)
        try:
            sock.bind(str(staging))
            sock.listen(100)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        os.chmod(staging, mode)
        if group is not None:
            os.chown(staging, -1, grp.getgrnam(group).gr_gid)
        os.replace(staging, path)
        server = await asyncio.start_unix_server(
            lambda r, w: self.handle(r, w, "unix"), sock=sock, limit=p.MAX_FRAME
        )
        self._servers.append(server)

    async def close(self, reason: str) -> None:
        """Say goodbye to every client with ``reason`` and stop listening."""
        for server in self._servers:
            server.close()
        sessions = list(self.sessions)
        for session in sessions:
            session.drop(reason)
        writers = [s.writer_task for s in sessions if s.writer_task is not None]
        if writers:
            await asyncio.wait(writers, timeout=1.0)
        self._events.close()
