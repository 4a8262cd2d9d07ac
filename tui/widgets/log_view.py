"""The lines of a console log: each with its time, matches of a search marked.

A Line-API widget (a log from boot can hold many thousand lines; only the visible ones are
drawn). The texts arrive already plain and inert (:func:`tui.text.plain_line`); a line whose
time is not exact (written while no daemon watched, stamped when it was read) has ``≈``
before its time.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import ClassVar, NamedTuple

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

__all__ = ["LogLine", "LogView", "stamp"]

#: Lines kept (the oldest go first).
MAX_LINES = 100_000
STAMP_WIDTH = len("≈00:00:00.000  ")


class LogLine(NamedTuple):
    wall: float
    text: str
    exact: bool


def stamp(wall: float, exact: bool) -> str:
    """``12:34:56.789`` in local time, with ``≈`` in front when not exact."""
    clock = time.strftime("%H:%M:%S", time.localtime(wall))
    millis = int((wall - int(wall)) * 1000) if wall >= 0 else 0
    return f"{'' if exact else '≈'}{clock}.{millis:03d}".rjust(STAMP_WIDTH - 2) + "  "


class LogView(ScrollView, can_focus=True):
    """Log lines under one another, newest last; follows the end while ``follow`` is on."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-view--stamp",
        "log-view--inexact",
        "log-view--match",
        "log-view--current",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "scroll_up", "Up", show=False, id="logs.up", tooltip="Scroll up a line"),
        Binding(
            "down,j",
            "scroll_down",
            "Down",
            show=False,
            id="logs.down",
            tooltip="Scroll down a line",
        ),
        Binding(
            "home,g", "scroll_home", "Top", show=False, id="logs.top", tooltip="The first line"
        ),
        Binding(
            "end,G",
            "scroll_end",
            "Bottom",
            show=False,
            id="logs.bottom",
            tooltip="The last line (and follow the log again)",
        ),
    ]
    DEFAULT_CSS = """
    LogView {
        height: 1fr;
        background: $background;
        color: $foreground;
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
        & > .log-view--stamp {
            color: $text-muted;
        }
        & > .log-view--inexact {
            color: $text-warning;
        }
        & > .log-view--match {
            background: $warning 35%;
        }
        & > .log-view--current {
            background: $accent 70%;
            color: $background;
            text-style: bold;
        }
    }
    """

    follow = reactive(True, layout=False, repaint=False)
    """Keep the newest line in view as lines arrive."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.lines: list[LogLine] = []
        self.search = ""
        self.matches: list[tuple[int, int]] = []
        """(line index, column) of every match of ``search``."""
        self.current = -1
        """The index in ``matches`` of the match moved to last; -1 for none."""
        self._widest = 0

    # --- content ------------------------------------------------------------------------

    def add(self, lines: list[LogLine]) -> None:
        """Append lines (plain, inert text)."""
        if not lines:
            return
        self.lines.extend(lines)
        dropped = len(self.lines) - MAX_LINES
        if dropped > 0:
            del self.lines[:dropped]
            self.matches = [(i - dropped, c) for i, c in self.matches if i >= dropped]
            self.current = min(self.current, len(self.matches) - 1)
        start = len(self.lines) - len(lines)
        if self.search:
            self.matches.extend(self._find(self.search, max(0, start)))
        self._widest = max(self._widest, max(cell_len(line.text) for line in lines))
        self.virtual_size = Size(STAMP_WIDTH + self._widest, len(self.lines))
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def _find(self, needle: str, start: int = 0) -> list[tuple[int, int]]:
        needle = needle.lower()
        found: list[tuple[int, int]] = []
        for index in range(start, len(self.lines)):
            haystack = self.lines[index].text.lower()
            column = haystack.find(needle)
            while column >= 0:
                found.append((index, column))
                column = haystack.find(needle, column + max(1, len(needle)))
        return found

    def set_search(self, needle: str) -> None:
        """Mark every match of ``needle`` (case does not matter); "" marks none."""
        self.search = needle
        self.matches = self._find(needle) if needle else []
        self.current = -1
        self.refresh()

    def jump(self, step: int) -> tuple[int, int] | None:
        """Move to the next (``step`` 1) or previous (-1) match from the view, wrapping
        around; the match, or None when there is none."""
        if not self.matches:
            return None
        if self.current < 0:
            top = round(self.scroll_offset.y)
            if step > 0:
                after = [n for n, (i, _) in enumerate(self.matches) if i >= top]
                self.current = after[0] if after else 0
            else:
                before = [n for n, (i, _) in enumerate(self.matches) if i < top + self.size.height]
                self.current = before[-1] if before else len(self.matches) - 1
        else:
            self.current = (self.current + step) % len(self.matches)
        index, column = self.matches[self.current]
        self.follow = False
        height = max(1, self.size.height)
        top = round(self.scroll_offset.y)
        if not top <= index < top + height:
            self.scroll_to(y=max(0, index - height // 2), animate=False, immediate=True)
        width = max(1, self.size.width - STAMP_WIDTH)
        left = round(self.scroll_offset.x)
        if not left <= column < left + width - len(self.search):
            self.scroll_to(x=max(0, column - width // 3), animate=False, immediate=True)
        self.refresh()
        return index, column

    # --- scrolling ----------------------------------------------------------------------

    def action_scroll_up(self) -> None:
        self.follow = False
        self.scroll_relative(y=-1, animate=False, immediate=True)

    def action_scroll_down(self) -> None:
        self.scroll_relative(y=1, animate=False, immediate=True)

    def action_scroll_home(self) -> None:
        self.follow = False
        self.scroll_to(y=0, animate=False, immediate=True)

    def action_scroll_end(self) -> None:
        self.follow = True
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    def action_page_up(self) -> None:
        self.follow = False
        super().action_page_up()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.follow = False

    # --- drawing --------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = round(self.scroll_offset.x), round(self.scroll_offset.y)
        width = self.size.width
        base = self.rich_style
        index = scroll_y + y
        if index >= len(self.lines):
            return Strip.blank(width, base)
        line = self.lines[index]
        stamp_style = base + self.get_component_rich_style(
            "log-view--stamp" if line.exact else "log-view--inexact"
        )
        segments = [Segment(stamp(line.wall, line.exact), stamp_style)]
        text = line.text[scroll_x:] if scroll_x else line.text
        segments.extend(self._text_segments(index, text, scroll_x, base))
        strip = Strip(segments)
        return strip.extend_cell_length(width, base).crop(0, width)

    def _text_segments(self, index: int, text: str, offset: int, base: Style) -> list[Segment]:
        """The line's text (from column ``offset``), with its matches marked."""
        if not self.search:
            return [Segment(text, base)]
        matches = self.matches
        first = bisect_left(matches, (index, -1))
        last = bisect_left(matches, (index + 1, -1), first)
        spans = [(matches[n][1] - offset, n == self.current) for n in range(first, last)]
        if not spans:
            return [Segment(text, base)]
        match = base + self.get_component_rich_style("log-view--match")
        current = base + self.get_component_rich_style("log-view--current")
        size = len(self.search)
        segments: list[Segment] = []
        at = 0
        for start, is_current in spans:
            end = start + size
            if end <= 0:
                continue
            start = max(0, start)
            if start > at:
                segments.append(Segment(text[at:start], base))
            segments.append(Segment(text[start:end], current if is_current else match))
            at = end
        segments.append(Segment(text[at:], base))
        return segments
