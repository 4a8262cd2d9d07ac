"""Fuzzing the daemon protocol: structured and mutated frames sent to a real daemon socket.

Each example opens a connection, says hello (mostly), and sends a few messages: calls to
real and made-up methods with random JSON arguments, other message types, valid frames
with bytes flipped, and a few pathological ones (JSON nested 100 000 deep, 5 000-digit
numbers). The daemon must answer every well-formed call with a reply carrying its id
(a result or a clear error), or hang up with a ``bye`` that gives a reason; it must never
hang, never log a traceback, and keep serving a client that behaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.errors import ProtocolError
from drivers.remote import protocol as p
from drivers.remote.client import RemoteConnection
from drivers.remote.local import connect_unix
from drivers.remote.server import METHODS, SESSION_METHODS
from tests.remote.conftest import Session

EXAMPLES = 200
READ_BOUND = 10.0
TEST_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"


@pytest.fixture
def daemon(session: Session) -> Iterator[tuple[Path, Path]]:
    socket = session.base / "fuzz.sock"
    log = session.base / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drivers.daemon", "--driver", "test:///default",
             "--socket", str(socket)],
            env=session.env(),
            stdout=out,
            stderr=out,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not socket.exists():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        yield socket, log
        assert proc.poll() is None, "the daemon died"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
async def good(daemon: tuple[Path, Path]) -> AsyncIterator[RemoteConnection]:
    conn = await connect_unix(daemon[0], "test:///default")
    yield conn
    await conn.close()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from([TEST_UUID, "test", "<domain type='test'><name>z</name></domain>"])
    | st.integers(-(2**33), 2**33),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
ARG_NAMES = "uuid name xml stream paused inactive interval force since follow success uri".split()
methods = st.sampled_from(sorted(METHODS) + sorted(SESSION_METHODS) + ["", "nope", "domain."])
calls = st.builds(
    lambda i, m, a: {"type": "call", "id": i, "method": m, "args": a},
    st.integers(0, 2**31),
    methods,
    st.dictionaries(st.sampled_from(ARG_NAMES), json_values, max_size=4) | json_values,
)
others = st.fixed_dictionaries(
    {"type": st.sampled_from(["bye", "stream-end", "hello", "reply", "event", "x", ""])},
    optional={"stream": json_values, "id": json_values, "protocol": json_values},
)
SPECIALS = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"type":"call","id":1,"method":"ping","args":{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}}",
    b'{"type":"call","id":' + b"9" * 5000 + b',"method":"ping"}',
    b'{"type":"call","id":2,"method":"lookup","args":{"name":1e999}}',
    b'{"type":"call","id":3,"method":"lookup","args":{"name":NaN}}',
    b'{"type":"call","id":4,"method":"lookup","args":{"name":"\\ud800"}}',
    b'{"type":"call","id":5.5,"method":"ping"}',
    b"\xff\xfe{}",
    b"",
]


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">IB", len(payload) + 1, kind) + payload


@st.composite
def sends(draw: st.DrawFn) -> tuple[bool, list[tuple[bytes, int | None]]]:
    """(say hello first, [(frame bytes, id of a reply it must get or None)])."""
    hello = draw(st.integers(0, 9)) > 0
    out: list[tuple[bytes, int | None]] = []
    for _ in range(draw(st.integers(1, 4))):
        choice = draw(st.integers(0, 9))
        if choice <= 4:
            message = draw(calls)
            out.append((p.encode_message(message), message["id"]))
        elif choice == 5:
            out.append((p.encode_message(draw(others)), None))
        elif choice == 6:
            # the payload of a call with bytes flipped; the header stays true, so that the
            # daemon knows where the frame ends (a header announcing more than comes makes
            # it wait for the rest, as any stream reader would)
            data = bytearray(p.encode_message(draw(calls))[p.HEADER_SIZE :])
            for _ in range(draw(st.integers(1, 3))):
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
            out.append((frame(p.JSON, bytes(data)), None))
        elif choice == 7:
            out.append((frame(p.JSON, draw(st.sampled_from(SPECIALS))), None))
        elif choice == 8:
            stream = draw(st.integers(0, 2**32 - 1))
            out.append((p.encode_bytes(stream, draw(st.binary(max_size=64))), None))
        else:
            kind = draw(st.sampled_from([p.JSON, p.BYTES, 0, ord("X")]))
            out.append((frame(kind, draw(st.binary(max_size=64))), None))
    return hello, out


SENTINEL = 2**31 + 7


async def exchange(socket: Path, hello: bool, items: list[tuple[bytes, int | None]]) -> str:
    """Send ``items`` and then a ping; read until every call was answered or the daemon
    hung up. Returns how it ended: 'replies', 'bye' or 'closed'."""
    reader, writer = await asyncio.open_unix_connection(str(socket), limit=p.MAX_FRAME)
    try:
        if hello:
            writer.write(p.encode_message({"type": "hello", "protocol": p.PROTOCOL_VERSION}))
            welcome = p.decode_message(await asyncio.wait_for(p.read_frame(reader), READ_BOUND))
            assert welcome["type"] == "welcome"
        waiting = {SENTINEL} | {r for _, r in items if r is not None}
        sentinel = p.encode_message({"type": "call", "id": SENTINEL, "method": "ping"})
        with contextlib.suppress(ConnectionError):
            for data, _ in items:
                writer.write(data)
            writer.write(sentinel)
            await writer.drain()
        while True:
            try:
                got = await asyncio.wait_for(p.read_frame(reader), READ_BOUND)
            except TimeoutError:
                raise AssertionError(f"no reply to calls {waiting} within {READ_BOUND} s") from None
            except (EOFError, ProtocolError, ConnectionError):
                # The daemon may hang up on a bad frame (the bye it sent can be lost when
                # the kernel resets a socket that still had our unread frames in it).
                return "closed"
            if got.kind != p.JSON:
                continue
            message = p.decode_message(got)
            if message["type"] == "bye":
                assert isinstance(message.get("reason"), str) and message["reason"]
                return "bye"
            if message["type"] == "reply":
                error = message.get("error")
                if error is not None:
                    assert error["class"] and error["message"].strip(), message
                waiting.discard(message["id"])
                if not waiting:
                    return "replies"
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


ENDINGS: dict[str, int] = {}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=sends())
async def test_fuzzed_frames(
    case: tuple[bool, list[tuple[bytes, int | None]]],
    daemon: tuple[Path, Path],
    good: RemoteConnection,
) -> None:
    ending = await asyncio.wait_for(exchange(daemon[0], *case), 60)
    ENDINGS[ending] = ENDINGS.get(ending, 0) + 1
    assert await good.ping() < 10  # still serving the client that behaves
    log = daemon[1].read_text(errors="replace")
    assert "Traceback" not in log and "Unhandled" not in log, log[-4000:]


@pytest.mark.parametrize(
    "payload",
    SPECIALS[:3] + SPECIALS[7:8],
    ids=["deep-array", "deep-args", "long-number", "not-utf8"],
)
async def test_pathological_frames_get_a_reason(
    payload: bytes, daemon: tuple[Path, Path], good: RemoteConnection
) -> None:
    """Found by the fuzz: deep nesting and 5 000-digit numbers raised RecursionError and
    ValueError out of the frame decoder, so the daemon dropped the client without a word
    and logged a traceback."""
    reader, writer = await asyncio.open_unix_connection(str(daemon[0]), limit=p.MAX_FRAME)
    writer.write(p.encode_message({"type": "hello", "protocol": p.PROTOCOL_VERSION}))
    await p.read_frame(reader)
    writer.write(frame(p.JSON, payload))
    await writer.drain()
    replies = []
    with contextlib.suppress(EOFError):
        while True:
            replies.append(p.decode_message(await asyncio.wait_for(p.read_frame(reader), 10)))
    writer.close()
    bye = replies[-1]
    assert bye["type"] == "bye" and bye["reason"].startswith("protocol error: A frame"), replies
    assert await good.ping() < 10
    assert "Traceback" not in daemon[1].read_text(errors="replace")


async def test_bad_ids_are_refused(good: RemoteConnection) -> None:
    """Found by the fuzz: ``"id": true`` was taken for an id, and stream ids outside
    0..2**32-1 were accepted, which a byte frame cannot carry."""
    from drivers.errors import InvalidArgument

    for stream in (-1, 2**32):
        with pytest.raises(InvalidArgument, match="Stream ids are 0 to 4294967295"):
            await good.call("stats.subscribe", stream=stream, interval=1.0)


async def test_a_lone_surrogate_gets_its_error_back(good: RemoteConnection) -> None:
    """Found by the fuzz: a name sent as "\\ud800" made the error reply unencodable (UTF-8
    has no lone surrogates), so the call never got an answer and the daemon logged a
    traceback."""
    from drivers.errors import NoSuchDomain

    with pytest.raises(NoSuchDomain, match="\ud800"):
        await good.lookup("\ud800")
    assert await good.ping() < 10


def test_what_the_fuzz_saw() -> None:
    print("protocol fuzz endings:", json.dumps(ENDINGS))
