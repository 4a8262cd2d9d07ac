"""The serial console of the real guest through the QEMU driver: its log is kept from the
first byte of boot with nobody attached, and it can be attached to (one writer at a time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import drivers
from drivers.api import Connection, ConsoleStream
from drivers.errors import DomainBusy
from drivers.model import ConsoleLine
from tests.e2e.helpers import guest_xml
from tests.guest import GuestImage

pytestmark = [pytest.mark.qemu, pytest.mark.guest]


async def wait_line(
    lines: AsyncIterator[ConsoleLine], needle: str, timeout: float = 60
) -> ConsoleLine:
    async def scan() -> ConsoleLine:
        async for line in lines:
            if needle in line.text:
                return line
        raise AssertionError(f"the log ended without {needle!r}")

    return await asyncio.wait_for(scan(), timeout)


async def read_until(stream: ConsoleStream, needle: bytes, timeout: float = 10) -> bytes:
    seen = b""

    async def scan() -> bytes:
        nonlocal seen
        while needle not in seen:
            data = await stream.read()
            if not data:
                raise AssertionError(f"console ended ({stream.ended}) before {needle!r}: {seen!r}")
            seen += data
        return seen

    return await asyncio.wait_for(scan(), timeout)


async def test_console_log_and_attach(
    conn: Connection, guest: GuestImage, embed_root: Path, short_tmp: Path
) -> None:
    dom = await conn.define_xml(guest_xml("con1", guest, short_tmp / "con1.sock"))
    started = time.time()
    await dom.start()
    # Nobody is attached during boot, yet the log has it all, from the first byte.
    ready = await wait_line(dom.console_log(follow=True), "VIRTDECK-GUEST-READY")
    assert ready.exact and started - 1 < ready.wall < time.time() + 1
    history = [line.text async for line in dom.console_log()]
    assert any("VIRTDECK-GUEST-READY" in text for text in history)

    async with await dom.console() as console:
        await console.write(b"ping\n")
        await read_until(console, b"VIRTDECK-PONG")
        with pytest.raises(DomainBusy, match="--force"):
            await dom.console()
        async with await dom.console(force=True) as taken:
            assert await console.read() == b""
            assert console.ended is not None and "took the console over" in console.ended
            await taken.write(b"ping\n")
            await read_until(taken, b"VIRTDECK-PONG")
    await asyncio.sleep(0.3)  # the log notes lines within a poll (0.1 s)
    since = time.time()
    await asyncio.sleep(0.3)
    assert [line async for line in dom.console_log(since=since)] == []

    # A new driver (a daemon restart) still has the log, with the times it noted.
    await conn.close()
    again = await drivers.open(f"qemu:///embed?root={embed_root}")
    try:
        kept = [line async for line in (await again.lookup("con1")).console_log()]
        pongs = [line for line in kept if line.text == "VIRTDECK-PONG"]
        assert len(pongs) == 2 and all(line.exact for line in pongs)
        assert any(abs(line.wall - ready.wall) < 1e-3 and "READY" in line.text for line in kept)
        await (await again.lookup("con1")).destroy()
    finally:
        await again.close()
