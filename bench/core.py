"""Core driver benchmarks: event latency and start time, side by side with libvirt.

    python -m bench.core [--iterations N]

Prints medians and p99 for
  * QMP ``stop``/``cont`` issued → LifecycleEvent delivered to a subscriber (target p50 < 2 ms),
  * ``start()`` of a diskless domain → ``running`` (target < 150 ms),
and the same start measured with ``virsh start`` on a libvirtd this script brings up
(bench/libvirt_peer.py), alternating with ours in the same run, with the ratio.
:func:`collect` returns the figures as rows for ``python -m bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from pathlib import Path

import drivers
from bench.common import DISKLESS
from bench.libvirt_peer import LibvirtPeer, PeerUnavailable
from bench.results import Figure, Report, Row
from drivers.qemu.driver import QemuConnection


def show(label: str, fig: Figure | None, target: str = "") -> None:
    if fig is None:
        print(f"{label:<44} not measured")
        return
    print(f"{label:<44} median {fig.median:8.3f} ms   p99 {fig.p99:8.3f} ms   n={fig.n}   {target}")


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


def peer_start_once(peer: LibvirtPeer, name: str) -> float:
    t0 = time.perf_counter()
    peer.virsh("start", name)
    elapsed = (time.perf_counter() - t0) * 1000
    peer.virsh("destroy", name)
    return elapsed


async def measure(
    iterations: int, starts: int, report: Report, peer: LibvirtPeer | None
) -> tuple[list[float], list[float], list[float], list[float]]:
    """(stop → event, cont → event, start(), virsh start), ms; the two starts alternate."""
    root = Path(tempfile.mkdtemp(prefix="vdbench-", dir="/tmp"))
    conn = await drivers.open(f"qemu:///embed?root={root}")
    assert isinstance(conn, QemuConnection)
    peer_times: list[float] = []
    try:
        stops, conts = await event_latency(conn, iterations)
        dom = await conn.define_xml(DISKLESS.format(name="bench-start"))
        name = ""
        if peer is not None:
            name = f"{peer.prefix}start"
            peer.define(name, DISKLESS.format(name=name))
            peer_start_once(peer, name)  # the first start pays for libvirt's capability probe
        times: list[float] = []
        for _ in range(starts):
            t0 = time.perf_counter()
            await dom.start()
            times.append((time.perf_counter() - t0) * 1000)
            await dom.destroy()
            if peer is not None:
                peer_times.append(await asyncio.to_thread(peer_start_once, peer, name))
        await dom.undefine()
    finally:
        await conn.close()
        shutil.rmtree(root, ignore_errors=True)
    return stops, conts, times, peer_times


def collect(
    quick: bool = False, iterations: int | None = None, starts: int | None = None
) -> Report:
    """Event latency and start time; virsh start alternating with ours when libvirtd is up."""
    iterations = iterations or (20 if quick else 200)
    starts = starts or (5 if quick else 20)
    report = Report("core")
    with contextlib.ExitStack() as stack:
        peer: LibvirtPeer | None = None
        try:
            peer = stack.enter_context(LibvirtPeer())
        except PeerUnavailable as err:
            report.notes.append(f"core: libvirtd could not be brought up here: {err}")
        stops, conts, times, peer_times = asyncio.run(measure(iterations, starts, report, peer))
    for label, values in (
        ("QMP stop issued → Suspended event delivered", stops),
        ("QMP cont issued → Resumed event delivered", conts),
    ):
        fig = Figure.of(values)
        report.add(Row(label, "ms", fig, target="p50 < 2 ms", passed=bool(fig and fig.median < 2)))
    fig = Figure.of(times)
    report.add(
        Row(
            "start() → running (API)",
            "ms",
            fig,
            Figure.of(peer_times),
            "virsh start",
            "< 150 ms",
            bool(fig and fig.median < 150),
        )
    )
    report.notes.append(
        f"core: {iterations} stop/cont pairs, {starts} starts"
        + (" (quick: fewer than a full run)" if quick else "")
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--starts", type=int, default=20)
    args = parser.parse_args()
    report = collect(iterations=args.iterations, starts=args.starts)
    print("virtdeck core benchmarks (QEMU TCG, diskless q35 domain, 64 MiB)")
    for row in report.rows:
        show(row.metric, row.ours, row.target)
        if row.peer is not None:
            show(row.peer_name + " (libvirtd, same domain, alternating)", row.peer)
            print(f"ratio start() / virsh start: {row.ratio:.2f}")
    for note in report.notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
