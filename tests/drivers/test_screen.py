"""The screen API without QEMU: key names, the frame stream's rules, the test driver's
simulated screen and keyboard, the read-only guard and the wire forms."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator

import pytest
from PIL import Image

import drivers
from drivers.api import Connection, Domain
from drivers.errors import AccessDenied, InvalidArgument, NotSupported
from drivers.keys import LINUX_NAMES, QCODES, key_combo, key_to_qcode, text_events
from drivers.model import InputEvent, InputPause, KeyInput, PointerButton, PointerMove, Screenshot
from drivers.qemu.screen import check_events, frames, image_size
from drivers.readonly import ReadOnlyConnection
from drivers.remote import protocol as p
from drivers.test.driver import TestConnection


def test_linux_names_and_numbers() -> None:
    assert key_to_qcode("KEY_LEFTCTRL") == "ctrl"
    assert key_to_qcode("key_delete") == "delete"
    assert key_to_qcode("LEFTALT") == "alt"  # virsh takes the name without KEY_ too
    assert key_to_qcode("29") == "ctrl" and key_to_qcode("0x1d") == "ctrl"
    assert key_to_qcode("KEY_F2") == "f2"
    assert key_to_qcode("ctrl", "qcode") == "ctrl"
    assert set(LINUX_NAMES.values()) <= set(QCODES)
    for word, codeset in (("KEY_NOPE", "linux"), ("nope", "qcode"), ("300", "linux")):
        with pytest.raises(InvalidArgument, match="Valid keys: "):
            key_to_qcode(word, codeset)


def test_combo_presses_in_order_and_releases_in_reverse() -> None:
    assert key_combo(["ctrl", "alt", "delete"], hold_ms=100) == [
        KeyInput("ctrl", True),
        KeyInput("alt", True),
        KeyInput("delete", True),
        InputPause(100),
        KeyInput("delete", False),
        KeyInput("alt", False),
        KeyInput("ctrl", False),
    ]
    with pytest.raises(InvalidArgument, match="at least one key"):
        key_combo([])
    with pytest.raises(InvalidArgument, match="not a QEMU key name"):
        key_combo(["control"])


def test_text_on_a_us_keyboard() -> None:
    assert text_events("a!") == [
        KeyInput("a", True),
        KeyInput("a", False),
        KeyInput("shift", True),
        KeyInput("1", True),
        KeyInput("1", False),
        KeyInput("shift", False),
    ]
    assert text_events("\n")[0] == KeyInput("ret", True)
    with pytest.raises(InvalidArgument, match="cannot be typed"):
        text_events("é")


def test_events_are_checked_before_any_is_sent() -> None:
    check_events([KeyInput("a", True), PointerButton("left", True), PointerMove(3, 4, 720, 400)])
    with pytest.raises(InvalidArgument, match="not a QEMU key name"):
        check_events([KeyInput("a", True), KeyInput("nope", True)])
    with pytest.raises(InvalidArgument, match="not a pointer button"):
        check_events([PointerButton("thumb", True)])


def test_wire_forms() -> None:
    events: list[InputEvent] = [KeyInput("a", True), PointerMove(1, 2, 3, 4),
                                PointerButton("left", False), InputPause(5)]  # fmt: skip
    assert p.input_from_wire(p.input_to_wire(events)) == events
    with pytest.raises(InvalidArgument, match="must have a kind"):
        p.input_from_wire([{"qcode": "a", "down": True}])
    with pytest.raises(InvalidArgument, match="true or false"):
        p.input_from_wire([{"kind": "key", "qcode": "a", "down": "yes"}])
    shot = Screenshot(data=b"\x89PNG..", format="png", width=720, height=400,
                      captured_wall=1.5, captured_monotonic=2.5, seq=7)  # fmt: skip
    assert p.screenshot_from_wire(p.screenshot_to_wire(shot)) == shot


def test_image_sizes() -> None:
    out = io.BytesIO()
    Image.new("RGB", (640, 480)).save(out, format="PNG")
    assert image_size(out.getvalue(), "png") == (640, 480)
    assert image_size(b"P6\n1024 768\n255\n" + b"\0" * 10, "ppm") == (1024, 768)


def _shot(data: bytes) -> Screenshot:
    return Screenshot(data=data, format="png", width=1, height=1, captured_wall=time.time(),
                      captured_monotonic=time.monotonic())  # fmt: skip


async def _run_frames(pictures: list[bytes], fps: float, idle_fps: float,
                      inputs: dict[int, asyncio.Event] | None = None,
                      ) -> tuple[list[bytes], int]:  # fmt: skip
    """Feed ``pictures`` (one per capture) to frames(); what it yields, and how many were
    taken."""
    taken = 0
    wake = asyncio.Event()

    async def capture() -> Screenshot:
        nonlocal taken, wake
        if taken >= len(pictures):
            raise EOFError
        picture = pictures[taken]
        taken += 1
        if inputs and taken in inputs:
            wake.set()
            wake = asyncio.Event()
        return _shot(picture)

    out: list[bytes] = []
    with contextlib.suppress(EOFError):
        async for frame in frames(capture, lambda: wake, fps, idle_fps):
            out.append(frame.data)
    return out, taken


async def test_only_changed_frames_are_sent() -> None:
    out, taken = await _run_frames([b"a", b"a", b"b", b"b", b"b", b"c"], fps=30, idle_fps=1)
    assert out == [b"a", b"b", b"c"] and taken == 6


async def test_a_blinking_cursor_is_not_a_change() -> None:
    # a/b/a/b… with no input: only the first two pictures go (the idle rate is 1 a second,
    # more than this takes), then the screen really changes.
    out, _ = await _run_frames([b"a", b"b", b"a", b"b", b"a", b"b", b"c"], 30, 1)
    assert out == [b"a", b"b", b"c"]


async def test_after_input_a_return_to_the_earlier_picture_is_sent() -> None:
    # typed, then erased: a, b, a; with input before the third capture it is a change.
    wake = asyncio.Event()
    out, _ = await _run_frames([b"a", b"b", b"a"], 30, 1, inputs={2: wake})
    assert out == [b"a", b"b", b"a"]


async def test_idle_screens_are_polled_less_often() -> None:
    started = time.monotonic()
    taken = 0

    async def capture() -> Screenshot:
        nonlocal taken
        taken += 1
        return _shot(b"same")

    stream = frames(capture, asyncio.Event, fps=30, idle_fps=5)
    first = await anext(stream)
    assert first.seq == 1

    async def drain() -> None:
        async for _ in stream:
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drain(), 1.0)
    elapsed = time.monotonic() - started
    # 30 a second would be ~30 pictures; backing off to 5 a second takes far fewer.
    assert taken < 15, f"{taken} pictures in {elapsed:.2f} s of an unchanged screen"


async def test_rates_are_checked() -> None:
    async def capture() -> Screenshot:
        return _shot(b"x")

    with pytest.raises(InvalidArgument, match="Frames per second"):
        await anext(frames(capture, asyncio.Event, fps=0))
    with pytest.raises(InvalidArgument, match="Frames per second"):
        await anext(frames(capture, asyncio.Event, fps=5, idle_fps=10))


# --- the test driver ---------------------------------------------------------------------


async def _with_display(conn: Connection, name: str = "web1") -> Domain:
    dom = await conn.lookup(name)
    xml = (await dom.xml()).replace("</devices>", "<video><model type='vga'/></video></devices>")
    await conn.define_xml(xml)
    await dom.destroy()
    await dom.start()
    return dom


@pytest.fixture
async def conn() -> AsyncIterator[Connection]:
    connection = await drivers.open("test:///default")
    try:
        yield connection
    finally:
        await connection.close()


async def test_test_driver_screen_and_keyboard(conn: Connection) -> None:
    assert "screen" in conn.capabilities
    dom = await _with_display(conn)
    shot = await dom.screenshot()
    assert (shot.width, shot.height, shot.format) == (720, 400, "png")
    assert Image.open(io.BytesIO(shot.data)).size == (720, 400)
    # the simulated guest reads its keyboard like its serial line: ping answers there
    await dom.send_input(text_events("ping\n"))
    assert isinstance(conn, TestConnection)
    sim = conn.registry.simulated("web1")
    assert [r for r in sim.screen.rows() if r][-2:] == ["VIRTDECK-PONG", "root@web1:~# "]
    assert sim.screen.received[0] == {
        "type": "key",
        "data": {"down": True, "key": {"type": "qcode", "data": "p"}},
    }
    assert (await dom.screenshot()).data != shot.data
    # nothing was left in the private directory
    assert not list(conn.registry.screen_dir(conn.registry.get("web1")).iterdir())  # type: ignore[union-attr]


async def test_test_driver_frames_follow_typing(conn: Connection) -> None:
    dom = await _with_display(conn)
    stream = await dom.screen_frames(fps=30, idle_fps=1)
    first = await anext(stream)
    await dom.send_input(text_events("echo hi\n"))
    second = await asyncio.wait_for(anext(stream), 2)
    assert (first.seq, second.seq) == (1, 2) and second.data != first.data
    await stream.aclose()  # type: ignore[attr-defined]


async def test_no_display_says_so(conn: Connection) -> None:
    dom = await conn.lookup("test")
    with pytest.raises(NotSupported, match=r"'test' has no display .* serial console"):
        await dom.screenshot()
    with pytest.raises(NotSupported, match="has no display"):
        await dom.screen_frames()
    with pytest.raises(NotSupported, match="has no display"):
        await dom.send_input(key_combo(["ret"]))


async def test_read_only_looks_but_does_not_type(conn: Connection) -> None:
    await _with_display(conn)
    guarded = ReadOnlyConnection(conn)
    dom = await guarded.lookup("web1")
    assert (await dom.screenshot()).width == 720
    stream = await dom.screen_frames()
    assert (await anext(stream)).seq == 1
    await stream.aclose()  # type: ignore[attr-defined]
    with pytest.raises(AccessDenied, match="read-only, so typing on a domain's screen"):
        await dom.send_input(text_events("x"))


async def test_a_slow_consumer_gets_fewer_pictures_not_a_backlog() -> None:
    """Over a slow link the daemon waits for each frame to leave before it takes the next:
    the stream is pulled, so 30 frames a second become what the consumer takes."""
    taken = 0

    async def capture() -> Screenshot:
        nonlocal taken
        taken += 1
        return _shot(str(taken).encode())  # always changing

    stream = frames(capture, asyncio.Event, fps=30, idle_fps=1)
    started = time.monotonic()
    got = 0
    async for frame in stream:
        got += 1
        assert frame.seq == got
        await asyncio.sleep(0.25)  # a link that takes a quarter of a second per frame
        if time.monotonic() - started > 1.0:
            break
    assert got <= 5 and taken <= got + 1, (got, taken)
