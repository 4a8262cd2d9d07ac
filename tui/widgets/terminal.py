"""A terminal emulator for a guest's serial console, drawn inside the app.

The guest's bytes go into a ``pyte`` screen (a VT100/xterm emulator): its escape sequences
move the cursor, clear and colour *that* screen, whose cells are then drawn as ordinary
Textual lines. Nothing the guest sends ever reaches the user's terminal: a clear screen, a
window title (kept in :attr:`TerminalView.title`, shown inert by the console screen), a
bell, a clipboard write or a query for the cursor's position only change the emulated
screen, or are answered to the guest (device status reports, as a terminal would).

Colours come from theme variables: the guest's default colours are the widget's own
(``$foreground`` on ``$background``), the sixteen ANSI colours are ``$term-black`` …
``$term-bright-white``; only 256-colour and true-colour codes keep the guest's own values.

Keys typed while the widget has focus become the bytes a terminal sends (:func:`key_bytes`)
and go up in a :class:`TerminalView.Input` message; so does pasted text (bracketed when the
guest asked for it). The console screen's escape key (ctrl+]) is a priority binding, so it
never reaches this widget.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pyte
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from tui.text import inert_cells

__all__ = ["TERM_VARIABLES", "TerminalView", "key_bytes"]

#: pyte's names of the sixteen ANSI colours → the theme variables that give them.
_ANSI = {
    "black": "term-black",
    "red": "term-red",
    "green": "term-green",
    "brown": "term-yellow",
    "yellow": "term-yellow",
    "blue": "term-blue",
    "magenta": "term-magenta",
    "cyan": "term-cyan",
    "white": "term-white",
    "brightblack": "term-bright-black",
    "brightred": "term-bright-red",
    "brightgreen": "term-bright-green",
    "brightbrown": "term-bright-yellow",
    "brightyellow": "term-bright-yellow",
    "brightblue": "term-bright-blue",
    "brightmagenta": "term-bright-magenta",
    "brightcyan": "term-bright-cyan",
    "brightwhite": "term-bright-white",
}
TERM_VARIABLES = tuple(dict.fromkeys(_ANSI.values()))
_HEX = frozenset("0123456789abcdefABCDEF")

# private modes, as pyte stores them (the mode number shifted left by 5)
_DECCKM = 1 << 5  # application cursor keys
_DECTCEM = 25 << 5  # the cursor is shown
_BRACKETED_PASTE = 2004 << 5

_KEYS: dict[str, bytes] = {
    "enter": b"\r",
    "tab": b"\t",
    "shift+tab": b"\x1b[Z",
    "backspace": b"\x7f",
    "ctrl+h": b"\x08",
    "escape": b"\x1b",
    "space": b" ",
    "delete": b"\x1b[3~",
    "insert": b"\x1b[2~",
    "pageup": b"\x1b[5~",
    "pagedown": b"\x1b[6~",
    "f1": b"\x1bOP",
    "f2": b"\x1bOQ",
    "f3": b"\x1bOR",
    "f4": b"\x1bOS",
    "f5": b"\x1b[15~",
    "f6": b"\x1b[17~",
    "f7": b"\x1b[18~",
    "f8": b"\x1b[19~",
    "f9": b"\x1b[20~",
    "f10": b"\x1b[21~",
    "f11": b"\x1b[23~",
    "f12": b"\x1b[24~",
    "ctrl+@": b"\x00",
    "ctrl+at": b"\x00",
    "ctrl+space": b"\x00",
    "ctrl+backslash": b"\x1c",
    "ctrl+right_square_bracket": b"\x1d",
    "ctrl+circumflex_accent": b"\x1e",
    "ctrl+underscore": b"\x1f",
}
_CURSOR_KEYS = {"up": "A", "down": "B", "right": "C", "left": "D", "home": "H", "end": "F"}
_MODIFIERS = {"shift": 2, "alt": 3, "shift+alt": 4, "ctrl": 5, "ctrl+shift": 6, "ctrl+alt": 7}


def key_bytes(key: str, character: str | None, app_cursor: bool = False) -> bytes | None:
    """What an xterm sends for Textual's ``key`` (with its ``character``); None for keys a
    terminal sends nothing for. ``app_cursor``: the guest asked for application cursor
    keys (``ESC O A`` instead of ``ESC [ A``)."""
    modifiers, _, name = key.rpartition("+")
    if name in _CURSOR_KEYS:
        final = _CURSOR_KEYS[name]
        if not modifiers:
            return (b"\x1bO" if app_cursor else b"\x1b[") + final.encode()
        code = _MODIFIERS.get(modifiers)
        return None if code is None else f"\x1b[1;{code}{final}".encode()
    known = _KEYS.get(key)
    if known is not None:
        return known
    if modifiers == "ctrl" and len(name) == 1 and name.isalpha():
        return bytes([ord(name.lower()) & 0x1F])
    if modifiers == "alt" and character and len(character) == 1:
        return b"\x1b" + character.encode()
    if character and len(character) == 1 and (character >= " " or character in "\t\r"):
        return character.encode("utf-8", "replace")
    if character and len(character) == 1 and ord(character) < 0x20:
        return character.encode()  # another control character Textual named for us
    return None


class _Screen(pyte.Screen):
    """pyte's screen, whose answers to the guest's queries are kept to be sent back."""

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self.replies: list[str] = []

    def write_process_input(self, data: str) -> None:
        self.replies.append(data)


class TerminalView(Widget, can_focus=True):
    """The emulated screen of a serial console.

    Args:
        columns, lines: the size until the widget is laid out (then it follows its size).
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"terminal--cursor"}
    DEFAULT_CSS = """
    TerminalView {
        width: 1fr;
        height: 1fr;
        background: $background;
        color: $foreground;
        & > .terminal--cursor {
            background: $foreground;
            color: $background;
        }
    }
    """

    class Input(Message):
        """Bytes for the guest: typed keys, pasted text, or answers to its queries."""

        def __init__(self, data: bytes) -> None:
            super().__init__()
            self.data = data

    class TitleChanged(Message):
        """The guest set its window title (kept here; never sent to the real terminal)."""

        def __init__(self, title: str) -> None:
            super().__init__()
            self.title = title

    def __init__(
        self,
        columns: int = 80,
        lines: int = 24,
        *,
        id: str | None = None,  # noqa: A002 - Textual's name
    ) -> None:
        super().__init__(id=id)
        self.emulator = _Screen(columns, lines)
        self._stream = pyte.ByteStream(self.emulator)
        self.title = ""
        """The window title the guest set last."""
        self.passthrough = True
        """Keys go to the guest (while the console is attached)."""
        self.bytes_fed = 0
        self._lines: dict[int, Strip] = {}
        self._styles: dict[tuple[object, ...], Style] = {}
        self._palette: Mapping[str, str] = {}
        self._cursor: tuple[int, int] = (0, 0)

    # --- what the guest sent ---------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Put the guest's bytes through the emulator and redraw the lines they changed."""
        if not data:
            return
        screen = self.emulator
        self._stream.feed(data)
        self.bytes_fed += len(data)
        dirty = screen.dirty
        cursor = (screen.cursor.x, screen.cursor.y)
        if cursor != self._cursor:
            dirty.update((self._cursor[1], cursor[1]))
            self._cursor = cursor
        width = self.size.width
        regions = []
        for y in dirty:
            self._lines.pop(y, None)
            regions.append(Region(0, y, width, 1))
        dirty.clear()
        if regions and self.is_mounted:
            self.refresh(*regions)
        if screen.title != self.title:
            self.title = screen.title
            self.post_message(self.TitleChanged(screen.title))
        if screen.replies:
            replies, screen.replies = screen.replies, []
            self.post_message(self.Input("".join(replies).encode()))

    def text(self) -> list[str]:
        """The emulated screen's lines as text (tests, and what a snapshot shows)."""
        return [line.rstrip() for line in self.emulator.display]

    # --- size ----------------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        columns, lines = max(2, event.size.width), max(1, event.size.height)
        screen = self.emulator
        if (columns, lines) != (screen.columns, screen.lines):
            screen.resize(lines, columns)
            screen.cursor.x = min(screen.cursor.x, columns - 1)
            screen.cursor.y = min(screen.cursor.y, lines - 1)
            screen.dirty.clear()
            self._lines.clear()
            self.refresh()

    # --- keys ------------------------------------------------------------------------------

    def on_key(self, event: events.Key) -> None:
        if not self.passthrough:
            return  # the console ended: the screen's keys (reconnect, back) apply
        data = key_bytes(event.key, event.character, _DECCKM in self.emulator.mode)
        if data is None:
            return
        event.stop()
        event.prevent_default()
        self.post_message(self.Input(data))

    def on_paste(self, event: events.Paste) -> None:
        if not self.passthrough or not event.text:
            return
        event.stop()
        text = event.text.replace("\r\n", "\r").replace("\n", "\r")
        if _BRACKETED_PASTE in self.emulator.mode:
            text = "\x1b[200~" + text.replace("\x1b[201~", "") + "\x1b[201~"
        self.post_message(self.Input(text.encode("utf-8", "replace")))

    def on_focus(self) -> None:
        self._redraw_cursor()

    def on_blur(self) -> None:
        self._redraw_cursor()

    def _redraw_cursor(self) -> None:
        y = self.emulator.cursor.y
        self._lines.pop(y, None)
        self.refresh(Region(0, y, self.size.width, 1))

    # --- drawing ---------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._lines.clear()
        self._palette = {}

    def _colour(self, name: str, default: str | None) -> str | None:
        if name == "default":
            return default
        variable = _ANSI.get(name)
        if variable is not None:
            if not self._palette:
                self._palette = self.app.theme_variables
            return self._palette.get(variable) or default
        if len(name) == 6 and _HEX.issuperset(name):
            return "#" + name  # a 256-colour or true-colour code: the guest's own colour
        return default

    def _style(self, char: pyte.screens.Char, base: Style) -> Style:
        key = (
            char.fg,
            char.bg,
            char.bold,
            char.italics,
            char.underscore,
            char.reverse,
            char.strikethrough,
        )
        style = self._styles.get(key)
        if style is None:
            fg_default = base.color.name if base.color is not None else None
            bg_default = base.bgcolor.name if base.bgcolor is not None else None
            fg = self._colour(char.fg, fg_default)
            bg = self._colour(char.bg, bg_default)
            if char.reverse:
                fg, bg = bg, fg
            style = base + Style(
                color=fg,
                bgcolor=bg,
                bold=char.bold,
                italic=char.italics,
                underline=char.underscore,
                strike=char.strikethrough,
            )
            self._styles[key] = style
        return style

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        screen = self.emulator
        base = self.rich_style
        if y >= screen.lines:
            return Strip.blank(width, base)
        show_cursor = (
            self.has_focus and _DECTCEM in screen.mode and not screen.cursor.hidden
        ) and screen.cursor.y == y
        if not show_cursor:
            cached = self._lines.get(y)
            if cached is not None:
                return cached
        line = screen.buffer[y]
        segments: list[Segment] = []
        run: list[str] = []
        run_style: Style | None = None
        cursor_x = screen.cursor.x if show_cursor else -1
        cursor_style = self.get_component_rich_style("terminal--cursor")
        for x in range(min(screen.columns, width)):
            char = line[x]
            if not char.data:
                continue  # the right half of a wide character
            style = self._style(char, base)
            if x == cursor_x:
                style = style + cursor_style
            if style is not run_style and run:
                segments.append(Segment(inert_cells("".join(run)), run_style))
                run = []
            run_style = style
            run.append(char.data)
        if run:
            segments.append(Segment(inert_cells("".join(run)), run_style))
        strip = Strip(segments).extend_cell_length(width, base).crop(0, width)
        if not show_cursor:
            self._lines[y] = strip
        return strip
