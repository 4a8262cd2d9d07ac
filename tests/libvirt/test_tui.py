"""The TUI with libvirt hosts: the badge, the hosts screen adding one, and the TUI's
end-to-end flow (start, pause, console, destroy) against libvirtd with the real guest.

The first tests use libvirt's own in-process test driver (``libvirt:test:///default``),
next to virtdeck's test driver; the last ones libvirtd (bench/libvirt_peer.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import drivers
from bench.libvirt_peer import LibvirtPeer
from tests.conftest import require_qemu
from tests.e2e.helpers import guest_xml
from tests.guest import require_guest
from tests.libvirt.conftest import PREFIX, SYSTEM, require_binding
from tests.libvirt.test_guest import pty_guest_xml
from tests.tui.helpers import SIZE, build, find, loaded, select, settle, state_of, until
from tui.screens.dialogs import ConfirmScreen
from tui.screens.hosts import HostFormScreen, HostsScreen
from tui.screens.main import MainScreen
from tui.widgets.host_bar import HostBar

LIBVIRT_TEST = "libvirt:test:///default"


def host_bar_text(app: object) -> str:
    from tui.app import VirtdeckApp

    assert isinstance(app, VirtdeckApp)
    bar = app.screen_stack[0].query_one(HostBar)
    return bar._shown.plain if bar._shown is not None else ""


async def test_libvirt_hosts_show_next_to_virtdeck_hosts_with_a_badge(tmp_path: Path) -> None:
    require_binding()
    app = build(tmp_path, uris=("test:///default", LIBVIRT_TEST))
    async with app.run_test(size=SIZE) as pilot:
        # virtdeck's five domains and libvirt's test driver's one
        await loaded(pilot, app, 6)
        assert len({row.host for row in app.store.rows.values()}) == 2
        libvirt_host = next(h for h in app.store.hosts if h.startswith("libvirt"))
        assert find(app, "test", libvirt_host).state.words == "running"
        await until(pilot, lambda: f"● {libvirt_host} libvirt 1/1" in host_bar_text(app))
        assert "● default 2/5" in host_bar_text(app)  # a virtdeck host: no badge
        await pilot.press("H")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen))
        from textual.widgets import DataTable

        hosts = app.screen.query_one("#host-table", DataTable)
        kinds = {str(hosts.get_cell(name, "kind")) for name in app.store.hosts}
        assert kinds == {"test", "libvirt"}
        await settle(app)
        assert not [n for n in app._notifications if n.severity == "error"]


async def test_the_hosts_screen_adds_a_libvirt_host(tmp_path: Path) -> None:
    require_binding()
    app = build(tmp_path, uris=("test:///default",))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await pilot.press("H")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen))
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, HostFormScreen))
        # a malformed libvirt URI is refused as it is typed
        await pilot.press(*"libvirt:qemu")
        form = app.screen
        assert isinstance(form, HostFormScreen)
        assert form._errors().get("uri", "").startswith("'libvirt:qemu' does not name")
        await pilot.press(*":///x", *["backspace"] * len("qemu:///x"), *"test:///default")
        assert form._errors() == {}
        await pilot.press("enter")
        await until(pilot, lambda: "libvirt-default" in app.store.hosts, what="the new host")
        await until(pilot, lambda: len(app.store.rows) == 6, what="its domain")
        config = (tmp_path / "config" / "config.toml").read_text()
        assert 'uri = "libvirt:test:///default"' in config
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await settle(app)
        assert not [n for n in app._notifications if n.severity == "error"]


# --- against libvirtd with the real guest --------------------------------------------------


@pytest.mark.guest
@pytest.mark.qemu
@pytest.mark.timeout(1200)
async def test_real_guest_on_libvirtd_start_pause_destroy(
    libvirtd: LibvirtPeer, tmp_path: Path, short_tmp: Path
) -> None:
    """The TUI's end-to-end flow on a libvirt host: s → running (booted) with Started
    Booted in the row's history, p → paused (user), D y → shut off (destroyed)."""
    require_qemu()
    name = PREFIX + "tui"
    conn = await drivers.open(SYSTEM)
    try:
        await conn.define_xml(guest_xml(name, require_guest(), short_tmp / "tui.sock"))
        app = build(tmp_path, uris=(SYSTEM,))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: any(r.name == name for r in app.store.rows.values()))
            await until(pilot, lambda: state_of(app, name) == "shut off (unknown)")
            await select(pilot, app, name)
            await pilot.press("s")
            await until(pilot, lambda: state_of(app, name) == "running (booted)", timeout=60)
            assert "Started Booted" in [h.text for h in find(app, name).history]
            await pilot.press("p")
            await until(pilot, lambda: state_of(app, name) == "paused (user)", timeout=30)
            await pilot.press("D")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: state_of(app, name) == "shut off (destroyed)", timeout=30)
            await settle(app)
            assert not [n for n in app._notifications if n.severity == "error"]
    finally:
        dom = await conn.lookup(name)
        if (await dom.state())[0].is_active:
            await dom.destroy()
        await dom.undefine()
        await conn.close()


@pytest.mark.guest
@pytest.mark.qemu
@pytest.mark.timeout(1200)
async def test_real_guest_console_on_libvirtd(
    libvirtd: LibvirtPeer, tmp_path: Path, short_tmp: Path
) -> None:
    """c on a libvirt host: the console over a libvirt stream; ping → VIRTDECK-PONG."""
    from tests.tui.test_console import open_console, screen_text, type_line

    require_qemu()
    name = PREFIX + "tuicon"
    conn = await drivers.open(SYSTEM)
    try:
        dom = await conn.define_xml(pty_guest_xml(name, short_tmp / "unused.sock"))
        await dom.start()
        app = build(tmp_path, uris=(SYSTEM,))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: any(r.name == name for r in app.store.rows.values()))
            await until(pilot, lambda: state_of(app, name) == "running (booted)", timeout=30)
            screen = await open_console(pilot, app, name)
            assert screen.state == "attached", screen.reason
            # until the guest is up and answers (it may still be booting)
            for _ in range(60):
                await type_line(pilot, "ping")
                try:
                    await until(pilot, lambda: "VIRTDECK-PONG" in screen_text(screen), timeout=2)
                    break
                except AssertionError:
                    continue
            assert "VIRTDECK-PONG" in screen_text(screen)
            await pilot.press("ctrl+right_square_bracket")
            await until(pilot, lambda: isinstance(app.screen, MainScreen))
            await settle(app)
            assert not [n for n in app._notifications if n.severity == "error"]
    finally:
        dom = await conn.lookup(name)
        if (await dom.state())[0].is_active:
            await dom.destroy()
        await dom.undefine()
        await conn.close()
