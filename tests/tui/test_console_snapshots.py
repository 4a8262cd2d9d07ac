"""Snapshots of the console screen (a fixed guest output), the logs view (fixed lines, a
search), the statistics columns and the details screen's stats tab (five minutes of fixed
figures from the test driver's simulation), and a newcomer's empty first screen.

Regenerate with ``pytest tests/tui/test_console_snapshots.py --snapshot-update`` and look
at the SVGs before committing them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from drivers.test.driver import node_xml
from tests.tui.helpers import find, settle, until
from tests.tui.test_snapshots import THEMES, demo_app, ready, steps, still
from tui.app import VirtdeckApp, make_app
from tui.demo import CONSOLE_OUTPUT, console_log_lines
from tui.screens.console import ConsoleScreen
from tui.screens.logs import LogsScreen
from tui.screens.main import MainScreen
from tui.state import FrozenClock

Snap = Callable[..., bool]


def vapp(pilot: Pilot[None]) -> VirtdeckApp:
    assert isinstance(pilot.app, VirtdeckApp)
    return pilot.app


async def console_view(pilot: Pilot[None]) -> None:
    """demo/web1's console showing a fixed boot, a ping, colours and a title it set."""
    app = vapp(pilot)
    await ready(pilot)
    row = find(app, "web1", "demo")
    screen = ConsoleScreen("demo", row.uuid, "web1", attach=False)
    app.push_screen(screen)
    await until(pilot, lambda: app.screen is screen)
    await pilot.pause(0.1)
    screen.replay(CONSOLE_OUTPUT)
    await pilot.pause(0.2)


async def logs_view(pilot: Pilot[None]) -> None:
    """demo/web1's console log: a boot read later (≈), lines as they came, a search."""
    app = vapp(pilot)
    await ready(pilot)
    row = find(app, "web1", "demo")
    screen = LogsScreen("demo", row.uuid, "web1", read=False)
    app.push_screen(screen)
    await until(pilot, lambda: app.screen is screen)
    await pilot.pause(0.1)
    screen.replay(console_log_lines(FrozenClock.at_wall - 3 * 3600))
    await pilot.press("slash", *"pong", "enter", "n")
    await pilot.pause(0.1)
    await still(pilot)


@pytest.mark.parametrize("theme", THEMES)
def test_console_screen(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """The emulated screen in theme colours, the guest's title in the header (inert), the
    status line and only ctrl+] in the footer."""
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=(120, 36), run_before=console_view)


@pytest.mark.parametrize("theme", THEMES)
def test_logs_view(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """Times (≈ for the boot read later), colour codes taken out, a title sequence and a
    clear screen shown as nothing, matches of 'pong' marked, the second one current."""
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=(120, 36), run_before=logs_view)


@pytest.mark.parametrize("theme", THEMES)
def test_stats_columns(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """170 wide: CPU, RSS, disk and network with a minute's sparkline each, sorted by CPU
    (7: the busiest of all hosts first); the host strip with each host's CPU and memory."""
    run = steps("7")
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=(170, 36), run_before=run)


@pytest.mark.parametrize("theme", THEMES)
def test_details_stats(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """lab/db-primary's stats tab: the figures now, and charts of the last minute and the
    last five minutes."""
    run = steps("enter", "t", row=("db-primary", "lab"))
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=(120, 36), run_before=run)


def empty_app(theme: str, tmp_path: Path) -> VirtdeckApp:
    node = Path("/tmp/virtdeck-snapshot-demo/local.xml")
    node.parent.mkdir(parents=True, exist_ok=True)
    node.write_text(node_xml(()))
    return make_app(
        [f"test://{node}"],
        theme=theme,
        config_file=tmp_path / "config.toml",
        clock=FrozenClock(),
        tick=None,
    )


async def empty_ready(pilot: Pilot[None]) -> None:
    app = vapp(pilot)
    screen = app.screen
    assert isinstance(screen, MainScreen)
    await until(pilot, lambda: screen.empty_text() is not None)
    await settle(app)
    await pilot.pause(0.2)


@pytest.mark.parametrize("theme", THEMES)
def test_empty_state(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """A host with no domains: what to do (n, H, virtdeck --demo); the footer offers New."""
    app = empty_app(theme, tmp_path)
    assert snap_compare(app, terminal_size=(120, 36), run_before=empty_ready)
