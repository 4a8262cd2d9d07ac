"""The libvirt driver: virtdeck's Connection and Domain over libvirt-python.

``libvirt:<any libvirt URI>`` (``libvirt:qemu:///system``, ``libvirt:qemu+ssh://root@h/system``,
``libvirt:lxc:///``) opens that URI with libvirt itself; libvirt's own drivers and transports
do the rest, so every hypervisor libvirt manages is reachable without virtdeckd.

Two rules shape this module:

- Every libvirt call blocks (it is a round trip to libvirtd), so each runs in the
  connection's own worker threads; the asyncio loop never waits on libvirt.
- State is never asked for on a timer: libvirt's events arrive through libvirtaio on the
  running loop (:mod:`drivers.libvirt.loop`) and are published as they come
  (:mod:`drivers.libvirt.events`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from drivers.api import Connection, ConsoleStream, Domain, EventHub, EventStream
from drivers.errors import (
    ConnectionLost,
    DomainBusy,
    InvalidArgument,
    OperationInvalid,
    VirtError,
)
from drivers.libvirt import stats as lvstats
from drivers.libvirt.console import LibvirtConsole
from drivers.libvirt.errors import code_name, translate
from drivers.libvirt.events import EventBridge
from drivers.libvirt.loop import ThreadSafeImpl, bind, libvirt
from drivers.model import (
    ADDRESS_SOURCES,
    SHUTDOWN_MODES,
    ConnectionClosedEvent,
    DomainEvent,
    DomainInfo,
    DomainState,
    DomainSummary,
    HostInfo,
    InterfaceAddresses,
    IPAddress,
    JobInfo,
    StateReason,
    StatsSample,
)
from drivers.records import replace
from drivers.uri import URI, is_read_only, libvirt_target

_T = TypeVar("_T")

#: Worker threads per connection: libvirt's client lets several calls be in flight at
#: once, and a long call (a migration, a start) must not hold up the quick ones.
WORKERS = 4
#: libvirt keepalive: a probe after 5 s of silence, the link is dead after 3 unanswered.
KEEPALIVE = (5, 3)
MIN_STATS_INTERVAL = 0.05

_CLOSE_REASONS = {
    0: "the connection to libvirtd failed (libvirtd may have stopped)",
    1: "libvirtd closed the connection",
    2: "libvirtd stopped answering keepalive probes",
    3: "the connection was closed",
}


def _state(value: int, reason: int) -> tuple[DomainState, StateReason]:
    try:
        state = DomainState(value)
    except ValueError:
        state = DomainState.NOSTATE
    return state, state.reason(reason)


def _version(number: int) -> str:
    """libvirt's version numbers (major * 1000000 + minor * 1000 + micro) as text."""
    return f"{number // 1000000}.{number // 1000 % 1000}.{number % 1000}"


class LibvirtDomain(Domain):
    """A handle on one domain of a libvirt connection."""

    def __init__(self, conn: LibvirtConnection, dom: Any, name: str, uuid: str) -> None:
        super().__init__(name, uuid)
        self._conn = conn
        self._dom = dom

    @property
    def connection(self) -> LibvirtConnection:
        return self._conn

    @property
    def handle(self) -> Any:
        """libvirt-python's virDomain (for callers that need libvirt itself)."""
        return self._dom

    def _do(self, what: str, fn: Callable[[], _T]) -> asyncio.Future[_T]:
        return self._conn.call(f"{what} domain '{self._name}'", fn)

    async def start(self, paused: bool = False) -> None:
        flags = libvirt.VIR_DOMAIN_START_PAUSED if paused else 0
        await self._do("start", lambda: self._dom.createWithFlags(flags))

    async def shutdown(self, mode: str = "acpi") -> None:
        if mode not in SHUTDOWN_MODES:
            raise InvalidArgument(
                f"Unknown shutdown mode '{mode}'; write acpi (the power button) or agent (the "
                "guest agent): virtdeck shutdown --mode agent DOMAIN."
            )
        dom = self._dom

        def shut_down() -> None:
            if mode == "agent":
                dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT)
                return
            try:
                dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
            except libvirt.libvirtError as err:
                # Drivers without shutdown modes (libvirt's test driver) take only 0,
                # which is their power button.
                if err.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
                    raise
                dom.shutdown()

        await self._do("shut down", shut_down)

    async def interface_addresses(self, source: str = "lease") -> list[InterfaceAddresses]:
        if source not in ADDRESS_SOURCES:
            raise InvalidArgument(
                f"Unknown address source '{source}'; write lease, agent or arp "
                "(virtdeck domifaddr --source agent)."
            )
        code = {
            "lease": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
            "agent": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
            "arp": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
        }[source]
        found = await self._do("read the addresses of", lambda: self._dom.interfaceAddresses(code))
        return [
            InterfaceAddresses(
                name=str(name),
                hwaddr=info.get("hwaddr") or None,
                addresses=tuple(
                    IPAddress(
                        type="ipv6" if a.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV6 else "ipv4",
                        address=str(a.get("addr", "")),
                        prefix=int(a.get("prefix") or 0),
                    )
                    for a in info.get("addrs") or ()
                ),
            )
            for name, info in sorted((found or {}).items())
        ]

    async def reboot(self) -> None:
        await self._do("reboot", lambda: self._dom.reboot(0))

    async def reset(self) -> None:
        await self._do("reset", lambda: self._dom.reset(0))

    async def suspend(self) -> None:
        await self._do("suspend", lambda: self._dom.suspend())

    async def resume(self) -> None:
        await self._do("resume", lambda: self._dom.resume())

    async def destroy(self) -> None:
        await self._do("destroy", lambda: self._dom.destroy())

    async def undefine(self) -> None:
        await self._do("undefine", lambda: self._dom.undefine())

    async def state(self) -> tuple[DomainState, StateReason]:
        value, reason = await self._do("read the state of", lambda: self._dom.state())
        return _state(value, reason)

    async def info(self) -> DomainInfo:
        def both() -> tuple[list[int], list[int]]:
            return self._dom.state(), self._dom.info()

        (value, reason), (_, max_mem, mem, vcpus, cpu_time) = await self._do(
            "read the information of", both
        )
        state, why = _state(value, reason)
        return DomainInfo(state, why, int(max_mem), int(mem), int(vcpus), int(cpu_time))

    async def xml(self, inactive: bool = False) -> str:
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        text: str = await self._do("read the XML of", lambda: self._dom.XMLDesc(flags))
        return text

    async def id(self) -> int | None:
        # A virDomain keeps the id it had when it was looked up: ask afresh.
        handle = self._conn.handle
        number = await self._do(
            "read the id of", lambda: handle.lookupByUUIDString(self._uuid).ID()
        )
        return None if number < 0 else int(number)

    async def console(self, force: bool = False) -> ConsoleStream:
        lv = libvirt
        handle = self._conn.handle
        flags = lv.VIR_DOMAIN_CONSOLE_FORCE if force else 0

        def attach() -> Any:
            stream = handle.newStream(lv.VIR_STREAM_NONBLOCK)
            try:
                self._dom.openConsole(None, stream, flags)
            except lv.libvirtError:
                with contextlib.suppress(lv.libvirtError):
                    stream.abort()
                raise
            return stream

        try:
            stream = await self._do("open the console of", attach)
        except VirtError as err:
            if "not using a pty" in err.message.lower():
                raise OperationInvalid(
                    f"The serial port of domain '{self._name}' is not a pty, and libvirt opens "
                    "consoles only on pty ports; give the domain <serial type='pty'> (or "
                    "connect to its socket directly)."
                ) from None
            if "active console session" not in err.message.lower():
                raise
            raise DomainBusy(
                f"Someone else is attached to the console of '{self._name}'; force the "
                "takeover (virtdeck console --force) to detach them."
            ) from None

        async def finish(stream: Any) -> None:
            def end() -> None:
                with contextlib.suppress(lv.libvirtError):
                    stream.abort()

            with contextlib.suppress(Exception):
                await self._conn.call("close the console", end)

        return LibvirtConsole(lv, stream, self._name, finish)

    # --- migration: libvirt's own, to another libvirt host ----------------------------------

    def _migrator(self) -> Callable[..., Awaitable[Domain]]:
        from drivers.libvirt.migration import migrate

        return migrate

    async def job_info(self) -> JobInfo:
        from drivers.libvirt.migration import job_info

        stats = await self._do("read the job of", lambda: self._dom.jobStats(0))
        return job_info(stats)

    async def abort_job(self) -> None:
        await self._do("abort the job of", lambda: self._dom.abortJob())


class LibvirtConnection(Connection):
    """One libvirt connection (``virConnect``), its worker threads and its events."""

    def __init__(
        self,
        uri: str,
        target: str,
        handle: Any,
        executor: ThreadPoolExecutor,
        impl: ThreadSafeImpl,
        read_only: bool,
    ) -> None:
        self._uri = uri
        self.target = target
        """The libvirt URI this connection opened (``uri`` without ``libvirt:``)."""
        self.handle = handle
        """libvirt-python's virConnect."""
        self.read_only = read_only
        self._executor = executor
        self._impl = impl
        self._loop = asyncio.get_running_loop()
        self._hub = EventHub()
        self._closed = False
        self._lost: str | None = None
        self._released = False
        self._bridge: EventBridge | None = None
        self._close_callback = False

    async def _watch(self) -> None:
        """Subscribe to libvirt's events and learn of the connection's end (round trips)."""

        def register() -> EventBridge:
            bridge = EventBridge(libvirt, self.handle, self._publish)
            self.handle.registerCloseCallback(self._on_close, None)
            self._close_callback = True
            with contextlib.suppress(libvirt.libvirtError):
                # local drivers (test:///) have no keepalive; that is fine
                self.handle.setKeepAlive(*KEEPALIVE)
            return bridge

        self._bridge = await self.call("subscribe to the events of", register)

    # --- plumbing -------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({"console", "stats", "migration", "libvirt", "interface-addresses"})

    def call(self, what: str, fn: Callable[[], _T]) -> asyncio.Future[_T]:
        """Run the blocking ``fn`` (libvirt calls) in a worker thread; libvirt's errors come
        back as VirtErrors saying we were trying to ``what`` (a verb phrase)."""
        self._check_open()

        def run() -> _T:
            try:
                return fn()
            except libvirt.libvirtError as err:
                raise translate(libvirt, err, self._uri, what) from None

        return self._loop.run_in_executor(self._executor, run)

    def _check_open(self) -> None:
        if self._lost is not None:
            raise ConnectionLost(
                f"The connection to libvirt at {self._uri} is lost ({self._lost}); "
                "connect again once libvirtd is back."
            )
        if self._closed:
            raise OperationInvalid("This connection is closed; open a new one.")

    def _publish(self, event: DomainEvent) -> None:
        if self._impl.on_loop():
            self._hub.publish(event)
        else:
            self._loop.call_soon_threadsafe(self._hub.publish, event)

    def _on_close(self, _conn: Any, reason: int, _opaque: Any) -> None:
        if reason == 3:  # our own close()
            return
        why = _CLOSE_REASONS.get(reason, "the connection to libvirtd ended")

        def lost() -> None:
            if self._closed:
                return
            self._closed = True
            self._lost = why
            self._hub.close(ConnectionClosedEvent(reason=why, lost=True))

        if threading.get_ident() == self._impl.loop_thread:
            lost()
        else:
            self._loop.call_soon_threadsafe(lost)

    def wrap(self, dom: Any) -> LibvirtDomain:
        """Our handle on libvirt-python's virDomain ``dom`` (of this connection)."""
        return LibvirtDomain(self, dom, dom.name(), dom.UUIDString())

    # --- domains ----------------------------------------------------------------------------

    async def list_domains(self) -> list[Domain]:
        doms = await self.call("list the domains", lambda: self.handle.listAllDomains(0))
        return sorted((self.wrap(d) for d in doms), key=lambda d: d.name)

    async def list_summaries(self) -> list[DomainSummary]:
        return await self.call("list the domains", self._summaries)

    def _summaries(self) -> list[DomainSummary]:
        lv = libvirt
        persistent = {
            d.UUIDString()
            for d in self.handle.listAllDomains(lv.VIR_CONNECT_LIST_DOMAINS_PERSISTENT)
        }
        wanted = lv.VIR_DOMAIN_STATS_STATE | lv.VIR_DOMAIN_STATS_VCPU | lv.VIR_DOMAIN_STATS_BALLOON
        try:
            records = self.handle.getAllDomainStats(wanted, 0)
        except lv.libvirtError as err:
            if code_name(lv, err) not in ("NO_SUPPORT", "OPERATION_UNSUPPORTED"):
                raise
            records = [(d, self._stats_by_hand(d)) for d in self.handle.listAllDomains(0)]
        rows = []
        for dom, record in records:
            state, reason = _state(
                int(record.get("state.state", 0)), int(record.get("state.reason", 0))
            )
            uuid = dom.UUIDString()
            number = dom.ID()
            vcpus = record.get("vcpu.current")
            memory = record.get("balloon.current") or record.get("balloon.maximum")
            rows.append(
                DomainSummary(
                    name=dom.name(),
                    uuid=uuid,
                    id=number if state.is_active and number >= 0 else None,
                    state=state,
                    reason=reason,
                    persistent=uuid in persistent,
                    vcpus=int(vcpus) if vcpus is not None else None,
                    memory_kib=int(memory) if memory is not None else None,
                )
            )
        return sorted(rows, key=lambda row: row.name)

    @staticmethod
    def _stats_by_hand(dom: Any) -> dict[str, int]:
        """What getAllDomainStats would have said, for drivers without it."""
        (value, reason), info = dom.state(), dom.info()
        return {
            "state.state": value,
            "state.reason": reason,
            "vcpu.current": info[3],
            "balloon.current": info[2],
        }

    async def lookup(self, name: str) -> Domain:
        return await self.call(
            f"find domain '{name}'", lambda: self.wrap(self.handle.lookupByName(name))
        )

    async def lookup_by_uuid(self, uuid: str) -> Domain:
        return await self.call(
            f"find the domain with UUID {uuid}",
            lambda: self.wrap(self.handle.lookupByUUIDString(uuid)),
        )

    async def define_xml(self, xml: str) -> Domain:
        return await self.call("define the domain", lambda: self.wrap(self.handle.defineXML(xml)))

    def events(self) -> EventStream:
        self._check_open()
        return self._hub.subscribe()

    async def host_info(self) -> HostInfo:
        def read() -> HostInfo:
            return HostInfo(
                hostname=self.handle.getHostname(),
                hypervisor=self.handle.getType(),
                hypervisor_version=_version(self.handle.getVersion()),
                driver_version=f"libvirt {_version(self.handle.getLibVersion())}",
                uri=self._uri,
            )

        return await self.call("read the host's information", read)

    async def free_memory(self) -> int:
        free: int = await self.call("read the free memory", lambda: self.handle.getFreeMemory())
        return int(free)

    # --- statistics ---------------------------------------------------------------------------

    async def stats_stream(self, interval: float = 1.0) -> AsyncIterator[StatsSample]:
        if not interval >= MIN_STATS_INTERVAL:
            raise InvalidArgument(
                f"The statistics interval must be at least {MIN_STATS_INTERVAL} s, not {interval}."
            )
        reader = lvstats.StatsReader()
        cpus: int = (await self.call("read the host's CPUs", lambda: self.handle.getInfo()))[2]
        while not self._closed:
            yield await self.call("read statistics", lambda: self._sample(reader, cpus))
            await asyncio.sleep(interval)

    def _sample(self, reader: lvstats.StatsReader, cpus: int) -> StatsSample:
        lv = libvirt
        records = self.handle.getAllDomainStats(
            lv.VIR_DOMAIN_STATS_STATE
            | lv.VIR_DOMAIN_STATS_CPU_TOTAL
            | lv.VIR_DOMAIN_STATS_VCPU
            | lv.VIR_DOMAIN_STATS_BALLOON
            | lv.VIR_DOMAIN_STATS_INTERFACE
            | lv.VIR_DOMAIN_STATS_BLOCK,
            lv.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE,
        )
        mono, wall = time.monotonic(), time.time()
        rows = [(dom.name(), dom.UUIDString(), record) for dom, record in records]
        # Not every libvirt driver reports the node's load (the test driver does not):
        # then the host reads idle, with its memory from virNodeGetInfo.
        try:
            cpu = self.handle.getCPUStats(lv.VIR_NODE_CPU_STATS_ALL_CPUS, 0)
        except lv.libvirtError:
            cpu = {}
        try:
            memory = self.handle.getMemoryStats(lv.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
        except lv.libvirtError:
            total_kib = int(self.handle.getInfo()[1]) * 1024
            memory = {"total": total_kib, "free": total_kib}
        running = sum(1 for _, _, record in rows if lvstats.running_state(record))
        return StatsSample(
            host=reader.host(cpu, memory, cpus, running, wall),
            domains=reader.domains(rows, mono, wall),
        )

    # --- the end ------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._released:
            return
        self._released = True
        bridge, self._bridge = self._bridge, None

        def end() -> None:
            with contextlib.suppress(libvirt.libvirtError):
                if bridge is not None:
                    bridge.close()
                if self._close_callback:
                    self.handle.unregisterCloseCallback()
            with contextlib.suppress(libvirt.libvirtError):
                self.handle.close()

        self._closed = True
        with contextlib.suppress(Exception):
            await self._loop.run_in_executor(self._executor, end)
        self._executor.shutdown(wait=False)
        if self._lost is None:
            self._hub.close(ConnectionClosedEvent(reason="the connection was closed", lost=False))


async def open_libvirt(uri: URI) -> LibvirtConnection:
    """Open ``libvirt:<target>`` with libvirt (read-only with ``?ro=1``)."""
    impl = bind()
    name = str(uri)
    if uri.inner is not None and "+ssh://" in uri.inner and "no_tty" not in uri.params:
        # libvirt's ssh transport would otherwise ask for a password on the terminal, over
        # the UI (keys and the agent still work; a password prompt fails the open instead)
        uri = replace(uri, params={**uri.params, "no_tty": "1"})
    target = libvirt_target(uri)
    read_only = is_read_only(uri)
    loop = asyncio.get_running_loop()
    host = uri.host or "local"
    executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix=f"libvirt-{host}")

    def connect() -> Any:
        return libvirt.openReadOnly(target) if read_only else libvirt.open(target)

    try:
        handle = await loop.run_in_executor(executor, connect)
    except libvirt.libvirtError as err:
        executor.shutdown(wait=False)
        raise translate(libvirt, err, name, "connect", opening=True) from None
    except BaseException:
        executor.shutdown(wait=False)
        raise
    conn = LibvirtConnection(name, target, handle, executor, impl, read_only)
    try:
        await conn._watch()
    except BaseException:
        await conn.close()
        raise
    return conn


__all__ = ["LibvirtConnection", "LibvirtDomain", "open_libvirt"]
