"""The real guest through qemu:///embed, step by step against libvirtd 9.0's observed results.

libvirt-semantics.md §8 is the ground truth: each step checks ``dom.state()`` and the exact
lifecycle events (count-insensitive for reboot events, which vary with the firmware).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from drivers.api import Connection, Domain
from drivers.model import DomainState, RunningReason, state_words
from tests.e2e.helpers import EventRecorder, guest_xml
from tests.guest import READY_RE, GuestImage, SerialConsole

pytestmark = [pytest.mark.guest, pytest.mark.qemu]


async def words(dom: Domain) -> str:
    state, reason = await dom.state()
    return state_words(state, reason)


async def start_and_boot(dom: Domain, rec: EventRecorder, serial_path: Path) -> SerialConsole:
    mark = rec.mark()
    await dom.start()
    assert await words(dom) == "running (booted)"
    await rec.wait_lifecycle(["Resumed Unpaused", "Started Booted"], mark)
    console = await SerialConsole.connect(serial_path)
    await console.wait_for(READY_RE, timeout=30)
    return console


async def test_lifecycle_matches_libvirt(
    conn: Connection, guest: GuestImage, short_tmp: Path
) -> None:
    serial = short_tmp / "g1.sock"
    rec = EventRecorder(conn)
    mark = rec.mark()
    dom = await conn.define_xml(guest_xml("g1", guest, serial))
    assert await words(dom) == "shut off (unknown)"
    await rec.wait_lifecycle(["Defined Added"], mark)

    # 1. start
    console = await start_and_boot(dom, rec, serial)

    # 2. suspend / resume
    mark = rec.mark()
    await dom.suspend()
    assert await words(dom) == "paused (user)"
    await rec.wait_lifecycle(["Suspended Paused"], mark)
    mark = rec.mark()
    await dom.resume()
    assert await words(dom) == "running (unpaused)"
    await rec.wait_lifecycle(["Resumed Unpaused"], mark)
    await console.send("ping")
    await console.wait_for("VIRTDECK-PONG")

    # 3. reboot: ACPI power button, then the fake reboot; never shut off, reason kept
    mark = rec.mark()
    seen: set[str] = set()
    await dom.reboot()
    reboot_started = time.monotonic()
    ready = asyncio.create_task(console.wait_for(READY_RE, timeout=30))
    while not ready.done():
        seen.add(await words(dom))
        await asyncio.sleep(0.005)
    await ready
    assert seen == {"running (unpaused)"}, seen
    assert await words(dom) == "running (unpaused)"
    await rec.wait_for(lambda evs: rec.reboots(mark) >= 2, since=mark)
    assert rec.lifecycle(mark) == []
    assert time.monotonic() - reboot_started < 20
    await console.close()

    # 5. shutdown (ACPI): guest powers off, QEMU is terminated
    mark = rec.mark()
    await dom.shutdown()
    await rec.wait_lifecycle(["Shutdown Finished after guest request", "Stopped Shutdown"], mark)
    assert await words(dom) == "shut off (shutdown)"

    # 5. destroy
    console = await start_and_boot(dom, rec, serial)
    await console.close()
    mark = rec.mark()
    await dom.destroy()
    assert await words(dom) == "shut off (destroyed)"
    await rec.wait_lifecycle(["Shutdown Finished after host request", "Stopped Destroyed"], mark)

    # 5. kill -9 of QEMU → Stopped Failed within 200 ms
    console = await start_and_boot(dom, rec, serial)
    await console.close()
    pid = await _pid(conn, "g1")
    mark = rec.mark()
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    await rec.wait_for(lambda evs: rec.lifecycle(mark) == ["Stopped Failed"], 2.0, mark)
    latency = time.monotonic() - killed
    assert latency < 0.2, f"Stopped Failed after {latency * 1000:.0f} ms"
    assert await words(dom) == "shut off (crashed)"

    # 5. guest-initiated reboot: two (or more) reboot events, still running (booted)
    console = await start_and_boot(dom, rec, serial)
    mark = rec.mark()
    await console.send("reboot")
    await console.wait_for(READY_RE, timeout=30)
    await rec.wait_for(lambda evs: rec.reboots(mark) >= 2, since=mark)
    assert rec.lifecycle(mark) == []
    assert await words(dom) == "running (booted)"
    await console.close()

    # undefine a running domain: it becomes transient and disappears once stopped
    mark = rec.mark()
    await dom.undefine()
    await rec.wait_lifecycle(["Undefined Removed"], mark)
    assert await words(dom) == "running (booted)"
    await dom.destroy()
    assert [d.name for d in await conn.list_domains()] == []
    await rec.close()


async def _pid(conn: Connection, name: str) -> int:
    from drivers.qemu.driver import QemuConnection

    assert isinstance(conn, QemuConnection)
    backend = conn.registry.get(name).backend
    assert backend is not None and backend.pid is not None
    return backend.pid


async def test_panic_actions_match_libvirt(
    conn: Connection, guest: GuestImage, short_tmp: Path
) -> None:
    serial = short_tmp / "g2.sock"
    rec = EventRecorder(conn)
    dom = await conn.define_xml(guest_xml("g2", guest, serial, on_crash="restart"))
    uuid = dom.uuid

    # 4. on_crash=restart → Crashed Panicked, Resumed Unpaused, then running (crashed) —
    #    the seed case of libvirt commit e47949357b
    console = await start_and_boot(dom, rec, serial)
    mark = rec.mark()
    await console.send("panic")
    await rec.wait_lifecycle(["Crashed Panicked", "Resumed Unpaused"], mark)
    await console.wait_for(READY_RE, timeout=30)
    assert await words(dom) == "running (crashed)"
    assert (await dom.state())[1] is RunningReason.CRASHED
    assert rec.reboots(mark) >= 1
    await console.close()
    await dom.destroy()

    # on_crash=destroy → Crashed Panicked, Stopped Crashed, shut off (crashed)
    mark = rec.mark()
    await conn.define_xml(guest_xml("g2", guest, serial, on_crash="destroy", uuid=uuid))
    await rec.wait_lifecycle(["Defined Updated"], mark)
    console = await start_and_boot(dom, rec, serial)
    mark = rec.mark()
    await console.send("panic")
    await rec.wait_lifecycle(["Crashed Panicked", "Stopped Crashed"], mark)
    assert await words(dom) == "shut off (crashed)"
    await console.close()

    # on_crash=preserve → Crashed Panicked only, crashed (panicked)
    await conn.define_xml(guest_xml("g2", guest, serial, on_crash="preserve", uuid=uuid))
    console = await start_and_boot(dom, rec, serial)
    mark = rec.mark()
    await console.send("panic")
    await rec.wait_lifecycle(["Crashed Panicked"], mark)
    assert await words(dom) == "crashed (panicked)"
    await console.close()
    mark = rec.mark()
    await dom.destroy()
    await rec.wait_lifecycle(["Shutdown Finished after host request", "Stopped Destroyed"], mark)
    assert await words(dom) == "shut off (destroyed)"
    state, _ = await dom.state()
    assert state is DomainState.SHUTOFF
    await rec.close()
