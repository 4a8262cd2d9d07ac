"""The pure parts of ``console`` and ``logs``: the terminal-string filter and --since."""

from __future__ import annotations

import pytest

from drivers.errors import InvalidArgument
from tui.virsh.console import TerminalStringFilter, parse_since


def test_terminal_strings_are_dropped_and_the_rest_passes() -> None:
    f = TerminalStringFilter()
    guest = (
        b"\x1b[2J\x1b[Hhello \x1b[1;31mred\x1b[0m"  # clear, home, colours: kept
        b"\x1b]0;pwned\x07"  # window title (OSC ... BEL): dropped
        b"\x1b]52;c;ZXZpbA==\x1b\\"  # clipboard write (OSC ... ST): dropped
        b"\x1bPq#0;2;0;0;0\x1b\\"  # DCS (sixel): dropped
        b"\x9d8;;http://x\x9c"  # 8-bit OSC hyperlink: dropped
        b" done\r\n"
    )
    assert f.feed(guest) == b"\x1b[2J\x1b[Hhello \x1b[1;31mred\x1b[0m done\r\n"


def test_filter_holds_state_across_chunks() -> None:
    f = TerminalStringFilter()
    out = b"".join(f.feed(bytes([b])) for b in b"a\x1b]0;t\x1b\\b\x1b[Kc")
    assert out == b"ab\x1b[Kc"


def test_since() -> None:
    now = 1_800_000_000.0
    assert parse_since("90s", now) == now - 90
    assert parse_since("10m", now) == now - 600
    assert parse_since("2h", now) == now - 7200
    assert parse_since("1700000000", now) == 1_700_000_000.0
    assert parse_since("2026-12-02T13:00+00:00", now) == 1796216400.0
    with pytest.raises(InvalidArgument, match="30s, 10m, 2h, 1d"):
        parse_since("yesterday", now)
