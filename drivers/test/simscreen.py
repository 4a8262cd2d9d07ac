"""The display and keyboard of a simulated guest, for the ``test://`` driver.

The simulated guest shows its console on a VGA-like text screen (the last 25 lines its
shell wrote, 80 columns, in a 720x400 picture as a VGA text mode has), and what is typed on
its keyboard goes to the same shell as its serial line: like the real test guest, which
reads commands from tty1 as well as from ttyS0.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

from drivers.keys import TYPABLE, text_events
from drivers.model import KeyInput
from drivers.test.simconsole import SimulatedConsole

WIDTH, HEIGHT = 720, 400
COLUMNS, ROWS = 80, 25
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*(\x07|\x1b\\)|\x1b[@-_]")

# qcode -> (character, shifted character) for keys that type something.
_TYPED: dict[str, tuple[str, str]] = {}
for _char in sorted(TYPABLE):
    _events = text_events(_char)
    _keys = [e for e in _events if isinstance(e, KeyInput) and e.down and e.qcode != "shift"]
    if _keys:
        _plain, _shift = _TYPED.get(_keys[0].qcode, ("", ""))
        if len(_events) == 4:
            _shift = _char
        else:
            _plain = _char
        _TYPED[_keys[0].qcode] = (_plain, _shift)
_TYPED["ret"] = ("\r", "\r")
_TYPED["kp_enter"] = ("\r", "\r")
_TYPED["backspace"] = ("\x7f", "\x7f")


class SimulatedScreen:
    """What one run of a simulated guest shows and what its keyboard types."""

    def __init__(self, console: SimulatedConsole) -> None:
        self.console = console
        self._held: set[str] = set()
        #: Every input event the guest received, as QMP sent it (tests look at it).
        self.received: list[Mapping[str, Any]] = []

    def rows(self) -> list[str]:
        """The text screen: the console's last lines, escape sequences taken out."""
        lines = [line.text for line in self.console.lines]
        partial = self.console.partial
        if partial:
            lines.append(partial)
        shown = [_ESCAPES.sub("", line).replace("\r", "")[:COLUMNS] for line in lines[-ROWS:]]
        return shown + [""] * (ROWS - len(shown))

    def png(self) -> bytes:
        from PIL import Image, ImageDraw, ImageFont

        image = Image.new("RGB", (WIDTH, HEIGHT), (0, 0, 0))
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default(size=14)
        for index, row in enumerate(self.rows()):
            if row:
                draw.text((0, index * 16), row, fill=(170, 170, 170), font=font)
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=1)
        return out.getvalue()

    def receive(self, events: Iterable[Mapping[str, Any]]) -> None:
        """QMP input-send-event's events: key presses type into the guest's shell."""
        for event in events:
            self.received.append(event)
            if event.get("type") != "key":
                continue
            data = event.get("data") or {}
            key = data.get("key") or {}
            qcode = str(key.get("data", ""))
            if not data.get("down"):
                self._held.discard(qcode)
                continue
            self._held.add(qcode)
            if qcode in ("shift", "shift_r", "ctrl", "ctrl_r", "alt", "alt_r"):
                continue
            typed = _TYPED.get(qcode)
            if typed is None:
                continue
            shifted = bool(self._held & {"shift", "shift_r"})
            char = typed[1] if shifted else typed[0]
            if self._held & {"ctrl", "ctrl_r"} and char.isalpha():
                char = chr(ord(char.lower()) - 96)  # ctrl+c is ETX, as on a terminal
            if char:
                self.console.type(char.encode())
