"""Live statistics of the real guest: an idle guest costs the host little CPU, a busy loop
in it shows within seconds; the same figures through a daemon."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from drivers.api import Connection
from drivers.model import DomainStats
from tests.e2e.helpers import guest_xml
from tests.e2e.test_console_embed import read_until, wait_line
from tests.guest import GuestImage

pytestmark = [pytest.mark.qemu, pytest.mark.guest]


async def cpu_of(conn: Connection, name: str, samples: int) -> list[DomainStats]:
    found: list[DomainStats] = []
    async for sample in conn.stats_stream(0.5):
        found += [d for d in sample.domains if d.name == name]
        if len(found) >= samples:
            return found
    raise AssertionError("the stats stream ended")


async def busy_then_idle(conn: Connection, guest: GuestImage, serial: Path, name: str) -> None:
    dom = await conn.define_xml(guest_xml(name, guest, serial))
    await dom.start()
    await wait_line(dom.console_log(follow=True), "VIRTDECK-GUEST-READY")
    await asyncio.sleep(1.0)  # the boot's last work settles
    idle = await cpu_of(conn, name, 4)
    print("idle CPU %:", [round(s.cpu_percent, 1) for s in idle])
    assert idle[-1].cpu_percent < 10
    assert idle[-1].rss_bytes > 50 << 20 and idle[-1].vcpu_percent
    async with await dom.console() as console:
        await console.write(b"sh (while :; do :; done) &\n")
        await read_until(console, b"VIRTDECK-DONE")
    started = time.monotonic()
    async for sample in conn.stats_stream(0.5):
        (mine,) = [d for d in sample.domains if d.name == name]
        if mine.cpu_percent > 50:
            break
        assert time.monotonic() - started < 3, f"CPU only {mine.cpu_percent:.0f} % after 3 s"
    print(f"busy CPU {mine.cpu_percent:.0f} % after {time.monotonic() - started:.1f} s")
    assert sample.host.running >= 1 and 0 <= sample.host.cpu_percent <= 100
    await dom.destroy()


async def test_stats_embed(conn: Connection, guest: GuestImage, short_tmp: Path) -> None:
    assert "stats" in conn.capabilities
    await busy_then_idle(conn, guest, short_tmp / "st1.sock", "st1")
