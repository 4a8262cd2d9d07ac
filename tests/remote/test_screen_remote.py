"""The guest's screen through a daemon: the session daemon (``virtdeck screenshot`` and
``send-key`` as processes) and over a real sshd (the pictures travel in the protocol's
byte frames inside the one SSH connection); a read-only client looks but cannot type."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image

import drivers
from drivers.errors import AccessDenied, NotSupported
from drivers.keys import text_events
from tests.conftest import require_qemu
from tests.e2e.helpers import boot_guest
from tests.e2e.test_screen_guest import assert_not_blank, wait_screen_text
from tests.guest import SerialConsole, require_guest
from tests.remote.conftest import Session, run_cli
from tests.remote.sshd import Sshd, daemon_command
from tests.remote.sshd import sshd_fixture as sshd_fixture  # the "sshd" fixture

pytestmark = [pytest.mark.qemu, pytest.mark.guest]


async def test_cli_screenshot_and_send_key_via_the_session_daemon(
    session: Session, short_tmp: Path
) -> None:
    require_qemu()
    guest = require_guest()
    serial = short_tmp / "rs1.sock"
    async with await drivers.open("qemu:///session") as conn:
        assert "screen" in conn.capabilities
        dom = await boot_guest(conn, "rs1", guest, serial, display=True)
        await wait_screen_text(conn, "rs1")
        target = short_tmp / "rs1.png"
        shot = await asyncio.to_thread(run_cli, session, "screenshot", "rs1", str(target))
        assert shot.returncode == 0, shot.stderr
        assert shot.stdout == f"Screenshot saved to {target}, with type of image/png\n\n"
        assert_not_blank(target.read_bytes(), 720, 400)
        # The daemon's private directory keeps nothing.
        assert not list((session.runtime / "run" / "rs1").glob("screen-*"))

        async with await SerialConsole.connect(serial) as console:
            console.mark()
            for word in ("KEY_P", "KEY_I", "KEY_N", "KEY_G", "KEY_ENTER"):
                sent = await asyncio.to_thread(run_cli, session, "send-key", "rs1", word)
                assert sent.returncode == 0, sent.stderr
            await console.wait_for("VIRTDECK-PONG", timeout=10)

        bad = await asyncio.to_thread(run_cli, session, "send-key", "rs1", "KEY_BOGUS")
        assert bad.returncode == 1
        assert "'KEY_BOGUS' is not a Linux key name" in bad.stderr
        assert "Valid keys: KEY_ESC" in bad.stderr
        await dom.destroy()


async def test_screen_over_ssh(session: Session, sshd: Sshd, short_tmp: Path) -> None:
    require_qemu()
    guest = require_guest()
    serial = short_tmp / "rs2.sock"
    uri = sshd.uri(daemon_command(session))
    async with await drivers.open(uri) as conn:
        assert "screen" in conn.capabilities
        dom = await boot_guest(conn, "rs2", guest, serial, display=True)
        png = await wait_screen_text(conn, "rs2")
        assert_not_blank(png, 720, 400)
        shot = await dom.screenshot()
        assert (shot.format, shot.width, shot.height) == ("png", 720, 400)
        assert Image.open(io.BytesIO(shot.data)).size == (720, 400)

        frames = await dom.screen_frames(fps=10, idle_fps=1)
        first = await asyncio.wait_for(anext(frames), 10)
        assert first.seq == 1 and first.width == 720
        async with await SerialConsole.connect(serial) as console:
            console.mark()
            await dom.send_input(text_events("ping\n"))
            await console.wait_for("VIRTDECK-PONG", timeout=10)
        changed = await asyncio.wait_for(anext(frames), 10)
        assert changed.seq > first.seq and changed.data != first.data
        await frames.aclose()  # type: ignore[attr-defined]

        # A read-only client of the same host looks at the screen but cannot type on it.
        async with await drivers.open(uri + "&ro=1" if "?" in uri else uri + "?ro=1") as ro:
            seen = await (await ro.lookup("rs2")).screenshot()
            assert seen.width == 720
            with pytest.raises(AccessDenied, match="typing on a domain's screen"):
                await (await ro.lookup("rs2")).send_input(text_events("x"))
        await dom.destroy()


async def test_no_display_over_the_daemon(session: Session, short_tmp: Path) -> None:
    require_qemu()
    guest = require_guest()
    async with await drivers.open("qemu:///session") as conn:
        dom = await boot_guest(conn, "rs3", guest, short_tmp / "rs3.sock")
        with pytest.raises(NotSupported, match=r"'rs3' has no display .*serial console"):
            await dom.screenshot()
        with pytest.raises(NotSupported, match="has no display"):
            await dom.screen_frames()
        shot = await asyncio.to_thread(run_cli, session, "screenshot", "rs3")
        assert shot.returncode == 1 and "has no display" in shot.stderr
        await dom.destroy()
