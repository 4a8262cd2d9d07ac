"""``event``: wait for domain events and print them as ``virsh event`` does.

One line per event, flushed at once (a script reading the pipe must see each line as it
happens). The wait ends after the first event, or with ``--loop`` on ``--timeout``, SIGINT
or SIGTERM; then ``events received: N`` is printed, as virsh does. A connection that is
lost ends it with an error.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from drivers.errors import ConnectionLost, InvalidArgument
from drivers.model import ConnectionClosedEvent, DomainEvent
from tui.virsh.formats import EVENT_NAMES, event_lines, timestamp
from tui.virsh.options import Args, Command, Opt, is_uint
from tui.virsh.shell import Shell

TYPE_CHECKING = False  # not typing's: see drivers/records.py (one-shot CLI start-up)
if TYPE_CHECKING:
    from typing import Any

_MAX_TIMEOUT = 2**31 // 1000  # virsh keeps the timeout in an int of milliseconds


def _timeout(args: Args) -> int | None:
    text = args.text("timeout")
    if text is None:
        return None
    seconds = int(text) if is_uint(text) else 0
    if not 0 < seconds <= _MAX_TIMEOUT:
        raise InvalidArgument(
            f"Numeric value '{text}' for <timeout> option is malformed or out of range"
        )
    return seconds


async def cmd_event(shell: Shell, args: Args) -> bool:
    args.exclusive("all", "event")
    args.exclusive("list", "all")
    args.exclusive("list", "event")
    if args.flag("list"):
        shell.print("".join(f"{name}\n" for name in EVENT_NAMES))
        return True
    wanted = args.text("event")
    if wanted is None and not args.flag("all"):
        raise InvalidArgument("one of --list, --all, or --event <type> is required")
    if wanted is not None and wanted not in EVENT_NAMES:
        raise InvalidArgument(f"unknown event type {wanted}")
    timeout = _timeout(args)
    ref = args.text("domain")
    uuid = (await shell.domain(ref)).uuid if ref is not None else None
    loop_mode, stamped = args.flag("loop"), args.flag("timestamp")

    conn = await shell.connection()
    stream = conn.events()
    ended: list[str] = []

    def end(why: str) -> None:
        # Closing the stream ends the ``async for`` below; events queued before it still
        # come out first, so nothing already received is lost.
        if not ended:
            ended.append(why)
            stream.close()

    count = 0
    lost: ConnectionClosedEvent | None = None

    async def consume() -> None:
        nonlocal count, lost
        async for event in stream:
            if isinstance(event, ConnectionClosedEvent):
                lost = event if event.lost else None
                break
            if not isinstance(event, DomainEvent) or (uuid is not None and event.uuid != uuid):
                continue
            for name, line in event_lines(event):
                if wanted is not None and name != wanted:
                    continue
                shell.print(f"{timestamp(event.wall)}: {line}" if stamped else line, flush=True)
                count += 1
                if not loop_mode:
                    end("done")
                    break
            if ended:
                break

    if getattr(conn, "blocking", False):
        await _consume_blocking(consume, stream, timeout, end)
    else:
        await _consume_async(consume, stream, timeout, end)

    why = ended[0] if ended else "done"
    if why == "interrupted":
        shell.print("event loop interrupted\n")
    elif why == "timeout":
        shell.print("event loop timed out\n")
    shell.print(f"events received: {count}\n", flush=True)
    if lost is not None:
        reason = lost.reason.rstrip(".")
        raise ConnectionLost(f"The connection to {shell.uri} was lost: {reason}.")
    # Being stopped by a signal is how a --loop normally ends, so it is a success; like
    # virsh, a wait that ends without any event is not.
    return why == "interrupted" or count > 0


class _Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: object) -> None:
    raise _Interrupted


async def _consume_blocking(
    consume: Callable[[], Awaitable[None]],
    stream: Any,
    timeout: int | None,
    end: Callable[[str], None],
) -> None:
    """On the blocking client: a signal interrupts the read, the deadline bounds it."""
    import signal  # here: loading it (its enums) costs every other one-shot command

    if timeout is not None:
        stream.deadline = time.monotonic() + timeout
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        await consume()
    except _Interrupted:
        end("interrupted")
    except TimeoutError:
        end("timeout")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        stream.close()


async def _consume_async(
    consume: Callable[[], Awaitable[None]],
    stream: Any,
    timeout: int | None,
    end: Callable[[str], None],
) -> None:
    import asyncio
    import contextlib
    import signal

    loop = asyncio.get_running_loop()
    signals = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, end, "interrupted")
            signals.append(signum)
    timer = loop.call_later(timeout, end, "timeout") if timeout is not None else None
    try:
        await consume()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        if timer is not None:
            timer.cancel()
        stream.close()


EVENT = Command(
    "event",
    "Domain Events",
    "List event types, or wait for domain events to occur",
    (
        Opt("domain", "string", "filter by domain name, id or uuid", positional=True),
        Opt("event", "string", "which event type to wait for"),
        Opt("all", "bool", "wait for all events instead of just one type"),
        Opt("loop", "bool", "loop until timeout or interrupt, rather than one-shot"),
        Opt("timeout", "number", "timeout seconds"),
        Opt("list", "bool", "list valid event types"),
        Opt("timestamp", "bool", "show timestamp for each printed event"),
    ),
    cmd_event,
)
