"""Live figures of the host and its running domains, sampled while someone listens.

Per domain: CPU time of the QEMU process and of each vCPU thread (``query-cpus-fast``
names them; their ``/proc`` stat gives the time), memory (RSS; the balloon's size when the
domain has one), block I/O (``query-blockstats``), network I/O of tap interfaces the QEMU
process holds (found through ``/proc/PID/fdinfo``; user-mode networking has no counters to
read). Rates and percentages are worked out here, from the previous sample.

One sampler runs per interval however many clients listen; it stops when the last one
goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

from drivers.errors import VirtError
from drivers.model import (
    BlockStats,
    DomainState,
    DomainStats,
    HostStats,
    NetStats,
    StatsSample,
)
from drivers.qemu.argv import disk_alias
from drivers.qemu.runtime import DomainRuntime
from drivers.records import replace

log = logging.getLogger(__name__)

_TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")


def _thread_cpu_ns(pid: int, tid: int) -> int:
    """CPU time (user + system) of one thread, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int((int(fields[11]) + int(fields[12])) * _TICK_NS)


def _tap_names(pid: int) -> list[str]:
    """The tap interfaces an QEMU process holds open (``iff:`` in a tun fd's fdinfo)."""
    names = []
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "/dev/net/tun":
                    continue
                for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
                    if line.startswith("iff:"):
                        names.append(line.split()[1])
            except OSError:
                continue
    return names


def _tap_bytes(name: str) -> tuple[int, int]:
    """(received, sent) by the guest through tap ``name``: the host side's tx and rx."""
    base = Path("/sys/class/net") / name / "statistics"
    try:
        return int((base / "tx_bytes").read_text()), int((base / "rx_bytes").read_text())
    except (OSError, ValueError):
        return 0, 0


class _Seen:
    """What a domain's previous sample found, for rates; and what does not change."""

    def __init__(self, pid: int, vcpu_threads: tuple[int, ...], taps: list[str]) -> None:
        self.pid = pid
        self.process = psutil.Process(pid)
        self.vcpu_threads = vcpu_threads
        self.taps = taps
        self.mono = 0.0
        self.cpu_ns = 0
        self.vcpu_ns: tuple[int, ...] = ()
        self.block = (0, 0)
        self.net = (0, 0)


async def _domain(
    rt: DomainRuntime, seen: dict[str, _Seen], now: float, wall: float
) -> DomainStats | None:
    backend = rt.backend
    pid = backend.pid if backend is not None else None
    if backend is None or pid is None or not rt.active:
        return None
    old = seen.get(rt.uuid)
    if old is None or old.pid != pid:
        threads: tuple[int, ...] = ()
        with contextlib.suppress(VirtError):
            cpus = await backend.execute("query-cpus-fast")
            threads = tuple(int(c["thread-id"]) for c in cpus if "thread-id" in c)
        try:
            old = _Seen(pid, threads, _tap_names(pid))
        except psutil.Error:
            return None
        seen[rt.uuid] = old
    try:
        with old.process.oneshot():
            times = old.process.cpu_times()
            rss = old.process.memory_info().rss
    except psutil.Error:
        return None
    cpu_ns = int((times.user + times.system) * 1e9)
    vcpu_ns = tuple(_thread_cpu_ns(pid, tid) for tid in old.vcpu_threads)
    defn = rt.definition
    blocks: tuple[BlockStats, ...] = ()
    if defn.disks:
        with contextlib.suppress(VirtError):
            blocks = _blocks(await backend.execute("query-blockstats"))
        targets = {disk_alias(d): d.target_dev for d in defn.disks}
        blocks = tuple(replace(b, name=targets.get(b.name, b.name)) for b in blocks)
    block = (
        sum(b.rd_bytes for b in blocks),
        sum(b.wr_bytes for b in blocks),
        sum(b.rd_reqs for b in blocks),
        sum(b.wr_reqs for b in blocks),
    )
    balloon: int | None = None
    if defn.memballoon is not None and defn.memballoon.model != "none":
        with contextlib.suppress(VirtError, KeyError, TypeError, ValueError):
            balloon = int((await backend.execute("query-balloon"))["actual"]) // 1024
    nets = tuple(NetStats(name, *_tap_bytes(name)) for name in old.taps)
    net = (sum(n.rx_bytes for n in nets), sum(n.tx_bytes for n in nets))
    span = now - old.mono if old.mono else 0.0

    def rate(new: int, before: int) -> float:
        return max(0.0, (new - before) / span) if span > 0 else 0.0

    cpu_percent = rate(cpu_ns, old.cpu_ns) / 1e7
    vcpu_percent = tuple(
        rate(n, b) / 1e7 for n, b in zip(vcpu_ns, old.vcpu_ns or vcpu_ns, strict=True)
    )
    stats = DomainStats(
        name=rt.name,
        uuid=rt.uuid,
        wall=wall,
        cpu_percent=cpu_percent,
        cpu_time_ns=cpu_ns,
        vcpu_percent=vcpu_percent,
        vcpu_time_ns=vcpu_ns,
        rss_bytes=rss,
        balloon_actual_kib=balloon,
        block_rd_bytes=block[0],
        block_wr_bytes=block[1],
        block_rd_ops=block[2],
        block_wr_ops=block[3],
        block_rd_rate=rate(block[0], old.block[0]),
        block_wr_rate=rate(block[1], old.block[1]),
        net_rx_bytes=net[0],
        net_tx_bytes=net[1],
        net_rx_rate=rate(net[0], old.net[0]),
        net_tx_rate=rate(net[1], old.net[1]),
        blocks=blocks,
        nets=nets,
    )
    old.mono, old.cpu_ns, old.vcpu_ns = now, cpu_ns, vcpu_ns
    old.block, old.net = (block[0], block[1]), net
    return stats


def _blocks(devices: Iterable[Any]) -> tuple[BlockStats, ...]:
    """Each guest disk's counters from ``query-blockstats`` (named by its device id)."""
    found = []
    for device in devices:
        stats = device.get("stats") or {}
        name = str(device.get("qdev") or device.get("device") or device.get("node-name") or "")
        found.append(
            BlockStats(
                name=_disk_name(name),
                rd_bytes=int(stats.get("rd_bytes", 0)),
                wr_bytes=int(stats.get("wr_bytes", 0)),
                rd_reqs=int(stats.get("rd_operations", 0)),
                wr_reqs=int(stats.get("wr_operations", 0)),
            )
        )
    return tuple(found)


def _disk_name(qdev: str) -> str:
    """QEMU's device path of a disk ('/machine/peripheral/virtio-disk0/virtio-backend') as
    its id ('virtio-disk0')."""
    parts = [p for p in qdev.split("/") if p]
    if "peripheral" in parts and parts.index("peripheral") + 1 < len(parts):
        return parts[parts.index("peripheral") + 1]
    return parts[-1] if parts else qdev


class Sampler:
    """The samplers of one registry: one loop per interval, shared by its listeners."""

    def __init__(self, domains: Callable[[], list[DomainRuntime]]) -> None:
        self._domains = domains
        self._listeners: dict[float, set[asyncio.Queue[StatsSample]]] = {}
        self._tasks: dict[float, asyncio.Task[None]] = {}
        self._seen: dict[float, dict[str, _Seen]] = {}

    async def sample(self, seen: dict[str, _Seen]) -> StatsSample:
        now, wall = time.monotonic(), time.time()
        running = [rt for rt in self._domains() if rt.active]
        found = await asyncio.gather(*(_domain(rt, seen, now, wall) for rt in running))
        alive = {rt.uuid for rt in running}
        for uuid in list(seen):
            if uuid not in alive:
                del seen[uuid]
        memory = psutil.virtual_memory()
        host = HostStats(
            wall=wall,
            cpu_percent=psutil.cpu_percent(interval=None),
            cpus=psutil.cpu_count() or 1,
            memory_total=memory.total,
            memory_used=memory.total - memory.available,
            running=sum(1 for rt in running if rt.state is DomainState.RUNNING),
        )
        return StatsSample(host=host, domains=tuple(s for s in found if s is not None))

    async def _run(self, interval: float) -> None:
        seen = self._seen.setdefault(interval, {})
        while self._listeners.get(interval):
            started = time.monotonic()
            try:
                sample = await self.sample(seen)
            except Exception:  # one bad sample must not end the stream
                log.exception("stats sample failed")
            else:
                for queue in list(self._listeners.get(interval, ())):
                    if queue.full():
                        queue.get_nowait()  # a listener that lags gets the newest
                    queue.put_nowait(sample)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def stream(self, interval: float) -> AsyncIterator[StatsSample]:
        if not 0.1 <= interval <= 3600:
            from drivers.errors import InvalidArgument

            raise InvalidArgument("The stats interval must be between 0.1 and 3600 seconds.")
        queue: asyncio.Queue[StatsSample] = asyncio.Queue(maxsize=2)
        self._listeners.setdefault(interval, set()).add(queue)
        if interval not in self._tasks or self._tasks[interval].done():
            self._tasks[interval] = asyncio.get_running_loop().create_task(
                self._run(interval), name=f"stats-{interval}"
            )
        try:
            while True:
                yield await queue.get()
        finally:
            listeners = self._listeners.get(interval, set())
            listeners.discard(queue)
            if not listeners:
                task = self._tasks.pop(interval, None)
                if task is not None:
                    task.cancel()
                self._seen.pop(interval, None)
