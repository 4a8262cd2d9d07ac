"""``console`` and ``logs``: the guest's serial console from the command line.

``virtdeck console [--force] DOMAIN`` puts the terminal in raw mode and joins it to the
guest's console until ctrl+] (as ``virsh console``). The guest's output goes to the
terminal as it comes — a console must carry cursor movement and colours — except the
escape sequences that act on the terminal itself rather than on the text in it (OSC: window
titles, the clipboard, hyperlinks; DCS, APC, PM, SOS strings), which a guest could use to
reach outside its own screen; those are dropped.

``virtdeck logs [--follow] [--since WHEN] [--timestamps] DOMAIN`` prints what the console
showed since the domain's boot, kept even when nobody was attached; every line is inert.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from drivers.errors import InvalidArgument
from tui.virsh.options import Args, Command, Opt
from tui.virsh.shell import Shell

#: ctrl+], virsh's escape.
ESCAPE = 0x1D

_ESC, _BEL = 0x1B, 0x07
#: ESC ] (OSC), ESC P (DCS), ESC _ (APC), ESC ^ (PM), ESC X (SOS): terminal strings.
_STRING_STARTS = frozenset(b"]P_^X")


class TerminalStringFilter:
    """Drops terminal control strings from a byte stream, across chunk boundaries.

    A string runs from ``ESC ]`` (or ``ESC P _ ^ X``, or their 8-bit forms) to BEL or
    ``ESC \\``; everything else passes unchanged.
    """

    def __init__(self) -> None:
        self._in_string = False
        self._pending_esc = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if self._in_string:
                if byte == _BEL:
                    self._in_string = False
                elif self._pending_esc:
                    self._pending_esc = False
                    if byte == ord("\\"):
                        self._in_string = False
                elif byte == _ESC:
                    self._pending_esc = True
                elif byte == 0x9C:  # 8-bit ST
                    self._in_string = False
                continue
            if self._pending_esc:
                self._pending_esc = False
                if byte in _STRING_STARTS:
                    self._in_string = True
                    continue
                out.append(_ESC)
            if byte == _ESC:
                self._pending_esc = True
                continue
            if byte in (0x90, 0x9D, 0x9E, 0x9F, 0x98):  # 8-bit DCS, OSC, PM, APC, SOS
                self._in_string = True
                continue
            out.append(byte)
        return bytes(out)


async def cmd_console(shell: Shell, args: Args) -> bool:
    import asyncio  # here: the one-shot verbs of this module's neighbours load no asyncio

    dom = await shell.domain(args.required("domain"))
    console = await dom.console(force=args.flag("force"))
    stdin = sys.stdin.fileno()
    out = getattr(shell.out, "buffer", None)
    shell.print(
        f"Connected to domain '{dom.name}'\nEscape character is ^] (Ctrl + ])\n", flush=True
    )
    loop = asyncio.get_running_loop()
    keys: asyncio.Queue[bytes] = asyncio.Queue()
    restore = _raw(stdin)
    loop.add_reader(stdin, lambda: keys.put_nowait(os.read(stdin, 4096)))
    filtered = TerminalStringFilter()

    async def to_guest() -> None:
        while True:
            data = await keys.get()
            if not data or ESCAPE in data:
                before = data.split(bytes([ESCAPE]), 1)[0]
                if before:
                    await console.write(before)
                return
            await console.write(data)

    async def from_guest() -> None:
        while data := await console.read():
            clean = filtered.feed(data)
            if out is not None:
                out.write(clean)
                out.flush()
            else:
                shell.out.write(clean.decode(errors="replace"))
                shell.out.flush()

    tasks = {asyncio.create_task(to_guest()), asyncio.create_task(from_guest())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        loop.remove_reader(stdin)
        restore()
        await console.close()
    if console.ended not in (None, "closed"):
        shell.print(f"\nThe console closed: {console.ended}.\n")
    else:
        shell.print("\n")
    return True


def _raw(fd: int) -> Callable[[], None]:
    """Put the terminal ``fd`` in raw mode; returns how to restore it (nothing if it is no
    terminal, e.g. a pipe in tests)."""
    if not os.isatty(fd):
        return lambda: None
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)

    def restore() -> None:
        import contextlib

        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    return restore


_DURATION = r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>s|m|h|d)$"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: a duration back from now (``90s``, ``10m``, ``2h``, ``1d``), a Unix time,
    or an ISO date and time (local time unless it says otherwise)."""
    import re  # compiled on first use: the other one-shot commands never need it

    now = time.time() if now is None else now
    match = re.match(_DURATION, text.strip())
    if match:
        return now - float(match["n"]) * _UNITS[match["unit"]]
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if value == value and abs(value) != float("inf"):  # not nan, not infinite
            return value
        raise InvalidArgument(f"--since '{text}' is not a time; write a duration or a date.")
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InvalidArgument(
            f"--since '{text}' is not understood; write a duration (30s, 10m, 2h, 1d), a "
            "Unix time, or a date and time such as 2026-12-02T13:00."
        ) from None


def _stamp(wall: float, exact: bool) -> str:
    local = time.localtime(wall)
    text = time.strftime("%Y-%m-%d %H:%M:%S", local) + f".{int(wall % 1 * 1000):03d}"
    return text + (" " if exact else "~")


async def cmd_logs(shell: Shell, args: Args) -> bool:
    dom = await shell.domain(args.required("domain"))
    since_text = args.text("since")
    since = parse_since(since_text) if since_text is not None else None
    stamped = args.flag("timestamps")
    async for line in dom.console_log(since=since, follow=args.flag("follow")):
        prefix = _stamp(line.wall, line.exact) + " " if stamped else ""
        shell.print(prefix + line.text.replace("\n", " ") + "\n", flush=True)
    return True


DOMAIN = Opt("domain", "string", "domain name, id or uuid", positional=True, required=True)

CONSOLE = Command(
    "console",
    "connect to the guest console",
    "Connect the virtual serial console for the guest (ctrl+] leaves).",
    (
        DOMAIN,
        Opt("force", "bool", "force console connection (disconnect already connected sessions)"),
    ),
    cmd_console,
)

LOGS = Command(
    "logs",
    "show the guest console's output since boot",
    "Print what the guest's serial console showed since the domain started, kept even when "
    "nobody was attached.",
    (
        DOMAIN,
        Opt("follow", "bool", "keep printing new lines as they come"),
        Opt("since", "string", "only lines since then (30s, 10m, 2h, 1d, a Unix time or a date)"),
        Opt("timestamps", "bool", "print when each line arrived (~: no later than)"),
    ),
    cmd_logs,
)
