"""Read-only connections (``?ro=1``): everything can be looked at, nothing changed.

A remote connection asks its daemon for read-only mode, which refuses every changing call
itself; in-process drivers get this wrapper, which refuses them before they reach the driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from drivers.api import Connection, ConsoleStream, Domain, EventStream
from drivers.errors import AccessDenied
from drivers.model import (
    ConsoleLine,
    DiskCopy,
    DomainInfo,
    DomainState,
    DomainSummary,
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


def _refuse(what: str) -> AccessDenied:
    return AccessDenied(
        f"This connection is read-only, so {what} was refused; connect without ?ro=1 to "
        "change anything on this host."
    )


class ReadOnlyDomain(Domain):
    def __init__(self, inner: Domain) -> None:
        super().__init__(inner.name, inner.uuid)
        self._inner = inner

    async def start(self, paused: bool = False) -> None:
        raise _refuse("starting a domain")

    async def shutdown(self, mode: str = "acpi") -> None:
        raise _refuse("shutting a domain down")

    async def interface_addresses(self, source: str = "lease") -> list[InterfaceAddresses]:
        # As libvirt's virDomainInterfaceAddresses: leases and the ARP table are host
        # data anyone may read; asking the guest agent is refused on a read-only
        # connection (it commands the guest).
        if source == "agent":
            raise _refuse("asking the guest agent")
        return await self._inner.interface_addresses(source)

    async def reboot(self) -> None:
        raise _refuse("rebooting a domain")

    async def reset(self) -> None:
        raise _refuse("resetting a domain")

    async def suspend(self) -> None:
        raise _refuse("suspending a domain")

    async def resume(self) -> None:
        raise _refuse("resuming a domain")

    async def destroy(self) -> None:
        raise _refuse("destroying a domain")

    async def undefine(self) -> None:
        raise _refuse("undefining a domain")

    async def state(self) -> tuple[DomainState, StateReason]:
        return await self._inner.state()

    async def info(self) -> DomainInfo:
        return await self._inner.info()

    async def xml(self, inactive: bool = False) -> str:
        return await self._inner.xml(inactive)

    async def id(self) -> int | None:
        return await self._inner.id()

    @property
    def connection(self) -> Connection:
        return self._inner.connection

    async def migrate_begin(
        self, offline: bool = False, copy_storage: bool = False
    ) -> MigrationSource:
        raise _refuse("migrating a domain")

    async def migrate_perform(self, uri: str, **options: object) -> JobInfo:
        raise _refuse("migrating a domain")

    async def migrate_confirm(self, success: bool, undefine_source: bool = False) -> None:
        raise _refuse("migrating a domain")

    async def job_info(self) -> JobInfo:
        return await self._inner.job_info()

    async def console(self, force: bool = False) -> ConsoleStream:
        raise _refuse("typing on a console")

    def console_log(
        self, since: float | None = None, follow: bool = False
    ) -> AsyncIterator[ConsoleLine]:
        return self._inner.console_log(since, follow)

    async def abort_job(self) -> None:
        raise _refuse("aborting a migration")

    # Looking at the screen is reading, like the console log; typing on it is not.
    async def screenshot(self, format: str = "png") -> Screenshot:  # noqa: A002 - virsh's word
        return await self._inner.screenshot(format)

    async def screen_frames(
        self, fps: float = 10.0, idle_fps: float = 1.0
    ) -> AsyncIterator[Screenshot]:
        return await self._inner.screen_frames(fps, idle_fps)

    async def send_input(self, events: Sequence[InputEvent]) -> None:
        raise _refuse("typing on a domain's screen")


class ReadOnlyConnection(Connection):
    def __init__(self, inner: Connection) -> None:
        self._inner = inner

    @property
    def uri(self) -> str:
        return self._inner.uri

    @property
    def capabilities(self) -> frozenset[str]:
        return (self._inner.capabilities - {"migration", "console"}) | {"read-only"}

    async def list_domains(self) -> list[Domain]:
        return [ReadOnlyDomain(d) for d in await self._inner.list_domains()]

    async def list_summaries(self) -> list[DomainSummary]:
        return await self._inner.list_summaries()

    async def lookup(self, name: str) -> Domain:
        return ReadOnlyDomain(await self._inner.lookup(name))

    async def lookup_by_uuid(self, uuid: str) -> Domain:
        return ReadOnlyDomain(await self._inner.lookup_by_uuid(uuid))

    async def define_xml(self, xml: str) -> Domain:
        raise _refuse("defining a domain")

    def events(self) -> EventStream:
        return self._inner.events()

    async def host_info(self) -> HostInfo:
        return await self._inner.host_info()

    async def pool_info(self) -> PoolInfo:
        return await self._inner.pool_info()

    async def list_volumes(self) -> list[VolumeInfo]:
        return await self._inner.list_volumes()

    async def create_volume(
        self, name: str, capacity_bytes: int, fmt: str | None = None
    ) -> VolumeInfo:
        raise _refuse("creating an image")

    async def delete_volume(self, name: str) -> None:
        raise _refuse("deleting an image")

    async def free_memory(self) -> int:
        return await self._inner.free_memory()

    def stats_stream(self, interval: float = 1.0) -> AsyncIterator[StatsSample]:
        return self._inner.stats_stream(interval)

    async def migrate_preflight(self, xml: str, copy_storage: bool = False) -> tuple[str, ...]:
        return await self._inner.migrate_preflight(xml, copy_storage)

    async def migrate_prepare(
        self,
        xml: str,
        *,
        started_wall: float | None = None,
        copy_disks: tuple[DiskCopy, ...] = (),
        tunnelled: bool = False,
    ) -> IncomingMigration:
        raise _refuse("receiving a migration")

    async def migrate_finish(
        self,
        uuid: str,
        *,
        success: bool,
        persistent_xml: str | None = None,
        paused: bool = False,
    ) -> None:
        raise _refuse("receiving a migration")

    async def close(self) -> None:
        await self._inner.close()
