"""``python -m screenshots``: regenerate the SVG screenshots in this folder from the demo.

Each screen (main, details, hosts, help, a dialog, migrate, drain, console, screen, logs,
stats) in each builtin theme, at 120x36 (the stats columns at 170x36), on the demo hosts
with a frozen clock (and fixed migration figures, statistics, console output and guest
screen), so the images only change when the UI does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input

from tui.app import VirtdeckApp, make_app
from tui.state import FrozenClock
from tui.widgets.domain_table import row_id

HERE = Path(__file__).resolve().parent
SIZE = (120, 36)
THEMES = ("virtdeck-dark", "virtdeck-light")
DEMO_DIR = Path("/tmp/virtdeck-screenshot-demo")

Step = Callable[[Pilot[None]], Awaitable[None]]


async def _until(pilot: Pilot[None], predicate: Callable[[], bool], timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("the demo did not load")
        await pilot.pause(0.02)


async def _ready(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, VirtdeckApp)

    def loaded() -> bool:
        rows = app.store.rows.values()
        return len(rows) == 21 and all(r.vcpus is not None for r in rows)

    def sampled() -> bool:
        return all(app.store.hosts[h].figures is not None for h in ("demo", "lab"))

    await _until(pilot, loaded)
    await _until(pilot, lambda: all(app.address_rounds.get(h) for h in app.store.hosts))
    await _until(pilot, sampled)
    from tui.demo import fill_stats

    fill_stats(app)  # five minutes of the simulation's figures: full sparklines, held still
    await pilot.pause(0.2)


async def _on(pilot: Pilot[None], name: str, host: str) -> None:
    app = pilot.app
    assert isinstance(app, VirtdeckApp)
    from tui.screens.main import MainScreen

    screen = app.screen
    assert isinstance(screen, MainScreen)
    key = next(k for k, r in app.store.rows.items() if r.name == name and r.host == host)
    screen.table.move_cursor(row=screen.table.get_row_index(row_id(key)))
    await pilot.pause()


def _keys(*keys: str, row: tuple[str, str] | None = None) -> Step:
    async def run(pilot: Pilot[None]) -> None:
        if row is not None:
            await _on(pilot, *row)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        for box in pilot.app.screen.query(Input):
            box.cursor_blink = False
        await pilot.pause(0.1)

    return run


async def _migrate_form(pilot: Pilot[None]) -> None:
    from tui.screens.migrate import MigrateScreen

    await _keys("m", row=("web1", "demo"))(pilot)
    form = pilot.app.screen
    assert isinstance(form, MigrateScreen)
    await _until(pilot, lambda: form.reasons is not None)
    await pilot.pause(0.2)


async def _migration(pilot: Pilot[None]) -> None:
    """The progress view with fixed figures (tui.demo), so the image holds still."""
    from tui.demo import migration_figures
    from tui.migration import JobState, JobView, MigrationJob
    from tui.screens.migrate import MigrationScreen

    app = pilot.app
    assert isinstance(app, VirtdeckApp)
    key = next(k for k, r in app.store.rows.items() if r.name == "web1" and r.host == "demo")
    view = MigrationScreen(MigrationJob("web1", key[1], "demo", "lab"), start=False)
    app.push_screen(view)
    await _until(pilot, lambda: app.screen is view)
    await pilot.pause(0.1)
    frozen = JobView(
        0, "web1", key[1], "demo", "lab", state=JobState.MIGRATING, info=migration_figures()
    )
    view.post_message(MigrationScreen.Updated(frozen))
    await pilot.pause(0.2)


async def _drain(pilot: Pilot[None]) -> None:
    """Draining demo half-way, with fixed figures."""
    from tui.demo import freeze_drain
    from tui.screens.drain import DrainScreen

    await _keys("M", row=("web1", "demo"))(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, DrainScreen)
    await _until(pilot, lambda: screen.planned)
    freeze_drain(screen)
    await pilot.pause(0.3)


async def _console(pilot: Pilot[None]) -> None:
    """demo/web1's console with a fixed guest output (tui.demo.CONSOLE_OUTPUT)."""
    from tui.demo import CONSOLE_OUTPUT
    from tui.screens.console import ConsoleScreen

    app = pilot.app
    assert isinstance(app, VirtdeckApp)
    key = next(k for k, r in app.store.rows.items() if r.name == "web1" and r.host == "demo")
    screen = ConsoleScreen("demo", key[1], "web1", attach=False)
    app.push_screen(screen)
    await _until(pilot, lambda: app.screen is screen)
    await pilot.pause(0.1)
    screen.replay(CONSOLE_OUTPUT)
    await pilot.pause(0.2)


async def _logs(pilot: Pilot[None]) -> None:
    """demo/web1's console log with fixed lines and a search."""
    from tui.demo import console_log_lines
    from tui.screens.logs import LogsScreen

    app = pilot.app
    assert isinstance(app, VirtdeckApp)
    key = next(k for k, r in app.store.rows.items() if r.name == "web1" and r.host == "demo")
    screen = LogsScreen("demo", key[1], "web1", read=False)
    app.push_screen(screen)
    await _until(pilot, lambda: app.screen is screen)
    await pilot.pause(0.1)
    screen.replay(console_log_lines(FrozenClock.at_wall - 3 * 3600))
    await _keys("slash", *"pong", "enter", "n")(pilot)


async def _screen(pilot: Pilot[None]) -> None:
    """lab/web-01's screen showing a fixed picture: a real screenshot of the test guest's
    VGA console (tests/tui/data/guest-screen.png), in half-blocks."""
    from tui.screens.screen import ScreenView, decode

    app = pilot.app
    assert isinstance(app, VirtdeckApp)
    key = next(k for k, r in app.store.rows.items() if r.name == "web-01" and r.host == "lab")
    screen = ScreenView("lab", key[1], "web-01", attach=False)
    app.push_screen(screen)
    await _until(pilot, lambda: app.screen is screen)
    await pilot.pause(0.1)
    picture = Path(__file__).resolve().parents[1] / "tests" / "tui" / "data" / "guest-screen.png"
    screen.show_image(decode(picture.read_bytes()))
    await pilot.pause(0.2)


async def _libvirt(pilot: Pilot[None]) -> None:
    """A libvirt host next to the demo's (libvirt's own in-process test driver; needs
    libvirt-python): its badge in the host bar, its row in the table."""
    from tui.config import HostConfig

    app = pilot.app
    assert isinstance(app, VirtdeckApp)
    await app.add_host(HostConfig("libvirt:test:///default", "lv1", saved=False))

    def loaded() -> bool:
        rows = app.store.rows.values()
        return len(rows) == 22 and all(r.vcpus is not None for r in rows)

    await _until(pilot, loaded)
    await _keys("3", row=("test", "lv1"))(pilot)


SHOTS: dict[str, Step] = {
    "main": _keys("space", "down", "down", "space", row=("test", "demo")),
    "details": _keys("enter", row=("db-primary", "lab")),
    "xml": _keys("enter", "x", row=("web-01", "lab")),
    "hosts": _keys("H"),
    "help": _keys("question_mark"),
    "undefine-dialog": _keys("U", *"web-03", "tab", row=("web-03", "lab")),
    "filter": _keys("slash", *"state:running !host:edge", "enter", "3"),
    "migrate-form": _migrate_form,
    "migration": _migration,
    "drain": _drain,
    "console": _console,
    "screen": _screen,
    "logs": _logs,
    "stats": _keys("7"),
    "details-stats": _keys("enter", "t", row=("db-primary", "lab")),
    "libvirt": _libvirt,
}
#: Shots that need a wider terminal than SIZE.
WIDE = {"stats": (170, 36)}


async def _shoot(theme: str, name: str, step: Step, out: Path, config: Path) -> Path:
    import drivers.test.driver

    # Seeded domains' start times on the frozen clock: the uptimes are the same every time.
    drivers.test.driver.clock = lambda: FrozenClock.at_wall
    drivers.test.driver.reset_default()
    app = make_app(
        demo=True,
        theme=theme,
        config_file=config / "config.toml",
        clock=FrozenClock(),
        demo_dir=DEMO_DIR,
        tick=None,
    )
    filename = f"{name}-{theme.removeprefix('virtdeck-')}.svg"
    async with app.run_test(size=WIDE.get(name, SIZE)) as pilot:
        await _ready(pilot)
        await step(pilot)
        app.save_screenshot(filename=filename, path=str(out))
    return out / filename


async def main(out: Path, only: list[str]) -> list[Path]:
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as config:
        os.environ["XDG_CONFIG_HOME"] = config
        os.environ["XDG_CACHE_HOME"] = config
        os.environ.setdefault("TZ", "UTC")
        for theme in THEMES:
            for name, step in SHOTS.items():
                if only and name not in only:
                    continue
                written.append(await _shoot(theme, name, step, out, Path(config)))
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: here)")
    parser.add_argument("only", nargs="*", help=f"some of: {', '.join(SHOTS)}")
    args = parser.parse_args()
    for path in asyncio.run(main(args.out, args.only)):
        print(path)
