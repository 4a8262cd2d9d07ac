"""Statistics of simulated guests, for the ``test://`` driver's ``stats_stream``.

Every figure is a pure function of the domain (its UUID, vCPUs, memory, start time) and of
the time asked for: each guest has a character of its own (an idle one, a busy one, one with
bursts of disk or network traffic) that varies smoothly with time, so a live table's
sparklines move, while under a frozen clock every sample is the same (snapshot tests).
Unlike a real daemon, the rates are there from the first sample.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

from drivers.model import DomainState, DomainStats, HostStats, StatsSample
from drivers.qemu.runtime import DomainRuntime

#: Memory the simulated host itself uses, besides its guests.
HOST_OVERHEAD = 1 << 30


def _traits(uuid: str) -> tuple[float, ...]:
    """Eight numbers in [0, 1) that make up a guest's character."""
    digest = hashlib.sha256(uuid.encode()).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "big") / 2**32 for i in range(0, 32, 4))


def _noise(uuid: str, second: int) -> float:
    """A number in [0, 1) for this guest and this second."""
    digest = hashlib.blake2b(f"{uuid}/{second}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") / 2**32


def _wave(now: float, period: float, phase: float) -> float:
    """0..1, smoothly."""
    return 0.5 + 0.5 * math.sin(2 * math.pi * (now / period + phase))


def domain_stats(rt: DomainRuntime, now: float) -> DomainStats:
    """One sample of an active domain at ``now`` (Unix time)."""
    a, b, c, d, e, f, g, h = _traits(rt.uuid)
    _title, vcpus, memory_kib = rt.listed()
    vcpus = max(1, vcpus)
    uptime = max(0.0, now - (rt.started_wall or now))
    noise = _noise(rt.uuid, int(now))
    running = rt.state is DomainState.RUNNING
    # CPU: from an idle guest (~1 %) to one that keeps most of its vCPUs busy
    busy = a**2
    base = (1.0 + 95.0 * busy) * min(vcpus, 1 + round(3 * b))
    cpu = base * (0.55 + 0.6 * _wave(now, 20 + 50 * c, d)) + 4.0 * noise
    cpu = min(cpu, 100.0 * vcpus) if running else 0.0
    shares = [0.6 + 0.8 * _noise(rt.uuid + str(i), int(now)) for i in range(vcpus)]
    total = sum(shares)
    vcpu_percent = tuple(round(cpu * s / total, 2) for s in shares)
    # memory: part of what it was given, breathing a little
    memory = memory_kib * 1024
    rss = int(memory * (0.2 + 0.65 * c) * (1 + 0.03 * math.sin(now / 45 + 6 * d)))
    rss = min(rss, memory + (48 << 20))
    # disk and network: steady traffic plus bursts
    burst_disk = 1.0 + (8.0 if _noise(rt.uuid + "disk", int(now) // 4) > 0.75 else 0.0)
    burst_net = 1.0 + (6.0 if _noise(rt.uuid + "net", int(now) // 3) > 0.8 else 0.0)
    rd = (4096 + 2e6 * e**3) * (0.3 + _wave(now, 33 + 20 * f, a)) * burst_disk
    wr = (2048 + 1e6 * f**3) * (0.3 + _wave(now, 27 + 30 * e, b)) * burst_disk
    rx = (1024 + 3e6 * g**3) * (0.2 + _wave(now, 17 + 25 * h, c)) * burst_net
    tx = (512 + 1.5e6 * h**3) * (0.2 + _wave(now, 23 + 20 * g, e)) * burst_net
    if not running:
        rd = wr = rx = tx = 0.0
    mean = uptime if running else 0.0
    return DomainStats(
        name=rt.name,
        uuid=rt.uuid,
        wall=now,
        cpu_percent=round(cpu, 2),
        cpu_time_ns=int(base / 100 * uptime * 1e9),
        vcpu_percent=vcpu_percent,
        rss_bytes=rss,
        balloon_actual_kib=memory_kib,
        balloon_available_kib=int(memory_kib * (0.35 + 0.5 * (1 - c))),
        block_rd_bytes=int((4096 + 2e6 * e**3) * mean),
        block_wr_bytes=int((2048 + 1e6 * f**3) * mean),
        block_rd_ops=int((4096 + 2e6 * e**3) * mean / 16384),
        block_wr_ops=int((2048 + 1e6 * f**3) * mean / 16384),
        block_rd_rate=round(rd, 1),
        block_wr_rate=round(wr, 1),
        net_rx_bytes=int((1024 + 3e6 * g**3) * mean),
        net_tx_bytes=int((512 + 1.5e6 * h**3) * mean),
        net_rx_rate=round(rx, 1),
        net_tx_rate=round(tx, 1),
    )


def sample(runtimes: Iterable[DomainRuntime], now: float, cpus: int, memory: int) -> StatsSample:
    """The host and every active domain among ``runtimes`` at ``now``."""
    runtimes = list(runtimes)
    domains = tuple(domain_stats(rt, now) for rt in runtimes if rt.active)
    used = HOST_OVERHEAD + sum(d.rss_bytes for d in domains)
    cpu = 1.5 + 2.0 * _noise("host", int(now)) + sum(d.cpu_percent for d in domains) / cpus
    host = HostStats(
        wall=now,
        cpu_percent=round(min(100.0, cpu), 2),
        cpus=cpus,
        memory_total=memory,
        memory_used=min(memory, used),
        running=sum(1 for rt in runtimes if rt.state is DomainState.RUNNING),
    )
    return StatsSample(host=host, domains=domains)
