"""Snapshots of the screen view: the half-block drawing of a fixed picture (a real screenshot
of the test guest's VGA console, tests/tui/data/guest-screen.png) at two terminal sizes,
the special-key menu, a domain without a display, and the details screen's thumbnail.

Half-blocks are what a terminal without kitty graphics or sixel gets, and what these tests
draw (their output is not a terminal). Regenerate with ``pytest
tests/tui/test_screen_snapshots.py --snapshot-update`` and look at the SVGs first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.tui.helpers import find, until
from tests.tui.test_snapshots import THEMES, demo_app, ready, steps
from tui.app import VirtdeckApp
from tui.screens.screen import ScreenView, decode

Snap = Callable[..., bool]
PICTURE = Path(__file__).with_name("data") / "guest-screen.png"


def screen_view(
    *keys: str, picture: bool = True, reason: str = ""
) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, VirtdeckApp)
        await ready(pilot)
        row = find(app, "web-01", "lab")
        view = ScreenView("lab", row.uuid, "web-01", attach=False)
        app.push_screen(view)
        await until(pilot, lambda: app.screen is view)
        await pilot.pause(0.1)
        if picture:
            view.show_image(decode(PICTURE.read_bytes()))
        if reason:
            view.on_screen_view_ended(ScreenView.Ended(reason))
        await pilot.pause(0.2)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.1)

    return run


@pytest.mark.parametrize("theme", THEMES)
def test_screen_view(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """The guest's 720x400 text console in half-blocks, scaled to the pane with its aspect
    ratio, the status line naming ctrl+] and ctrl+\\, and the view's own keys only."""
    assert snap_compare(
        demo_app(theme, tmp_path), terminal_size=(120, 36), run_before=screen_view()
    )


def test_screen_view_small(snap_compare: Snap, tmp_path: Path) -> None:
    """The same picture in an 80x24 terminal."""
    app = demo_app("virtdeck-dark", tmp_path)
    assert snap_compare(app, terminal_size=(80, 24), run_before=screen_view())


def test_special_keys_menu(snap_compare: Snap, tmp_path: Path) -> None:
    """ctrl+\\: ctrl+alt+delete, ctrl+alt+F1…F12 and the rest."""
    app = demo_app("virtdeck-dark", tmp_path)
    run = screen_view("ctrl+backslash")
    assert snap_compare(app, terminal_size=(120, 36), run_before=run)


def test_no_display(snap_compare: Snap, tmp_path: Path) -> None:
    """A domain without a display: the driver's sentence, and where the console is."""
    reason = (
        "Domain 'web-01' has no display (its definition has no <graphics> or <video> "
        "device), so there is no screen to show; use its serial console instead (virtdeck "
        "console web-01, or c in the UI)."
    )
    app = demo_app("virtdeck-dark", tmp_path)
    run = screen_view(picture=False, reason=reason)
    assert snap_compare(app, terminal_size=(120, 36), run_before=run)


def test_details_thumbnail(snap_compare: Snap, tmp_path: Path) -> None:
    """lab/web-01's details: the overview and, beside it, the live thumbnail of its screen
    (the test driver's simulated text console)."""
    app = demo_app("virtdeck-dark", tmp_path)
    run = steps("enter", row=("web-01", "lab"))
    assert snap_compare(app, terminal_size=(120, 36), run_before=run)
