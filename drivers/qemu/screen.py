"""A domain's display: pictures of it (QMP ``screendump``) and input to it
(``input-send-event``), for any :class:`~drivers.qemu.runtime.Backend`.

QEMU writes a screendump to a file. It goes to a directory only the driver's process may
read (the domain's run directory, 0700), under a name used once, and is read and removed
before the call returns, whatever happens.

:func:`frames` turns pictures into a stream a viewer can live on: several a second while
the screen changes, fewer while it does not, and only the changed ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from drivers.domxml import DomainDef
from drivers.errors import HypervisorError, InvalidArgument, NotSupported, OperationInvalid
from drivers.keys import is_qcode
from drivers.model import (
    InputEvent,
    InputPause,
    KeyInput,
    PointerButton,
    PointerMove,
    Screenshot,
)
from drivers.qemu.runtime import DomainRuntime

FORMATS = ("png", "ppm")
BUTTONS = ("left", "middle", "right", "wheel-up", "wheel-down", "side", "extra")
#: QEMU's absolute axes run from 0 to this.
_ABS_MAX = 0x7FFF
#: One send_input call carries at most this many events.
MAX_EVENTS = 4096
#: QEMU's PS/2 keyboard holds 16 bytes of scancodes and drops what does not fit (a key
#: event is 1-2 bytes), so keys go in batches of this many with a pause for the guest to
#: read them; a key or two (typing, shortcuts) goes at once.
KEY_BATCH = 6
KEY_GAP = 0.005

#: Frames per second while the screen changes, and the slowest rate while it does not.
DEFAULT_FPS = 10.0
IDLE_FPS = 1.0
MAX_FPS = 30.0

_names = itertools.count(1)


def has_display(defn: DomainDef) -> bool:
    """Whether the domain has a screen: a ``<graphics>`` or a ``<video>`` card."""
    return bool(defn.graphics) or any(v.model != "none" for v in defn.videos)


def no_display(name: str) -> NotSupported:
    return NotSupported(
        f"Domain '{name}' has no display (its definition has no <graphics> or <video> "
        "device), so there is no screen to show; use its serial console instead (virtdeck "
        f"console {name}, or c in the UI)."
    )


def image_size(data: bytes, fmt: str) -> tuple[int, int]:
    """Width and height from a PNG's IHDR or a binary PPM's header."""
    if fmt == "png":
        if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
            raise HypervisorError("QEMU's screendump is not a PNG file.")
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    fields = data[:64].split(maxsplit=4)
    if len(fields) < 4 or fields[0] != b"P6":
        raise HypervisorError("QEMU's screendump is not a PPM file.")
    return int(fields[1]), int(fields[2])


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidArgument(f"Screenshots can be {' or '.join(FORMATS)}, not '{fmt}'.")


def _require(rt: DomainRuntime, what: str) -> Any:
    if not rt.active or rt.backend is None:
        raise OperationInvalid(
            f"Domain '{rt.name}' is not running, so it has no screen {what}; start it first."
        )
    if not has_display(rt.definition):
        raise no_display(rt.name)
    return rt.backend


async def screenshot(rt: DomainRuntime, directory: Path, fmt: str = "png") -> Screenshot:
    """One picture of the domain's primary display."""
    _check_format(fmt)
    backend = _require(rt, "to take a picture of")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"screen-{os.getpid()}-{next(_names)}.{fmt}"
    wall, mono = time.time(), time.monotonic()
    try:
        await backend.execute("screendump", {"filename": str(path), "format": fmt})
        try:
            data = path.read_bytes()
        except OSError as err:
            raise HypervisorError(
                f"QEMU did not write the screenshot of '{rt.name}' ({err.strerror})."
            ) from err
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    width, height = image_size(data, fmt)
    return Screenshot(
        data=data,
        format=fmt,
        width=width,
        height=height,
        captured_wall=wall,
        captured_monotonic=mono,
    )


def check_events(events: Sequence[InputEvent]) -> None:
    """InvalidArgument for an event QEMU would refuse, before any is sent."""
    if len(events) > MAX_EVENTS:
        raise InvalidArgument(f"Send at most {MAX_EVENTS} input events at once.")
    for event in events:
        if isinstance(event, KeyInput):
            if not is_qcode(event.qcode):
                raise InvalidArgument(
                    f"'{event.qcode}' is not a QEMU key name; 'virtdeck send-key --codeset "
                    "qcode' lists the valid ones."
                )
        elif isinstance(event, PointerButton):
            if event.button not in BUTTONS:
                raise InvalidArgument(
                    f"'{event.button}' is not a pointer button; use one of {', '.join(BUTTONS)}."
                )
        elif isinstance(event, PointerMove):
            if event.width <= 0 or event.height <= 0:
                raise InvalidArgument("A pointer move needs the frame's width and height.")
        elif isinstance(event, InputPause):
            if not 0 <= event.ms <= 10_000:
                raise InvalidArgument(f"A pause must be 0 to 10000 ms, not {event.ms}.")


def _qmp_event(event: InputEvent) -> list[dict[str, Any]]:
    if isinstance(event, KeyInput):
        key = {"type": "qcode", "data": event.qcode}
        return [{"type": "key", "data": {"down": event.down, "key": key}}]
    if isinstance(event, PointerButton):
        return [{"type": "btn", "data": {"down": event.down, "button": event.button}}]
    assert isinstance(event, PointerMove)
    x = max(0, min(_ABS_MAX, event.x * _ABS_MAX // max(1, event.width - 1)))
    y = max(0, min(_ABS_MAX, event.y * _ABS_MAX // max(1, event.height - 1)))
    return [
        {"type": "abs", "data": {"axis": "x", "value": x}},
        {"type": "abs", "data": {"axis": "y", "value": y}},
    ]


async def send_input(rt: DomainRuntime, events: Sequence[InputEvent]) -> None:
    """Send keys, pointer moves and buttons, in order; a pause waits between batches."""
    check_events(events)
    backend = _require(rt, "to type on")
    batch: list[dict[str, Any]] = []
    keys = 0
    for event in events:
        if isinstance(event, InputPause):
            if batch:
                await backend.execute("input-send-event", {"events": batch})
                batch, keys = [], 0
            await asyncio.sleep(event.ms / 1000)
            continue
        if isinstance(event, KeyInput):
            if keys == KEY_BATCH:
                await backend.execute("input-send-event", {"events": batch})
                batch, keys = [], 0
                await asyncio.sleep(KEY_GAP)
            keys += 1
        batch.extend(_qmp_event(event))
    if batch:
        await backend.execute("input-send-event", {"events": batch})
    rt.input_sent()


def check_rates(fps: float, idle_fps: float) -> None:
    if not 0 < fps <= MAX_FPS or not 0 < idle_fps <= fps:
        raise InvalidArgument(
            f"Frames per second must be above 0 and at most {MAX_FPS:g}, and the idle rate "
            f"above 0 and at most that (not {fps:g} and {idle_fps:g})."
        )


async def frames(
    capture: Callable[[], Awaitable[Screenshot]],
    wake: Callable[[], asyncio.Event],
    fps: float = DEFAULT_FPS,
    idle_fps: float = IDLE_FPS,
) -> AsyncIterator[Screenshot]:
    """The screen as it changes: a picture every 1/``fps`` s while it changes; while it
    does not, the interval grows to 1/``idle_fps`` s, and unchanged pictures are not
    yielded. Input to the domain (``wake``'s event) brings the fast rate back at once.

    A blinking text cursor (QEMU's VGA blinks it about 7 times a second) makes every
    picture one of two: a picture equal to the one before the last, with no input in
    between, counts as unchanged; it is sent at the idle rate, so the viewer is never more
    than 1/``idle_fps`` s behind a screen that really went back to an earlier picture.

    Pull-driven: the next picture is taken only once the consumer asks for it, so a
    consumer that waits for a slow link lowers the rate instead of queueing frames."""
    check_rates(fps, idle_fps)
    fast, slow = 1.0 / fps, 1.0 / idle_fps
    interval = fast
    sent: bytes | None = None
    # The last two different pictures taken: the one before, and the current one.
    seen: tuple[bytes | None, bytes | None] = (None, None)
    sent_at = 0.0
    seq = 0
    input_came = False
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        woken = wake()  # taken first: input sent during the capture counts too
        shot = await capture()
        digest = hashlib.blake2b(shot.data, digest_size=16).digest()
        before_last, last = seen
        blink = digest == before_last and not input_came
        changed = digest != last and not blink
        stale = digest != sent and started - sent_at >= slow
        if digest != last:
            seen = (last, digest)
        input_came = False
        if changed or stale:
            sent, sent_at = digest, started
            seq += 1
            yield Screenshot(
                data=shot.data,
                format=shot.format,
                width=shot.width,
                height=shot.height,
                captured_wall=shot.captured_wall,
                captured_monotonic=shot.captured_monotonic,
                seq=seq,
            )
        interval = fast if changed else min(slow, interval * 1.5)
        delay = interval - (loop.time() - started)
        if not woken.is_set() and delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), delay)
        if woken.is_set():
            interval = fast
            input_came = True
