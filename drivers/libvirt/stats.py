"""Figures of a libvirt host and its running domains: ``virConnectGetAllDomainStats``.

One call returns every running domain's counters (CPU time, per-vCPU time, balloon, disks,
interfaces); the host's own load comes from ``virNodeGetCPUStats`` and
``virNodeGetMemoryStats``. Rates and percentages are worked out here from the previous
sample, as the QEMU driver's sampler does, so both kinds of host read the same.
"""

from __future__ import annotations

from typing import Any

from drivers.model import BlockStats, DomainState, DomainStats, HostStats, NetStats


class _Before:
    """A domain's counters in the previous sample (for rates)."""

    __slots__ = ("block", "cpu_ns", "mono", "net", "vcpu_ns")

    def __init__(self) -> None:
        self.mono = 0.0
        self.cpu_ns = 0
        self.vcpu_ns: tuple[int, ...] = ()
        self.block = (0, 0)
        self.net = (0, 0)


def _int(record: dict[str, Any], key: str) -> int:
    value = record.get(key, 0)
    return int(value) if isinstance(value, int) else 0


def _blocks(record: dict[str, Any]) -> tuple[BlockStats, ...]:
    return tuple(
        BlockStats(
            name=str(record.get(f"block.{i}.name", i)),
            rd_bytes=_int(record, f"block.{i}.rd.bytes"),
            wr_bytes=_int(record, f"block.{i}.wr.bytes"),
            rd_reqs=_int(record, f"block.{i}.rd.reqs"),
            wr_reqs=_int(record, f"block.{i}.wr.reqs"),
        )
        for i in range(_int(record, "block.count"))
    )


def _nets(record: dict[str, Any]) -> tuple[NetStats, ...]:
    return tuple(
        NetStats(
            name=str(record.get(f"net.{i}.name", i)),
            rx_bytes=_int(record, f"net.{i}.rx.bytes"),
            tx_bytes=_int(record, f"net.{i}.tx.bytes"),
        )
        for i in range(_int(record, "net.count"))
    )


class StatsReader:
    """Turns successive ``getAllDomainStats`` results into :class:`DomainStats`."""

    def __init__(self) -> None:
        self._before: dict[str, _Before] = {}
        self._host_before: tuple[int, int] | None = None

    def domains(
        self, records: list[tuple[str, str, dict[str, Any]]], mono: float, wall: float
    ) -> tuple[DomainStats, ...]:
        """``records``: (name, uuid, stats) of each running domain."""
        found = []
        for name, uuid, record in records:
            old = self._before.setdefault(uuid, _Before())
            span = mono - old.mono if old.mono else 0.0

            def rate(new: int, before: int, span: float = span) -> float:
                return max(0.0, (new - before) / span) if span > 0 else 0.0

            cpu_ns = _int(record, "cpu.time")
            vcpu_ns = tuple(
                _int(record, f"vcpu.{i}.time") for i in range(_int(record, "vcpu.current"))
            )
            blocks, nets = _blocks(record), _nets(record)
            block = (sum(b.rd_bytes for b in blocks), sum(b.wr_bytes for b in blocks))
            net = (sum(n.rx_bytes for n in nets), sum(n.tx_bytes for n in nets))
            balloon = record.get("balloon.current")
            available = record.get("balloon.available")
            found.append(
                DomainStats(
                    name=name,
                    uuid=uuid,
                    wall=wall,
                    cpu_percent=rate(cpu_ns, old.cpu_ns) / 1e7,
                    cpu_time_ns=cpu_ns,
                    vcpu_percent=tuple(
                        rate(n, b) / 1e7
                        for n, b in zip(vcpu_ns, old.vcpu_ns or vcpu_ns, strict=False)
                    ),
                    vcpu_time_ns=vcpu_ns,
                    rss_bytes=_int(record, "balloon.rss") * 1024,
                    balloon_actual_kib=int(balloon) if isinstance(balloon, int) else None,
                    balloon_available_kib=int(available) if isinstance(available, int) else None,
                    block_rd_bytes=block[0],
                    block_wr_bytes=block[1],
                    block_rd_ops=sum(b.rd_reqs for b in blocks),
                    block_wr_ops=sum(b.wr_reqs for b in blocks),
                    block_rd_rate=rate(block[0], old.block[0]),
                    block_wr_rate=rate(block[1], old.block[1]),
                    net_rx_bytes=net[0],
                    net_tx_bytes=net[1],
                    net_rx_rate=rate(net[0], old.net[0]),
                    net_tx_rate=rate(net[1], old.net[1]),
                    blocks=blocks,
                    nets=nets,
                )
            )
            old.mono, old.cpu_ns, old.vcpu_ns, old.block, old.net = (
                mono,
                cpu_ns,
                vcpu_ns,
                block,
                net,
            )
        alive = {uuid for _, uuid, _ in records}
        for uuid in list(self._before):
            if uuid not in alive:
                del self._before[uuid]
        return tuple(found)

    def host(
        self,
        cpu: dict[str, int],
        memory: dict[str, int],
        cpus: int,
        running: int,
        wall: float,
    ) -> HostStats:
        """``cpu``: virNodeGetCPUStats of all CPUs (ns); ``memory``: virNodeGetMemoryStats
        (KiB)."""
        busy = sum(cpu.get(k, 0) for k in ("kernel", "user", "iowait"))
        total = busy + cpu.get("idle", 0)
        percent = 0.0
        if self._host_before is not None and total > self._host_before[1]:
            percent = 100.0 * (busy - self._host_before[0]) / (total - self._host_before[1])
        self._host_before = (busy, total)
        mem_total = memory.get("total", 0) * 1024
        free = (memory.get("free", 0) + memory.get("buffers", 0) + memory.get("cached", 0)) * 1024
        return HostStats(
            wall=wall,
            cpu_percent=max(0.0, min(100.0, percent)),
            cpus=cpus,
            memory_total=mem_total,
            memory_used=max(0, mem_total - free),
            running=running,
        )


def running_state(record: dict[str, Any]) -> bool:
    return record.get("state.state") == DomainState.RUNNING.value
