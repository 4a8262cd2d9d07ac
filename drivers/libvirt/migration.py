"""Migration between two libvirt hosts, by libvirt itself (``virDomainMigrate3``).

libvirt runs its own five phases between the two daemons; this module maps virtdeck's
options onto libvirt's flags and parameters, reports progress from the job's figures, and
refuses the pairs that cannot work: libvirt moves a guest only to another libvirt host, and
virtdeckd only to another virtdeckd host (their Prepare and Finish phases are their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from drivers.errors import AccessDenied, InvalidArgument, OperationInvalid, VirtError
from drivers.libvirt import mixed_pair
from drivers.libvirt.loop import libvirt
from drivers.model import JobInfo, JobPhase

if TYPE_CHECKING:
    from drivers.api import Connection, Domain
    from drivers.libvirt.driver import LibvirtDomain

#: How often a running migration's figures are read for a progress callback (seconds).
PROGRESS_INTERVAL = 0.25

# VIR_DOMAIN_JOB_* and VIR_DOMAIN_JOB_OPERATION_* numbers in virsh's words.
_JOB_TYPES = ("none", "bounded", "unbounded", "completed", "failed", "cancelled")
_OPERATIONS = {4: "incoming migration", 5: "outgoing migration"}
_PHASES = {"completed": JobPhase.COMPLETED, "failed": JobPhase.FAILED,
           "cancelled": JobPhase.CANCELLED}  # fmt: skip


def job_info(stats: dict[str, Any]) -> JobInfo:
    """A JobInfo from ``virDomainGetJobStats``' typed parameters."""

    def num(key: str) -> int:
        value = stats.get(key, 0)
        return int(value) if isinstance(value, int | float) else 0

    def maybe(key: str) -> int | None:
        return num(key) if key in stats else None

    kind = num("type")
    words = _JOB_TYPES[kind] if 0 <= kind < len(_JOB_TYPES) else "unbounded"
    operation = _OPERATIONS.get(num("operation"), "outgoing migration" if kind else "")
    running = words in ("bounded", "unbounded")
    phase = _PHASES.get(words, JobPhase.PERFORM if running else JobPhase.NONE)
    return JobInfo(
        type="unbounded" if words == "bounded" else words,
        operation=operation,
        phase=phase,
        status=words,
        elapsed_ms=num("time_elapsed"),
        ram_total=num("memory_total"),
        ram_transferred=num("memory_processed"),
        ram_remaining=num("memory_remaining"),
        ram_rate=float(num("memory_bps")),
        dirty_rate=num("memory_dirty_rate"),
        page_size=num("memory_page_size") or 4096,
        iterations=num("memory_iteration"),
        expected_downtime_ms=maybe("downtime") if words != "completed" else None,
        downtime_ms=maybe("downtime") if words == "completed" else None,
        setup_ms=maybe("setup_time"),
        disk_total=num("disk_total"),
        disk_transferred=num("disk_processed"),
        disk_remaining=num("disk_remaining"),
        error=str(stats.get("errmsg", "")),
    )


def _flags(
    *,
    active: bool,
    live: bool,
    persistent: bool,
    undefine_source: bool,
    copy_storage: str | None,
    tunnelled: bool,
    offline: bool,
    paused: bool,
) -> int:
    lv = libvirt
    flags = 0
    if offline:
        if active:
            raise OperationInvalid(
                "An offline migration moves a shut-off domain's definition; this domain is "
                "running, so migrate it live (without --offline) or shut it down first."
            )
        return int(lv.VIR_MIGRATE_OFFLINE | lv.VIR_MIGRATE_PERSIST_DEST) | (
            lv.VIR_MIGRATE_UNDEFINE_SOURCE if undefine_source else 0
        )
    if not active:
        raise OperationInvalid(
            "The domain is not running, so there is nothing to migrate live; start it first, "
            "or move its definition with an offline migration."
        )
    if live:
        flags |= lv.VIR_MIGRATE_LIVE
    if persistent:
        flags |= lv.VIR_MIGRATE_PERSIST_DEST
    if undefine_source:
        flags |= lv.VIR_MIGRATE_UNDEFINE_SOURCE
    if copy_storage == "all":
        flags |= lv.VIR_MIGRATE_NON_SHARED_DISK
    if tunnelled:
        flags |= lv.VIR_MIGRATE_PEER2PEER | lv.VIR_MIGRATE_TUNNELLED
    if paused:
        flags |= lv.VIR_MIGRATE_PAUSED
    return int(flags)


async def migrate(
    dom: LibvirtDomain,
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
    """Move ``dom`` to the libvirt host ``dest`` with libvirt's migration; its handle there.
    On failure libvirt itself rolls back (the guest goes on at the source)."""
    from drivers.libvirt.driver import LibvirtConnection

    source = dom.connection
    if "read-only" in dest.capabilities:
        raise AccessDenied(
            f"{dest.uri} is read-only, so it cannot receive a migration; connect to it "
            "without ?ro=1."
        )
    if not isinstance(dest, LibvirtConnection):
        raise mixed_pair(source.uri, dest.uri)
    if dest.target == source.target:
        raise OperationInvalid(
            f"'{dom.name}' is already on {dest.uri}; choose another host as the destination."
        )
    if copy_storage not in (None, "all"):
        raise InvalidArgument(f"copy_storage must be None or 'all', not {copy_storage!r}.")
    if bandwidth_mib is not None and bandwidth_mib <= 0:
        raise InvalidArgument("The bandwidth must be a positive number of MiB/s.")
    lv = libvirt
    handle = dom.handle
    active = bool(await source.call(f"read the state of domain '{dom.name}'", handle.isActive))
    flags = _flags(
        active=active,
        live=live,
        persistent=persistent,
        undefine_source=undefine_source,
        copy_storage=copy_storage,
        tunnelled=tunnelled,
        offline=offline,
        paused=paused,
    )
    params: dict[str, Any] = {}
    if migrate_uri and not tunnelled:
        params[lv.VIR_MIGRATE_PARAM_URI] = migrate_uri
    if xml is not None:
        params[lv.VIR_MIGRATE_PARAM_DEST_XML] = xml
        if persistent or offline:
            params[lv.VIR_MIGRATE_PARAM_PERSIST_XML] = xml
    if bandwidth_mib is not None:
        params[lv.VIR_MIGRATE_PARAM_BANDWIDTH] = int(bandwidth_mib)

    def run() -> Any:
        if tunnelled:
            # Peer to peer: the source's libvirtd connects to the destination itself, by
            # the full URI (dconn.getURI() would drop options such as ?socket=).
            handle.migrateToURI3(dest.target, params, flags)
            return dest.handle.lookupByUUIDString(dom.uuid)
        return handle.migrate3(dest.handle, params, flags)

    what = f"migrate domain '{dom.name}' to {dest.uri}"
    moving = asyncio.ensure_future(source.call(what, run))
    watcher = None
    if not offline and (progress is not None or timeout_s or max_downtime_ms):
        watcher = asyncio.create_task(
            _watch(dom, moving, progress, timeout_s, max_downtime_ms),
            name=f"libvirt-migration-{dom.name}",
        )
    try:
        moved = await moving
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, VirtError):
                await watcher
    if progress is not None and not offline:
        with contextlib.suppress(VirtError):
            stats = await source.call(
                "read the finished job", lambda: handle.jobStats(lv.VIR_DOMAIN_JOB_STATS_COMPLETED)
            )
            progress(job_info(stats))
    return dest.wrap(moved)


async def _watch(
    dom: LibvirtDomain,
    moving: asyncio.Future[Any],
    progress: Callable[[JobInfo], None] | None,
    timeout_s: float | None,
    max_downtime_ms: int | None,
) -> None:
    """While the migration runs: its figures to ``progress``; the downtime limit once the
    job exists; an abort after ``timeout_s``."""
    conn, handle = dom.connection, dom.handle
    deadline = time.monotonic() + timeout_s if timeout_s else None
    downtime_set = max_downtime_ms is None
    while not moving.done():
        with contextlib.suppress(VirtError):
            stats = await conn.call("read the migration's progress", lambda: handle.jobStats(0))
            info = job_info(stats)
            if info.active:
                if not downtime_set and max_downtime_ms is not None:
                    await conn.call(
                        "set the migration's downtime",
                        lambda: handle.migrateSetMaxDowntime(max_downtime_ms, 0),
                    )
                    downtime_set = True
                if progress is not None:
                    progress(info)
        if deadline is not None and time.monotonic() > deadline:
            with contextlib.suppress(VirtError):
                await conn.call("abort the migration", handle.abortJob)
            return
        await asyncio.sleep(PROGRESS_INTERVAL)
