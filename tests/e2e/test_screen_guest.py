"""The guest's screen through the QEMU driver, on the real tiny guest with a VGA card.

``screenshot()`` is QMP screendump: a PNG of the guest's resolution (VGA text mode, 720x400)
that is not blank; the file QEMU wrote is gone afterwards. ``send_input`` types on the
guest's keyboard: the guest reads tty1 (the VGA console) and answers on its serial line.
The frame stream sends the first picture at once and then only changed ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import time
from pathlib import Path

import pytest
from PIL import Image

from drivers.api import Connection
from drivers.errors import NotSupported, OperationInvalid
from drivers.keys import QCODES, key_combo, text_events
from drivers.model import Screenshot
from tests.e2e.helpers import boot_guest, guest_xml
from tests.guest import GuestImage, SerialConsole

pytestmark = [pytest.mark.qemu, pytest.mark.guest]


def assert_not_blank(png: bytes, width: int, height: int) -> None:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == (width, height)
    colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 1, "the screen is one colour"


async def wait_screen_text(conn: Connection, name: str, timeout: float = 20) -> bytes:
    """A screenshot once the guest's VGA console shows something (it boots quietly)."""
    dom = await conn.lookup(name)
    deadline = time.monotonic() + timeout
    while True:
        shot = await dom.screenshot()
        colours = Image.open(io.BytesIO(shot.data)).convert("RGB").getcolors(1 << 16)
        if colours is not None and len(colours) > 1:
            return shot.data
        if time.monotonic() > deadline:
            raise AssertionError("the guest's screen stayed blank")
        await asyncio.sleep(0.2)


async def test_screenshot_and_send_keys(
    conn: Connection, guest: GuestImage, embed_root: Path, short_tmp: Path
) -> None:
    serial = short_tmp / "scr1.sock"
    dom = await boot_guest(conn, "scr1", guest, serial, display=True)
    assert "screen" in conn.capabilities
    shot = await dom.screenshot()
    assert (shot.format, shot.width, shot.height) == ("png", 720, 400)
    assert shot.mime == "image/png"
    png = await wait_screen_text(conn, "scr1")
    assert_not_blank(png, 720, 400)
    # QEMU wrote the picture in the domain's private run directory; nothing is left there.
    run_dir = embed_root / "run" / "scr1"
    assert not list(run_dir.glob("screen-*"))
    assert oct(run_dir.stat().st_mode & 0o777) == "0o700"
    ppm = await dom.screenshot("ppm")
    assert ppm.data.startswith(b"P6") and (ppm.width, ppm.height) == (720, 400)

    # Keys typed on the guest's keyboard reach tty1; the answer comes on the serial line.
    async with await SerialConsole.connect(serial) as console:
        console.mark()
        started = time.monotonic()
        await dom.send_input(text_events("ping\n"))
        await console.wait_for("VIRTDECK-PONG", timeout=10)
        typed_ms = (time.monotonic() - started) * 1000
        console.mark()
        # Upper case and shifted symbols: the guest echoes what the shell ran.
        await dom.send_input(text_events("sh echo Hi_THERE!\n"))
        await console.wait_for(r"^Hi_THERE!$", timeout=10)
        await console.wait_for("VIRTDECK-DONE rc=0", timeout=10)
        # A combination with a hold time (virsh send-key --holdtime): shift+a then enter
        # types "A"; the guest does not know the command.
        await dom.send_input(key_combo(["shift", "a"], hold_ms=50) + key_combo(["ret"]))
        await console.wait_for("VIRTDECK-UNKNOWN A", timeout=10)
    assert typed_ms < 5000

    # What was typed shows on the VGA console: the screen changed.
    after = await dom.screenshot()
    assert after.data != png


async def test_frame_stream_sends_changed_frames(
    conn: Connection, guest: GuestImage, short_tmp: Path
) -> None:
    dom = await boot_guest(conn, "scr2", guest, short_tmp / "scr2.sock", display=True)
    await wait_screen_text(conn, "scr2")
    frames = await dom.screen_frames(fps=20, idle_fps=1)
    seen: list[Screenshot] = []

    async def collect() -> None:
        async for frame in frames:
            seen.append(frame)

    async def count_reaches(n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(seen) < n:
            assert time.monotonic() < deadline, f"{len(seen)} frames, not {n}"
            await asyncio.sleep(0.02)

    task = asyncio.create_task(collect())
    try:
        await count_reaches(1, 10)
        assert seen[0].seq == 1 and (seen[0].width, seen[0].height) == (720, 400)
        # Nothing changes on an idle guest but its blinking cursor: at most about one
        # frame a second (the idle rate), not the 20 a second of a changing screen.
        await asyncio.sleep(2.0)
        idle = len(seen) - 1
        assert idle <= 3, f"{idle} frames in 2 s of an idle screen"
        await dom.send_input(text_events("xyz"))
        await count_reaches(idle + 2, 5)
        assert [f.seq for f in seen] == list(range(1, len(seen) + 1))
        assert all(a.data != b.data for a, b in itertools.pairwise(seen)), (
            "a frame was sent twice unchanged"
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_no_display_and_not_running(
    conn: Connection, guest: GuestImage, short_tmp: Path
) -> None:
    dom = await conn.define_xml(guest_xml("plain", guest, short_tmp / "plain.sock"))
    with pytest.raises(OperationInvalid, match="not running"):
        await dom.screenshot()
    await dom.start()
    with pytest.raises(NotSupported, match=r"has no display .*serial console"):
        await dom.screenshot()
    with pytest.raises(NotSupported, match="has no display"):
        await dom.send_input(text_events("x"))
    with pytest.raises(NotSupported, match="has no display"):
        await dom.screen_frames()


async def test_qcodes_match_qemu(conn: Connection, short_tmp: Path) -> None:
    """Our key names are exactly QEMU's QKeyCode enum, as this QEMU's schema says."""
    from tests.e2e.helpers import diskless_xml

    dom = await conn.define_xml(diskless_xml("schema"))
    await dom.start(paused=True)
    registry = conn.registry  # type: ignore[attr-defined]
    backend = registry.get("schema").backend
    schema = await backend.execute("query-qmp-schema")
    enums = [e for e in schema if e.get("meta-type") == "enum" and "ctrl_r" in e["values"]]
    assert len(enums) == 1
    assert tuple(v for v in enums[0]["values"] if v != "unmapped") == QCODES
    await dom.destroy()
