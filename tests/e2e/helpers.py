"""Helpers for end-to-end tests on real QEMU: domain XML for the test guest, booting it and
talking to its console, an event recorder."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path

from drivers.api import Connection, Domain, EventStream
from drivers.model import Event, LifecycleEvent, RebootEvent, state_words
from tests.guest import READY_RE, GuestImage, SerialConsole

UPTIME_RE = re.compile(r"^(?P<up>\d+\.\d+) ")


def guest_xml(
    name: str,
    image: GuestImage,
    serial_socket: Path,
    *,
    on_poweroff: str = "destroy",
    on_reboot: str = "restart",
    on_crash: str = "restart",
    uuid: str | None = None,
    display: bool = False,
) -> str:
    """The domain of libvirt-semantics.md §8: q35, 256 MiB, direct kernel boot, isa panic;
    with ``display``, a VGA card too (no VNC server: the screen is read with screendump)."""
    uuid_line = f"<uuid>{uuid}</uuid>" if uuid else ""
    video = "\n    <video><model type='vga'/></video>" if display else ""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  {uuid_line}
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{image.kernel}</kernel>
    <initrd>{image.initrd}</initrd>
    <cmdline>{image.cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>{on_poweroff}</on_poweroff>
  <on_reboot>{on_reboot}</on_reboot>
  <on_crash>{on_crash}</on_crash>
  <devices>
    <serial type='unix'>
      <source mode='bind' path='{serial_socket}'/>
      <target port='0'/>
    </serial>
    <panic model='isa'/>
    <memballoon model='none'/>{video}
  </devices>
</domain>"""


async def state_of(conn: Connection, name: str) -> str:
    """``domstate --reason`` of the domain ``name``: ``running (booted)``."""
    state, reason = await (await conn.lookup(name)).state()
    return state_words(state, reason)


async def boot_guest(
    conn: Connection, name: str, guest: GuestImage, serial: Path, display: bool = False
) -> Domain:
    """Define and start the test guest with its console on ``serial`` (and a VGA card with
    ``display``); returns once it is READY."""
    dom = await conn.define_xml(guest_xml(name, guest, serial, display=display))
    await dom.start()
    async with await SerialConsole.connect(serial) as console:
        await console.wait_for(READY_RE, timeout=60)
    return dom


async def guest_uptime(serial: Path) -> float:
    """The guest's /proc/uptime, asked on its console (it goes on across a migration)."""
    async with await SerialConsole.connect(serial) as console:
        await console.send("sh cat /proc/uptime")
        match = await console.wait_for(UPTIME_RE, timeout=10)
        await console.wait_for("VIRTDECK-DONE rc=0")
        return float(match["up"])


async def guest_answers(serial: Path) -> None:
    """The guest answers ``ping`` on its console."""
    async with await SerialConsole.connect(serial) as console:
        await console.send("ping")
        await console.wait_for("VIRTDECK-PONG", timeout=10)


def diskless_xml(name: str, memory_mib: int = 64, uuid: str | None = None) -> str:
    """A domain with no disk and no NIC: QEMU starts in ~40 ms; SeaBIOS finds nothing to boot."""
    uuid_line = f"<uuid>{uuid}</uuid>" if uuid else ""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  {uuid_line}
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <features><acpi/></features>
  <devices><memballoon model='none'/></devices>
</domain>"""


class EventRecorder:
    """Collects a connection's events in the background; tests wait on and inspect them."""

    def __init__(self, conn: Connection) -> None:
        self.stream: EventStream = conn.events()
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.stream:
            self.events.append(event)
            self._changed.set()

    def mark(self) -> int:
        """A position; later queries look only at events after it.

        Events already published but not yet read by the background task count as before.
        """
        self.events.extend(self.stream.pending())
        return len(self.events)

    def lifecycle(self, since: int = 0, domain: str | None = None) -> list[str]:
        return [
            e.words
            for e in self.events[since:]
            if isinstance(e, LifecycleEvent) and (domain is None or e.domain == domain)
        ]

    def reboots(self, since: int = 0) -> int:
        return sum(isinstance(e, RebootEvent) for e in self.events[since:])

    async def wait_for(
        self, predicate: Callable[[list[Event]], bool], timeout: float = 15.0, since: int = 0
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.events[since:]):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out; events so far: {[self._describe(e) for e in self.events[since:]]}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_lifecycle(self, words: list[str], since: int, timeout: float = 15.0) -> None:
        """Wait until the lifecycle events after ``since`` are exactly ``words``."""
        await self.wait_for(
            lambda evs: len([e for e in evs if isinstance(e, LifecycleEvent)]) >= len(words),
            timeout,
            since,
        )
        await asyncio.sleep(0.05)  # anything extra would show up now
        assert self.lifecycle(since) == words, self.lifecycle(since)

    @staticmethod
    def _describe(event: Event) -> str:
        if isinstance(event, LifecycleEvent):
            return f"{event.domain}: {event.words}"
        return f"{getattr(event, 'domain', '')}: {event.kind}"

    async def close(self) -> None:
        self.stream.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
