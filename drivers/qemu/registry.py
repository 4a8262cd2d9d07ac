"""The domains of one driver instance, and the Connection/Domain handles over them.

:class:`DomainRegistry` is a driver's state (libvirt's ``virDomainObjList`` plus the event
queue): definitions by name and UUID, the :class:`DomainRuntime` of each, and the event hubs
of the connections that watch it. The QEMU driver and the in-memory test driver differ only
in how they store definitions and launch a hypervisor, which subclasses provide.
"""

from __future__ import annotations

import abc
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from drivers.api import Connection, ConsoleStream, Domain, EventHub, EventStream
from drivers.domxml import DomainDef, parse_domain
from drivers.domxml.domain import assign_pci_addresses, fill_boot_default
from drivers.domxml.pci import strip_runtime
from drivers.errors import (
    DomainExists,
    InvalidArgument,
    NoSuchDomain,
    NotSupported,
    OperationInvalid,
)
from drivers.model import (
    ADDRESS_SOURCES,
    SHUTDOWN_MODES,
    ConnectionClosedEvent,
    ConsoleLine,
    DefinedDetail,
    DiskCopy,
    DomainEvent,
    DomainInfo,
    DomainState,
    DomainSummary,
    EventType,
    HostInfo,
    IncomingMigration,
    InputEvent,
    InterfaceAddresses,
    JobInfo,
    LifecycleEvent,
    MigrationSource,
    PoolInfo,
    Screenshot,
    StateReason,
    StatsSample,
    UndefinedDetail,
    VolumeInfo,
)
from drivers.qemu import migration, screen
from drivers.qemu.runtime import Backend, DomainRuntime
from drivers.storage import DirectoryPool, MemoryPool
from drivers.version import VERSION


class DomainRegistry(abc.ABC):
    """A driver's domains; implements the runtime's Host hooks except launching."""

    hypervisor = "QEMU"
    #: Whether a migration with copy storage can arrive here (real images and NBD).
    copies_storage = True

    def __init__(self) -> None:
        self.by_uuid: dict[str, DomainRuntime] = {}
        self.by_name: dict[str, DomainRuntime] = {}
        self.hubs: list[EventHub] = []
        self.pool: DirectoryPool | MemoryPool | None = None
        self.ports = migration.PortAllocator()
        #: Migrations on their way in, by domain UUID, from Prepare to Finish.
        self.incoming: dict[str, migration.Incoming] = {}

    def users_of(self, path: str) -> list[str]:
        """Active domains whose disks use the image at ``path``."""
        return [
            rt.name
            for rt in self.sorted()
            if rt.active and any(d.source == path for d in rt.definition.disks)
        ]

    # --- storage hooks --------------------------------------------------------------

    @abc.abstractmethod
    def store_definition(self, defn: DomainDef) -> None:
        """Persist a definition (atomically)."""

    @abc.abstractmethod
    def remove_definition(self, rt: DomainRuntime) -> None: ...

    @abc.abstractmethod
    async def launch(
        self, rt: DomainRuntime, live: DomainDef, incoming: bool = False
    ) -> Backend: ...

    def check_definition(self, defn: DomainDef) -> None:  # noqa: B027 - optional hook
        """Refuse definitions this driver cannot run (raise a VirtError)."""

    def prepare_definition(self, defn: DomainDef) -> None:
        """Complete a definition being defined: drop what only a running domain has.
        The QEMU driver also assigns PCI addresses (:func:`prepare_definition`)."""
        strip_runtime(defn.root)

    def persist(self, rt: DomainRuntime) -> None:  # noqa: B027 - optional hook
        """Write runtime status; in-memory drivers keep nothing."""

    async def settle(self, rt: DomainRuntime) -> None:  # noqa: B027 - optional hook
        """Make the status written so far durable; in-memory drivers keep nothing."""

    def dump_path(self, rt: DomainRuntime) -> str | None:
        return None

    def free_memory(self) -> int:
        """Bytes of memory guests can still have on this host."""
        from drivers.qemu.capabilities import mem_available

        return mem_available()

    def has_image(self, path: str) -> bool:
        """True when a disk image exists at ``path`` on this host."""
        return Path(path).exists()

    def cannot_run(self, defn: DomainDef) -> list[str]:
        """Why this host could not run ``defn`` (emulator, machine type); [] if it can."""
        return []

    # --- console and statistics (drivers that have them override these) ------------------

    async def open_console(self, rt: DomainRuntime, force: bool) -> ConsoleStream:
        raise NotSupported(f"Domain '{rt.name}' has no console on this driver.")

    def console_lines(
        self, rt: DomainRuntime, since: float | None, follow: bool
    ) -> AsyncIterator[ConsoleLine]:
        raise NotSupported(f"Domain '{rt.name}' keeps no console log on this driver.")

    def stats_stream(self, interval: float) -> AsyncIterator[StatsSample]:
        raise NotSupported("This driver reports no statistics.")

    # --- the screen (drivers whose hypervisor answers screendump) ---------------------------

    def screen_dir(self, rt: DomainRuntime) -> Path | None:
        """A directory only this process reads, where the hypervisor writes screendumps of
        ``rt``; None when this driver takes no pictures."""
        return None

    async def screenshot(self, rt: DomainRuntime, fmt: str) -> Screenshot:
        directory = self.screen_dir(rt)
        if directory is None:
            raise NotSupported(f"Domain '{rt.name}' has no screen on this driver.")
        return await screen.screenshot(rt, directory, fmt)

    def tunnel_path(self, name: str, direction: str) -> Path | None:
        """Where a tunnelled migration's unix socket for domain ``name`` goes ('in' or
        'out'), or None when this driver cannot tunnel."""
        return None

    def tunnel(self, name: str, direction: str) -> Path:
        """:meth:`tunnel_path`, or NotSupported when this driver cannot tunnel."""
        path = self.tunnel_path(name, direction)
        if path is None:
            raise migration.unsupported_tunnel(name)
        return path

    def hypervisor_version(self) -> str:
        return VERSION

    # --- guest agent and addresses (drivers that have them override these) ---------------

    async def interface_addresses(self, rt: DomainRuntime, source: str) -> list[InterfaceAddresses]:
        raise NotSupported(f"Domain '{rt.name}' reports no addresses on this driver.")

    async def agent_shutdown(self, rt: DomainRuntime) -> None:
        raise NotSupported(f"Domain '{rt.name}' has no guest agent on this driver.")

    # --- Host hooks -------------------------------------------------------------------

    def publish(self, event: DomainEvent) -> None:
        for hub in list(self.hubs):
            hub.publish(event)

    def stopped(self, rt: DomainRuntime) -> None:
        if rt.persistent is None:
            self._forget(rt)

    # --- the table ----------------------------------------------------------------------

    def add(self, rt: DomainRuntime) -> None:
        self.by_uuid[rt.uuid] = rt
        self.by_name[rt.name] = rt

    def _forget(self, rt: DomainRuntime) -> None:
        rt.removed = True
        self.by_uuid.pop(rt.uuid, None)
        if self.by_name.get(rt.name) is rt:
            del self.by_name[rt.name]

    def get(self, name: str) -> DomainRuntime:
        rt = self.by_name.get(name)
        if rt is None:
            raise NoSuchDomain(
                f"Domain '{name}' not found; 'virtdeck list --all' shows the defined domains."
            )
        return rt

    def get_uuid(self, uuid: str) -> DomainRuntime:
        rt = self.by_uuid.get(uuid.lower())
        if rt is None:
            raise NoSuchDomain(f"No domain has the UUID {uuid}.")
        return rt

    def sorted(self) -> list[DomainRuntime]:
        return sorted(self.by_uuid.values(), key=lambda r: r.name)

    def define(self, xml: str) -> DomainRuntime:
        """Define or update a domain; nothing is stored when anything is wrong."""
        defn = parse_domain(xml)
        self.check_definition(defn)
        self.prepare_definition(defn)
        same_name = self.by_name.get(defn.name)
        same_uuid = self.by_uuid.get(defn.uuid)
        if same_name is not None and same_name.uuid != defn.uuid:
            raise DomainExists(
                f"Domain '{defn.name}' already exists with UUID {same_name.uuid}; use that "
                "UUID (or leave <uuid> out) to update it, or choose another name."
            )
        if same_uuid is not None and same_uuid.name != defn.name:
            raise DomainExists(
                f"UUID {defn.uuid} already belongs to domain '{same_uuid.name}'; renaming by "
                "redefining is not supported. Change the <uuid> or keep the name."
            )
        self.store_definition(defn)
        if same_uuid is None:
            rt = DomainRuntime(self, defn)
            self.add(rt)
            detail = DefinedDetail.ADDED
        else:
            rt = same_uuid
            detail = DefinedDetail.UPDATED if rt.persistent is not None else DefinedDetail.ADDED
            rt.persistent = defn
            self.persist(rt)
        self.publish(
            LifecycleEvent(domain=rt.name, uuid=rt.uuid, type=EventType.DEFINED, detail=detail)
        )
        return rt

    def undefine(self, rt: DomainRuntime) -> None:
        if rt.persistent is None:
            raise OperationInvalid(
                f"Domain '{rt.name}' is transient (it has no persistent definition to remove); "
                "destroy it instead."
            )
        self.remove_definition(rt)
        rt.persistent = None
        if rt.active:
            self.persist(rt)
        else:
            self._forget(rt)
        self.publish(
            LifecycleEvent(
                domain=rt.name,
                uuid=rt.uuid,
                type=EventType.UNDEFINED,
                detail=UndefinedDetail.REMOVED,
            )
        )

    async def detach_all(self) -> None:
        for rt in list(self.by_uuid.values()):
            await rt.detach()


def check_address_source(source: str) -> None:
    if source not in ADDRESS_SOURCES:
        raise InvalidArgument(
            f"Unknown address source '{source}'; write lease, agent or arp "
            "(virtdeck domifaddr --source agent)."
        )


def check_shutdown_mode(mode: str) -> None:
    if mode not in SHUTDOWN_MODES:
        raise InvalidArgument(
            f"Unknown shutdown mode '{mode}'; write acpi (the power button) or agent (the "
            "guest agent): virtdeck shutdown --mode agent DOMAIN."
        )


def prepare_definition(defn: DomainDef) -> None:
    """What libvirt's QEMU driver does to a definition when it is defined: drop the parts
    only a running domain has, and give every PCI device an address (stored, so the
    guest's hardware stays where it is across boots, edits and migrations)."""
    strip_runtime(defn.root)
    fill_boot_default(defn)
    assign_pci_addresses(defn)


class RuntimeDomain(Domain):
    """A handle on a domain of a :class:`DomainRegistry`."""

    def __init__(
        self, registry: DomainRegistry, rt: DomainRuntime, conn: Connection | None = None
    ) -> None:
        super().__init__(rt.name, rt.uuid)
        self._registry = registry
        self._conn = conn

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            return super().connection
        return self._conn

    @property
    def runtime(self) -> DomainRuntime:
        rt = self._registry.by_uuid.get(self._uuid)
        if rt is None or rt.removed:
            raise NoSuchDomain(f"Domain '{self._name}' no longer exists.")
        return rt

    async def start(self, paused: bool = False) -> None:
        await self.runtime.start(paused)

    async def shutdown(self, mode: str = "acpi") -> None:
        check_shutdown_mode(mode)
        rt = self.runtime
        if mode == "agent":
            await rt.shutdown(lambda: self._registry.agent_shutdown(rt))
        else:
            await rt.shutdown()

    async def interface_addresses(self, source: str = "lease") -> list[InterfaceAddresses]:
        check_address_source(source)
        rt = self.runtime
        if not rt.active:
            raise OperationInvalid(
                f"Domain '{rt.name}' is not running; its addresses are known only while it runs."
            )
        return await self._registry.interface_addresses(rt, source)

    async def reboot(self) -> None:
        await self.runtime.reboot()

    async def reset(self) -> None:
        await self.runtime.reset()

    async def suspend(self) -> None:
        await self.runtime.suspend()

    async def resume(self) -> None:
        await self.runtime.resume()

    async def destroy(self) -> None:
        await self.runtime.destroy()

    async def undefine(self) -> None:
        self._registry.undefine(self.runtime)

    async def state(self) -> tuple[DomainState, StateReason]:
        rt = self.runtime
        return rt.state, rt.reason

    async def info(self) -> DomainInfo:
        return self.runtime.info()

    async def xml(self, inactive: bool = False) -> str:
        rt = self.runtime
        if inactive and rt.persistent is not None:
            return rt.persistent.to_xml()
        return rt.definition.to_xml()

    async def id(self) -> int | None:
        return self.runtime.domid

    async def console(self, force: bool = False) -> ConsoleStream:
        return await self._registry.open_console(self.runtime, force)

    def console_log(
        self, since: float | None = None, follow: bool = False
    ) -> AsyncIterator[ConsoleLine]:
        return self._registry.console_lines(self.runtime, since, follow)

    async def screenshot(self, format: str = "png") -> Screenshot:  # noqa: A002 - virsh's word
        return await self._registry.screenshot(self.runtime, format)

    async def screen_frames(
        self, fps: float = screen.DEFAULT_FPS, idle_fps: float = screen.IDLE_FPS
    ) -> AsyncIterator[Screenshot]:
        screen.check_rates(fps, idle_fps)
        registry = self._registry
        first = await registry.screenshot(self.runtime, "png")  # errors now, not in the stream
        pending: list[Screenshot] = [first]

        async def capture() -> Screenshot:
            if pending:
                return pending.pop()
            return await registry.screenshot(self.runtime, "png")

        return screen.frames(capture, lambda: self.runtime.input_event(), fps, idle_fps)

    async def send_input(self, events: Sequence[InputEvent]) -> None:
        await screen.send_input(self.runtime, events)

    async def migrate_begin(
        self, offline: bool = False, copy_storage: bool = False
    ) -> MigrationSource:
        return await migration.begin(self.runtime, offline, copy_storage)

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
        return await migration.perform(
            self.runtime,
            uri,
            live=live,
            bandwidth_mib=bandwidth_mib,
            max_downtime_ms=max_downtime_ms,
            timeout_s=timeout_s,
            nbd_host=nbd_host,
            nbd_port=nbd_port,
            nbd_disks=nbd_disks,
        )

    async def migrate_confirm(self, success: bool, undefine_source: bool = False) -> None:
        await migration.confirm(self._registry, self.runtime, success, undefine_source)

    async def job_info(self) -> JobInfo:
        return migration.job_info(self.runtime)

    async def abort_job(self) -> None:
        await migration.abort(self.runtime)


class RegistryConnection(Connection):
    """A connection to a driver instance; each has its own event hub."""

    def __init__(self, registry: DomainRegistry, uri: str) -> None:
        self.registry = registry
        self._uri = uri
        self._hub = EventHub()
        registry.hubs.append(self._hub)
        self._closed = False

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def capabilities(self) -> frozenset[str]:
        caps = {"migration", "interface-addresses", "screen"}
        if self.registry.pool is not None:
            caps.add("storage")
        return frozenset(caps)

    def _pool(self) -> DirectoryPool | MemoryPool:
        self._check_open()
        if self.registry.pool is None:
            raise NotSupported(f"{self._uri} has no storage pool.")
        return self.registry.pool

    async def pool_info(self) -> PoolInfo:
        return await self._pool().info()

    async def list_volumes(self) -> list[VolumeInfo]:
        return await self._pool().list()

    async def create_volume(
        self, name: str, capacity_bytes: int, fmt: str | None = None
    ) -> VolumeInfo:
        return await self._pool().create(name, capacity_bytes, fmt)

    async def delete_volume(self, name: str) -> None:
        await self._pool().delete(name)

    def _check_open(self) -> None:
        if self._closed:
            raise OperationInvalid("This connection is closed; open a new one.")

    def _handle(self, rt: DomainRuntime) -> RuntimeDomain:
        return RuntimeDomain(self.registry, rt, self)

    async def migrate_prepare(
        self,
        xml: str,
        *,
        started_wall: float | None = None,
        copy_disks: tuple[DiskCopy, ...] = (),
        tunnelled: bool = False,
    ) -> IncomingMigration:
        self._check_open()
        tunnel = None
        if tunnelled:
            tunnel = self.registry.tunnel(parse_domain(xml).name, "in")
        result, incoming = await migration.prepare(
            self.registry,
            xml,
            started_wall=started_wall,
            copy_disks=copy_disks,
            tunnel=tunnel,
        )
        self.registry.incoming[result.uuid] = incoming
        return result

    async def free_memory(self) -> int:
        self._check_open()
        return self.registry.free_memory()

    def stats_stream(self, interval: float = 1.0) -> AsyncIterator[StatsSample]:
        self._check_open()
        return self.registry.stats_stream(interval)

    async def migrate_preflight(self, xml: str, copy_storage: bool = False) -> tuple[str, ...]:
        self._check_open()
        return tuple(await migration.preflight(self.registry, xml, copy_storage))

    async def tunnel_socket(self, uuid: str, direction: str) -> str:
        self._check_open()
        return str(self.registry.tunnel(self.registry.get_uuid(uuid).name, direction))

    async def migrate_finish(
        self,
        uuid: str,
        *,
        success: bool,
        persistent_xml: str | None = None,
        paused: bool = False,
    ) -> None:
        self._check_open()
        incoming = self.registry.incoming.pop(uuid.lower(), None)
        if incoming is None:
            if not success:
                return  # Prepare never got this far: nothing to discard
            raise OperationInvalid(f"No migration of a domain with UUID {uuid} is on its way here.")
        await migration.finish(
            self.registry,
            incoming,
            success=success,
            persistent_xml=persistent_xml,
            paused=paused,
        )

    async def list_domains(self) -> list[Domain]:
        self._check_open()
        return [self._handle(rt) for rt in self.registry.sorted()]

    async def list_summaries(self) -> list[DomainSummary]:
        self._check_open()
        return [self._summary(rt) for rt in self.registry.sorted()]

    @staticmethod
    def _summary(rt: DomainRuntime) -> DomainSummary:
        title, vcpus, memory_kib = rt.listed()
        return DomainSummary(
            name=rt.name,
            uuid=rt.uuid,
            id=rt.domid,
            state=rt.state,
            reason=rt.reason,
            persistent=rt.persistent is not None,
            title=title,
            vcpus=vcpus,
            memory_kib=memory_kib,
            started_wall=rt.started_wall if rt.active else None,
        )

    async def lookup(self, name: str) -> Domain:
        self._check_open()
        return self._handle(self.registry.get(name))

    async def lookup_by_uuid(self, uuid: str) -> Domain:
        self._check_open()
        return self._handle(self.registry.get_uuid(uuid))

    async def define_xml(self, xml: str) -> Domain:
        self._check_open()
        return self._handle(self.registry.define(xml))

    def events(self) -> EventStream:
        self._check_open()
        return self._hub.subscribe()

    async def host_info(self) -> HostInfo:
        return HostInfo(
            hostname=socket.gethostname(),
            hypervisor=self.registry.hypervisor,
            hypervisor_version=self.registry.hypervisor_version(),
            driver_version=VERSION,
            uri=self._uri,
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._hub in self.registry.hubs:
            self.registry.hubs.remove(self._hub)
        self._hub.close(ConnectionClosedEvent(reason="the connection was closed", lost=False))
