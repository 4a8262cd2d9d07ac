"""Core driver benchmarks: event latency and start time, side by side with libvirt.

    python -m bench.core [--iterations N]

Prints medians and p99 for
  * QMP ``stop``/``cont`` issued → LifecycleEvent delivered to a subscriber (target p50 < 2 ms),
  * ``start()`` of a diskless domain → ``running`` (target < 150 ms),
and the same start measured with ``virsh start`` on a libvirtd this script brings up
(bench/libvirt_peer.py), in the same run, with the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import drivers
from bench.common import DISKLESS, pct
from drivers.qemu.driver import QemuConnection


def show(label: str, values_ms: list[float], target: str = "") -> None:
    print(
        f"{label:<44} median {statistics.median(values_ms):8.3f} ms   "
        f"p99 {pct(values_ms, 0.99):8.3f} ms   n={len(values_ms)}   {target}"
    )


async def event_latency(conn: QemuConnection, iterations: int) -> tuple[list[float], list[float]]:
    dom = await conn.define_xml(DISKLESS.format(name="bench-events"))
    await dom.start()
    backend = conn.registry.get("bench-events").backend
    assert backend is not None
    stream = conn.events()
    stops: list[float] = []
    conts: list[float] = []
    for _ in range(iterations):
        for command, sink in (("stop", stops), ("cont", conts)):
            t0 = time.perf_counter()
            reply = asyncio.create_task(backend.execute(command))
            await stream.get(timeout=5)
            sink.append((time.perf_counter() - t0) * 1000)
            await reply
    stream.close()
    await dom.destroy()
    await dom.undefine()
    return stops, conts


async def start_time(conn: QemuConnection, iterations: int) -> list[float]:
    dom = await conn.define_xml(DISKLESS.format(name="bench-start"))
    times: list[float] = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        await dom.start()
        times.append((time.perf_counter() - t0) * 1000)
        await dom.destroy()
    await dom.undefine()
    return times


def virsh_start_times(iterations: int) -> list[float] | None:
    """``virsh start`` of the same domain on a libvirtd this script brings up and stops."""
    from bench.libvirt_peer import LibvirtPeer, PeerUnavailable

    try:
        with LibvirtPeer() as peer:
            name = f"{peer.prefix}start"
            peer.define(name, DISKLESS.format(name=name))
            peer.virsh("start", name)  # the first start pays for libvirt's capability probe
            peer.virsh("destroy", name)
            times = []
            for _ in range(iterations):
                t0 = time.perf_counter()
                peer.virsh("start", name)
                times.append((time.perf_counter() - t0) * 1000)
                peer.virsh("destroy", name)
            return times
    except PeerUnavailable as err:
        print(f"libvirtd could not be brought up here: {err}")
        return None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--starts", type=int, default=20)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vdbench-", dir="/tmp"))
    conn = await drivers.open(f"qemu:///embed?root={root}")
    assert isinstance(conn, QemuConnection)
    try:
        stops, conts = await event_latency(conn, args.iterations)
        starts = await start_time(conn, args.starts)
    finally:
        await conn.close()
        shutil.rmtree(root, ignore_errors=True)
    print("virtdeck core benchmarks (QEMU TCG, diskless q35 domain, 64 MiB)")
    show("QMP stop issued → Suspended event delivered", stops, "target p50 < 2 ms")
    show("QMP cont issued → Resumed event delivered", conts, "target p50 < 2 ms")
    show("start() → running", starts, "target < 150 ms")
    peer = virsh_start_times(args.starts)
    if peer is None:
        print(
            "libvirtd: unavailable; reference on this machine kind "
            "(machine-facts.md §10): virsh start 337 ms median (313-372)"
        )
        print(
            f"ratio start() / virsh start (reference 337 ms): {statistics.median(starts) / 337:.2f}"
        )
    else:
        show("virsh start (libvirtd, same domain)", peer)
        ratio = statistics.median(starts) / statistics.median(peer)
        print(f"ratio start() / virsh start: {ratio:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
