"""Snapshots of the migrate form, the progress view and the drain view on the demo hosts
(120x36, frozen clock; the live figures are fixed ones from tui.demo, no timers run).

Regenerate with ``pytest tests/tui/test_migration_snapshots.py --snapshot-update`` and look
at the SVGs before committing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.tui.helpers import SIZE, find, settle, until
from tests.tui.test_snapshots import THEMES, demo_app, on_row, ready, still
from tui.app import VirtdeckApp
from tui.demo import freeze_drain, migration_figures
from tui.migration import JobState, JobView, MigrationJob
from tui.screens.drain import DrainScreen
from tui.screens.migrate import MigrateScreen, MigrationScreen

Snap = Callable[..., bool]


def vapp(pilot: Pilot[None]) -> VirtdeckApp:
    assert isinstance(pilot.app, VirtdeckApp)
    return pilot.app


async def migrate_form(pilot: Pilot[None]) -> None:
    """demo/web1's migrate form, the pre-flight done."""
    app = vapp(pilot)
    await ready(pilot)
    await on_row(pilot, "web1", "demo")
    await pilot.press("m")
    await until(pilot, lambda: isinstance(app.screen, MigrateScreen))
    form = app.screen
    assert isinstance(form, MigrateScreen)
    await until(pilot, lambda: form.reasons is not None)
    await settle(app)
    await still(pilot)


async def migration_view(pilot: Pilot[None]) -> None:
    """The progress view of web1 demo → lab with fixed figures (no migration runs)."""
    app = vapp(pilot)
    await ready(pilot)
    row = find(app, "web1", "demo")
    job = MigrationJob("web1", row.uuid, "demo", "lab")
    view = MigrationScreen(job, start=False)
    app.push_screen(view)
    await until(pilot, lambda: app.screen is view)
    await pilot.pause(0.1)
    frozen = JobView(
        0, "web1", row.uuid, "demo", "lab", state=JobState.MIGRATING, info=migration_figures()
    )
    view.post_message(MigrationScreen.Updated(frozen))
    await pilot.pause(0.1)
    await still(pilot)


def drain(frozen: bool) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run(pilot: Pilot[None]) -> None:
        app = vapp(pilot)
        await ready(pilot)
        await on_row(pilot, "web1", "demo")
        await pilot.press("M")
        await until(pilot, lambda: isinstance(app.screen, DrainScreen))
        screen = app.screen
        assert isinstance(screen, DrainScreen)
        await until(pilot, lambda: screen.planned)
        if frozen:
            freeze_drain(screen)
        await settle(app)
        await pilot.pause(0.1)
        await still(pilot)

    return run


@pytest.mark.parametrize("theme", THEMES)
def test_migrate_form(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """Migrate web1 from demo: lab the only destination (edge is read-only), live and
    persistent ticked, bandwidth unlimited, the pre-flight's green tick, Migrate enabled."""
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=migrate_form)


@pytest.mark.parametrize("theme", THEMES)
def test_migration_progress(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """web1 demo → lab in its first pass: phase, a 42 % bar, memory sent/remaining/total,
    rate, dirty pages, expected downtime, elapsed; the cancel key and button."""
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=migration_view)


def test_drain_plan(snap_compare: Snap, tmp_path: Path) -> None:
    """Draining demo: db1, test and web1 all suggested to lab (edge is read-only), each
    pre-flight ok, the summary '3 of 3 domains would move.'."""
    app = demo_app("virtdeck-dark", tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=drain(False))


@pytest.mark.parametrize("theme", THEMES)
def test_drain_running(snap_compare: Snap, theme: str, tmp_path: Path) -> None:
    """The drain half-way: db1 done (2 ms downtime, 1.4 s), test migrating 42 %, web1 waiting;
    'Running: 1 of 3 migrated, 2 to go, 1.9 s…'."""
    assert snap_compare(demo_app(theme, tmp_path), terminal_size=SIZE, run_before=drain(True))
