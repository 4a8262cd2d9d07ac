"""The footer (one widget): keys follow the row under the cursor; a click presses the key."""

from __future__ import annotations

from pathlib import Path

from tests.tui.helpers import SIZE, build, loaded, main_screen, select, state_of, until
from tui.widgets.footer import KeyFooter


def _enabled(footer: KeyFooter, description: str) -> bool:
    return any(i.description == description and i.enabled for i in footer.items)


def _x(footer: KeyFooter, description: str) -> int:
    """A column inside the key's place on the line (as last drawn)."""
    for start, _end, item in footer._spans:
        if item.description == description:
            return start + 1
    raise AssertionError(f"{description!r} is not on the footer line")


async def test_footer_follows_the_row_and_clicks_press_keys(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        footer = main_screen(app).query_one(KeyFooter)
        await select(pilot, app, "build")  # shut off
        await until(pilot, lambda: _enabled(footer, "Start") and not _enabled(footer, "Shutdown"))
        await select(pilot, app, "web1")  # running
        await until(pilot, lambda: not _enabled(footer, "Start") and _enabled(footer, "Shutdown"))
        assert footer.palette is not None and footer.palette.display == "^p"
        await pilot.pause()
        line = str(footer.render())
        assert line.startswith(" s Start ") and line.rstrip().endswith("▏^p Commands")

        # a disabled key does nothing when clicked
        await pilot.click(KeyFooter, offset=(_x(footer, "Start"), 0))
        await pilot.pause()
        assert state_of(app, "web1") == "running (booted)"
        # an enabled one does what its key does: the row turns paused from the event
        await pilot.click(KeyFooter, offset=(_x(footer, "Pause/Resume"), 0))
        await until(pilot, lambda: state_of(app, "web1") == "paused (user)")

        # hovering a key shows its tooltip
        await pilot.hover(KeyFooter, offset=(_x(footer, "Help"), 0))
        await pilot.pause()
        assert footer.tooltip


async def test_footer_shows_only_whole_keys_when_narrow(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=(60, 20)) as pilot:
        await loaded(pilot, app, 5)
        footer = main_screen(app).query_one(KeyFooter)
        await pilot.pause()
        line = str(footer.render())
        assert len(line) == 60 and line.rstrip().endswith("^p Commands")
        shown = [item.description for _s, _e, item in footer._spans][:-1]
        assert shown and all(d in line for d in shown)
        assert len(shown) < len(footer.items)  # the rest did not fit: left out, not cut
