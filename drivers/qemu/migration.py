"""Live migration, as each host does its part (libvirt-semantics.md §4).

The client drives the five phases (:mod:`drivers.migration`); this module is what the two
hosts run for them, over any :class:`~drivers.qemu.runtime.Backend` that speaks QMP:

- source: :func:`begin` (the definition to send), :func:`perform` (capabilities,
  parameters, storage mirrors, ``migrate``, progress until QEMU says completed),
  :func:`confirm` (stop the source's QEMU — or, after a failure, let the guest continue);
- destination: :func:`prepare` (start QEMU with ``-incoming defer``, NBD exports for copy
  storage, ``migrate-incoming``), :func:`finish` (persist, ``cont``; or kill after a
  failure).

States change only through the event handler: the source's STOP at switchover meets the
``migration_out`` flag (row 8), Prepare and Finish feed the migration rows (39, 41), ``cont``
carries the pending reasons MIGRATED (40) or MIGRATION_CANCELED (37), and the end of a QEMU
is an EOF with ``stop_reason`` MIGRATED (36) or FAILED (42).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.domxml import DomainDef, parse_domain
from drivers.errors import (
    DomainExists,
    HypervisorError,
    InvalidArgument,
    NotSupported,
    OperationFailed,
    OperationInvalid,
    VirtError,
)
from drivers.model import (
    DiskCopy,
    DomainState,
    IncomingMigration,
    JobInfo,
    JobPhase,
    JobProgressEvent,
    MigrationSource,
    PausedReason,
    RunningReason,
    ShutoffReason,
)
from drivers.qemu.argv import disk_nodes
from drivers.qemu.events import Trigger
from drivers.qemu.runtime import Backend, DomainRuntime
from drivers.records import replace

if TYPE_CHECKING:
    from drivers.qemu.registry import DomainRegistry

log = logging.getLogger(__name__)

#: Ports for migration streams and NBD servers, libvirt's range.
PORTS = range(49152, 49216)
#: libvirt's default bandwidth for live migration is "unlimited" (QEMU's own default is
#: 128 MiB/s, which makes a 256 MiB guest take three times as long).
UNLIMITED_BANDWIDTH = 1 << 53
#: How long QEMU may sit in 'setup' (opening its connection) before the destination counts
#: as unreachable.
SETUP_LIMIT = 10.0
#: How often progress is published while a job runs.
PROGRESS_EVERY = 0.25
#: How long the destination waits in Finish for the last of the stream.
FINISH_WAIT = 60.0
_TERMINAL = ("completed", "failed", "cancelled")


class Job:
    """One migration job of one domain on this host: its figures, published as they move."""

    def __init__(self, rt: DomainRuntime, operation: str, phase: JobPhase) -> None:
        self.rt = rt
        self.started = time.monotonic()
        self.info = JobInfo(type="unbounded", operation=operation, phase=phase)
        self.cancelled = False
        #: The state the source was in before it began (to restore after a failure).
        self.was_running = rt.state is DomainState.RUNNING
        self._published = 0.0
        rt.migration = self

    def update(self, force: bool = False, **changes: Any) -> None:
        elapsed = int(1000 * (time.monotonic() - self.started))
        self.info = replace(self.info, elapsed_ms=elapsed, **changes)
        now = time.monotonic()
        if force or now - self._published >= PROGRESS_EVERY:
            self._published = now
            self.rt.host.publish(
                JobProgressEvent(domain=self.rt.name, uuid=self.rt.uuid, info=self.info)
            )

    def end(self, kind: str, phase: JobPhase, error: str = "") -> None:
        self.update(force=True, type=kind, phase=phase, error=error)


def job_info(rt: DomainRuntime) -> JobInfo:
    """The domain's current or last migration job (type 'none' if it never had one)."""
    job = rt.migration
    return job.info if job is not None else JobInfo()


def _figures(reply: Mapping[str, Any]) -> dict[str, Any]:
    """JobInfo fields from a ``query-migrate`` reply."""
    ram = reply.get("ram") or {}
    found: dict[str, Any] = {"status": str(reply.get("status", ""))}
    for key, name in (
        ("total", "ram_total"),
        ("transferred", "ram_transferred"),
        ("remaining", "ram_remaining"),
        ("dirty-pages-rate", "dirty_rate"),
        ("page-size", "page_size"),
        ("dirty-sync-count", "iterations"),
    ):
        if key in ram:
            found[name] = int(ram[key])
    if "mbps" in ram:
        found["ram_rate"] = float(ram["mbps"]) * 1e6 / 8
    for key, name in (
        ("expected-downtime", "expected_downtime_ms"),
        ("downtime", "downtime_ms"),
        ("setup-time", "setup_ms"),
        ("total-time", "qemu_total_ms"),
    ):
        if key in reply:
            found[name] = int(reply[key])
    return found


async def _changed(rt: DomainRuntime, timeout: float) -> None:
    """Until the next event of the domain (or ``timeout``)."""
    with contextlib.suppress(TimeoutError):
        await rt.wait_change(timeout)


# --- ports --------------------------------------------------------------------------------


class PortAllocator:
    """Hands out ports of :data:`PORTS` that nothing on this host listens on."""

    def __init__(self) -> None:
        self._taken: set[int] = set()

    def take(self) -> int:
        for port in PORTS:
            if port in self._taken:
                continue
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("0.0.0.0", port))
                except OSError:
                    continue
            self._taken.add(port)
            return port
        raise OperationFailed(
            f"No free migration port between {PORTS.start} and {PORTS.stop - 1} on this host; "
            "wait for other migrations to finish."
        )

    def give_back(self, port: int) -> None:
        self._taken.discard(port)


# --- source ---------------------------------------------------------------------------------


def _migratable(defn: DomainDef) -> DomainDef:
    """The definition the destination starts: the live one without what was chosen for this
    run (the id, auto-picked display ports)."""
    copy = defn.copy()
    copy.id = None
    for graphics in copy.graphics:
        if graphics.autoport:
            graphics.port = -1
    return copy


async def begin(rt: DomainRuntime, offline: bool, copy_storage: bool = False) -> MigrationSource:
    """Begin: check the domain can go and say what it is (the disks' sizes, which take a
    qemu-img run each, only for copy storage)."""
    if offline:
        if rt.active:
            raise OperationInvalid(
                f"Domain '{rt.name}' is running; an offline migration moves only shut-off "
                "domains. Leave out --offline to migrate it live."
            )
        if rt.persistent is None:
            raise OperationInvalid(f"Domain '{rt.name}' has no definition to move.")
    elif not rt.active:
        raise OperationInvalid(
            f"Domain '{rt.name}' is not running; migrate a shut-off domain with --offline "
            "(it moves the definition)."
        )
    elif rt.state not in (DomainState.RUNNING, DomainState.PAUSED):
        raise OperationInvalid(
            f"Domain '{rt.name}' is {rt.state.words}; only a running or paused domain can "
            "be migrated."
        )
    job = rt.migration
    if job is not None and job.info.active:
        raise OperationInvalid(f"Domain '{rt.name}' is already being migrated.")
    source = rt.definition if rt.active else rt.persistent
    assert source is not None
    disks: list[DiskCopy] = []
    from drivers.storage import image_size

    for disk, _node in disk_nodes(source):
        if disk.readonly or disk.device == "cdrom" or disk.source is None:
            continue
        size = (await image_size(Path(disk.source)) or 0) if copy_storage else 0
        fmt = "qcow2" if disk.driver_type == "qcow2" else "raw"
        disks.append(DiskCopy(disk.target_dev, disk.source, fmt, size))
    return MigrationSource(
        xml=_migratable(source).to_xml(),
        persistent_xml=rt.persistent.to_xml() if rt.persistent is not None else None,
        state=rt.state,
        started_wall=rt.started_wall if rt.active else None,
        disks=tuple(disks),
    )


def _unreachable(rt: DomainRuntime, uri: str, detail: str) -> VirtError:
    where = uri.removeprefix("tcp:")
    return OperationFailed(
        f"The source host of '{rt.name}' cannot reach the destination at {where} ({detail}). "
        "Check that the destination's address is the one the source sees (--migrateuri "
        "tcp:ADDRESS), or, if only this machine can reach both hosts, migrate with --tunnelled."
    )


async def perform(
    rt: DomainRuntime,
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
    """Perform: send the guest to ``uri``; returns the final figures once QEMU says
    completed (the source is then paused (migrating), waiting for Confirm)."""
    async with rt.jobs.job("migration out", wait=5.0):
        backend = rt._require_active()
        if rt.state not in (DomainState.RUNNING, DomainState.PAUSED):
            raise OperationInvalid(
                f"Domain '{rt.name}' is {rt.state.words}; it can no longer be migrated."
            )
        job = Job(rt, "outgoing migration", JobPhase.PERFORM)
        rt.migration_status = None
        mirrors: list[str] = []
        try:
            await backend.execute(
                "migrate-set-capabilities",
                {"capabilities": [{"capability": "events", "state": True}]},
            )
            params: dict[str, object] = {
                "max-bandwidth": (
                    bandwidth_mib << 20 if bandwidth_mib is not None else UNLIMITED_BANDWIDTH
                )
            }
            if max_downtime_ms is not None:
                params["downtime-limit"] = max_downtime_ms
            await backend.execute("migrate-set-parameters", params)
            if nbd_disks:
                assert nbd_host is not None
                mirrors = await _mirror(rt, backend, job, nbd_host, nbd_port, nbd_disks)
            rt.set_flags(migration_out=True)
            if not live and rt.state is DomainState.RUNNING:
                await backend.execute("stop")
            await backend.execute("migrate", {"uri": uri})
            final = await _follow(rt, backend, job, uri, timeout_s)
            if mirrors:
                await _end_mirrors(backend, mirrors)
            job.update(force=True, **final, phase=JobPhase.CONFIRM)
            return job.info
        except BaseException as err:
            with contextlib.suppress(VirtError):
                status = (await backend.execute("query-migrate")).get("status")
                if status not in (None, *_TERMINAL):
                    await backend.execute("migrate_cancel")
            if mirrors:
                with contextlib.suppress(VirtError):
                    await _end_mirrors(backend, mirrors, abort=True)
            rt.set_flags(migration_out=False)
            kind = "cancelled" if job.cancelled else "failed"
            job.end(kind, JobPhase.CANCELLED if job.cancelled else JobPhase.FAILED, str(err))
            if not isinstance(err, Exception):
                # The client is gone (or the daemon is stopping): nobody will Confirm, so
                # the source takes its guest back now.
                with contextlib.suppress(VirtError):
                    await _restore_source(rt, job.was_running)
            raise


async def _follow(
    rt: DomainRuntime, backend: Backend, job: Job, uri: str, timeout_s: float | None
) -> dict[str, Any]:
    """Until QEMU's migration ends; the figures of its last report."""
    suspended = False
    while True:
        reply = await backend.execute("query-migrate")
        figures = _figures(reply)
        status = figures["status"]
        if status == "completed":
            return await _final_figures(backend, reply)
        if status in ("failed", "cancelled"):
            if job.cancelled or status == "cancelled":
                job.cancelled = True
                raise OperationFailed(
                    f"The migration of '{rt.name}' was cancelled (domjobabort); the domain "
                    "stays on the source."
                )
            detail = str(reply.get("error-desc") or "QEMU gave no reason")
            if "connect" in detail.lower() or "unreachable" in detail.lower():
                raise _unreachable(rt, uri, detail)
            raise HypervisorError(f"QEMU could not migrate '{rt.name}': {detail}.")
        elapsed = time.monotonic() - job.started
        if status == "setup" and elapsed > SETUP_LIMIT and uri.startswith("tcp:"):
            raise _unreachable(rt, uri, f"no connection after {SETUP_LIMIT:g} s")
        if (
            timeout_s is not None
            and not suspended
            and elapsed > timeout_s
            and rt.state is DomainState.RUNNING
        ):
            # virsh migrate --timeout: a guest that dirties memory faster than the link
            # carries it is paused so the migration can end.
            suspended = True
            await backend.execute("stop")
        job.update(**figures)
        # The reply to a query sent during the stop-and-copy can come after the
        # MIGRATION completed event: then the change to wait for has already happened.
        if rt.migration_status not in _TERMINAL:
            await _changed(rt, 0.1)


async def _final_figures(backend: Backend, reply: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a completed migration. QEMU says 'completed' a moment before it has
    filled in the times (total-time and downtime 0): ask again briefly until it has."""
    for _ in range(20):
        if int(reply.get("total-time", 0)) > 0:
            break
        await asyncio.sleep(0.001)
        reply = await backend.execute("query-migrate")
    return _figures(reply)


async def _mirror(
    rt: DomainRuntime,
    backend: Backend,
    job: Job,
    host: str,
    port: int,
    targets: tuple[str, ...],
) -> list[str]:
    """Copy storage: mirror each disk into the destination's NBD export, until all are in
    step (then every guest write goes to both until the switchover)."""
    nodes = {disk.target_dev: node for disk, node in disk_nodes(rt.definition)}
    jobs: list[str] = []
    for target in targets:
        node = nodes.get(target)
        if node is None:
            raise InvalidArgument(f"Domain '{rt.name}' has no disk '{target}' to copy.")
        remote = f"migration-{target}"
        await backend.execute(
            "blockdev-add",
            {
                "driver": "nbd",
                "node-name": remote,
                "server": {"type": "inet", "host": host, "port": str(port)},
                "export": target,
            },
        )
        job_id = f"drive-{target}"
        await backend.execute(
            "blockdev-mirror",
            {"job-id": job_id, "device": node, "target": remote, "sync": "full"},
        )
        jobs.append(job_id)
    while True:
        listed = {j["device"]: j for j in await backend.execute("query-block-jobs")}
        missing = [j for j in jobs if j not in listed]
        if missing:
            raise HypervisorError(
                f"Copying the disks of '{rt.name}' failed: the mirror {missing[0]} ended early."
            )
        total = sum(int(listed[j].get("len", 0)) for j in jobs)
        done = sum(int(listed[j].get("offset", 0)) for j in jobs)
        job.update(
            status="mirroring", disk_total=total, disk_transferred=done, disk_remaining=total - done
        )
        if all(listed[j].get("ready") for j in jobs):
            job.update(force=True, disk_remaining=0, disk_transferred=total)
            return jobs
        await _changed(rt, 0.1)


async def _end_mirrors(backend: Backend, jobs: list[str], abort: bool = False) -> None:
    """Stop the mirrors: after a switchover they are in step, and ending them leaves the
    destination's copy complete (block-job-cancel of a ready mirror does not pivot)."""
    for job_id in jobs:
        with contextlib.suppress(VirtError):
            await backend.execute("block-job-cancel", {"device": job_id, "force": abort})
    for _ in range(200):
        listed = {j["device"] for j in await backend.execute("query-block-jobs")}
        if not listed.intersection(jobs):
            break
        await asyncio.sleep(0.025)
    for job_id in jobs:
        with contextlib.suppress(VirtError):
            node = job_id.replace("drive-", "migration-", 1)
            await backend.execute("blockdev-del", {"node-name": node})


async def abort(rt: DomainRuntime) -> None:
    """domjobabort: cancel the domain's running migration."""
    job = rt.migration
    if job is None or not job.info.active:
        raise OperationInvalid(f"Domain '{rt.name}' has no migration in progress to abort.")
    if job.info.operation != "outgoing migration":
        raise OperationInvalid(
            f"Domain '{rt.name}' is the destination of a migration; abort it on the source."
        )
    backend = rt._require_active()
    job.cancelled = True
    await backend.execute("migrate_cancel")


async def confirm(
    registry: DomainRegistry, rt: DomainRuntime, success: bool, undefine_source: bool
) -> None:
    """Confirm: the migration is over. Success ends the source's QEMU (shut off
    (migrated)); failure lets a guest that was running continue (running (migration
    canceled))."""
    job = rt.migration
    async with rt.jobs.job("migration confirm", wait=30.0):
        rt.set_flags(migration_out=False)
        if success:
            backend = rt.backend
            if rt.active and backend is not None:
                # SIGKILL: the guest now lives on the destination, and a SIGTERM would make
                # QEMU report a host shutdown.
                rt.set_flags(being_destroyed=True, stop_reason=ShutoffReason.MIGRATED)
                backend.kill(force=True)
                await rt._finish_stop(ShutoffReason.MIGRATED)
            if job is not None:
                job.end("completed", JobPhase.COMPLETED)
            if undefine_source and rt.persistent is not None:
                registry.undefine(rt)
            return
        if job is not None and job.info.active:
            job.end("failed", JobPhase.FAILED, job.info.error)
        await _restore_source(rt, job.was_running if job is not None else True)


async def _restore_source(rt: DomainRuntime, was_running: bool) -> None:
    """After a failed migration, let a guest that ran before continue on the source
    (running (migration canceled)); if QEMU refuses, paused (api error)."""
    paused_by_us = rt.state is DomainState.PAUSED and rt.reason is PausedReason.MIGRATION
    if not (paused_by_us and was_running) or rt.backend is None:
        return
    rt.set_flags(pending_running_reason=RunningReason.MIGRATION_CANCELED)
    try:
        await rt.backend.execute("cont")
        await rt.wait_until(lambda: rt.state is not DomainState.PAUSED, "continue")
    except VirtError as err:
        log.warning("domain %s: cannot continue after a failed migration: %s", rt.name, err)
        rt.feed(Trigger.RESUME_FAILED)


async def recover(rt: DomainRuntime, qemu_status: str) -> None:
    """A new driver found ``rt`` in the middle of a migration its predecessor ran
    (libvirt-semantics.md §4.6): an outgoing one is cancelled and the guest continues on
    the source, unless QEMU had already sent all of it (then it stays paused (migrating):
    only the client knows whether the destination took over); an incoming one that never
    finished is discarded."""
    backend = rt.backend
    if backend is None or not rt.active:
        return
    if rt.flags.migration_out:
        status = ""
        with contextlib.suppress(VirtError):
            status = str((await backend.execute("query-migrate")).get("status", ""))
            if status not in ("", *_TERMINAL):
                await backend.execute("migrate_cancel")
                for _ in range(200):
                    status = str((await backend.execute("query-migrate")).get("status", ""))
                    if status in _TERMINAL:
                        break
                    await asyncio.sleep(0.025)
        rt.set_flags(migration_out=False)
        if status == "completed":
            log.warning(
                "domain %s: its outgoing migration had completed when the daemon stopped; it "
                "stays paused here (check the destination before resuming it)",
                rt.name,
            )
            return
        await _restore_source(rt, was_running=True)
    elif (
        rt.state is DomainState.PAUSED
        and rt.reason is PausedReason.MIGRATION
        and qemu_status == "inmigrate"
    ):
        log.warning("domain %s: discarding an incoming migration that never finished", rt.name)
        await _discard(rt)


# --- destination ----------------------------------------------------------------------------


class Incoming:
    """The destination's side of one migration, from Prepare to Finish."""

    def __init__(self, rt: DomainRuntime, created: list[Path], ports: list[int], nbd: bool) -> None:
        self.rt = rt
        self.created = created
        self.ports = ports
        #: Whether its QEMU serves the copied disks over NBD (stopped in Finish).
        self.nbd = nbd


async def prepare(
    registry: DomainRegistry,
    xml: str,
    *,
    started_wall: float | None = None,
    copy_disks: tuple[DiskCopy, ...] = (),
    tunnel: Path | None = None,
) -> tuple[IncomingMigration, Incoming]:
    """Prepare: start QEMU waiting for the migration stream (paused (migrating), Started
    Migrated). Nothing is left behind if anything fails."""
    ports = registry.ports
    if copy_disks and not registry.copies_storage:
        raise NotSupported(_no_copy(registry))
    defn = parse_domain(xml)
    registry.check_definition(defn)
    clash = _clash(registry, defn)
    if clash is not None:
        raise clash
    problems = registry.cannot_run(defn) + _disk_problems(registry, defn, copy_disks)
    if problems:
        raise OperationInvalid(problems[0])
    rt = registry.by_uuid.get(defn.uuid)
    created: list[Path] = []
    taken: list[int] = []
    added = rt is None
    if rt is None:
        rt = DomainRuntime(registry, None, live=defn)
        registry.add(rt)
    try:
        created = await _create_disks(copy_disks)
        async with rt.jobs.job("migration in", wait=5.0):
            rt.feed(Trigger.LAUNCH)
            rt.live = defn
            rt.migration_status = None
            Job(rt, "incoming migration", JobPhase.PREPARE)
            try:
                rt.backend = backend = await registry.launch(rt, defn, incoming=True)
                await backend.execute(
                    "migrate-set-capabilities",
                    {"capabilities": [{"capability": "events", "state": True}]},
                )
                nbd_port = 0
                exported: list[str] = []
                if copy_disks:
                    nbd_port = ports.take()
                    taken.append(nbd_port)
                    exported = await _export(rt, backend, nbd_port, copy_disks)
                if tunnel is not None:
                    port = 0
                    tunnel.unlink(missing_ok=True)
                    await backend.execute("migrate-incoming", {"uri": f"unix:{tunnel}"})
                else:
                    port = await _listen(backend, ports, taken)
            except BaseException:
                await rt._abort_launch()
                raise
            rt.started_wall = started_wall or time.time()
            rt.feed(Trigger.INCOMING)
    except BaseException:
        for port in taken:
            ports.give_back(port)
        for path in created:
            path.unlink(missing_ok=True)
        if added and not rt.active and rt.persistent is None:
            registry._forget(rt)
        raise
    incoming = Incoming(rt, created, taken, nbd=bool(copy_disks))
    result = IncomingMigration(
        name=rt.name, uuid=rt.uuid, port=port, nbd_port=nbd_port, nbd_disks=tuple(exported)
    )
    return result, incoming


async def _listen(backend: Backend, ports: PortAllocator, taken: list[int]) -> int:
    """``migrate-incoming`` on a free port of the range. Another process (a second daemon
    on this host) can bind the port between our probe and QEMU's bind: then the next one.
    Ports tried stay in ``taken`` and are given back with the others."""
    for attempt in range(8):
        port = ports.take()
        taken.append(port)
        try:
            await backend.execute("migrate-incoming", {"uri": f"tcp:0.0.0.0:{port}"})
        except HypervisorError as err:
            if "in use" not in str(err) or attempt == 7:
                raise
            continue
        return port
    raise AssertionError("unreachable")


def _disk_problems(
    registry: DomainRegistry, defn: DomainDef, copy_disks: tuple[DiskCopy, ...]
) -> list[str]:
    problems = []
    copied = {d.path for d in copy_disks}
    for disk in defn.disks:
        source = disk.source
        if source is None or source in copied:
            continue
        if not registry.has_image(source):
            problems.append(
                f"Disk {disk.target_dev} of '{defn.name}' ({source}) is not present on the "
                "destination; share the storage, or migrate with --copy-storage-all."
            )
    for copy in copy_disks:
        parent = Path(copy.path).parent
        if not parent.is_dir():
            problems.append(
                f"The destination has no directory {parent} for disk {copy.target} of "
                f"'{defn.name}'; create it there first."
            )
        elif registry.has_image(copy.path):
            problems.append(
                f"The destination already has a file at {copy.path} (disk {copy.target}); "
                "copy storage does not overwrite images. Move it away, or share the storage "
                "and leave out --copy-storage-all."
            )
    return problems


def _no_copy(registry: DomainRegistry) -> str:
    return (
        f"The {registry.hypervisor} driver here keeps no disk images to copy into; share the "
        "storage and leave copy storage off."
    )


def _clash(registry: DomainRegistry, defn: DomainDef) -> VirtError | None:
    rt = registry.by_uuid.get(defn.uuid)
    same_name = registry.by_name.get(defn.name)
    if same_name is not None and same_name.uuid != defn.uuid:
        return DomainExists(
            f"The destination already has a different domain called '{defn.name}' (UUID "
            f"{same_name.uuid}); rename one of them first."
        )
    if rt is not None and rt.active:
        return OperationInvalid(
            f"Domain '{defn.name}' is already running on the destination; a guest must never "
            "run twice."
        )
    return None


async def preflight(registry: DomainRegistry, xml: str, copy_storage: bool) -> list[str]:
    """Why ``xml`` could not arrive here (see Connection.migrate_preflight)."""
    try:
        defn = parse_domain(xml)
        registry.check_definition(defn)
    except VirtError as err:
        return [err.message]
    reasons = registry.cannot_run(defn)
    if copy_storage and not registry.copies_storage:
        reasons.append(_no_copy(registry))
        copy_storage = False
    clash = _clash(registry, defn)
    if clash is not None:
        reasons.append(clash.message)
    copies = tuple(
        DiskCopy(disk.target_dev, disk.source, disk.driver_type or "raw", 0)
        for disk, _node in disk_nodes(defn)
        if copy_storage and disk.source is not None and not disk.readonly and disk.device != "cdrom"
    )
    reasons += _disk_problems(registry, defn, copies)
    need = defn.memory_kib * 1024
    free = registry.free_memory()
    if need > free:
        reasons.append(
            f"'{defn.name}' needs {need >> 20} MiB of memory; the destination has "
            f"{free >> 20} MiB free."
        )
    return reasons


async def _create_disks(copy_disks: tuple[DiskCopy, ...]) -> list[Path]:
    from drivers.storage import create_image

    created: list[Path] = []
    try:
        for copy in copy_disks:
            path = Path(copy.path)
            await create_image(path, copy.format, copy.capacity_bytes)
            created.append(path)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return created


async def _export(
    rt: DomainRuntime, backend: Backend, port: int, copy_disks: tuple[DiskCopy, ...]
) -> list[str]:
    nodes = {disk.target_dev: node for disk, node in disk_nodes(rt.definition)}
    await backend.execute(
        "nbd-server-start",
        {"addr": {"type": "inet", "data": {"host": "0.0.0.0", "port": str(port)}}},
    )
    exported: list[str] = []
    for copy in copy_disks:
        node = nodes.get(copy.target)
        if node is None:
            raise InvalidArgument(f"Domain '{rt.name}' has no disk '{copy.target}' to receive.")
        await backend.execute(
            "block-export-add",
            {
                "type": "nbd",
                "id": f"migrate-{copy.target}",
                "node-name": node,
                "name": copy.target,
                "writable": True,
            },
        )
        exported.append(copy.target)
    return exported


async def finish(
    registry: DomainRegistry,
    incoming: Incoming,
    *,
    success: bool,
    persistent_xml: str | None = None,
    paused: bool = False,
) -> None:
    """Finish: after a good Perform, persist (if asked) and start the CPUs (running
    (migrated)); after a bad one, end the QEMU (shut off (failed)) and remove copied
    disks."""
    rt = incoming.rt
    job = rt.migration
    for port in incoming.ports:
        registry.ports.give_back(port)
    defined_here = False
    try:
        if not success:
            raise OperationFailed("the migration failed on the source")
        backend = rt._require_active()
        async with rt.jobs.job("migration finish", wait=10.0):
            if job is not None:
                job.update(force=True, phase=JobPhase.FINISH)
            await _arrived(rt, backend)
            if incoming.nbd:
                await backend.execute("nbd-server-stop")
            if persistent_xml is not None:
                defined_here = rt.persistent is None
                registry.define(persistent_xml)
            if paused:
                rt.feed(Trigger.INCOMING_PAUSED)
            else:
                rt.set_flags(pending_running_reason=RunningReason.MIGRATED)
                await backend.execute("cont")
                await rt.wait_until(lambda: rt.state is not DomainState.PAUSED, "start its CPUs")
            if job is not None:
                job.end("completed", JobPhase.COMPLETED)
    except BaseException as err:
        if job is not None:
            job.end("failed", JobPhase.FAILED, str(err))
        await _discard(rt)
        if defined_here and rt.persistent is not None and not rt.removed:
            # The definition came with this migration; the guest stays on the source.
            with contextlib.suppress(VirtError):
                registry.undefine(rt)
        for path in incoming.created:
            path.unlink(missing_ok=True)
        if success:
            raise


async def _arrived(rt: DomainRuntime, backend: Backend) -> None:
    deadline = time.monotonic() + FINISH_WAIT
    while True:
        reply = await backend.execute("query-migrate")
        status = str(reply.get("status", rt.migration_status or ""))
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            detail = str(reply.get("error-desc") or "the stream broke off")
            raise HypervisorError(f"The destination did not receive all of '{rt.name}': {detail}.")
        if time.monotonic() > deadline:
            raise HypervisorError(
                f"The destination did not receive all of '{rt.name}' within {FINISH_WAIT:g} s."
            )
        if rt.migration_status not in _TERMINAL:
            await _changed(rt, 0.05)


async def _discard(rt: DomainRuntime) -> None:
    """End a destination QEMU that must not run: shut off (failed), Stopped Failed."""
    if not rt.active:
        return
    rt.set_flags(being_destroyed=True, stop_reason=ShutoffReason.FAILED, fake_reboot=False)
    if rt.backend is not None:
        rt.backend.kill(force=True)
    await rt._finish_stop(ShutoffReason.FAILED)


def unsupported_tunnel(name: str) -> NotSupported:
    return NotSupported(
        f"A tunnelled migration of '{name}' needs both hosts reached through virtdeck daemons "
        "(qemu:///session, qemu:///system or qemu+ssh://)."
    )
