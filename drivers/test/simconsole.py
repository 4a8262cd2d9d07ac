"""The serial console of a simulated guest, for the ``test://`` driver.

A :class:`SimulatedConsole` belongs to one run of a simulated QEMU (boot to stop). It is
what the daemon side of the real driver offers, in memory: every byte the guest writes
goes to the attached interactive client (one writer at a time; ``force`` takes over) and
into a bounded log of lines with the time each was received, kept from the first byte of
the boot whether or not anyone is attached.

The guest behind it is a small cooperating shell that speaks the same line protocol as the
real test guest (``tests/guest/init.sh``): it prints a boot banner and
``VIRTDECK-GUEST-READY``, logs ``root`` in on its own, echoes what is typed (the real guest
does not: it runs with ``stty -echo``) and answers ``ping`` with ``VIRTDECK-PONG``,
``sh CMD`` with ``VIRTDECK-DONE rc=0``, ``poweroff``/``reboot``/``panic`` by doing it, and
anything it does not know with ``VIRTDECK-UNKNOWN LINE``. ``help`` lists a few more
(``clear``, ``colors``, ``title TEXT``) that write escape sequences, which is what a
terminal emulator in front of it must contain.
"""

from __future__ import annotations

import asyncio
import codecs
from collections import deque
from collections.abc import AsyncIterator, Callable

from drivers.api import ConsoleStream
from drivers.errors import DomainBusy, OperationInvalid
from drivers.model import ConsoleLine

#: Lines each console keeps (the oldest go first), like the daemon's ring buffer.
LOG_LINES = 10_000
#: A line longer than this is cut into pieces (a guest that never writes a newline).
MAX_LINE = 4096
KERNEL = "6.1.0-virtdeck-sim"

STOPPED = "the domain stopped"
MIGRATED = "the domain moved to another host"
TAKEN_OVER = "another client took over the console"
CLOSED = "the console was closed"

PANIC = (
    "[   42.000000] sysrq: Trigger a crash\r\n"
    "[   42.000001] Kernel panic - not syncing: sysrq triggered crash\r\n"
)
HELP = (
    "Commands: ping, uname, uptime, echo TEXT, sh CMD, clear, colors, title TEXT, "
    "reboot, poweroff, panic, help"
)


def _banner(name: str) -> list[str]:
    return [
        "SeaBIOS (version 1.16.2-virtdeck)",
        "Booting from Hard Disk...",
        f"[    0.000000] Linux version {KERNEL} (virtdeck@sim) #1 SMP PREEMPT_DYNAMIC",
        f"[    0.000000] Command line: console=ttyS0 root=/dev/vda1 hostname={name}",
        "[    0.412345] Serial: 8250/16550 driver, 4 ports, IRQ sharing enabled",
        "[    0.413579] 00:04: ttyS0 at I/O 0x3f8 (irq = 4, base_baud = 115200) is a 16550A",
        "[    0.902112] virtio_blk virtio1: [vda] 41943040 512-byte logical blocks",
        "[    1.020304] EXT4-fs (vda1): mounted filesystem with ordered data mode",
        "[    1.200000] Run /sbin/init as init process",
        "VIRTDECK-GUEST-READY uptime=1.21 kernel=" + KERNEL,
        "",
        f"Debian GNU/Linux 12 {name} ttyS0 (simulated by virtdeck's test driver)",
        "",
        f"{name} login: root (automatic login)",
        "Type help for the commands this guest knows.",
        "",
    ]


def _colors() -> str:
    cells = [f"\x1b[{30 + n}m{n}\x1b[0m \x1b[{90 + n}m{n + 8}\x1b[0m" for n in range(8)]
    return "  ".join(cells) + "  \x1b[1mbold\x1b[0m \x1b[4munderline\x1b[0m \x1b[7mreverse\x1b[0m"


class SimulatedConsole:
    """One boot's serial console: the guest's output, its log, and the attached client.

    Args:
        name: the domain's name (the guest's host name).
        clock: where the time of each line comes from (Unix time).
        running: whether the guest's vCPUs run (keys typed while they do not wait).
        actions: what the guest's ``poweroff``, ``reboot`` and ``panic`` do.
    """

    def __init__(
        self,
        name: str,
        clock: Callable[[], float],
        running: Callable[[], bool] = lambda: True,
        actions: dict[str, Callable[[], None]] | None = None,
    ) -> None:
        self.name = name
        self._clock = clock
        self._running = running
        self._actions = actions or {}
        self.lines: deque[ConsoleLine] = deque(maxlen=LOG_LINES)
        self._partial = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._writer: SimulatedConsoleStream | None = None
        self._followers: list[asyncio.Queue[ConsoleLine | None]] = []
        self.ended: str | None = None
        # the guest's shell
        self._typed = ""
        self._held = b""
        self._escape = ""
        self._after_cr = False
        self._input_decoder = codecs.getincrementaldecoder("utf-8")("replace")

    # --- the guest's side -------------------------------------------------------------

    @property
    def partial(self) -> str:
        """What the guest wrote after its last newline."""
        return self._partial

    @property
    def prompt(self) -> str:
        return f"root@{self.name}:~# "

    def boot(self, exact: bool = True) -> None:
        """The guest boots (again): its banner, then its prompt. ``exact`` False marks the
        lines as read after the fact (a domain that ran before anyone watched)."""
        self._typed = ""
        self.write("\r\n".join(_banner(self.name)) + "\r\n" + self.prompt, exact=exact)

    def write(self, text: str | bytes, exact: bool = True) -> None:
        """The guest writes ``text`` on its serial port."""
        if self.ended is not None:
            return
        data = text.encode() if isinstance(text, str) else text
        if self._writer is not None:
            self._writer.deliver(data)
        self._log(self._decoder.decode(data), exact)

    def _log(self, text: str, exact: bool) -> None:
        if not text:
            return
        pieces = (self._partial + text).split("\n")
        self._partial = pieces.pop()
        while len(self._partial) > MAX_LINE:
            pieces.append(self._partial[:MAX_LINE])
            self._partial = self._partial[MAX_LINE:]
        if not pieces:
            return
        wall = self._clock()
        for piece in pieces:
            line = ConsoleLine(wall, piece.removesuffix("\r"), exact)
            self.lines.append(line)
            for queue in self._followers:
                queue.put_nowait(line)

    def end(self, reason: str = STOPPED) -> None:
        """The guest's run is over (QEMU exited): the client's stream and the followers end."""
        if self.ended is not None:
            return
        if self._partial:
            self._log("\n", True)
        self.ended = reason
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.finish(reason)
        for queue in self._followers:
            queue.put_nowait(None)
        self._followers.clear()

    def resumed(self) -> None:
        """The vCPUs run again: the guest reads the keys typed while they were paused."""
        if self._held and self._running():
            held, self._held = self._held, b""
            self.type(held)

    # --- keys from the client -----------------------------------------------------------

    def type(self, data: bytes) -> None:
        """Keys arrive on the guest's serial port."""
        if self.ended is not None:
            return
        if not self._running():
            self._held = (self._held + data)[-MAX_LINE:]
            return
        for char in self._input_decoder.decode(data):
            self._key(char)

    def _key(self, char: str) -> None:
        if self._escape == "\x1b" and char < " ":
            self._escape = ""  # a lone escape key, then a control key: that key counts
        if self._escape:
            # the rest of an escape sequence (an arrow key, F1 ...): the shell ignores it
            self._escape += char
            if len(self._escape) == 2 and char not in "[O":
                self._escape = ""
            elif len(self._escape) > 2 and ("@" <= char <= "~" or len(self._escape) > 16):
                self._escape = ""
            return
        after_cr, self._after_cr = self._after_cr, False
        if char == "\x1b":
            self._escape = char
        elif char == "\r" or (char == "\n" and not after_cr):
            self._after_cr = char == "\r"
            line, self._typed = self._typed, ""
            self.write("\r\n")
            self._run(line.strip())
        elif char == "\n":
            return
        elif char in "\x7f\x08":
            if self._typed:
                self._typed = self._typed[:-1]
                self.write("\b \b")
        elif char == "\x03":
            self._typed = ""
            self.write("^C\r\n" + self.prompt)
        elif char == "\x15":
            self.write("\b \b" * len(self._typed))
            self._typed = ""
        elif char == "\x0c":
            self.write("\x1b[H\x1b[2J" + self.prompt + self._typed)
        elif char >= " " and len(self._typed) < MAX_LINE:
            self._typed += char
            self.write(char)

    def _run(self, line: str) -> None:
        command, _, rest = line.partition(" ")
        out: str | None
        if not line:
            out = ""
        elif line == "ping":
            out = "VIRTDECK-PONG\r\n"
        elif command == "help":
            out = HELP + "\r\n"
        elif command == "uname":
            out = f"Linux {self.name} {KERNEL} x86_64 GNU/Linux\r\n"
        elif command == "uptime":
            out = " up 1 min,  1 user,  load average: 0.08, 0.03, 0.01\r\n"
        elif command == "echo":
            out = rest + "\r\n"
        elif command == "sh":
            out = "VIRTDECK-DONE rc=0\r\n"
        elif command == "clear":
            out = "\x1b[H\x1b[2J"
        elif command == "colors":
            out = _colors() + "\r\n"
        elif command == "title":
            out = f"\x1b]0;{rest}\x07"
        elif line in self._actions:
            self._actions[line]()
            return
        else:
            out = f"VIRTDECK-UNKNOWN {line}\r\n"
        self.write(out + self.prompt)

    # --- clients ------------------------------------------------------------------------

    def attach(self, force: bool) -> SimulatedConsoleStream:
        """The interactive stream; DomainBusy while another client has it (unless
        ``force``: that client's stream then ends)."""
        if self.ended is not None:
            raise OperationInvalid(f"Domain '{self.name}' is not running: its console ended.")
        if self._writer is not None:
            if not force:
                raise DomainBusy(
                    f"The console of domain '{self.name}' is in use by another client; "
                    "take it over with force (virsh console --force)."
                )
            self._writer.finish(TAKEN_OVER)
        self._writer = SimulatedConsoleStream(self)
        return self._writer

    def detach(self, stream: SimulatedConsoleStream) -> None:
        if self._writer is stream:
            self._writer = None

    @property
    def attached(self) -> bool:
        return self._writer is not None

    async def log(self, since: float | None, follow: bool) -> AsyncIterator[ConsoleLine]:
        """The kept lines (from ``since``), then with ``follow`` each new one until the run
        ends."""
        queue: asyncio.Queue[ConsoleLine | None] | None = None
        if follow and self.ended is None:
            queue = asyncio.Queue()
            self._followers.append(queue)
        try:
            for line in list(self.lines):
                if since is None or line.wall >= since:
                    yield line
            if queue is None:
                return
            while True:
                item = await queue.get()
                if item is None:
                    return
                yield item
        finally:
            if queue is not None and queue in self._followers:
                self._followers.remove(queue)


class SimulatedConsoleStream(ConsoleStream):
    """A client's end of a :class:`SimulatedConsole`."""

    def __init__(self, console: SimulatedConsole) -> None:
        self._console = console
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def deliver(self, data: bytes) -> None:
        if self.ended is None:
            self._queue.put_nowait(data)

    def finish(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            self._queue.put_nowait(None)

    async def read(self) -> bytes:
        chunk = await self._queue.get()
        if chunk is None:
            self._queue.put_nowait(None)  # every later read ends too
            return b""
        parts = [chunk]
        while not self._queue.empty():
            more = self._queue.get_nowait()
            if more is None:
                self._queue.put_nowait(None)
                break
            parts.append(more)
        return b"".join(parts)

    async def write(self, data: bytes) -> None:
        if self.ended is not None:
            raise OperationInvalid(
                f"The console of domain '{self._console.name}' has ended: {self.ended}."
            )
        self._console.type(data)

    async def close(self) -> None:
        self._console.detach(self)
        self.finish(CLOSED)
