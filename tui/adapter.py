"""Stop-gaps for driver API the TUI needs and the drivers do not offer yet.

Each function here says what it stands in for; when the drivers grow the API, the function
becomes a one-line call (or goes away).

- :func:`open_connection`: ``drivers.open`` whose remote connections decode
  ``list_summaries`` replies directly. Wanted: ``protocol.from_wire`` caching
  ``typing.get_type_hints`` per class (today it costs ~0.8 ms per summary: 0.8 s for a
  1000-domain relist, most of the 10-host start-up budget).
- :func:`read_infos`: vCPUs and memory of many domains at once. Wanted: ``DomainSummary``
  carrying ``vcpus`` and ``memory_kib`` (or a ``Connection.list_infos()``), so a snapshot
  is one call. Until then: one ``info`` call per domain, issued together so a remote
  connection pipelines them, and for a remote connection read straight from the reply
  (decoding a ``DomainInfo`` costs ~0.4 ms each in ``protocol.from_wire`` today, which
  calls ``typing.get_type_hints`` for every value).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from drivers.api import Connection, Domain
from drivers.errors import NoSuchDomain, ProtocolError, VirtError
from drivers.model import DomainState, DomainSummary

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
        elif isinstance(result, VirtError):
            raise result
        elif isinstance(result, BaseException):
            raise result
    return infos


def _summary(data: Any) -> DomainSummary:
    try:
        state = DomainState[data["state"]]
        ident = data.get("id")
        return DomainSummary(
            name=str(data["name"]),
            uuid=str(data["uuid"]),
            id=None if ident is None else int(ident),
            state=state,
            reason=state.reasons[data["reason"]],
            persistent=bool(data.get("persistent", True)),
            title=str(data.get("title") or ""),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ProtocolError(f"A DomainSummary from the daemon is malformed: {err}.") from err


async def open_connection(uri: str) -> Connection:
    """``drivers.open(uri)``; a remote connection's ``list_summaries`` decodes fast."""
    import drivers
    from drivers.remote.client import RemoteConnection

    conn = await drivers.open(uri)
    if isinstance(conn, RemoteConnection):
        remote = conn

        async def list_summaries() -> list[DomainSummary]:
            data = await remote.call("list_summaries")
            if not isinstance(data, list):
                raise ProtocolError("list_summaries from the daemon is not a list.")
            return [_summary(item) for item in data]

        conn.list_summaries = list_summaries  # type: ignore[method-assign]
    return conn
