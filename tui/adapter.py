"""Stop-gaps for driver API the TUI needs and the drivers do not offer yet.

Each function here says what it stands in for; when the drivers grow the API, the function
becomes a one-line call (or goes away).

- :func:`read_infos`: vCPUs and memory of domains whose summaries lack them (a daemon
  older than the summaries that carry ``vcpus``/``memory_kib``, and redefinitions, which
  arrive as events): one ``info`` call per domain, pipelined.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from drivers.api import Connection, Domain
from drivers.errors import NoSuchDomain

_T = TypeVar("_T")
Infos = dict[str, tuple[int, int]]

#: Calls one connection may have in flight (the daemon refuses more than 256 per client).
MAX_IN_FLIGHT = 128


async def bounded(
    calls: Iterable[Awaitable[_T]], limit: int = MAX_IN_FLIGHT
) -> list[_T | BaseException]:
    """Await ``calls`` with at most ``limit`` outstanding; results (or exceptions) in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[_T]) -> _T:
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls), return_exceptions=True)


async def _remote_info(conn: Any, uuid: str) -> tuple[int, int] | None:
    try:
        data = await conn.call("domain.info", uuid=uuid)
    except NoSuchDomain:
        return None
    vcpus = int(data["vcpus"])
    memory = int(data.get("memory_kib") or 0) or int(data.get("max_memory_kib") or 0)
    return vcpus, memory


async def _local_info(conn: Connection, uuid: str) -> tuple[int, int] | None:
    try:
        dom: Domain = await conn.lookup_by_uuid(uuid)
        info = await dom.info()
    except NoSuchDomain:
        return None
    return info.vcpus, info.memory_kib or info.max_memory_kib


async def read_infos(conn: Connection, uuids: Iterable[str]) -> Infos:
    """vCPUs and memory (KiB; the maximum when the domain is off) by uuid.

    Domains that vanished meanwhile are left out; a lost link raises its VirtError.
    """
    from drivers.remote.client import RemoteConnection

    wanted = list(uuids)
    if isinstance(conn, RemoteConnection):
        calls = [_remote_info(conn, u) for u in wanted]
    else:
        calls = [_local_info(conn, u) for u in wanted]
    results = await bounded(calls)
    infos: Infos = {}
    for uuid, result in zip(wanted, results, strict=True):
        if isinstance(result, tuple):
            infos[uuid] = result
        elif isinstance(result, BaseException):
            raise result
    return infos


async def open_connection(uri: str) -> Connection:
    """``drivers.open(uri)`` (kept as the one place the TUI opens connections)."""
    import drivers

    return await drivers.open(uri)


async def undefine_with_images(conn: Connection, dom: Domain) -> None:
    """Undefine ``dom``, then delete the images of its pool its disks used.

    Only images in the host's default pool count as the domain's own (a disk elsewhere
    may be shared or precious); the definition goes first, so a failing delete leaves an
    unused image behind rather than a domain without its disk. Raises the first error.
    """
    from drivers.domxml import parse_domain

    sources = {d.source for d in parse_domain(await dom.xml(inactive=True)).disks if d.source}
    owned = []
    if "storage" in conn.capabilities:
        owned = [
            v.name for v in await conn.list_volumes() if v.path in sources and v.format != "iso"
        ]
    await dom.undefine()
    for name in owned:
        await conn.delete_volume(name)
