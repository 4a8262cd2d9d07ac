"""What every driver implements: :class:`Connection` and :class:`Domain`.

A missing operation raises :class:`~drivers.errors.NotSupported`; callers ask
:attr:`Connection.capabilities` first instead of catching it.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType

from drivers.errors import NotSupported
from drivers.model import (
    ConnectionClosedEvent,
    ConsoleLine,
    DiskCopy,
    DomainIdentity,
    DomainInfo,
    DomainState,
    DomainSummary,
    Event,
    HostInfo,
    IncomingMigration,
    InputEvent,
    InterfaceAddresses,
    JobInfo,
    MigrationSource,
    PoolInfo,
    Screenshot,
    StateReason,
    StatsSample,
    VolumeInfo,
)


class Domain(DomainIdentity, abc.ABC):
    """A handle on one domain of a connection (``name`` and ``uuid`` never change).

    A handle stays valid while the domain exists; after ``undefine`` of an inactive
    domain every call raises :class:`~drivers.errors.NoSuchDomain`.
    """

    @abc.abstractmethod
    async def start(self, paused: bool = False) -> None:
        """Boot an inactive domain; returns when it runs (or is paused, if asked)."""

    @abc.abstractmethod
    async def shutdown(self, mode: str = "acpi") -> None:
        """Ask the guest to power off; returns at once. ``mode`` 'acpi' presses the
        power button, 'agent' asks the guest agent (``guest-shutdown``)."""

    @abc.abstractmethod
    async def reboot(self) -> None:
        """Ask the guest to reboot (ACPI power button, then a fake reboot)."""

    @abc.abstractmethod
    async def reset(self) -> None:
        """Reset the virtual hardware at once, like pressing the reset button."""

    @abc.abstractmethod
    async def suspend(self) -> None:
        """Pause the vCPUs."""

    @abc.abstractmethod
    async def resume(self) -> None:
        """Continue paused vCPUs."""

    @abc.abstractmethod
    async def destroy(self) -> None:
        """Stop the domain at once, like pulling the power plug."""

    @abc.abstractmethod
    async def undefine(self) -> None:
        """Remove the persistent definition (a running domain becomes transient)."""

    @abc.abstractmethod
    async def state(self) -> tuple[DomainState, StateReason]:
        """The current state and its reason."""

    @abc.abstractmethod
    async def info(self) -> DomainInfo:
        """State, memory, vCPUs and CPU time."""

    @abc.abstractmethod
    async def xml(self, inactive: bool = False) -> str:
        """The live definition, or with ``inactive`` the one the next boot uses."""

    @abc.abstractmethod
    async def id(self) -> int | None:
        """The runtime id of an active domain; None when it is shut off."""

    # --- console (optional: capability 'console') -----------------------------------------

    async def console(self, force: bool = False) -> ConsoleStream:
        """The serial console, interactive: what the guest writes, and keys to it. One
        writer at a time: a second one gets DomainBusy unless ``force`` takes over (the
        first one's stream then ends with a reason)."""
        raise NotSupported(f"Domain '{self.name}' has no console on this driver.")

    def console_log(
        self, since: float | None = None, follow: bool = False
    ) -> AsyncIterator[ConsoleLine]:
        """The console's output since the domain's boot (or since ``since``, Unix time),
        kept even when nobody was attached; with ``follow``, then every new line."""
        raise NotSupported(f"Domain '{self.name}' keeps no console log on this driver.")

    # --- guest network addresses (optional: capability 'interface-addresses') ----------

    async def interface_addresses(self, source: str = "lease") -> list[InterfaceAddresses]:
        """The running guest's interfaces and IP addresses, as ``virsh domifaddr``: from
        the host's DHCP leases ('lease'), the guest agent ('agent') or the host's ARP
        table ('arp'). Names and addresses from the agent are the guest's words."""
        raise NotSupported(f"Domain '{self.name}' reports no addresses on this driver.")
    # --- the screen (optional: capability 'screen') ----------------------------------------

    async def screenshot(self, format: str = "png") -> Screenshot:  # noqa: A002 - virsh's word
        """A picture of the domain's display (``virsh screenshot``): QEMU's screendump,
        PNG unless ``format`` is 'ppm'. NotSupported for a domain without a display."""
        raise NotSupported(f"Domain '{self.name}' has no screen on this driver.")

    async def screen_frames(
        self, fps: float = 10.0, idle_fps: float = 1.0
    ) -> AsyncIterator[Screenshot]:
        """The live screen, for a viewer: the first picture at once, then each changed one,
        up to ``fps`` a second while it changes and down to ``idle_fps`` pictures taken
        while it does not (unchanged ones are not sent). Errors (no display, not running)
        come from this call, before the stream."""
        raise NotSupported(f"Domain '{self.name}' has no screen on this driver.")

    async def send_input(self, events: Sequence[InputEvent]) -> None:
        """Keys, pointer moves and buttons for the guest, in order (QMP
        ``input-send-event``); :mod:`drivers.keys` makes them from key names and text."""
        raise NotSupported(f"Domain '{self.name}' takes no input on this driver.")

    @property
    def connection(self) -> Connection:
        """The connection this handle belongs to."""
        raise NotSupported("This domain handle does not know its connection.")

    # --- migration (optional: capability 'migration') --------------------------------------

    async def migrate(
        self,
        dest: Connection,
        *,
        live: bool = True,
        persistent: bool = True,
        undefine_source: bool = False,
        copy_storage: str | None = None,
        bandwidth_mib: int | None = None,
        max_downtime_ms: int | None = None,
        migrate_uri: str | None = None,
        tunnelled: bool = False,
        offline: bool = False,
        paused: bool = False,
        xml: str | None = None,
        timeout_s: float | None = None,
        progress: Callable[[JobInfo], None] | None = None,
    ) -> Domain:
        """Move this domain to ``dest`` (libvirt's five phases, driven from here); returns
        the domain's handle on ``dest``. See :func:`drivers.migration.migrate`."""
        return await self._migrator()(
            self,
            dest,
            live=live,
            persistent=persistent,
            undefine_source=undefine_source,
            copy_storage=copy_storage,
            bandwidth_mib=bandwidth_mib,
            max_downtime_ms=max_downtime_ms,
            migrate_uri=migrate_uri,
            tunnelled=tunnelled,
            offline=offline,
            paused=paused,
            xml=xml,
            timeout_s=timeout_s,
            progress=progress,
        )

    def _migrator(self) -> Callable[..., Awaitable[Domain]]:
        """What :meth:`migrate` runs: the client-driven phases; a driver whose hypervisor
        migrates by itself (libvirt) names its own."""
        from drivers.migration import migrate

        return migrate

    async def migrate_begin(
        self, offline: bool = False, copy_storage: bool = False
    ) -> MigrationSource:
        """Begin (source): check the domain can move; its definition and disks (with their
        sizes when ``copy_storage``)."""
        raise NotSupported(f"Domain '{self.name}' cannot be migrated by this driver.")

    async def migrate_perform(
        self,
        uri: str,
        *,
        live: bool = True,
        bandwidth_mib: int | None = None,
        max_downtime_ms: int | None = None,
        timeout_s: float | None = None,
        nbd_host: str | None = None,
        nbd_port: int = 0,
        nbd_disks: tuple[str, ...] = (),
    ) -> JobInfo:
        """Perform (source): send the guest to ``uri``; the final figures."""
        raise NotSupported(f"Domain '{self.name}' cannot be migrated by this driver.")

    async def migrate_confirm(self, success: bool, undefine_source: bool = False) -> None:
        """Confirm (source): end the source's process, or continue it after a failure."""
        raise NotSupported(f"Domain '{self.name}' cannot be migrated by this driver.")

    async def job_info(self) -> JobInfo:
        """The current (or last) migration job: ``virsh domjobinfo``."""
        raise NotSupported(f"Domain '{self.name}' has no jobs on this driver.")

    async def abort_job(self) -> None:
        """Cancel the running migration: ``virsh domjobabort``."""
        raise NotSupported(f"Domain '{self.name}' has no jobs on this driver.")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.uuid}>"


class Connection(abc.ABC):
    """An open connection to one hypervisor driver."""

    @property
    @abc.abstractmethod
    def uri(self) -> str: ...

    @abc.abstractmethod
    async def list_domains(self) -> list[Domain]:
        """Every domain, active and inactive, in name order."""

    @abc.abstractmethod
    async def list_summaries(self) -> list[DomainSummary]:
        """Every domain with its id and state, in name order (one call, for tables)."""

    @abc.abstractmethod
    async def lookup(self, name: str) -> Domain:
        """The domain called ``name``; raises NoSuchDomain."""

    @abc.abstractmethod
    async def lookup_by_uuid(self, uuid: str) -> Domain:
        """The domain with ``uuid``; raises NoSuchDomain."""

    @abc.abstractmethod
    async def define_xml(self, xml: str) -> Domain:
        """Define (or redefine) a domain from libvirt domain XML."""

    @abc.abstractmethod
    def events(self) -> EventStream:
        """A new subscription to this connection's events, starting now."""

    @abc.abstractmethod
    async def host_info(self) -> HostInfo:
        """The host this connection talks to."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection. Guests keep running."""

    @property
    def capabilities(self) -> frozenset[str]:
        """Names of optional operations this connection supports."""
        return frozenset()

    # --- the default storage pool (optional: capability 'storage') ----------------------

    async def pool_info(self) -> PoolInfo:
        """The host's default image directory and its free space."""
        raise NotSupported(f"{self.uri} has no storage pool.")

    async def list_volumes(self) -> list[VolumeInfo]:
        """Disk and ISO images in the default pool, by name."""
        raise NotSupported(f"{self.uri} has no storage pool.")

    async def create_volume(
        self, name: str, capacity_bytes: int, fmt: str | None = None
    ) -> VolumeInfo:
        """Create an empty disk image in the default pool; the suffix gives the format."""
        raise NotSupported(f"{self.uri} has no storage pool.")

    async def delete_volume(self, name: str) -> None:
        """Delete an image that no running domain uses."""
        raise NotSupported(f"{self.uri} has no storage pool.")

    # --- migration, the destination's phases (optional: capability 'migration') -----------

    async def free_memory(self) -> int:
        """Bytes of memory the host can still give guests (``virsh freecell``)."""
        raise NotSupported(f"{self.uri} does not report its free memory.")

    async def migrate_preflight(self, xml: str, copy_storage: bool = False) -> tuple[str, ...]:
        """Why the domain ``xml`` could not run here after a migration, one sentence per
        reason (emulator or machine type missing, disks absent without copy storage, not
        enough free memory, a clash with a domain here); empty when nothing stands in the
        way."""
        raise NotSupported(f"{self.uri} cannot receive migrations.")

    async def migrate_prepare(
        self,
        xml: str,
        *,
        started_wall: float | None = None,
        copy_disks: tuple[DiskCopy, ...] = (),
        tunnelled: bool = False,
    ) -> IncomingMigration:
        """Prepare (destination): start a QEMU that waits for the migration stream."""
        raise NotSupported(f"{self.uri} cannot receive migrations.")

    async def migrate_finish(
        self,
        uuid: str,
        *,
        success: bool,
        persistent_xml: str | None = None,
        paused: bool = False,
    ) -> None:
        """Finish (destination): start the guest's CPUs, or discard it after a failure."""
        raise NotSupported(f"{self.uri} cannot receive migrations.")

    async def tunnel_socket(self, uuid: str, direction: str) -> str:
        """The unix socket a tunnelled migration of ``uuid`` uses on this host: 'out', where
        the source's QEMU sends the stream (the daemon listens), or 'in', where the
        destination's QEMU waits for it. For daemons that relay a tunnel to their client."""
        raise NotSupported(f"{self.uri} cannot tunnel migrations.")

    # --- statistics (optional: capability 'stats') ---------------------------------------

    def stats_stream(self, interval: float = 1.0) -> AsyncIterator[StatsSample]:
        """A sample of the host and of every running domain every ``interval`` seconds, as
        long as the iterator is used (the host samples only while someone listens)."""
        raise NotSupported(f"{self.uri} reports no statistics.")

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class ConsoleStream(abc.ABC):
    """An attached serial console: bytes both ways."""

    #: Why the stream ended (the domain stopped, another client took over …), once it has.
    ended: str | None = None

    @abc.abstractmethod
    async def read(self) -> bytes:
        """What the guest wrote next; b"" once the stream has ended (see ``ended``)."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Keys for the guest."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> ConsoleStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class EventStream:
    """One subscriber's ordered view of a connection's events.

    The subscription starts when the stream is created, so events caused by calls made
    after ``conn.events()`` returned are never missed. The stream ends after a
    :class:`~drivers.model.ConnectionClosedEvent` or when :meth:`close` is called.
    """

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._closed = False
        self._listener: Callable[[Event], None] | None = None

    def _deliver(self, event: Event | None) -> None:
        if self._listener is not None and event is not None:
            self._listener(event)
            return
        self._queue.put_nowait(event)

    def set_listener(self, listener: Callable[[Event], None]) -> None:
        """Have events handed to ``listener`` as they are published, instead of queued.

        For a consumer that must not add a task switch per event (the daemon fanning
        events out to its clients). ``listener`` must not block.
        """
        self._listener = listener

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            self._closed = True
            raise StopAsyncIteration
        if isinstance(event, ConnectionClosedEvent):
            self._closed = True
            self._hub.unsubscribe(self)
        return event

    async def get(self, timeout: float | None = None) -> Event:
        """The next event; raises TimeoutError after ``timeout`` seconds."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    def pending(self) -> list[Event]:
        """Events already queued, without waiting."""
        items: list[Event] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                self._closed = True
                break
            items.append(item)
        return items

    def close(self) -> None:
        """Stop receiving events."""
        self._hub.unsubscribe(self)
        self._queue.put_nowait(None)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class EventHub:
    """Fans a connection's events out to every subscribed stream, in order."""

    def __init__(self) -> None:
        self._streams: list[EventStream] = []

    def subscribe(self) -> EventStream:
        stream = EventStream(self)
        self._streams.append(stream)
        return stream

    def unsubscribe(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)

    def publish(self, event: Event) -> None:
        for stream in list(self._streams):
            stream._deliver(event)

    def close(self, event: ConnectionClosedEvent | None = None) -> None:
        """End every stream, with ``event`` as its last item when given."""
        for stream in list(self._streams):
            stream._deliver(event)
            if event is not None:
                stream._deliver(None)
        self._streams.clear()

    @property
    def subscribers(self) -> int:
        return len(self._streams)
