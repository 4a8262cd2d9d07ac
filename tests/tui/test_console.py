"""The console screen (c): keys to the guest and its output in the emulator, ctrl+] back,
busy and force, the end of the stream, resizing, and that nothing the guest sends reaches
the real terminal."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from textual import events
from textual.drivers.headless_driver import HeadlessDriver
from textual.pilot import Pilot

import drivers
from drivers.test.driver import default_registry
from tests.tui.helpers import DEFAULT, SIZE, build, find, loaded, main_screen, select, settle, until
from tui.app import VirtdeckApp
from tui.screens.console import ConsoleScreen
from tui.screens.main import MainScreen
from tui.widgets.terminal import key_bytes

ESCAPE = "ctrl+right_square_bracket"


async def open_console(pilot: Pilot[None], app: VirtdeckApp, name: str) -> ConsoleScreen:
    await select(pilot, app, name)
    await pilot.press("c")
    await until(pilot, lambda: isinstance(app.screen, ConsoleScreen), what="the console")
    screen = app.screen
    assert isinstance(screen, ConsoleScreen)
    await until(pilot, lambda: screen.state != "attaching", what="attached")
    return screen


def screen_text(screen: ConsoleScreen) -> str:
    return "\n".join(screen.terminal.text())


async def type_line(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*[("space" if c == " " else c) for c in text], "enter")


async def test_ping_gets_pong_on_the_emulated_screen_and_ctrl_bracket_returns(
    tmp_path: Path,
) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = await open_console(pilot, app, "web1")
        assert screen.state == "attached"
        console = default_registry().consoles[find(app, "web1").uuid]
        assert console.attached
        await type_line(pilot, "ping")
        await until(pilot, lambda: "VIRTDECK-PONG" in screen_text(screen), what="the pong")
        assert screen.terminal.text()[:3] == ["ping", "VIRTDECK-PONG", "root@web1:~#"]
        # keys that are bindings elsewhere go to the guest here: q, ?, /, escape, tab
        await pilot.press("q", "question_mark", "slash", "tab", "escape", "enter")
        await until(pilot, lambda: "VIRTDECK-UNKNOWN q?/" in screen_text(screen))
        assert isinstance(app.screen, ConsoleScreen)
        # ctrl+c interrupts the guest's line, it does not leave
        await pilot.press("x", "ctrl+c")
        await until(pilot, lambda: "x^C" in screen_text(screen))
        await pilot.press(ESCAPE)
        await until(pilot, lambda: isinstance(app.screen, MainScreen), what="the table")
        await until(pilot, lambda: not console.attached, what="the console to be let go")
        await settle(app)
        assert not [n for n in app._notifications if n.severity == "error"]


class RecordingDriver(HeadlessDriver):
    """The headless driver, but the app draws through it as through a terminal's, and
    everything it writes is kept."""

    written: list[str] = []

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        RecordingDriver.written.append(data)


#: What a hostile (or merely chatty) guest can send: clear screen, window title, clipboard
#: write, cursor moves and saves, leaving the alternate screen, hiding the cursor, a
#: cursor-position query, a bell, colours, and C1 controls.
HOSTILE = (
    b"\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]2;pwned-too\x1b\\\x1b]52;c;cHduZWQ=\x07"
    b"\x1b[10A\x1b[s\x1b[u\x1b7\x1b8\x1b[?1049l\x1b[?25l\x1b[6n\x07"
    b"\x1b[31mred\x1b[0m \xc2\x9b2J \xe2\x80\xaeevil\r\n"
    b"guest-text-marker\r\n"
)
FORBIDDEN = (
    "\x1b]0;",
    "\x1b]2;",
    "\x1b]52;",
    "pwned\x07",
    "\x1b[2J",
    "\x1b[10A",
    "\x1b[s",
    "\x1b[u",
    "\x1b7",
    "\x1b8",
    "\x1b[6n",
    "\x1b[31m",
    "\x07",
    "\x9b",
    "\u202e",
)


async def test_escape_sequences_from_the_guest_never_reach_the_real_terminal(
    tmp_path: Path,
) -> None:
    app = build(tmp_path)
    app.driver_class = RecordingDriver
    RecordingDriver.written = []
    async with app.run_test(size=SIZE, headless=False) as pilot:
        await loaded(pilot, app, 5)
        screen = await open_console(pilot, app, "web1")
        await pilot.pause(0.1)
        RecordingDriver.written.clear()  # from here on: only what the guest's output causes
        default_registry().consoles[find(app, "web1").uuid].write(HOSTILE)
        await until(pilot, lambda: "guest-text-marker" in screen_text(screen))
        await pilot.pause(0.2)
        output = "".join(RecordingDriver.written)
        assert "guest-text-marker" in output  # the app did draw the guest's output
        for raw in FORBIDDEN:
            assert raw not in output, f"{raw!r} reached the terminal"
        # the title is kept by the emulator and shown as inert text in the header
        assert screen.terminal.title == "pwned-too"
        assert "pwned-too" in str(screen.query_one("#console-title").render())
        # the cursor-position query was answered to the guest, not to the user's terminal
        assert "\x1b[" not in "".join(screen.terminal.text())


async def test_another_clients_console_says_so_and_f_takes_it_over(tmp_path: Path) -> None:
    app = build(tmp_path)
    other = await drivers.open("test:///default")
    theirs = await (await other.lookup("web1")).console()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot, app, 5)
            screen = await open_console(pilot, app, "web1")
            assert screen.state == "busy"
            status = str(screen.query_one("#console-status").render())
            assert "in use by another client" in status and "f takes it over" in status
            await pilot.press("f")
            await until(pilot, lambda: screen.state == "attached", what="the takeover")
            assert await theirs.read() == b""
            assert theirs.ended == "another client took over the console"
            # ... and the other client takes it back: this one says why it ended
            theirs = await (await other.lookup("web1")).console(force=True)
            await until(pilot, lambda: screen.state == "ended", what="the end")
            status = str(screen.query_one("#console-status").render())
            assert "The console ended: another client took over the console" in status
            await pilot.press("r")  # busy again, not an error
            await until(pilot, lambda: screen.state == "busy")
            await pilot.press("escape")  # not attached: escape goes back too
            await until(pilot, lambda: isinstance(app.screen, MainScreen))
            await settle(app)
            assert not [n for n in app._notifications if n.severity == "error"]
    finally:
        await theirs.close()
        await other.close()


async def test_the_console_ends_when_the_domain_stops_and_r_attaches_again(
    tmp_path: Path,
) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = await open_console(pilot, app, "web1")
        conn = await drivers.open("test:///default")
        dom = await conn.lookup("web1")
        await type_line(pilot, "poweroff")
        await until(pilot, lambda: screen.state == "ended", what="the end of the stream")
        status = str(screen.query_one("#console-status").render())
        assert "The console ended: the domain stopped" in status
        assert "Power down" in screen_text(screen)
        await pilot.press("r")  # the domain is off: it cannot attach; the app says why
        await until(pilot, lambda: screen.state == "failed")
        assert "not running" in str(screen.query_one("#console-status").render())
        await dom.start()
        await pilot.press("r")
        await until(pilot, lambda: screen.state == "attached")
        await type_line(pilot, "ping")
        await until(pilot, lambda: "VIRTDECK-PONG" in screen_text(screen))
        await conn.close()


async def test_resizing_resizes_the_emulated_screen(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = await open_console(pilot, app, "web1")
        emulator = screen.terminal.emulator
        assert (emulator.columns, emulator.lines) == (SIZE[0], SIZE[1] - 3)
        await pilot.resize_terminal(90, 30)
        await until(pilot, lambda: (emulator.columns, emulator.lines) == (90, 27))
        await type_line(pilot, "echo " + "x" * 100)
        # the guest's long line wraps at the new width
        await until(pilot, lambda: screen.terminal.text()[2:4] == ["x" * 90, "x" * 10])
        assert "90x27" in str(screen.query_one("#console-status").render())


async def test_the_console_is_offered_only_where_it_can_work(tmp_path: Path) -> None:
    node = tmp_path / "ro.xml"
    from tui.demo import node_xml

    node.write_text(node_xml("ro", (("ro-vm", 512, 1, 1),)))
    config = (
        '[[hosts]]\nname = "local"\nuri = "test:///default"\n\n'
        f'[[hosts]]\nname = "ro"\nuri = "test://{node}"\nmode = "read-only"\n'
    )
    app = build(tmp_path, uris=(), config=config)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 6)
        screen = main_screen(app)
        await select(pilot, app, "web1")
        assert screen.check_action("console", ()) is True
        assert screen.check_action("logs", ()) is True
        await select(pilot, app, "build")  # shut off: dimmed; its log (none yet) is there
        assert screen.check_action("console", ()) is None
        assert screen.check_action("logs", ()) is True
        await select(pilot, app, "ro-vm")  # a read-only host takes no keys
        assert screen.check_action("console", ()) is False
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


def test_keys_become_what_a_terminal_sends() -> None:
    assert key_bytes("enter", "\r") == b"\r"
    assert key_bytes("backspace", "\x7f") == b"\x7f"
    assert key_bytes("tab", "\t") == b"\t"
    assert key_bytes("shift+tab", None) == b"\x1b[Z"
    assert key_bytes("escape", "\x1b") == b"\x1b"
    assert key_bytes("up", None) == b"\x1b[A"
    assert key_bytes("up", None, app_cursor=True) == b"\x1bOA"
    assert key_bytes("ctrl+left", None) == b"\x1b[1;5D"
    assert key_bytes("shift+end", None) == b"\x1b[1;2F"
    assert key_bytes("home", None) == b"\x1b[H"
    assert key_bytes("pagedown", None) == b"\x1b[6~"
    assert key_bytes("delete", None) == b"\x1b[3~"
    assert key_bytes("f1", None) == b"\x1bOP"
    assert key_bytes("f12", None) == b"\x1b[24~"
    assert key_bytes("ctrl+a", "\x01") == b"\x01"
    assert key_bytes("ctrl+c", "\x03") == b"\x03"
    assert key_bytes("ctrl+z", None) == b"\x1a"
    assert key_bytes("ctrl+backslash", "\x1c") == b"\x1c"
    assert key_bytes("alt+x", "x") == b"\x1bx"
    assert key_bytes("a", "a") == b"a"
    assert key_bytes("A", "A") == b"A"
    assert key_bytes("space", " ") == b" "
    assert key_bytes("question_mark", "?") == b"?"
    assert key_bytes("eacute", "é") == "é".encode()
    assert key_bytes("shift", None) is None


async def test_the_new_domain_form_opens_the_console_after_define_and_start(
    tmp_path: Path,
) -> None:
    from textual.widgets import Button

    from tui.screens.new_domain import NewDomainScreen

    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewDomainScreen))
        form = app.screen
        assert isinstance(form, NewDomainScreen)
        await until(pilot, lambda: form.names is not None)
        assert form.query_one("#f-open_console").display
        await pilot.press(*"installer")
        start = form.query_one("#define-start", Button)
        await until(pilot, lambda: not start.disabled, what="the form to be ready")
        await pilot.press("ctrl+r")  # define and start
        await until(pilot, lambda: isinstance(app.screen, ConsoleScreen), timeout=15)
        screen = app.screen
        assert isinstance(screen, ConsoleScreen) and screen.domain == "installer"
        await until(pilot, lambda: screen.state == "attached")
        await type_line(pilot, "ping")
        await until(pilot, lambda: "VIRTDECK-PONG" in screen_text(screen))


async def echo_times(tmp_path: Path, uris: tuple[str, ...] = (DEFAULT,)) -> tuple[float, float]:
    """Type 40 characters into web1's console, a fast typist's pace apart (1000 a minute);
    the p50 in ms of key press → its echo on the emulated screen, and → the echo drawn on
    the terminal (what the app writes to its driver)."""
    app = build(tmp_path, uris=uris)
    app.driver_class = RecordingDriver
    RecordingDriver.written = []
    on_screen: list[float] = []
    painted: list[float] = []
    async with app.run_test(size=SIZE, headless=False) as pilot:
        await loaded(pilot, app, 5)
        screen = await open_console(pilot, app, "web1")
        terminal = screen.terminal
        await pilot.pause(0.2)
        for n in range(40):
            char = "abcdefghijklmnopqrstuvwxyz"[n % 26]
            fed = terminal.bytes_fed
            RecordingDriver.written.clear()
            start = time.perf_counter()
            app.post_message(_key(char))
            while terminal.bytes_fed == fed:
                await asyncio.sleep(0)
            on_screen.append(time.perf_counter() - start)
            while not any(char in chunk for chunk in RecordingDriver.written):
                await asyncio.sleep(0.0002)
            painted.append(time.perf_counter() - start)
            await pilot.pause(0.06)
    return statistics.median(on_screen) * 1000, statistics.median(painted) * 1000


async def test_key_to_echo_round_trip_is_fast(tmp_path: Path) -> None:
    """The test driver in the app's process: the p50 of both under 5 ms."""
    echo, drawn = await echo_times(tmp_path)
    print(f"key → echo on the emulated screen p50 {echo:.2f} ms, drawn p50 {drawn:.2f} ms")
    assert echo < 5
    assert drawn < 5


def _key(char: str) -> events.Key:
    return events.Key(char, char)


async def test_the_palette_opens_the_console_and_the_log(tmp_path: Path) -> None:
    from textual.command import CommandPalette
    from textual.screen import Screen

    from tui.screens.logs import LogsScreen

    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "web1")
        wanted: tuple[tuple[str, type[Screen[None]]], ...] = (
            ("console of web1", ConsoleScreen),
            ("log of web1", LogsScreen),
        )
        for words, screen_type in wanted:

            def shown(kind: type[Screen[None]] = screen_type) -> bool:
                return isinstance(app.screen, kind)

            await pilot.press("colon")
            await until(pilot, lambda: isinstance(app.screen, CommandPalette))
            await pilot.press(*words)
            await pilot.pause(0.3)
            await pilot.press("enter")
            await until(pilot, shown, what=words)
            await pilot.press(ESCAPE if screen_type is ConsoleScreen else "escape")
            await until(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_the_keymap_can_move_the_escape_key(tmp_path: Path) -> None:
    config = '[keymap]\n"console.back" = "ctrl+b"\n'
    app = build(tmp_path, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        assert app.keymap_applied == {"console.back": "ctrl+b"}
        assert not [n for n in app._notifications if n.severity == "warning"]
        screen = await open_console(pilot, app, "web1")
        assert "^b returns to the table" in str(screen.query_one("#console-status").render())
        await pilot.press(ESCAPE)  # no longer the escape key: it goes to the guest
        await pilot.pause(0.1)
        assert app.screen is screen
        await pilot.press("ctrl+b")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
