"""kill -9 QEMU at random moments: mid-start, while running or paused, mid-destroy and in
the middle of a fake reboot of the real guest.

Every API call returns within a bound (a hang fails the test), a start that loses its
QEMU fails with a clear error and leaves the domain ``shut off (failed)``; a domain whose
QEMU dies afterwards reads ``shut off (crashed)`` with ``Stopped Failed``, as libvirt
(libvirt-semantics.md §3.6 rows 5 and 20, §8 g.kill9). No QEMU process is left behind.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from pathlib import Path

import pytest

from drivers.api import Connection
from drivers.errors import VirtError
from tests.chaos.helpers import bounded, kill_qemus, qemu_pids
from tests.e2e.helpers import EventRecorder, diskless_xml, guest_xml, state_of
from tests.guest import READY_RE, SerialConsole, require_guest

pytestmark = pytest.mark.qemu

BOUND = 20.0
MID_START_ROUNDS = 12
REBOOT_ROUNDS = 2


async def kill_when_up(u: str, delay: float) -> int | None:
    """SIGKILL the QEMU of ``u`` ``delay`` s after it appears; its pid, or None if it
    never appeared within a few seconds."""
    deadline = time.monotonic() + 5
    while not (pids := qemu_pids([u])[u]):
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.001)
    await asyncio.sleep(delay)
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


async def wait_stopped(recorder: EventRecorder, since: int, name: str) -> None:
    def stopped(events: object) -> bool:
        return any(w.startswith("Stopped") for w in recorder.lifecycle(since, name))

    await recorder.wait_for(stopped, since=since)


async def gone(u: str) -> None:
    deadline = time.monotonic() + 5
    while qemu_pids([u])[u]:
        assert time.monotonic() < deadline, f"QEMU of {u} still there"
        await asyncio.sleep(0.01)


async def test_kill_mid_start_and_while_running(conn: Connection) -> None:
    rng = random.Random(1313)
    recorder = EventRecorder(conn)
    uuids: list[str] = []
    outcomes: dict[str, int] = {}
    errors: list[str] = []
    try:
        for i in range(MID_START_ROUNDS):
            u = str(uuid.UUID(int=rng.getrandbits(128)))
            uuids.append(u)
            name = f"k{i}"
            dom = await conn.define_xml(diskless_xml(name, memory_mib=32, uuid=u))
            mark = recorder.mark()
            killer = asyncio.create_task(kill_when_up(u, rng.uniform(0, 0.1)))
            try:
                await bounded(f"start of {name}", dom.start(), BOUND)
                started, error = True, ""
            except VirtError as err:
                started = False
                error = str(err)
                assert name in error and error.endswith("."), err
            assert await bounded("the killer", killer, BOUND) is not None
            await gone(u)
            await wait_stopped(recorder, mark, name)
            words = await state_of(conn, name)
            events = recorder.lifecycle(mark, name)
            if started:
                # QEMU went after the start finished: a crash, as libvirt says it
                assert words == "shut off (crashed)", (name, words, events)
                assert events[-3:] == ["Resumed Unpaused", "Started Booted", "Stopped Failed"]
            else:
                # the start failed, and said so: libvirt's startup failure (row 5); if
                # the guest had begun to run (RESUME came), its end reads as a crash
                ran = "Resumed Unpaused" in events
                assert words == ("shut off (crashed)" if ran else "shut off (failed)"), (
                    name,
                    words,
                    events,
                )
                assert events[-1:] == ["Stopped Failed"], events
                assert "Started Booted" not in events
            outcomes[words] = outcomes.get(words, 0) + 1
            errors.append(error)
            # and it starts again, once
            await bounded(f"restart of {name}", dom.start(), BOUND)
            assert len(qemu_pids([u])[u]) == 1
            if rng.random() < 0.5:
                await bounded("suspend", dom.suspend(), BOUND)
            mark = recorder.mark()
            if rng.random() < 0.5:
                # killed in the middle of a destroy: the destroy still succeeds
                destroy = asyncio.create_task(dom.destroy())
                await asyncio.sleep(rng.uniform(0, 0.02))
                kill_qemus([u])
                try:
                    await bounded("destroy", destroy, BOUND)
                except VirtError as err:
                    assert "not running" in str(err), err
                assert await state_of(conn, name) in ("shut off (destroyed)", "shut off (crashed)")
            else:
                kill_qemus([u])
                await recorder.wait_lifecycle(["Stopped Failed"], since=mark)
                assert await state_of(conn, name) == "shut off (crashed)"
            await gone(u)
        print("mid-start kills:", outcomes, *sorted(set(filter(None, errors))), sep="\n")
    finally:
        await recorder.close()
        kill_qemus(uuids)
    assert not any(qemu_pids(uuids).values())


async def test_kill_mid_fake_reboot(conn: Connection, short_tmp: Path) -> None:
    image = require_guest()
    rng = random.Random(7)
    serial = short_tmp / "g.sock"
    u = "0c0ffee0-0000-4000-8000-000000000013"
    dom = await conn.define_xml(guest_xml("g", image, serial, uuid=u))
    recorder = EventRecorder(conn)
    try:
        for _ in range(REBOOT_ROUNDS):
            await bounded("start", dom.start(), BOUND)
            async with await SerialConsole.connect(serial) as console:
                await console.wait_for(READY_RE, timeout=60)
                mark = recorder.mark()
                # reboot: ACPI power button → guest shutdown → system_reset + cont
                await bounded("reboot", dom.reboot(), BOUND)
                await asyncio.sleep(rng.uniform(0.0, 0.08))
                assert kill_qemus([u])
            await wait_stopped(recorder, mark, "g")
            assert await state_of(conn, "g") == "shut off (crashed)"
            assert qemu_pids([u])[u] == []
            # every call answers at once, with a clear sentence where it cannot work
            for call in (dom.suspend, dom.resume, dom.reboot, dom.destroy):
                with pytest.raises(VirtError, match=r"not running|is shut off"):
                    await bounded(call.__name__, call(), 5)
    finally:
        await recorder.close()
        kill_qemus([u])
