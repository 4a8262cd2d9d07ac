"""A domain reached through a daemon: every method is one call of the protocol.

Shared by the asyncio client (:mod:`drivers.remote.client`) and the blocking one
(:mod:`drivers.remote.syncclient`); this module loads no asyncio, so the blocking client's
one-shot commands stay fast.
"""

from __future__ import annotations

from drivers.model import (
    DomainIdentity,
    DomainInfo,
    DomainState,
    InputEvent,
    InterfaceAddresses,
    JobInfo,
    MigrationSource,
    StateReason,
)
from drivers.remote import protocol as p

TYPE_CHECKING = False  # not typing's: see drivers/records.py (one-shot CLI start-up)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Protocol

    class Caller(Protocol):
        """What a domain needs from its connection: ``await call(method, **args)``."""

        async def call(self, method: str, **args: Any) -> Any: ...


class DomainCalls(DomainIdentity):
    """The Domain methods, each a ``domain.*`` call on the connection."""

    def __init__(self, conn: Caller, name: str, uuid: str) -> None:
        super().__init__(name, uuid)
        self._conn = conn

    async def _call(self, op: str, **args: Any) -> Any:
        return await self._conn.call(f"domain.{op}", uuid=self._uuid, **args)

    async def start(self, paused: bool = False) -> None:
        await self._call("start", paused=paused)

    async def shutdown(self, mode: str = "acpi") -> None:
        if mode == "acpi":
            await self._call("shutdown")  # what every daemon version understands
        else:
            await self._call("shutdown", mode=mode)

    async def interface_addresses(self, source: str = "lease") -> list[InterfaceAddresses]:
        return p.interfaces_from_wire(await self._call("interface_addresses", source=source))

    async def reboot(self) -> None:
        await self._call("reboot")

    async def reset(self) -> None:
        await self._call("reset")

    async def suspend(self) -> None:
        await self._call("suspend")

    async def resume(self) -> None:
        await self._call("resume")

    async def destroy(self) -> None:
        await self._call("destroy")

    async def undefine(self) -> None:
        await self._call("undefine")

    async def state(self) -> tuple[DomainState, StateReason]:
        data = await self._call("state")
        state = DomainState[data["state"]]
        return state, state.reasons[data["reason"]]

    async def info(self) -> DomainInfo:
        return p.info_from_wire(await self._call("info"))

    async def xml(self, inactive: bool = False) -> str:
        return str(await self._call("xml", inactive=inactive))

    async def id(self) -> int | None:
        value = await self._call("id")
        return int(value) if value is not None else None

    async def send_input(self, events: Sequence[InputEvent]) -> None:
        await self._call("send_input", events=p.input_to_wire(events))

    async def migrate_begin(
        self, offline: bool = False, copy_storage: bool = False
    ) -> MigrationSource:
        begun = await self._call("migrate_begin", offline=offline, copy_storage=copy_storage)
        return p.source_from_wire(begun)

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
        info = await self._call(
            "migrate_perform",
            uri=uri,
            live=live,
            bandwidth_mib=bandwidth_mib,
            max_downtime_ms=max_downtime_ms,
            timeout_s=timeout_s,
            nbd_host=nbd_host,
            nbd_port=nbd_port,
            nbd_disks=list(nbd_disks),
        )
        return p.job_from_wire(info)

    async def migrate_confirm(self, success: bool, undefine_source: bool = False) -> None:
        await self._call("migrate_confirm", success=success, undefine_source=undefine_source)

    async def job_info(self) -> JobInfo:
        return p.job_from_wire(await self._call("job_info"))

    async def abort_job(self) -> None:
        await self._call("abort_job")
