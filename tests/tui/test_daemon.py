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
