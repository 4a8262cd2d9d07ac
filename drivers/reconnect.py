"""A connection that comes back: open, watch, and after a loss reopen with backoff.

The TUI keeps one :class:`ReconnectingConnection` per host. Its :meth:`updates` stream
says, in order, what a host view needs: the link's status (connecting, connected, lost —
retrying at a given time), a full :class:`Snapshot` of the domains after every (re)connect,
and the events in between. A consumer that applies them in order never shows a stale state:
on loss it marks the host lost, and the snapshot after the reconnect replaces everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from drivers.api import Connection, EventStream
from drivers.errors import ConnectionLost, VirtError
from drivers.model import ConnectionClosedEvent, DomainSummary, Event, HostInfo
from drivers.records import record

Opener = Callable[[str], Awaitable[Connection]]
DEFAULT_BACKOFF: tuple[float, ...] = (0.5, 1, 2, 4, 8, 15, 30)


class LinkState(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOST = "lost"
    CLOSED = "closed"


@record
class LinkStatus:
    """Where a host's link is; ``retry_at`` is a ``time.monotonic()`` value."""

    state: LinkState
    message: str = ""
    retry_at: float | None = None
    attempt: int = 0

    def retry_in(self, now: float | None = None) -> float | None:
        if self.retry_at is None:
            return None
        return max(0.0, self.retry_at - (time.monotonic() if now is None else now))


@record
class Snapshot:
    """Every domain of the host, read right after (re)connecting or on request."""

    summaries: tuple[DomainSummary, ...]
    host: HostInfo | None


Update = LinkStatus | Snapshot | Event


@record
class Session:
    """An open connection, its event stream (opened first) and the snapshot read after."""

    conn: Connection
    stream: EventStream
    snapshot: Snapshot

    async def close(self) -> None:
        await _abandon(self.conn, self.stream)


async def _abandon(conn: Connection, stream: EventStream) -> None:
    """Stop ``stream`` and close ``conn``, whatever state it is in."""
    stream.close()
    with contextlib.suppress(Exception):
        await conn.close()


async def take_snapshot(conn: Connection) -> Snapshot:
    """Every domain of the host, and the host's facts (None if it will not say)."""

    async def host_info() -> HostInfo | None:
        with contextlib.suppress(VirtError):
            return await conn.host_info()
        return None

    # both at once: one round trip to a remote host instead of two
    summaries, host = await asyncio.gather(conn.list_summaries(), host_info())
    return Snapshot(tuple(summaries), host)


async def open_session(uri: str, opener: Opener | None = None) -> Session:
    """Open ``uri`` (with ``opener``, else :func:`drivers.open`), subscribe, snapshot.

    Events are subscribed to before the listing is read: those that happen meanwhile are
    replayed after the snapshot, so a consumer ends on the right state.
    """
    if opener is not None:
        conn = await opener(uri)
    else:
        import drivers

        conn = await drivers.open(uri)
    stream = conn.events()
    try:
        snapshot = await take_snapshot(conn)
    except BaseException:
        await _abandon(conn, stream)
        raise
    return Session(conn, stream, snapshot)


class ReconnectingConnection:
    def __init__(
        self,
        uri: str,
        opener: Opener | None = None,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        first: Awaitable[Session] | None = None,
    ) -> None:
        """``first``: the first session, when it was opened ahead (see :func:`open_session`)."""
        self.uri = uri
        self._first = first
        self._opener = opener
        self._backoff = tuple(backoff) or DEFAULT_BACKOFF
        self._queue: asyncio.Queue[Update | None] = asyncio.Queue()
        self._conn: Connection | None = None
        self._status = LinkStatus(LinkState.CONNECTING)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False

    @property
    def conn(self) -> Connection | None:
        """The live connection, or None while the link is down."""
        return self._conn

    @property
    def status(self) -> LinkStatus:
        return self._status

    def require(self) -> Connection:
        """The live connection; ConnectionLost (with the reason) while the link is down."""
        if self._conn is None:
            raise ConnectionLost(
                f"{self.uri} is {self._status.state.value}"
                + (f": {self._status.message}" if self._status.message else "")
                + "."
            )
        return self._conn

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"link-{self.uri}")

    async def updates(self) -> AsyncIterator[Update]:
        """Everything that happens to this host, in order (one consumer)."""
        self.start()
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    def retry_now(self) -> None:
        """Skip the rest of the backoff wait."""
        self._wake.set()

    async def refresh(self) -> None:
        """Queue a fresh Snapshot (e.g. after an event about a domain not seen before)."""
        conn = self.require()
        self._queue.put_nowait(await take_snapshot(conn))

    def _set(self, status: LinkStatus) -> None:
        self._status = status
        self._queue.put_nowait(status)

    async def _run(self) -> None:
        attempt = 0
        try:
            while not self._closing:
                attempt += 1
                self._set(LinkStatus(LinkState.CONNECTING, attempt=attempt))
                reason = await self._session()
                if self._closing:
                    break
                if reason is None:  # connected for a while, then lost: start the backoff over
                    attempt = 0
                    continue
                delay = self._backoff[min(max(attempt - 1, 0), len(self._backoff) - 1)]
                self._set(
                    LinkStatus(
                        LinkState.LOST,
                        message=reason,
                        retry_at=time.monotonic() + delay,
                        attempt=attempt,
                    )
                )
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            self._set(LinkStatus(LinkState.CLOSED))
            self._queue.put_nowait(None)

    async def _session(self) -> str | None:
        """Connect and relay until the link breaks; the failure reason, or None after a loss
        that was announced (and already reported) while connected."""
        first, self._first = self._first, None
        try:
            session = await (first if first is not None else open_session(self.uri, self._opener))
        except VirtError as err:
            return err.message
        except OSError as err:
            return str(err)
        conn, stream, snapshot = session.conn, session.stream, session.snapshot
        self._conn = conn
        self._set(LinkStatus(LinkState.CONNECTED))
        self._queue.put_nowait(snapshot)
        lost_reason = "the connection ended"
        try:
            async for event in stream:
                if isinstance(event, ConnectionClosedEvent):
                    lost_reason = event.reason
                    break
                self._queue.put_nowait(event)
        finally:
            self._conn = None
        if self._closing:
            return None
        # Report the loss at once; the caller starts the backoff at its first step.
        self._set(
            LinkStatus(
                LinkState.LOST,
                message=lost_reason,
                retry_at=time.monotonic() + self._backoff[0],
                attempt=0,
            )
        )
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._backoff[0])
        return None

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)
