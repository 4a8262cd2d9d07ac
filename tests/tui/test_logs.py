"""The logs view (l): the console's output since boot with times, follow, search, inert."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot

import drivers
from drivers.test.driver import default_registry
from tests.tui.helpers import SIZE, build, find, loaded, select, until
from tests.tui.test_console import RecordingDriver
from tui.app import VirtdeckApp
from tui.screens.logs import LogsScreen
from tui.screens.main import MainScreen
from tui.widgets.log_view import stamp


async def open_logs(pilot: Pilot[None], app: VirtdeckApp, name: str) -> LogsScreen:
    await select(pilot, app, name)
    await pilot.press("l")
    await until(pilot, lambda: isinstance(app.screen, LogsScreen), what="the logs view")
    screen = app.screen
    assert isinstance(screen, LogsScreen)
    await until(pilot, lambda: screen.state != "reading" and bool(screen.view.lines))
    return screen


def texts(screen: LogsScreen) -> list[str]:
    return [line.text for line in screen.view.lines]


def status(screen: LogsScreen) -> str:
    return str(screen.query_one("#logs-status").render())


async def test_the_log_from_boot_with_times_then_new_lines_as_they_come(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = await open_logs(pilot, app, "web1")
        lines = screen.view.lines
        assert lines[0].text.startswith("SeaBIOS")
        assert any(t.startswith("VIRTDECK-GUEST-READY") for t in texts(screen))
        # seeded: the boot was read after the fact, so its times are marked
        assert not lines[0].exact and stamp(lines[0].wall, False).startswith("≈")
        assert "≈ time read later" in str(screen.query_one("#logs-title").render())
        assert "following new lines" in status(screen)
        # a line the guest writes now arrives, with an exact time, and is followed
        conn = await drivers.open("test:///default")
        async with await (await conn.lookup("web1")).console() as stream:
            await stream.write(b"ping\r")
            await until(pilot, lambda: "VIRTDECK-PONG" in texts(screen))
        assert screen.view.lines[-1].exact
        view = screen.view
        assert round(view.scroll_offset.y) == max(0, len(view.lines) - view.size.height)
        # scrolling up stops following; end follows again
        await pilot.press("up")
        assert not view.follow and "not following" in status(screen)
        await pilot.press("end")
        assert view.follow
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await conn.close()


async def test_search_marks_matches_and_n_and_shift_n_move_between_them(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = await open_logs(pilot, app, "test")
        await pilot.press("slash", *"virtdeck")
        view = screen.view
        await until(pilot, lambda: len(view.matches) >= 3)
        found = len(view.matches)
        assert f"{found} found" in status(screen)
        await pilot.press("enter")  # back to the log, at the first match
        assert view.current == 0 and f"1 of {found}" in status(screen)
        await pilot.press("n")
        assert view.current == 1
        await pilot.press("N", "N")
        assert view.current == found - 1  # around to the last one
        line, column = view.matches[view.current]
        assert view.lines[line].text.lower()[column : column + 8] == "virtdeck"
        await pilot.press("slash")
        await pilot.press(*"no such text")
        await until(pilot, lambda: not view.matches)
        assert "no match" in status(screen)


async def test_guest_text_in_the_log_is_plain_and_inert(tmp_path: Path) -> None:
    app = build(tmp_path)
    app.driver_class = RecordingDriver
    RecordingDriver.written = []
    async with app.run_test(size=SIZE, headless=False) as pilot:
        await loaded(pilot, app, 5)
        screen = await open_logs(pilot, app, "web1")
        await pilot.pause(0.1)
        RecordingDriver.written.clear()
        console = default_registry().consoles[find(app, "web1").uuid]
        console.write(
            b"\x1b[31mred\x1b[0m \x1b]0;pwned\x07\x1b[2Jafter\x07bell \x1b[10Alog-marker\r\n"
        )
        await until(pilot, lambda: any("log-marker" in t for t in texts(screen)))
        await pilot.pause(0.2)
        assert texts(screen)[-1].endswith("# red after\\x07bell log-marker")
        output = "".join(RecordingDriver.written)
        assert "log-marker" in output
        for raw in ("\x1b]0;", "\x1b[2J", "\x1b[10A", "\x1b[31m", "\x07"):
            assert raw not in output


async def test_the_log_ends_with_the_run_and_r_reads_it_again(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = await open_logs(pilot, app, "web1")
        conn = await drivers.open("test:///default")
        dom = await conn.lookup("web1")
        await dom.destroy()
        await until(pilot, lambda: screen.state == "ended", what="the end of the log")
        assert "the log has ended" in status(screen)
        before = len(screen.view.lines)
        await dom.start()
        await pilot.press("r")
        await until(pilot, lambda: screen.state == "following")
        # the new run's log: from its boot, exact times
        assert screen.view.lines[0].exact and len(screen.view.lines) < before + 5
        await conn.close()


async def test_a_domain_that_never_ran_has_an_empty_log(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "build")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen))
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        await until(pilot, lambda: screen.state == "ended")
        assert not screen.view.lines
        assert "0 lines since boot" in str(screen.query_one("#logs-title").render())
