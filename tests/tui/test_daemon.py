"""The TUI through a real daemon: the test driver served by virtdeckd, and the real guest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import drivers
from drivers.reconnect import LinkState
from tests.remote.conftest import Session, spawn_daemon
from tests.tui.helpers import SIZE, build, find, loaded, select, settle, state_of, until
from tui.screens.dialogs import ConfirmScreen


@pytest.fixture
def daemon_uri(session: Session) -> Iterator[str]:
    socket = session.base / "tui.sock"
    proc = spawn_daemon(session, socket)
    try:
        yield f"qemu:///system?socket={socket}"
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


async def test_actions_through_the_daemon(daemon_uri: str, tmp_path: Path) -> None:
    app = build(tmp_path, uris=(daemon_uri,))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "build")
        await pilot.press("s")
        await until(pilot, lambda: state_of(app, "build") == "running (booted)")
        await pilot.press("p")
        await until(pilot, lambda: state_of(app, "build") == "paused (user)")
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: state_of(app, "build") == "shut off (destroyed)")
        await settle(app)
        assert not [n for n in app._notifications if n.severity == "error"]


async def test_killed_daemon_rows_read_lost(session: Session, tmp_path: Path) -> None:
    socket = session.base / "lost.sock"
    proc = spawn_daemon(session, socket)
    uri = f"qemu:///system?socket={socket}"
    app = build(tmp_path, uris=(uri,), backoff=(0.2,))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot, app, 5)
            assert state_of(app, "web1") == "running (booted)"
            proc.kill()
            proc.wait()
            await until(pilot, lambda: state_of(app, "web1") == "lost")
            host = next(iter(app.store.hosts.values()))
            assert host.link is LinkState.LOST
            assert {state_of(app, r.name) for r in app.store.rows.values()} == {"lost"}
            # a new daemon on the same socket: the rows come back from its snapshot
            socket.unlink(missing_ok=True)
            proc = spawn_daemon(session, socket)
            await until(pilot, lambda: state_of(app, "web1") == "running (booted)", timeout=15)
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.guest
@pytest.mark.qemu
async def test_real_guest_start_then_pause(session: Session, tmp_path: Path) -> None:
    """qemu:///session (auto-started virtdeckd, real QEMU, the tiny guest)."""
    from tests.conftest import require_qemu
    from tests.e2e.helpers import guest_xml
    from tests.guest import require_guest

    require_qemu()
    image = require_guest()
    conn = await drivers.open("qemu:///session")
    try:
        await conn.define_xml(guest_xml("tui-guest", image, session.base / "tui-guest.sock"))
        app = build(tmp_path, uris=("qemu:///session",))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: any(r.name == "tui-guest" for r in app.store.rows.values()))
            assert state_of(app, "tui-guest") == "shut off (unknown)"
            await select(pilot, app, "tui-guest")
            await pilot.press("s")
            await until(pilot, lambda: state_of(app, "tui-guest") == "running (booted)", timeout=60)
            history = [h.text for h in find(app, "tui-guest").history]
            assert "Started Booted" in history
            await pilot.press("p")
            await until(pilot, lambda: state_of(app, "tui-guest") == "paused (user)", timeout=30)
            await settle(app)
            assert not [n for n in app._notifications if n.severity == "error"]
        dom = await conn.lookup("tui-guest")
        await dom.destroy()
    finally:
        await conn.close()


async def test_console_logs_and_stats_through_the_daemon(daemon_uri: str, tmp_path: Path) -> None:
    """The test driver's simulated console, log and statistics, served by virtdeckd."""
    from tests.tui.test_console import open_console, screen_text, type_line
    from tests.tui.test_logs import open_logs, texts
    from tui.screens.main import MainScreen
    from tui.widgets.domain_table import DomainTable

    app = build(tmp_path, uris=(daemon_uri,))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        # statistics arrive over the daemon's stats stream
        t = app.screen.query_one(DomainTable)
        web1 = find(app, "web1")
        await until(pilot, lambda: t.cell_text(web1.key, "cpu").endswith("%"), timeout=15)
        screen = await open_console(pilot, app, "web1")
        assert screen.state == "attached"
        await type_line(pilot, "ping")
        await until(pilot, lambda: "VIRTDECK-PONG" in screen_text(screen), what="the pong")
        await pilot.press("ctrl+right_square_bracket")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        logs = await open_logs(pilot, app, "web1")
        await until(pilot, lambda: "VIRTDECK-PONG" in texts(logs))
        assert any(text.startswith("VIRTDECK-GUEST-READY") for text in texts(logs))
        await pilot.press("escape")
        await settle(app)
        assert not [n for n in app._notifications if n.severity == "error"]


async def test_console_key_to_echo_through_the_daemon(daemon_uri: str, tmp_path: Path) -> None:
    """Key press → echo, through virtdeckd's console stream (the test driver's guest echoes):
    p50 under 5 ms on the emulated screen and drawn."""
    from tests.tui.test_console import echo_times

    echo, drawn = await echo_times(tmp_path, (daemon_uri,))
    print(f"through the daemon: key → echo p50 {echo:.2f} ms, drawn p50 {drawn:.2f} ms")
    assert echo < 5
    assert drawn < 5


@pytest.mark.guest
@pytest.mark.qemu
async def test_real_guest_console_and_logs(session: Session, tmp_path: Path) -> None:
    """qemu:///session with the real guest: c, ping → VIRTDECK-PONG on the emulated screen,
    ctrl+] back to the table; l shows the guest's VIRTDECK-GUEST-READY line from its boot."""
    from tests.conftest import require_qemu
    from tests.e2e.helpers import guest_xml
    from tests.guest import require_guest
    from tests.tui.test_console import open_console, screen_text, type_line
    from tests.tui.test_logs import open_logs, texts
    from tui.screens.main import MainScreen

    require_qemu()
    image = require_guest()
    conn = await drivers.open("qemu:///session")
    try:
        await conn.define_xml(guest_xml("tui-console", image, session.base / "tui-con.sock"))
        app = build(tmp_path, uris=("qemu:///session",))
        async with app.run_test(size=SIZE) as pilot:
            await until(
                pilot, lambda: any(r.name == "tui-console" for r in app.store.rows.values())
            )
            await select(pilot, app, "tui-console")
            await pilot.press("s")
            await until(
                pilot, lambda: state_of(app, "tui-console") == "running (booted)", timeout=60
            )
            # the boot was logged with nobody attached: the log has the READY line
            logs = await open_logs(pilot, app, "tui-console")
            await until(
                pilot,
                lambda: any(t.startswith("VIRTDECK-GUEST-READY") for t in texts(logs)),
                timeout=90,
                what="the guest's READY line in the log",
            )
            ready = next(line for line in logs.view.lines if "VIRTDECK-GUEST-READY" in line.text)
            assert ready.exact
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, MainScreen))
            screen = await open_console(pilot, app, "tui-console")
            assert screen.state == "attached", screen.reason
            await type_line(pilot, "ping")
            await until(
                pilot, lambda: "VIRTDECK-PONG" in screen_text(screen), timeout=20, what="the pong"
            )
            await pilot.press("ctrl+right_square_bracket")
            await until(pilot, lambda: isinstance(app.screen, MainScreen))
            # the log has the answer too, after the boot
            logs = await open_logs(pilot, app, "tui-console")
            await until(pilot, lambda: "VIRTDECK-PONG" in texts(logs), timeout=10)
            await pilot.press("escape")
            await settle(app)
            assert not [n for n in app._notifications if n.severity == "error"]
        dom = await conn.lookup("tui-console")
        await dom.destroy()
    finally:
        await conn.close()


async def test_real_guest_screen(session: Session, tmp_path: Path) -> None:
    """qemu:///session with the real guest and a VGA card: v shows its screen (frames from
    QEMU's screendump, drawn), keys typed reach the guest (its tty1 reads them, the answer
    comes on the serial line), ctrl+] returns to the table."""
    from tests.conftest import require_qemu
    from tests.e2e.helpers import boot_guest
    from tests.guest import SerialConsole, require_guest
    from tests.tui.test_screen_view import open_screen
    from tui.screens.main import MainScreen

    require_qemu()
    image = require_guest()
    serial = session.base / "tui-scr.sock"
    conn = await drivers.open("qemu:///session")
    try:
        await boot_guest(conn, "tui-screen", image, serial, display=True)
        app = build(tmp_path, uris=("qemu:///session",))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: any(r.name == "tui-screen" for r in app.store.rows.values()))
            await until(
                pilot, lambda: state_of(app, "tui-screen") == "running (booted)", timeout=30
            )
            view = await open_screen(pilot, app, "tui-screen")
            assert view.state == "shown", view.reason
            assert view.size_px == (720, 400)
            await until(pilot, lambda: len(view.painted) >= 1, what="a painted frame")
            frames = view.frames
            async with await SerialConsole.connect(serial) as console:
                console.mark()
                await pilot.press("p", "i", "n", "g", "enter")
                await console.wait_for("VIRTDECK-PONG", timeout=20)
            # what was typed shows on the guest's VGA console: new frames came
            await until(pilot, lambda: view.frames > frames, timeout=10, what="a new frame")
            latency = [painted - captured for captured, painted in view.painted]
            assert all(0 <= s < 5 for s in latency), latency
            await pilot.press("ctrl+right_square_bracket")
            await until(pilot, lambda: isinstance(app.screen, MainScreen))
            await settle(app)
            assert not [n for n in app._notifications if n.severity == "error"]
        await (await conn.lookup("tui-screen")).destroy()
    finally:
        await conn.close()
