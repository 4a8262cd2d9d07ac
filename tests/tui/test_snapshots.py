"""SVG snapshots of every screen and dialog, in both builtin themes (120x36, frozen clock).

Regenerate with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at the
SVGs before committing them. Textual is pinned exactly (pyproject), which keeps them stable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.tui.helpers import SIZE, find, settle, table, until
from tui.app import VirtdeckApp, make_app
from tui.demo import fill_stats
from tui.state import FrozenClock
from tui.widgets.domain_table import row_id

#: A fixed place for the demo's node files: their paths show on the hosts screen.
DEMO_DIR = Path("/tmp/virtdeck-snapshot-demo")
THEMES = ("virtdeck-dark", "virtdeck-light")

Snap = Callable[..., bool]


def demo_app(theme: str, config_dir: Path) -> VirtdeckApp:
    return make_app(
        demo=True,
        theme=theme,
        config_file=config_dir / "config.toml",
        clock=FrozenClock(),
        demo_dir=DEMO_DIR,
        tick=None,
    )


#: The demo hosts that send statistics (edge is read-only: no statistics through it).
STATS_HOSTS = ("demo", "lab")


async def ready(pilot: Pilot[None]) -> None:
    """The demo's 21 rows with their vCPUs and five minutes of fixed statistics, the
    cursor on the first row, no blinking."""
    app = pilot.app
    assert isinstance(app, VirtdeckApp)

    def loaded() -> bool:
        return table(app).row_count == 21 and all(
            r.vcpus is not None for r in app.store.rows.values()
        )

    def sampled() -> bool:
        return all(app.store.hosts[h].figures is not None for h in STATS_HOSTS)

    await until(pilot, loaded)
    # every host's first round of IP addresses (fixed ones: the test driver's)
    await until(pilot, lambda: all(app.address_rounds.get(h) for h in app.store.hosts))
    # The first live samples (the frozen clock makes every later one the same), then the
    # history they would have made: the sparklines are full and hold still.
    await until(pilot, sampled)
    fill_stats(app)
    await pilot.pause(0.1)


async def still(pilot: Pilot[None]) -> None:
    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause(0.2)


async def on_row(pilot: Pilot[None], name: str, host: str) -> None:
    app = pilot.app
    assert isinstance(app, VirtdeckApp)
    t = table(app)
    t.move_cursor(row=t.get_row_index(row_id(find(app, name, host).key)))
    await pilot.pause()


def steps(
    *keys: str, row: tuple[str, str] | None = None
) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run(pilot: Pilot[None]) -> None:
        await ready(pilot)
        if row is not None:
            await on_row(pilot, *row)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.05)
        app = pilot.app
        assert isinstance(app, VirtdeckApp)
        await settle(app)
        await pilot.pause(0.2)
        await still(pilot)

    return run


@pytest.mark.parametrize("theme", THEMES)
def test_main_screen(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """The demo: three hosts (demo, lab protected ⚑, edge read-only), 21 rows, the footer."""
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=steps())


@pytest.mark.parametrize("theme", THEMES)
def test_main_filtered_marked(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """Filter 'host:lab state:running', two rows marked (●), sorted by memory."""
    run = steps("slash", *"host:lab state:running", "enter", "5", "space", "space")
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=run)


@pytest.mark.parametrize("theme", THEMES)
def test_details_screen(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """Details of lab/db-primary: state, vCPUs, memory, VNC, the disk and the NIC."""
    run = steps("enter", row=("db-primary", "lab"))
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=run)


@pytest.mark.parametrize("theme", THEMES)
def test_details_xml(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """The XML tab of lab/web-01, highlighted."""
    run = steps("enter", "x", row=("web-01", "lab"))
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=run)


@pytest.mark.parametrize("theme", THEMES)
def test_help_screen(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """Every key with its description and binding id."""
    run = steps("question_mark")
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=run)


@pytest.mark.parametrize("theme", THEMES)
def test_hosts_screen(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """The three demo hosts with mode, link and counts."""
    run = steps("H")
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=run)


@pytest.mark.parametrize("theme", THEMES)
def test_host_form(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """Adding a host with a URI that does not parse: the error shows inline, Save is off."""
    run = steps("H", "a", *"qemu+tls://x/system")
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=run)


@pytest.mark.parametrize("theme", THEMES)
def test_destroy_dialog(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """Destroy on a normal host: a yes/no question."""
    run = steps("D", row=("web1", "demo"))
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=run)


@pytest.mark.parametrize("theme", THEMES)
def test_protected_undefine_dialog(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """Undefine on the protected lab host: type the domain's name and the host's name."""
    run = steps("U", *"web-0", row=("web-03", "lab"))
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=run)


@pytest.mark.parametrize("theme", THEMES)
def test_palette(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """The command palette searching 'pause' with demo/web1 selected."""
    run = steps("colon", *"pause", row=("web1", "demo"))
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=run)


def test_main_narrow(snap_compare: Snap, tmp_path: Path) -> None:
    """80x24 (a phone over SSH): everything still legible."""
    assert snap_compare(
        demo_app("virtdeck-dark", tmp_path), terminal_size=(80, 24), run_before=steps()
    )
