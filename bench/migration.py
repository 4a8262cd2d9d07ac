"""Live migration of the booted tiny guest on this one machine: virtdeck next to raw QMP and
libvirt, in one run.

    python -m bench.migration [--runs N] [--quick] [--json FILE] [--no-libvirt]

Every contender migrates the same guest (tests/guest: q35, 256 MiB, direct kernel boot,
TCG), booted to its READY line plus a short settle, over loopback TCP, with unlimited
bandwidth (max-bandwidth 2**53, virtdeck's and libvirt's default):

1. **raw QMP**: the bench itself, with ``qemu.qmp``. Both QEMUs run the command line of
   virtdeck's own builder (``drivers.qemu.argv.build_argv``; the destination with
   ``-incoming defer``). Capabilities ``events`` on both, ``max-bandwidth`` on the source,
   ``migrate-incoming`` on the destination, then ``migrate`` on the source and ``cont`` on
   the destination as soon as it reports MIGRATION completed. Total = ``migrate`` issued →
   the destination's RESUME (QEMU's timestamp). Its destination is started before the
   clock starts; the row "incl. destination start" adds that part.
2. **virtdeck in-process**: two ``qemu:///embed`` roots in this process;
   ``await dom.migrate(dst, xml=...)``. Total = call → return.
3. **virtdeck daemons**: two virtdeckd processes, each serving its own embed root on its
   own unix socket, reached with ``qemu:///system?socket=PATH``; the same call. Skipped
   (with a note) while the daemon protocol cannot carry a migration.
4. **libvirt**: ``virsh migrate --live --persistent`` between two libvirtd, one in this
   mount namespace and one in a private one (bench/libvirt_peer.py), with different host
   UUIDs, ``--migrateuri tcp:127.0.0.1``. Total = the virsh process, start to exit.

Downtime (QEMU) is QEMU's own ``downtime`` from the source's last ``query-migrate`` (for
virtdeck: the final JobInfo of the progress callback); guest-visible downtime is the
source's STOP → the destination's RESUME, both QEMU event timestamps (virtdeck: the
``source_wall`` of "Suspended Migrated" and "Resumed Migrated"; libvirt: the lines of
``virsh qemu-monitor-event``). The contenders alternate within each run (raw, in-process,
daemons, libvirt, raw, …); one uncounted round warms every path first. With two
daemons up, a last pass migrates through them with and without ``tunnelled=True``.

Total time is judged against raw *including* its destination's start: a raw migration
starts a destination QEMU too, and virtdeck's total includes that (Prepare). QEMU's RAM
passes swing by ±25 % from run to run (same guest, same settings), which swamps what the
manager adds, so a second row compares per run the part outside QEMU's own migration
(total incl. destination start minus QEMU's ``total-time``, ``migrate`` → completed as QEMU
measures it); "manager CPU" is the CPU time this process and the daemons used meanwhile
(on two cores it is taken from the QEMUs, so it is the one way a manager could slow the
RAM passes themselves).

QEMU's own stop-and-copy time swings from ~1 to ~250 ms from run to run (with unlimited
bandwidth it switches over as soon as its estimate fits the 300 ms downtime limit), so
medians of guest-visible downtime compare the managers poorly; the row "guest-visible minus
QEMU downtime" is what the guest waits for beyond QEMU's part (the destination loading the
last state, the manager noticing and starting its CPUs), per run, and the added-downtime
target is judged on both. libvirt's downtime is its own STOP → resumed figure (†).

Every process the bench starts (QEMU, virtdeckd, libvirtd) is ended by its pid in
``finally`` blocks, also on errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import psutil
from qemu.qmp import EventListener, QMPClient

import drivers
from bench.common import DISKLESS, pct, pids_mentioning, terminate
from bench.daemon import LineReader, timed
from bench.libvirt_peer import LibvirtPeer, PeerUnavailable
from bench.results import Figure, Report, Row, markdown
from drivers.api import Connection
from drivers.domxml import parse_domain
from drivers.errors import NotSupported
from drivers.migration import TunnelEnds
from drivers.model import JobInfo, JobProgressEvent, LifecycleEvent
from drivers.qemu.argv import LaunchContext, build_argv
from drivers.qemu.migration import UNLIMITED_BANDWIDTH
from tests.e2e.helpers import EventRecorder, guest_xml
from tests.guest import PONG_RE, READY_RE, GuestImage, SerialConsole, guest_image

REPO = Path(__file__).resolve().parent.parent
NAME = "vdbench-mig"
#: Seconds the guest idles after its READY line before it is migrated (every contender).
SETTLE = 0.3
BOOT_TIMEOUT = 60.0
MIGRATE_TIMEOUT = 120.0
RAW_PREPARE = "prepare (destination start, before the clock)"
EVENTS_CAP = {"capabilities": [{"capability": "events", "state": True}]}


def ms(seconds: float) -> float:
    return seconds * 1000


# --- one migration's figures -----------------------------------------------------------------


@dataclass
class Sample:
    """One migration, ms unless said otherwise."""

    #: the contender's total: raw ``migrate`` → destination RESUME; virtdeck call → return;
    #: libvirt the virsh process.
    total: float
    #: the moment the migration was asked for → the destination's RESUME (QEMU's stamp).
    to_resume: float | None
    downtime_qemu: float | None
    downtime_guest: float | None
    ram_bytes: int | None = None
    #: QEMU's RAM rate at the end (bytes/s), from its ``mbps``.
    ram_rate: float | None = None
    #: where the time went: named segments, in order (ms).
    phases: dict[str, float] = field(default_factory=dict)
    #: virtdeck's final JobInfo said downtime 0 although the guest was stopped longer.
    downtime_qemu_zero: bool = False
    #: ``downtime_qemu`` is the manager's own figure, not QEMU's (libvirt's domjobinfo).
    downtime_by_manager: bool = False
    #: CPU time (user + system) the manager's processes used during the migration: this
    #: process, plus the daemons. On a 2-core machine it is taken from the QEMUs.
    manager_cpu: float | None = None
    #: QEMU's own ``total-time`` (source: ``migrate`` → completed); total minus it is
    #: the manager's part, which QEMU's run-to-run swings in RAM-pass speed leave alone.
    qemu_total: float | None = None


class Contender(abc.ABC):
    """One way of migrating the guest; ``skipped`` says why it cannot run here."""

    key: str
    label: str

    def __init__(self, image: GuestImage, scratch: Path) -> None:
        self.image = image
        self.dir = scratch / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        self.skipped: str | None = None
        self.samples: list[Sample] = []
        self.failures: list[str] = []

    async def setup(self) -> None:  # noqa: B027 - optional
        """Bring up what the contender needs; set ``skipped`` if it cannot run."""

    @abc.abstractmethod
    async def once(self, run: str) -> Sample: ...

    async def teardown(self) -> None:
        """End every process of this contender (by pid)."""
        end_processes_under(self.dir)


def end_processes_under(directory: Path) -> None:
    """SIGTERM/SIGKILL every process whose command line names a file under ``directory``
    (the QEMUs: their serial sockets live there), and reap those that are our children."""
    for pid in pids_mentioning(str(directory)):
        terminate(pid, "")
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


async def wait_ready(serial: Path) -> None:
    """Until the guest on ``serial`` printed READY, then :data:`SETTLE` s."""
    console = await SerialConsole.connect(serial, timeout=15)
    try:
        await console.wait_for(READY_RE, timeout=BOOT_TIMEOUT)
    finally:
        await console.close()
    await asyncio.sleep(SETTLE)


async def check_alive(serial: Path) -> None:
    """The migrated guest answers on the destination's console (not timed)."""
    console = await SerialConsole.connect(serial, timeout=15)
    try:
        await console.send("ping")
        await console.wait_for(PONG_RE, timeout=15)
    finally:
        await console.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port: int = probe.getsockname()[1]
        return port


# --- 1. raw QMP --------------------------------------------------------------------------------


def qmp_stamp(event: Any) -> float:
    stamp = event["timestamp"]
    return float(stamp["seconds"]) + float(stamp["microseconds"]) / 1e6


class RawQemu:
    """A QEMU this bench spawned itself, with a QMP client and its event listener."""

    def __init__(self, proc: subprocess.Popen[bytes], qmp: QMPClient, events: EventListener):
        self.proc = proc
        self.qmp = qmp
        self.events = events

    @classmethod
    async def spawn(cls, xml: str, run_dir: Path, *, incoming: bool) -> RawQemu:
        run_dir.mkdir(parents=True, exist_ok=True)
        defn = parse_domain(xml)
        monitor = run_dir / "monitor.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(monitor))
        listener.listen(1)
        try:
            ctx = LaunchContext(
                monitor_fd=listener.fileno(), domain_dir=str(run_dir), incoming=incoming
            )
            with open(run_dir / "qemu.log", "wb") as log:
                proc = subprocess.Popen(
                    build_argv(defn, ctx),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(listener.fileno(),),
                )
        finally:
            listener.close()
        qmp = QMPClient(defn.name)
        events = EventListener()
        qmp.register_listener(events)
        try:
            await asyncio.wait_for(qmp.connect(str(monitor)), 10)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        return cls(proc, qmp, events)

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None) -> Any:
        return await self.qmp.execute(command, arguments)

    async def next_event(self, *names: str) -> Any:
        while True:
            event = await self.events.get()
            if event["event"] in names:
                return event

    async def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.qmp.disconnect(), 5)
        self.proc.wait()


class RawQmp(Contender):
    key = "raw"
    label = "raw QMP"

    async def once(self, run: str) -> Sample:
        run_dir = self.dir / run
        uuid = str(uuidlib.uuid4())
        serial_a, serial_b = run_dir / "a" / "serial.sock", run_dir / "b" / "serial.sock"
        src = await RawQemu.spawn(
            guest_xml(NAME, self.image, serial_a, uuid=uuid), run_dir / "a", incoming=False
        )
        dst: RawQemu | None = None
        try:
            await src.execute("cont")
            await wait_ready(serial_a)
            t_prepare = time.perf_counter()
            dst = await RawQemu.spawn(
                guest_xml(NAME, self.image, serial_b, uuid=uuid), run_dir / "b", incoming=True
            )
            await src.execute("migrate-set-capabilities", EVENTS_CAP)
            await dst.execute("migrate-set-capabilities", EVENTS_CAP)
            await src.execute("migrate-set-parameters", {"max-bandwidth": UNLIMITED_BANDWIDTH})
            port = free_port()
            await dst.execute("migrate-incoming", {"uri": f"tcp:0.0.0.0:{port}"})
            prepare = ms(time.perf_counter() - t_prepare)
            resumed = asyncio.create_task(self._finish(dst))
            stopped = asyncio.create_task(src.next_event("STOP"))
            try:
                t0 = time.time()
                await src.execute("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
                resume_at = await asyncio.wait_for(resumed, MIGRATE_TIMEOUT)
                stop_at = qmp_stamp(await asyncio.wait_for(stopped, 10))
            finally:
                resumed.cancel()
                stopped.cancel()
            final = await self._final(src)
            await check_alive(serial_b)
        finally:
            await src.close()
            if dst is not None:
                await dst.close()
        ram = final.get("ram") or {}
        total = ms(resume_at - t0)
        return Sample(
            total=total,
            to_resume=total,
            downtime_qemu=float(final["downtime"]) if "downtime" in final else None,
            downtime_guest=ms(resume_at - stop_at),
            ram_bytes=int(ram["transferred"]) if "transferred" in ram else None,
            ram_rate=float(ram["mbps"]) * 1e6 / 8 if "mbps" in ram else None,
            qemu_total=float(final["total-time"]) if final.get("total-time") else None,
            phases={
                RAW_PREPARE: prepare,
                "migrate → src STOP": ms(stop_at - t0),
                "stop-and-copy (QEMU's downtime)": float(final.get("downtime", "nan")),
                "→ dst RESUME (dst loads, completed, cont)": ms(resume_at - stop_at)
                - float(final.get("downtime", "nan")),
            },
        )

    @staticmethod
    async def _finish(dst: RawQemu) -> float:
        """``cont`` the destination the moment it reports completed; its RESUME stamp."""
        while True:
            event = await dst.next_event("MIGRATION", "RESUME")
            if event["event"] == "RESUME":
                return qmp_stamp(event)
            status = event["data"]["status"]
            if status == "completed":
                await dst.execute("cont")
            elif status in ("failed", "cancelled"):
                raise RuntimeError(f"raw migration {status} on the destination")

    @staticmethod
    async def _final(src: RawQemu) -> dict[str, Any]:
        for _ in range(1000):
            reply: dict[str, Any] = await src.execute("query-migrate")
            if reply.get("status") == "completed":
                return reply
            if reply.get("status") in ("failed", "cancelled"):
                raise RuntimeError(f"raw migration {reply.get('status')}: {reply}")
            await asyncio.sleep(0.005)
        raise RuntimeError("the source never reported completed")


# --- 2./3. virtdeck ----------------------------------------------------------------------------


def _lifecycle(rec: EventRecorder, since: int, words: str) -> LifecycleEvent | None:
    for event in rec.events[since:]:
        if isinstance(event, LifecycleEvent) and event.domain == NAME and event.words == words:
            return event
    return None


async def _wait_lifecycle(rec: EventRecorder, since: int, words: str) -> LifecycleEvent:
    await rec.wait_for(lambda _evs: _lifecycle(rec, since, words) is not None, 15.0, since)
    event = _lifecycle(rec, since, words)
    assert event is not None
    return event


def cpu_ms(pids: Sequence[int]) -> float:
    """User + system CPU time of this process and ``pids``, in ms."""
    total = 0.0
    for pid in (os.getpid(), *pids):
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return ms(total)


async def virtdeck_once(
    image: GuestImage,
    src: Connection,
    dst: Connection,
    run_dir: Path,
    *,
    tunnelled: bool = False,
    manager_pids: Sequence[int] = (),
) -> Sample:
    """Define and boot the guest on ``src``, migrate it to ``dst``, take it down there."""
    run_dir.mkdir(parents=True, exist_ok=True)
    serial_a, serial_b = run_dir / "a.sock", run_dir / "b.sock"
    rec_src, rec_dst = EventRecorder(src), EventRecorder(dst)
    dom = await src.define_xml(guest_xml(NAME, image, serial_a))
    moved = None
    try:
        await dom.start()
        await wait_ready(serial_a)
        mark_src, mark_dst = rec_src.mark(), rec_dst.mark()
        seen: list[JobInfo] = []
        dest_xml = guest_xml(NAME, image, serial_b, uuid=dom.uuid)
        cpu0 = cpu_ms(manager_pids)
        t0_wall = time.time()
        t0 = time.perf_counter()
        moved = await asyncio.wait_for(
            dom.migrate(dst, xml=dest_xml, progress=seen.append, tunnelled=tunnelled),
            MIGRATE_TIMEOUT,
        )
        total = ms(time.perf_counter() - t0)
        cpu = cpu_ms(manager_pids) - cpu0
        end_wall = t0_wall + total / 1000
        started = await _wait_lifecycle(rec_dst, mark_dst, "Started Migrated")
        suspended = await _wait_lifecycle(rec_src, mark_src, "Suspended Migrated")
        resumed = await _wait_lifecycle(rec_dst, mark_dst, "Resumed Migrated")
        gone = await _wait_lifecycle(rec_src, mark_src, "Stopped Migrated")
        await check_alive(serial_b)
    finally:
        with contextlib.suppress(Exception):
            if moved is not None:
                await moved.destroy()
                await moved.undefine()
        with contextlib.suppress(Exception):
            if (await dom.state())[0].is_active:
                await dom.destroy()
        with contextlib.suppress(Exception):
            await dom.undefine()
        await rec_src.close()
        await rec_dst.close()
    final = next((info for info in reversed(seen) if info.downtime_ms is not None), None)
    stop_at, resume_at = suspended.source_wall, resumed.source_wall
    if stop_at is None or resume_at is None:
        raise RuntimeError("the Suspended/Resumed Migrated events carry no QEMU timestamp")
    # When the source's driver saw QEMU's 'completed' (its JobProgressEvent of that moment).
    done = next(
        (
            e.wall
            for e in rec_src.events[mark_src:]
            if isinstance(e, JobProgressEvent)
            and e.uuid == dom.uuid
            and e.info.status == "completed"
        ),
        None,
    )
    downtime = ms(resume_at - stop_at)
    reported = final.downtime_ms if final is not None else None
    sample = Sample(
        total=total,
        to_resume=ms(resume_at - t0_wall),
        downtime_qemu=float(reported) if reported is not None else None,
        downtime_guest=downtime,
        ram_bytes=final.ram_transferred if final else None,
        ram_rate=final.ram_rate if final else None,
        manager_cpu=cpu,
        qemu_total=float(final.qemu_total_ms) if final and final.qemu_total_ms else None,
        phases={
            "Begin + Prepare (call → dst Started Migrated)": ms(started.wall - t0_wall),
            "Perform, RAM passes (→ src STOP)": ms(stop_at - started.wall),
        },
    )
    if done is not None:
        sample.phases["Perform, stop-and-copy (→ src driver sees completed)"] = ms(done - stop_at)
        sample.phases["Finish (→ dst RESUME)"] = ms(resume_at - done)
    else:
        sample.phases["switchover (src STOP → dst RESUME)"] = downtime
    sample.phases["Confirm (→ src Stopped Migrated)"] = ms(gone.wall - resume_at)
    sample.phases["return (→ call returned)"] = ms(end_wall - gone.wall)
    if reported == 0 and downtime > 5:
        # QEMU sets 'completed' before it computes 'downtime'; a query-migrate at that
        # moment reads 0. Not a figure to average.
        sample.downtime_qemu = None
        sample.downtime_qemu_zero = True
    return sample


class Embedded(Contender):
    key = "embed"
    label = "virtdeck in-process"

    def __init__(self, image: GuestImage, scratch: Path) -> None:
        super().__init__(image, scratch)
        self.conns: list[Connection] = []

    async def setup(self) -> None:
        for host in ("h1", "h2"):
            self.conns.append(await drivers.open(f"qemu:///embed?root={self.dir / host}"))

    async def once(self, run: str) -> Sample:
        return await virtdeck_once(self.image, self.conns[0], self.conns[1], self.dir / run)

    async def teardown(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(Exception):
                await conn.close()
        self.conns = []
        await super().teardown()


class Daemons(Contender):
    """Two virtdeckd, each serving its own embed root on its own socket."""

    key = "daemons"
    label = "virtdeck daemons"

    def __init__(self, image: GuestImage, scratch: Path) -> None:
        super().__init__(image, scratch)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.conns: list[Connection] = []
        self.log: IO[bytes] | None = None

    async def setup(self) -> None:
        self.log = open(self.dir / "daemons.log", "ab")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for host in ("h1", "h2"):
            sock = self.dir / f"{host}.sock"
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "drivers.daemon",
                    "--driver",
                    f"qemu:///embed?root={self.dir / host}",
                    "--socket",
                    str(sock),
                ],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self.log,
            )
            self.procs.append(proc)
            deadline = time.monotonic() + 20
            while not sock.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"virtdeckd for {host} did not start; see {self.log.name}")
                await asyncio.sleep(0.01)
            self.conns.append(await drivers.open(f"qemu:///system?socket={sock}"))
        src, dst = self.conns
        if "migration" not in dst.capabilities:
            self.skipped = "the daemon does not advertise the 'migration' capability"
            return
        # The daemons advertise their driver's capabilities; whether the protocol carries
        # the phases shows only when one is asked for (a shut-off domain's Begin is cheap).
        probe = await src.define_xml(DISKLESS.format(name="vdbench-probe"))
        try:
            probe.connection  # noqa: B018 - migrate() needs it
            await probe.migrate_begin(offline=True)
        except NotSupported as err:
            self.skipped = f"the daemon protocol cannot carry a migration yet ({err})"
        finally:
            await probe.undefine()

    async def once(self, run: str) -> Sample:
        src, dst = self.conns
        return await virtdeck_once(
            self.image, src, dst, self.dir / run, manager_pids=[p.pid for p in self.procs]
        )

    async def teardown(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 10)
        self.conns = []
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs = []
        if self.log is not None:
            self.log.close()
            self.log = None
        await super().teardown()


# --- 4. libvirt ------------------------------------------------------------------------------


QEMU_EVENT = re.compile(r"^event (\w+) at (\d+\.\d+) for domain '([^']*)'")
JOBINFO = re.compile(r"^([A-Za-z /]+):\s+(\S+)(?: (\S+))?", re.M)


class Libvirt(Contender):
    """``virsh migrate --live --persistent`` from a libvirtd in this mount namespace to one
    in a private namespace (bench/libvirt_peer.py), told apart by their host UUIDs."""

    key = "libvirt"
    label = "libvirt"

    def __init__(self, image: GuestImage, scratch: Path) -> None:
        super().__init__(image, scratch)
        self.peers: list[LibvirtPeer] = []
        self.monitors: list[LineReader] = []
        self.log: IO[bytes] | None = None

    async def setup(self) -> None:
        self.log = open(self.dir / "virsh.log", "ab")
        for private in (None, self.dir / "b"):
            peer = LibvirtPeer(private=private, host_uuid=str(uuidlib.uuid4()))
            self.peers.append(peer)
            try:
                await asyncio.to_thread(peer.start)
            except PeerUnavailable as err:
                where = "a second libvirtd (private mount namespace)" if private else "libvirtd"
                self.skipped = f"{where} could not be brought up: {err}"
                return
        # QEMU's own event stamps, as libvirt relays them: every domain of each daemon.
        for peer in self.peers:
            self.monitors.append(
                LineReader(peer.virsh_argv("qemu-monitor-event", "--loop"), self.log)
            )

    @property
    def version(self) -> str:
        return self.peers[0].virsh("version").stdout.strip().splitlines()[-1]

    async def once(self, run: str) -> Sample:
        src, dst = self.peers
        mon_src, mon_dst = self.monitors
        run_dir = self.dir / run
        run_dir.mkdir(parents=True, exist_ok=True)
        uuid = str(uuidlib.uuid4())
        serial_a, serial_b = run_dir / "a.sock", run_dir / "b.sock"
        dest_xml = run_dir / "dest.xml"
        dest_xml.write_text(guest_xml(NAME, self.image, serial_b, uuid=uuid))
        src.define(NAME, guest_xml(NAME, self.image, serial_a, uuid=uuid))
        try:
            await asyncio.to_thread(src.virsh, "start", NAME)
            await wait_ready(serial_a)
            mon_src.drain()
            mon_dst.drain()
            argv = src.virsh_argv(
                "migrate", "--live", "--persistent", "--xml", str(dest_xml),
                "--migrateuri", "tcp:127.0.0.1", NAME, dst.uri,
            )  # fmt: skip
            t0_wall = time.time()
            total, _ = await asyncio.to_thread(timed, argv)
            stamps_src = await self._stamps(mon_src, "STOP")
            stamps_dst = await self._stamps(mon_dst, "RESUME")
            info = self._jobinfo(src.virsh("domjobinfo", "--completed", NAME).stdout)
            await check_alive(serial_b)
        finally:
            for peer in (dst, src):
                await asyncio.to_thread(peer.virsh, "destroy", NAME, check=False)
                await asyncio.to_thread(peer.virsh, "undefine", NAME, check=False)
        stop_at, resume_at = stamps_src["STOP"], stamps_dst["RESUME"]
        setup_at = stamps_src.get("MIGRATION")
        phases = {}
        if setup_at is not None:
            phases["virsh start, Begin, Prepare (→ src MIGRATION setup)"] = ms(setup_at - t0_wall)
            phases["RAM passes (→ src STOP)"] = ms(stop_at - setup_at)
        phases["switchover (src STOP → dst RESUME)"] = ms(resume_at - stop_at)
        phases["Confirm, virsh exits (→ virsh returned)"] = total - ms(resume_at - t0_wall)
        return Sample(
            total=total,
            to_resume=ms(resume_at - t0_wall),
            downtime_qemu=info.get("Total downtime"),
            downtime_by_manager=True,
            downtime_guest=ms(resume_at - stop_at),
            ram_bytes=int(info["Memory processed"]) if "Memory processed" in info else None,
            ram_rate=info.get("Memory bandwidth"),
            phases=phases,
        )

    @staticmethod
    async def _stamps(monitor: LineReader, last: str) -> dict[str, float]:
        """QEMU's stamps of this domain's events (the first of each name) up to ``last``."""
        found: dict[str, float] = {}
        while last not in found:
            _arrived, text = await monitor.next(timeout=15)
            match = QEMU_EVENT.match(text)
            if match and match.group(3) == NAME:
                found.setdefault(match.group(1), float(match.group(2)))
        return found

    @staticmethod
    def _jobinfo(text: str) -> dict[str, float]:
        """``virsh domjobinfo`` figures: ms, bytes and bytes/s."""
        units = {"ms": 1.0, "B": 1.0, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30,
                 "B/s": 1.0, "KiB/s": 2**10, "MiB/s": 2**20, "GiB/s": 2**30}  # fmt: skip
        found: dict[str, float] = {}
        for key, number, unit in JOBINFO.findall(text):
            with contextlib.suppress(ValueError):
                found[key.strip()] = float(number) * units.get(unit, 1.0)
        return found

    async def teardown(self) -> None:
        for monitor in self.monitors:
            monitor.stop()
        self.monitors = []
        for peer in reversed(self.peers):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(peer.stop)
        self.peers = []
        if self.log is not None:
            self.log.close()
            self.log = None
        await super().teardown()


# --- running and printing ----------------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def values(samples: Sequence[Sample], get: Callable[[Sample], float | None]) -> list[float]:
    return [v for v in (get(s) for s in samples) if v is not None]


def fmt(values_ms: Sequence[float], p90: bool = True) -> str:
    if not values_ms:
        return "-"
    text = f"{statistics.median(values_ms):.0f} ms"
    if p90 and len(values_ms) > 1:
        text += f" (p90 {pct(values_ms, 0.9):.0f})"
    return text


async def run_round(contenders: Sequence[Contender], run: str, counted: bool) -> None:
    for contender in contenders:
        if contender.skipped is not None:
            continue
        try:
            sample = await contender.once(run)
        except Exception as err:  # a failed migration is reported, the others go on
            contender.failures.append(f"{run}: {type(err).__name__}: {err}")
            print(f"  {contender.label}: run {run} FAILED: {type(err).__name__}: {err}")
            continue
        if counted:
            contender.samples.append(sample)
        qemu = "-" if sample.downtime_qemu is None else f"{sample.downtime_qemu:.0f}"
        guest = "-" if sample.downtime_guest is None else f"{sample.downtime_guest:.1f}"
        print(
            f"  {run:>6} {contender.label:<20} total {sample.total:7.1f} ms  "
            f"downtime: QEMU {qemu:>4} ms, guest-visible {guest:>6} ms"
        )


def machine() -> str:
    qemu = subprocess.run(
        ["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    libvirt = "not installed"
    if shutil.which("libvirtd"):
        libvirt = subprocess.run(
            ["libvirtd", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{qemu[0] if qemu else 'QEMU ?'} (TCG); libvirt: {libvirt}; "
        f"python {sys.version.split()[0]}"
    )


COLUMNS = ("embed", "daemons", "raw", "libvirt")


def table(contenders: Sequence[Contender], raw: RawQmp) -> list[str]:
    """The Markdown table of figures, one column per contender."""
    by_key = {c.key: c for c in contenders}
    shown = [by_key[key] for key in COLUMNS if key in by_key]
    head = ["metric", *(c.label for c in shown)]
    rows: list[list[str]] = []

    def cell(c: Contender, text: str) -> str:
        return "not measured" if c.skipped is not None else text

    def row(metric: str, get: Callable[[Sample], float | None], p90: bool = True) -> None:
        rows.append([metric, *(cell(c, fmt(values(c.samples, get), p90)) for c in shown)])

    row("total time", lambda s: s.total)
    row("asked → destination RESUME", lambda s: s.to_resume)
    cells = []
    for c in shown:
        text = fmt(values(c.samples, lambda s: s.downtime_qemu))
        zeros = sum(s.downtime_qemu_zero for s in c.samples)
        if zeros:
            text += f" [{zeros} of {len(c.samples)} said 0, left out ‡]"
        if any(s.downtime_by_manager for s in c.samples):
            text += " †"
        cells.append(cell(c, text))
    rows.append(["downtime (QEMU)", *cells])
    row("downtime (guest-visible, STOP→RESUME)", lambda s: s.downtime_guest)
    row("guest-visible minus QEMU downtime", manager_share)
    mib = []
    rate = []
    for c in shown:
        ram = values(c.samples, lambda s: s.ram_bytes)
        rates = values(c.samples, lambda s: s.ram_rate)
        mib.append(cell(c, f"{statistics.median(ram) / 2**20:.1f} MiB" if ram else "-"))
        rate.append(cell(c, f"{statistics.median(rates) / 2**20:.0f} MiB/s" if rates else "-"))
    rows.append(["RAM transferred", *mib])
    rows.append(["RAM rate (QEMU's mbps)", *rate])
    row("manager CPU during the migration", lambda s: s.manager_cpu, p90=False)
    row("QEMU's own migration time (total-time)", lambda s: s.qemu_total)
    row("manager's part (total incl. dst start minus QEMU's)", manager_part)
    both = [s.total + s.phases.get(RAW_PREPARE, 0.0) for s in raw.samples]
    if both:
        rows.append(
            ["total incl. destination start", *(fmt(both) if c is raw else "" for c in shown)]
        )
    rows.append(["runs", *(str(len(c.samples)) for c in shown)])
    out = markdown(head, rows)
    if any(s.downtime_by_manager for c in shown for s in c.samples):
        out.append(
            "\n† libvirt's own 'Total downtime' (virsh domjobinfo --completed): libvirt replaces "
            "QEMU's figure with its STOP → destination-resumed time; QEMU's is not reachable "
            "through virsh once the source QEMU has ended."
        )
    if any(s.downtime_qemu_zero for c in shown for s in c.samples):
        out.append(
            "\n‡ virtdeck's final JobInfo.downtime_ms was 0 (with total-time 0) although the "
            "guest was stopped for longer: its query-migrate landed after QEMU had set "
            "'completed' but before QEMU computed the figures."
        )
    return out


def manager_part(s: Sample) -> float | None:
    """The whole migration (for raw: with its destination's start) minus QEMU's own
    migration time: what the manager adds around QEMU."""
    if s.qemu_total is None:
        return None
    return s.total + s.phases.get(RAW_PREPARE, 0.0) - s.qemu_total


def manager_share(s: Sample) -> float | None:
    """What the guest waits for beyond QEMU's own stop-and-copy: the destination loading
    the last state, and the manager noticing and starting its CPUs."""
    if s.downtime_guest is None or s.downtime_qemu is None or s.downtime_by_manager:
        return None
    return s.downtime_guest - s.downtime_qemu


def targets(contenders: Sequence[Contender], raw: RawQmp) -> list[str]:
    """Added time and downtime of virtdeck over raw, and virtdeck against libvirt."""
    rows: list[list[str]] = []
    raw_total = median(values(raw.samples, lambda s: s.total))
    raw_down = median(values(raw.samples, lambda s: s.downtime_guest))
    raw_full = median([s.total + s.phases.get(RAW_PREPARE, 0.0) for s in raw.samples])
    libvirt = next((c for c in contenders if c.key == "libvirt"), None)
    lv_total = (
        median(values(libvirt.samples, lambda s: s.total))
        if libvirt is not None and libvirt.skipped is None
        else None
    )
    for c in contenders:
        if c.key not in ("embed", "daemons") or c.skipped is not None or not c.samples:
            continue
        total = median(values(c.samples, lambda s: s.total))
        down = median(values(c.samples, lambda s: s.downtime_guest))
        if down is not None and raw_down is not None:
            added = down - raw_down
            rows.append(
                [
                    f"{c.label}: added guest-visible downtime",
                    f"{added:+.1f} ms",
                    "< 20 ms",
                    "pass" if added < 20 else "FAIL",
                ]
            )
        share = median(values(c.samples, manager_share))
        raw_share = median(values(raw.samples, manager_share))
        if share is not None and raw_share is not None:
            added = share - raw_share
            rows.append(
                [
                    f"{c.label}: added downtime beyond QEMU's stop-and-copy",
                    f"{added:+.1f} ms",
                    "< 20 ms",
                    "pass" if added < 20 else "FAIL",
                ]
            )
        if total is not None and raw_full:
            added = total - raw_full
            rows.append(
                [
                    f"{c.label}: added total time (raw incl. its destination start)",
                    f"{added:+.0f} ms ({100 * added / raw_full:+.1f} %)",
                    "< 10 %",
                    "pass" if added < 0.1 * raw_full else "FAIL",
                ]
            )
        part = median(values(c.samples, manager_part))
        raw_part = median(values(raw.samples, manager_part))
        if part is not None and raw_part is not None and raw_full:
            added = part - raw_part
            rows.append(
                [
                    f"{c.label}: added total time beyond QEMU's own migration time",
                    f"{added:+.0f} ms ({100 * added / raw_full:+.1f} %)",
                    "< 10 %",
                    "pass" if added < 0.1 * raw_full else "FAIL",
                ]
            )
        if total is not None and raw_total:
            added = total - raw_total
            rows.append(
                [
                    f"{c.label}: added total time vs raw without its destination start",
                    f"{added:+.0f} ms ({100 * added / raw_total:+.1f} %)",
                    "(for reference)",
                    "-",
                ]
            )
        if total is not None and lv_total is not None:
            rows.append(
                [
                    f"{c.label}: total vs libvirt",
                    f"{total:.0f} / {lv_total:.0f} ms (x{total / lv_total:.2f})",
                    "faster",
                    "pass" if total < lv_total else "FAIL",
                ]
            )
        elif total is not None:
            rows.append([f"{c.label}: total vs libvirt", "libvirt not measured", "faster", "-"])
    return markdown(["comparison", "value", "target", "met?"], rows)


def timeline(contenders: Sequence[Contender]) -> list[str]:
    out: list[str] = []
    for c in contenders:
        if c.skipped is not None or not c.samples or not c.samples[0].phases:
            continue
        out.append(f"{c.label}:")
        for name in c.samples[0].phases:
            got = values(c.samples, lambda s, n=name: s.phases.get(n))  # type: ignore[misc]
            out.append(f"  {name:<52} {fmt(got, p90=False):>10}")
    return out


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


async def run(args: argparse.Namespace) -> Report:
    image = guest_image()
    scratch = Path(tempfile.mkdtemp(prefix="vdbm-", dir="/tmp"))
    raw = RawQmp(image, scratch)
    contenders: list[Contender] = [raw, Embedded(image, scratch), Daemons(image, scratch)]
    if not args.no_libvirt:
        contenders.append(Libvirt(image, scratch))
    tunnel: TunnelPass | None = None
    notes: list[str] = []
    print(f"machine: {machine()}")
    print(f"guest: {image.kernel_version}, 256 MiB, q35, TCG; scratch {scratch}")
    try:
        for c in contenders:
            t0 = time.monotonic()
            try:
                await c.setup()
            except Exception as err:
                c.skipped = f"{type(err).__name__}: {err}"
            state = "up" if c.skipped is None else f"not measured — {c.skipped}"
            print(f"{c.label}: {state} ({time.monotonic() - t0:.1f} s)")
        print("\nwarm-up round (not counted):")
        await run_round(contenders, "warm", counted=False)
        for i in range(args.runs):
            print(f"\nrun {i + 1}/{args.runs}:")
            await run_round(contenders, f"r{i}", counted=True)
        daemons = next(c for c in contenders if isinstance(c, Daemons))
        if daemons.skipped is None:
            tunnel = TunnelPass(daemons)
            await tunnel.run(args.runs)
        else:
            notes.append("tunnelled throughput: not measured — the daemons cannot migrate")
    finally:
        for c in reversed(contenders):
            with contextlib.suppress(Exception):
                await c.teardown()
        end_processes_under(scratch)
        left = pids_mentioning(str(scratch))
        shutil.rmtree(scratch, ignore_errors=True)
    for c in contenders:
        if c.skipped is not None:
            notes.append(f"{c.label}: not measured — {c.skipped}")
        for failure in c.failures:
            notes.append(f"{c.label}: run {failure}")
    print(f"\n## Live migration, {args.runs} runs (median; p90, nearest rank, in brackets)\n")
    print(f"machine: {machine()}\n")
    for line in table(contenders, raw):
        print(line)
    print()
    for line in targets(contenders, raw):
        print(line)
    print("\nwhere the time goes (medians):")
    for line in timeline(contenders):
        print(line)
    if tunnel is not None:
        for line in tunnel.report():
            print(line)
        notes += [f"tunnelled pass: run {failure}" for failure in tunnel.failures]
    for note in notes:
        print(f"\nnote: {note}")
    print(f"\nprocesses left behind: {left or 'none'}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    c.key: {
                        "label": c.label,
                        "skipped": c.skipped,
                        "failures": c.failures,
                        "samples": [asdict(s) for s in c.samples],
                    }
                    for c in contenders
                }
                | (
                    {
                        "tunnel": {
                            "skipped": tunnel.skipped,
                            "failures": tunnel.failures,
                            "direct": [asdict(x) for x in tunnel.direct],
                            "tunnelled": [asdict(x) for x in tunnel.tunnelled],
                        }
                    }
                    if tunnel is not None
                    else {}
                ),
                indent=2,
            )
        )
    return report_of(contenders, raw, notes, args.runs)


def report_of(
    contenders: Sequence[Contender], raw: RawQmp, notes: Sequence[str], runs: int
) -> Report:
    """The figures as rows for ``python -m bench``: each virtdeck way against raw QMP (its
    total including the destination's start) and against libvirt."""
    report = Report("migration")
    raw_total = Figure.of([s.total + s.phases.get(RAW_PREPARE, 0.0) for s in raw.samples])
    raw_down = Figure.of(values(raw.samples, lambda s: s.downtime_guest))
    libvirt = next((c for c in contenders if c.key == "libvirt" and c.skipped is None), None)
    for c in contenders:
        if c.key not in ("embed", "daemons"):
            continue
        if c.skipped is not None or not c.samples:
            report.notes.append(f"migration: {c.label} not measured: {c.skipped or 'no run'}")
            continue
        total = Figure.of(values(c.samples, lambda s: s.total))
        assert total is not None
        report.add(
            Row(
                f"{c.label}: total time",
                "ms",
                total,
                raw_total,
                "raw QMP incl. dst start",
                "< raw + 10 %",
                None if raw_total is None else total.median < 1.1 * raw_total.median,
            )
        )
        if libvirt is not None and libvirt.samples:
            lv = Figure.of(values(libvirt.samples, lambda s: s.total))
            report.add(
                Row(
                    f"{c.label}: total time",
                    "ms",
                    total,
                    lv,
                    "virsh migrate --live",
                    "< libvirt",
                    None if lv is None else total.median < lv.median,
                )
            )
        down = Figure.of(values(c.samples, lambda s: s.downtime_guest))
        if down is not None:
            report.add(
                Row(
                    f"{c.label}: guest-visible downtime",
                    "ms",
                    down,
                    raw_down,
                    "raw QMP",
                    "< raw + 20 ms",
                    None if raw_down is None else down.median < raw_down.median + 20,
                )
            )
    report.notes += [f"migration: {note}" for note in notes]
    report.notes.append(f"migration: {runs} runs, contenders alternating")
    return report


def collect(quick: bool = False) -> Report:
    args = argparse.Namespace(runs=2 if quick else 5, quick=quick, json=None, no_libvirt=False)
    return asyncio.run(run(args))


class TunnelPass:
    """Through the two daemons, direct and ``tunnelled=True`` alternating: RAM per second."""

    def __init__(self, daemons: Daemons) -> None:
        self.daemons = daemons
        self.direct: list[Sample] = []
        self.tunnelled: list[Sample] = []
        self.failures: list[str] = []
        self.skipped: str | None = None

    async def run(self, runs: int) -> None:
        src, dst = self.daemons.conns
        if not (isinstance(src, TunnelEnds) and isinstance(dst, TunnelEnds)):
            self.skipped = "tunnelled migration has not landed (the remote client has no tunnel)"
            return
        print("\ntunnelled pass through the daemons (first tunnelled run not counted):")
        plan: list[tuple[str, bool, list[Sample] | None]] = [("tunnel-warm", True, None)]
        for i in range(runs):
            plan += [(f"d{i}", False, self.direct), (f"t{i}", True, self.tunnelled)]
        for run, tunnelled, sink in plan:
            try:
                sample = await virtdeck_once(
                    self.daemons.image, src, dst, self.daemons.dir / run, tunnelled=tunnelled
                )
            except Exception as err:
                self.failures.append(f"{run}: {type(err).__name__}: {err}")
                print(f"  {run}: FAILED: {type(err).__name__}: {err}")
                continue
            if sink is not None:
                sink.append(sample)
            rate = sample.ram_rate or float("nan")
            print(
                f"  {run:>11} {'tunnelled' if tunnelled else 'direct':<9} total "
                f"{sample.total:7.1f} ms  RAM {(sample.ram_bytes or 0) / 2**20:5.1f} MiB  "
                f"QEMU rate {rate / 2**20:6.0f} MiB/s"
            )

    def report(self) -> list[str]:
        if self.skipped is not None:
            return [f"\ntunnelled throughput: not measured — {self.skipped}"]
        head = ["through two daemons", "direct", "tunnelled", "tunnelled / direct"]
        rows: list[list[str]] = []

        def add(
            metric: str, get: Callable[[Sample], float | None], unit: str, scale: float
        ) -> None:
            d = median(values(self.direct, get))
            t = median(values(self.tunnelled, get))
            if d is None or t is None:
                rows.append([metric, "-", "-", "-"])
                return
            rows.append(
                [metric, f"{d / scale:.0f} {unit}", f"{t / scale:.0f} {unit}", f"{t / d:.2f}"]
            )

        add("total time", lambda s: s.total, "ms", 1.0)
        add("downtime (guest-visible)", lambda s: s.downtime_guest, "ms", 1.0)
        add("RAM rate (JobInfo.ram_rate)", lambda s: s.ram_rate, "MiB/s", 2**20)
        add("RAM bytes / total time", per_second, "MiB/s", 2**20)
        n = f"{len(self.direct)} direct + {len(self.tunnelled)} tunnelled runs, alternating"
        return ["", f"### Tunnelled throughput ({n}; medians)", "", *markdown(head, rows)]


def per_second(s: Sample) -> float | None:
    return s.ram_bytes / (s.total / 1000) if s.ram_bytes else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=None, help="counted runs (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 runs")
    parser.add_argument("--json", metavar="FILE", help="also write every sample as JSON")
    parser.add_argument("--no-libvirt", action="store_true", help="leave libvirt out")
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 2 if args.quick else 5
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        print("\ninterrupted; every QEMU, daemon and libvirtd the bench started was ended")
        sys.exit(130)


if __name__ == "__main__":
    main()
