"""Live migration, driven by the client: libvirt's five phases over two connections.

``await dom.migrate(dest)`` (or :func:`migrate`) runs

1. **Begin** on the source: the definition to send, the disks, the guest's start time;
2. **Prepare** on the destination: a QEMU started with ``-incoming defer`` that listens
   (and, for copy storage, NBD exports of fresh images);
3. **Perform** on the source: QEMU sends the guest (progress arrives as
   :class:`~drivers.model.JobProgressEvent` on the source's event stream);
4. **Finish** on the destination: persist the definition if asked, start the CPUs;
5. **Confirm** on the source: end the source's QEMU (or, after any failure, let the guest
   continue there).

Any failure in any phase rolls back: the destination's QEMU is killed and forgotten and
the source keeps the guest. The guest never runs on both hosts: the destination's CPUs
start only after the source's have stopped for good, and the source is ended only after
the destination runs.

With ``tunnelled=True`` the migration stream does not go from host to host: the source's
QEMU writes into its daemon, which sends it to this client over the connection it already
has (the protocol's byte frames, i.e. inside the SSH connection), and this client sends it
on to the destination's daemon the same way. Hosts that cannot reach each other, but that
this client reaches both of, can migrate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from drivers.errors import InvalidArgument, NotSupported, OperationInvalid, VirtError
from drivers.model import DiskCopy, DomainState, JobInfo, JobPhase, JobProgressEvent
from drivers.records import replace
from drivers.uri import is_libvirt, parse_uri

if TYPE_CHECKING:
    from drivers.api import Connection, Domain

log = logging.getLogger(__name__)


@runtime_checkable
class TunnelEnds(Protocol):
    """A connection that can carry a migration stream itself (the remote client)."""

    async def tunnel_out(self, uuid: str) -> tuple[str, AsyncIterator[bytes]]:
        """The source side: the URI its QEMU is to send to, and the bytes it sends."""

    async def tunnel_in(self, uuid: str) -> TunnelSink:
        """The destination side: where the bytes go (into its waiting QEMU)."""


class TunnelSink(Protocol):
    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


def _host_identity(uri: str) -> tuple[str, str, str]:
    """What tells hosts apart: the URI without its options, but with the options that pick
    another daemon or state directory on the same machine."""
    parsed = parse_uri(uri)
    return (
        str(parsed.without_params()).rstrip("/"),
        parsed.param("root") or "",
        parsed.param("socket") or "",
    )


def _same_host(a: str, b: str) -> bool:
    return _host_identity(a) == _host_identity(b)


def destination_host(dest_uri: str, migrate_uri: str | None) -> tuple[str, int | None]:
    """The address the source's QEMU connects to: ``migrate_uri`` (``tcp:HOST[:PORT]``)
    if given, else the destination URI's host name (a local destination: loopback)."""
    if migrate_uri:
        if not migrate_uri.startswith("tcp:"):
            raise InvalidArgument(
                f"The migration URI '{migrate_uri}' is not understood; write tcp:HOST or "
                "tcp:HOST:PORT."
            )
        rest = migrate_uri.removeprefix("tcp:").removeprefix("//")
        if rest.startswith("["):
            host, _, tail = rest[1:].partition("]")
            port = tail.removeprefix(":")
        elif rest.count(":") == 1:
            host, port = rest.split(":")
        else:
            host, port = rest, ""
        if not host:
            raise InvalidArgument(f"The migration URI '{migrate_uri}' names no host.")
        try:
            return host, int(port) if port else None
        except ValueError:
            raise InvalidArgument(f"The port in '{migrate_uri}' is not a number.") from None
    parsed = parse_uri(dest_uri)
    return (parsed.host or "127.0.0.1"), None


def _tcp(host: str, port: int) -> str:
    return f"tcp:[{host}]:{port}" if ":" in host else f"tcp:{host}:{port}"


async def migrate(
    dom: Domain,
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
    """Move ``dom`` to ``dest``; the domain's handle there. Raises a VirtError (with the
    source untouched or continued) if any phase fails."""
    source = dom.connection
    if is_libvirt(source.uri) != is_libvirt(dest.uri):
        # (a libvirt domain migrates by libvirt's own API, in drivers.libvirt.migration)
        from drivers.libvirt import mixed_pair

        raise mixed_pair(source.uri, dest.uri)
    if _same_host(source.uri, dest.uri):
        raise OperationInvalid(
            f"'{dom.name}' is already on {dest.uri}; choose another host as the destination."
        )
    if copy_storage not in (None, "all"):
        raise InvalidArgument(f"copy_storage must be None or 'all', not {copy_storage!r}.")
    if bandwidth_mib is not None and bandwidth_mib <= 0:
        raise InvalidArgument("The bandwidth must be a positive number of MiB/s.")
    if offline and copy_storage:
        raise NotSupported(
            "An offline migration moves only the definition; copy the disks yourself (for "
            "example with scp), or start the domain and migrate it live with "
            "--copy-storage-all."
        )
    if tunnelled and copy_storage:
        raise NotSupported(
            "Copying storage through a tunnelled migration is not supported yet; share the "
            "storage, or migrate directly (without --tunnelled)."
        )
    if tunnelled and not (isinstance(source, TunnelEnds) and isinstance(dest, TunnelEnds)):
        raise NotSupported(
            "--tunnelled needs both hosts reached through virtdeck daemons (qemu:///session, "
            "qemu:///system or qemu+ssh://)."
        )
    if "migration" not in dest.capabilities:
        raise NotSupported(f"{dest.uri} cannot receive migrations.")

    begun = await dom.migrate_begin(offline=offline, copy_storage=copy_storage == "all")
    if offline:
        return await _offline(dom, dest, begun.persistent_xml or begun.xml, xml, undefine_source)

    if xml is not None:
        xml = placed_like(xml, begun.xml)
    # As libvirt's client does: a guest that was paused at the source stays paused.
    paused = paused or begun.state is DomainState.PAUSED
    disks = begun.disks if copy_storage == "all" else ()
    if disks and xml is not None:
        disks = _disks_in(xml, disks)
    incoming = await dest.migrate_prepare(
        xml or begun.xml, started_wall=begun.started_wall, copy_disks=disks, tunnelled=tunnelled
    )
    watcher = _watch(source, dom.uuid, progress) if progress is not None else None
    pump: asyncio.Task[None] | None = None
    try:
        if tunnelled:
            assert isinstance(source, TunnelEnds) and isinstance(dest, TunnelEnds)
            uri, stream = await source.tunnel_out(dom.uuid)
            sink = await dest.tunnel_in(incoming.uuid)
            pump = asyncio.create_task(_pump(stream, sink), name=f"tunnel-{dom.name}")
            nbd_host = None
        else:
            # The destination picks its port from its range; a port in migrate_uri is not used.
            host, _port = destination_host(dest.uri, migrate_uri)
            uri = _tcp(host, incoming.port)
            nbd_host = host
        final = await dom.migrate_perform(
            uri,
            live=live,
            bandwidth_mib=bandwidth_mib,
            max_downtime_ms=max_downtime_ms,
            timeout_s=timeout_s,
            nbd_host=nbd_host,
            nbd_port=incoming.nbd_port,
            nbd_disks=incoming.nbd_disks,
        )
        if pump is not None:
            await asyncio.wait_for(pump, 30.0)
    except BaseException:
        await _roll_back(dom, dest, incoming.uuid, pump)
        raise
    finally:
        if watcher is not None:
            watcher.cancel()
    if progress is not None:
        progress(final)
    persist = None
    if persistent:
        persist = xml or begun.persistent_xml or begun.xml
    try:
        await dest.migrate_finish(
            incoming.uuid, success=True, persistent_xml=persist, paused=paused
        )
    except BaseException:
        # The destination discarded its copy; the guest goes on at the source.
        with contextlib.suppress(VirtError):
            await dom.migrate_confirm(success=False)
        raise
    await dom.migrate_confirm(success=True, undefine_source=undefine_source)
    if progress is not None:
        progress(replace(final, type="completed", phase=JobPhase.COMPLETED))
    return await dest.lookup_by_uuid(incoming.uuid)


def placed_like(xml: str, source_xml: str) -> str:
    """The destination XML the user gave, with PCI addresses where its define would put
    them when the running source has its devices at assigned addresses (libvirt assigns
    them whenever it parses a definition), so both machines match. A source running
    without addresses (defined before virtdeck assigned them) leaves ``xml`` as it is:
    QEMU then places the devices the same way on both sides."""
    from drivers.domxml import parse_domain
    from drivers.domxml.domain import assign_pci_addresses

    source = parse_domain(source_xml).root.find("devices")
    if source is None or not any(node.get("type") == "pci" for node in source.iter("address")):
        return xml
    defn = parse_domain(xml)
    assign_pci_addresses(defn)
    return defn.to_xml()


def _disks_in(xml: str, disks: tuple[DiskCopy, ...]) -> tuple[DiskCopy, ...]:
    """The copies to make, at the paths the destination's own XML gives each disk."""
    from drivers.domxml import parse_domain

    paths = {d.target_dev: d.source for d in parse_domain(xml).disks if d.source is not None}
    return tuple(replace(d, path=paths.get(d.target, d.path)) for d in disks)


async def _roll_back(
    dom: Domain, dest: Connection, uuid: str, pump: asyncio.Task[None] | None
) -> None:
    if pump is not None:
        pump.cancel()
        with contextlib.suppress(BaseException):
            await pump
    with contextlib.suppress(VirtError):
        await dest.migrate_finish(uuid, success=False)
    with contextlib.suppress(VirtError):
        await dom.migrate_confirm(success=False)


async def _offline(
    dom: Domain, dest: Connection, defn_xml: str, xml: str | None, undefine_source: bool
) -> Domain:
    """Move a shut-off domain's definition (nothing is started)."""
    state, _ = await dom.state()
    if state is not DomainState.SHUTOFF:
        raise OperationInvalid(f"Domain '{dom.name}' started meanwhile; it was not moved.")
    moved = await dest.define_xml(xml or defn_xml)
    if undefine_source:
        await dom.undefine()
    return moved


def _watch(
    source: Connection, uuid: str, progress: Callable[[JobInfo], None]
) -> asyncio.Task[None]:
    stream = source.events()

    async def run() -> None:
        try:
            async for event in stream:
                if isinstance(event, JobProgressEvent) and event.uuid == uuid:
                    progress(event.info)
        finally:
            stream.close()

    return asyncio.create_task(run(), name=f"migration-progress-{uuid}")


async def _pump(stream: AsyncIterator[bytes], sink: TunnelSink) -> None:
    try:
        async for chunk in stream:
            await sink.write(chunk)
    finally:
        await sink.close()


__all__ = ["TunnelEnds", "TunnelSink", "destination_host", "migrate"]
