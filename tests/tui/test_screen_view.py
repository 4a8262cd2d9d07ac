"""The screen view (v), driven by Pilot on the test driver: frames arrive and are drawn, keys
reach the guest (the simulated guest's keyboard types into its shell), ctrl+] returns to
the table, the special-key menu sends ctrl+alt+delete, a domain without a display says so,
read-only hosts watch without typing; and the key map itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.pilot import Pilot

import drivers
from drivers.keys import key_combo, text_events
from drivers.test.driver import default_registry
from tests.drivers.test_screen import _with_display
from tests.tui.helpers import DEFAULT, SIZE, build, find, loaded, select, settle, until, with_modes
from tui import graphics
from tui.app import VirtdeckApp
from tui.config import HostMode
from tui.screen_keys import key_events
from tui.screens.main import MainScreen
from tui.screens.screen import ScreenView, SpecialKeys

ESCAPE = "ctrl+right_square_bracket"


async def open_screen(pilot: Pilot[None], app: VirtdeckApp, name: str) -> ScreenView:
    await select(pilot, app, name)
    await pilot.press("v")
    await until(pilot, lambda: isinstance(app.screen, ScreenView), what="the screen view")
    view = app.screen
    assert isinstance(view, ScreenView)
    await until(pilot, lambda: view.state != "opening", what="the first frame")
    return view


def typed(name: str) -> str:
    """What the simulated guest's keyboard received, as characters typed (key downs)."""
    sim = default_registry().simulated(name)
    return "".join(
        e["data"]["key"]["data"]
        for e in sim.screen.received
        if e["type"] == "key" and e["data"]["down"]
    )


async def test_frames_keys_and_back(tmp_path: Path) -> None:
    async with await drivers.open(DEFAULT) as conn:
        await _with_display(conn, "web1")
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        view = await open_screen(pilot, app, "web1")
        assert view.state == "shown", view.reason
        assert view.size_px == (720, 400)
        await until(pilot, lambda: len(view.painted) >= 1, what="a painted frame")
        frames = view.frames
        # keys that are bindings elsewhere go to the guest here: q, tab, escape
        await pilot.press("p", "i", "n", "g", "enter")
        sim = default_registry().simulated("web1")
        await until(pilot, lambda: "VIRTDECK-PONG" in sim.screen.rows(), what="the pong")
        await until(pilot, lambda: view.frames > frames, what="a new frame after typing")
        await pilot.press("q", "tab", "escape")
        await until(pilot, lambda: typed("web1").endswith("qtabesc"), what="q tab escape")
        assert isinstance(app.screen, ScreenView)
        # the special-key menu: ctrl+alt+delete
        await pilot.press("ctrl+backslash")
        await until(pilot, lambda: isinstance(app.screen, SpecialKeys), what="the menu")
        await pilot.press("enter")
        await until(pilot, lambda: typed("web1").endswith("ctrlaltdelete"), what="c-a-del")
        assert isinstance(app.screen, ScreenView)
        await pilot.press(ESCAPE)
        await until(pilot, lambda: isinstance(app.screen, MainScreen), what="the table")
        await settle(app)
        assert not [n for n in app._notifications if n.severity == "error"]


async def test_no_display_points_to_the_console(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        view = await open_screen(pilot, app, "test")
        await until(pilot, lambda: view.state == "nodisplay", what="no display")
        assert "has no display" in view.reason
        status = str(view.query_one("#screen-status").render())
        assert "serial console" in status
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), what="the table")


async def test_not_running_is_dimmed(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "build")  # shut off
        main = app.screen
        assert isinstance(main, MainScreen)
        assert main.check_action("screen", ()) is None
        await pilot.press("v")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_read_only_host_watches_without_typing(tmp_path: Path) -> None:
    async with await drivers.open(DEFAULT) as conn:
        await _with_display(conn, "web1")
    config = with_modes(tmp_path, [("ro", DEFAULT, HostMode.READ_ONLY)])
    app = build(tmp_path, [], config=config)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        view = await open_screen(pilot, app, "web1")
        assert view.state == "shown" and not view.writable
        before = typed("web1")
        await pilot.press("x", "enter")
        await pilot.pause(0.2)
        assert typed("web1") == before
        assert "read-only" in str(view.query_one("#screen-status").render())
        assert view.check_action("special_keys", ()) is False
        find(app, "web1")


def test_key_map() -> None:
    assert key_events("a", "a") == text_events("a")
    assert key_events("A", "A") == text_events("A")
    assert key_events("enter", "\r") == key_combo(["ret"])
    assert key_events("ctrl+c", "\x03") == key_combo(["ctrl", "c"])
    assert key_events("ctrl+alt+delete", None) == key_combo(["ctrl", "alt", "delete"])
    assert key_events("shift+tab", None) == key_combo(["shift", "tab"])
    assert key_events("ctrl+left", None) == key_combo(["ctrl", "left"])
    assert key_events("f2", None) == key_combo(["f2"])
    assert key_events("plus", "+") == text_events("+")
    assert key_events("exclamation_mark", "!") == text_events("!")
    assert key_events("space", " ") == key_combo(["spc"])
    assert key_events("alt+x", "x") == key_combo(["alt", "x"])
    assert key_events("ctrl+backslash", "\x1c") == key_combo(["ctrl", "backslash"])
    assert key_events("hyper+q", None) is None


@pytest.mark.parametrize(
    ("env", "tty", "expected"),
    [
        ({"TERM": "xterm-kitty"}, True, "kitty"),
        ({"TERM": "xterm-256color", "KITTY_WINDOW_ID": "1"}, True, "kitty"),
        ({"TERM": "foot"}, True, "sixel"),
        ({"TERM": "xterm-256color", "TERM_PROGRAM": "WezTerm"}, True, "sixel"),
        ({"TERM": "xterm-256color"}, True, "halfblock"),
        ({"TERM": "xterm-kitty", "TMUX": "/tmp/tmux-0/default,1,0"}, True, "halfblock"),
        ({"TERM": "xterm-kitty"}, False, "halfblock"),
        ({"TERM": "xterm-256color", "VIRTDECK_GRAPHICS": "sixel"}, False, "sixel"),
    ],
)
def test_graphics_protocol_choice(env: dict[str, str], tty: bool, expected: str) -> None:
    assert graphics.choose(env, tty) == expected


async def test_clicks_go_to_the_guests_pointer(tmp_path: Path) -> None:
    async with await drivers.open(DEFAULT) as conn:
        await _with_display(conn, "web1")
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        view = await open_screen(pilot, app, "web1")
        region = view.query_one("#screen-image").region
        # the picture's middle is the guest's (360, 200): QEMU's absolute axes 0..32767
        offset = (region.width // 2, region.height // 2)
        await pilot.click("#screen-image", offset=offset)
        sim = default_registry().simulated("web1")
        await until(
            pilot, lambda: any(e["type"] == "btn" for e in sim.screen.received), what="a click"
        )
        moves = [e["data"] for e in sim.screen.received if e["type"] == "abs"]
        assert {m["axis"] for m in moves} == {"x", "y"}
        x = next(m["value"] for m in moves if m["axis"] == "x")
        assert abs(x - 0x7FFF // 2) < 0x7FFF // 20
        await until(pilot, lambda: len([e for e in sim.screen.received if e["type"] == "btn"]) >= 2)
        buttons = [e["data"] for e in sim.screen.received if e["type"] == "btn"]
        assert buttons[:2] == [{"down": True, "button": "left"}, {"down": False, "button": "left"}]


async def test_the_picture_follows_the_window_and_keeps_its_aspect(tmp_path: Path) -> None:
    async with await drivers.open(DEFAULT) as conn:
        await _with_display(conn, "web1")
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        view = await open_screen(pilot, app, "web1")
        image = view.query_one("#screen-image")
        await until(pilot, lambda: image.region.width > 0, what="the picture")

        def aspect() -> float:
            # cells are twice as high as wide (textual-image's default cell of 10x20 pixels)
            return image.region.width / (image.region.height * 2)

        big = image.region
        assert abs(aspect() - 720 / 400) < 0.1, big
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: image.region.width < big.width, what="a smaller picture")
        assert image.region.height <= 24 - 3  # title, status line, footer
        assert abs(aspect() - 720 / 400) < 0.15, image.region
        await pilot.resize_terminal(160, 30)  # wide: the height limits it, centred
        await until(pilot, lambda: image.region.height == 30 - 3, what="a full-height picture")
        assert abs(aspect() - 720 / 400) < 0.1, image.region
        assert image.region.x > 0


async def test_the_keymap_can_move_the_escape_key(tmp_path: Path) -> None:
    async with await drivers.open(DEFAULT) as conn:
        await _with_display(conn, "web1")
    config = '[keymap]\n"screen.back" = "ctrl+b"\n'
    app = build(tmp_path, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        assert app.keymap_applied == {"screen.back": "ctrl+b"}
        view = await open_screen(pilot, app, "web1")
        assert "^b returns to the table" in str(view.query_one("#screen-status").render())
        await pilot.press("ctrl+b")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), what="the table")


async def test_drawing_stays_within_its_cpu_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When drawing costs more than the budget, the view asks for fewer frames (a new
    stream at a lower rate, down to 2 a second) and the frames keep coming."""
    import tui.screens.screen as screen_module

    monkeypatch.setattr(screen_module, "CPU_BUDGET", 1e-6)  # everything is too much
    monkeypatch.setattr(screen_module, "RATE_WINDOW", 0.2)
    async with await drivers.open(DEFAULT) as conn:
        await _with_display(conn, "web1")
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        view = await open_screen(pilot, app, "web1")
        sim = default_registry().simulated("web1")

        async def churn() -> None:
            for i in range(200):
                sim.console.write(f"line {i}\r\n")
                await asyncio.sleep(0.03)

        task = asyncio.create_task(churn())
        try:
            await until(pilot, lambda: view.interval == screen_module.MAX_INTERVAL,
                        what="the slowest rate")  # fmt: skip
            frames = view.frames
            await until(pilot, lambda: view.frames > frames + 1, what="frames at that rate")
            assert view.state == "shown"
        finally:
            task.cancel()
