"""What the libvirt driver adds over libvirt-python alone, measured in the same run.

    python -m bench.libvirt_driver [--calls N] [--events N] [--uri URI]

Brings up libvirtd (bench/libvirt_peer.py; or uses ``--uri``, e.g. ``test:///default`` for
libvirt's in-process test driver), defines and starts a diskless domain, then:

- **calls**: each API call through the driver (``await dom.state()``: a worker thread, the
  error mapping, typed values back) against the same libvirt-python call made directly,
  blocking, on the same connection. Target: < 2 ms added per call.
- **events**: a lifecycle event from the moment libvirt-python hands it to a callback
  (one registered on the driver's own connection before the driver's, so both see the same
  dispatch) to the moment a consumer of ``conn.events()`` has the LifecycleEvent. The events
  come from suspend/resume made on a second, plain libvirt connection. Target: < 1 ms added
  per event.

Prints medians, p90 and the added time per operation, and exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import DISKLESS, pct
from bench.libvirt_peer import LibvirtPeer, PeerUnavailable

NAME = "vdbench-lvdrv"
CALL_TARGET_MS = 2.0
EVENT_TARGET_MS = 1.0


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values):7.3f} ms  p90 {pct(values, 0.9):7.3f} ms"


async def _time_async(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    found = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        found.append((time.perf_counter() - t0) * 1000)
    return found


def _time_sync(call: Callable[[], object], n: int) -> list[float]:
    found = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        found.append((time.perf_counter() - t0) * 1000)
    return found


async def measure(target: str, calls: int, events: int) -> bool:
    import libvirt

    from drivers.libvirt.driver import WORKERS, LibvirtConnection
    from drivers.libvirt.loop import bind
    from drivers.model import LifecycleEvent

    impl = bind()
    raw = libvirt.open(target)
    # The driver's connection, built around a handle on which the bench's own callback is
    # registered first: libvirt dispatches to callbacks in the order they were registered.
    raw_arrivals: list[float] = []

    def raw_callback(*_args: Any) -> None:
        raw_arrivals.append(time.perf_counter())

    # (filtered on the domain: libvirt refuses a second all-domains callback of one kind)
    plain = raw.defineXML(DISKLESS.format(name=NAME))
    plain.create()
    raw_id = raw.domainEventRegisterAny(
        plain, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, raw_callback, None
    )
    executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="libvirt-bench")
    conn = LibvirtConnection(f"libvirt:{target}", target, raw, executor, impl, False)
    await conn._watch()
    trigger = libvirt.open(target)
    ok = True
    try:
        dom = await conn.lookup(NAME)

        print(f"libvirt {target}: {calls} calls each, {events} events")
        print("\ncalls (through the driver vs libvirt-python, blocking, same connection)")
        for label, ours, theirs in (
            ("state()", dom.state, plain.state),
            ("info()", dom.info, lambda: (plain.state(), plain.info())),
            ("xml()", dom.xml, lambda: plain.XMLDesc(0)),
            ("lookup(name)", lambda: conn.lookup(NAME), lambda: raw.lookupByName(NAME)),
        ):
            await _time_async(ours, 10)  # warm up both
            _time_sync(theirs, 10)
            a = await _time_async(ours, calls)
            b = _time_sync(theirs, calls)
            added = statistics.median(a) - statistics.median(b)
            ratio = statistics.median(a) / statistics.median(b)
            verdict = "ok" if added < CALL_TARGET_MS else "MISSED"
            print(f"  {label:13} driver {_ms(a)}")
            print(f"  {'':13} libvirt {_ms(b)}")
            print(f"  {'':13} added {added:+.3f} ms per call, ratio {ratio:.2f}  [{verdict}]")
            ok &= added < CALL_TARGET_MS

        print("\nevents (libvirt-python callback → LifecycleEvent read from conn.events())")
        stream = conn.events()
        ours_at: list[float] = []
        done = asyncio.Event()

        async def consume() -> None:
            async for event in stream:
                if isinstance(event, LifecycleEvent) and event.domain == NAME:
                    ours_at.append(time.perf_counter())
                    if len(ours_at) >= events:
                        done.set()
                        return

        consumer = asyncio.create_task(consume())
        raw_arrivals.clear()
        target_dom = trigger.lookupByName(NAME)

        def flip() -> None:
            for i in range(events):
                (target_dom.suspend if i % 2 == 0 else target_dom.resume)()
                time.sleep(0.005)  # one event in flight at a time

        await asyncio.gather(asyncio.to_thread(flip), asyncio.wait_for(done.wait(), 120))
        consumer.cancel()
        stream.close()
        added_events = [(o - r) * 1000 for o, r in zip(ours_at, raw_arrivals, strict=False)]
        median = statistics.median(added_events)
        verdict = "ok" if median < EVENT_TARGET_MS else "MISSED"
        print(f"  added {_ms(added_events)} per event over {len(added_events)}  [{verdict}]")
        ok &= median < EVENT_TARGET_MS
        assert threading.current_thread() is threading.main_thread()
    finally:
        try:
            for handle in (raw.lookupByName(NAME),):
                if handle.isActive():
                    handle.destroy()
                handle.undefine()
        except libvirt.libvirtError:
            pass
        raw.domainEventDeregisterAny(raw_id)
        await conn.close()
        trigger.close()
    print("\nall targets met" if ok else "\na target was missed")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument(
        "--uri", default=None, help="a libvirt URI to use instead of bringing libvirtd up"
    )
    options = parser.parse_args()
    if options.uri:
        sys.exit(0 if asyncio.run(measure(options.uri, options.calls, options.events)) else 1)
    try:
        with LibvirtPeer() as peer:
            ok = asyncio.run(measure(peer.uri, options.calls, options.events))
    except PeerUnavailable as err:
        print(f"libvirtd is unavailable here: {err}")
        sys.exit(2)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
