"""Printing text that others control (guest names, titles, XML, error details) safely.

A domain's name or title is chosen by whoever wrote its XML, and a remote daemon may send
anything; printed raw, an ESC or C1 byte would let that text drive the user's terminal
(move the cursor, rewrite earlier lines, set the window title, ...). :func:`inert` turns
every such character into a visible escape, as virsh's table printer does.
"""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False  # not typing's: see drivers/records.py (one-shot CLI start-up)

if TYPE_CHECKING:
    import re


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# Bidirectional overrides and isolates reorder the characters that follow them, so a name
# could display as another name (the "Trojan Source" trick).
_BIDI = frozenset({0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)})


def _unsafe(code: int) -> bool:
    return (
        code < 0x20  # C0 controls, ESC among them
        or 0x7F <= code < 0xA0  # DEL and the C1 controls (8-bit CSI, OSC, ...)
        or code in _BIDI
        # Lone surrogates (undecodable bytes from argv or a peer) cannot even be encoded.
        or 0xD800 <= code < 0xE000
    )


class _Table(dict[int, str]):
    """A ``str.translate`` table filled in as characters are met (cheap to import)."""

    def __init__(self, keep: str, escape: Callable[[int], str]) -> None:
        super().__init__()
        self._keep = keep
        self._escape = escape

    def __missing__(self, code: int) -> str:
        char = chr(code)
        text = self._escape(code) if _unsafe(code) and char not in self._keep else char
        self[code] = text
        return text


_MULTILINE = _Table("\n\t", _escape)
_ONE_LINE = _Table("", _escape)


def _xml_escape(code: int) -> str:
    # Characters XML cannot carry at all (C0 controls, surrogates) never occur in
    # serialized XML; should one appear anyway, it stays for inert() to escape.
    return chr(code) if code < 0x7F or 0xD800 <= code < 0xE000 else f"&#x{code:x};"


_XML = _Table("\n\t\r", _xml_escape)


def inert(text: str, *, one_line: bool = False) -> str:
    """``text`` with terminal control characters escaped as ``\\xNN``.

    Newlines and tabs survive unless ``one_line``: a field printed inside a line (a name in
    a table cell or an event line) must not be able to start a forged line of its own.
    """
    return text.translate(_ONE_LINE if one_line else _MULTILINE)


def inert_xml(text: str) -> str:
    """XML with every character :func:`inert` would escape written as ``&#xNN;``.

    The result is still the same XML document (a user can ``define`` what ``dumpxml``
    printed), yet inert on a terminal.
    """
    return text.translate(_XML)


def display_width(text: str) -> int:
    """How many terminal columns ``text`` takes (wide East Asian characters take two)."""
    if text.isascii():
        return len(text)
    import unicodedata

    width = 0
    for char in text:
        if unicodedata.combining(char) or char == "\u200b":
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _replacement(code: int) -> str:
    return "\ufffd"


_CELLS = _Table("", _replacement)


def inert_cells(text: str) -> str:
    """``text`` with every character :func:`inert` would escape replaced by U+FFFD, one
    cell each (for a terminal emulator's cells, whose widths must not change)."""
    return text.translate(_CELLS)


_ESCAPES: re.Pattern[str] | None = None


def plain_line(text: str) -> str:
    """A line of console output as plain, inert text: escape sequences (colours, cursor
    moves, titles) taken out, a carriage return keeps what was written after it,
    backspaces rub out, tabs become spaces; anything left that could drive a terminal
    is escaped by :func:`inert`."""
    global _ESCAPES
    if "\x1b" in text or "\x9b" in text or "\x9d" in text:
        if _ESCAPES is None:
            import re

            _ESCAPES = re.compile(
                r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI ... final
                r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC ... BEL/ST
                r"|\x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # DCS, SOS, PM, APC ... ST
                r"|\x1b[ -/]*[0-~]?"  # other ESC sequences (charsets, keypad modes ...)
            )
        text = _ESCAPES.sub("", text)
    if "\r" in text:
        parts = [p for p in text.split("\r") if p]
        text = parts[-1] if parts else ""
    if "\b" in text:
        kept: list[str] = []
        for char in text:
            if char == "\b":
                if kept:
                    kept.pop()
            else:
                kept.append(char)
        text = "".join(kept)
    if "\t" in text:
        text = text.expandtabs(8)
    return inert(text, one_line=True)
