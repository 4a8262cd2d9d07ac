"""virtdeckd: session autostart, surviving kills, closing clients, one daemon per state."""

from __future__ import annotations

import asyncio
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import drivers
from drivers.errors import ConnectionLost
from drivers.model import ConnectionClosedEvent, state_words
from drivers.remote.client import RemoteConnection
from tests.conftest import require_qemu
from tests.e2e.helpers import EventRecorder, diskless_xml, guest_xml
from tests.guest import READY_RE, SerialConsole, require_guest
from tests.remote.conftest import Session

pytestmark = pytest.mark.qemu


async def words(conn: drivers.Connection, name: str) -> str:
    state, reason = await (await conn.lookup(name)).state()
    return state_words(state, reason)


async def test_session_autostart_is_race_safe_and_private(session: Session) -> None:
    require_qemu()
    conns = await asyncio.gather(*(drivers.open("qemu:///session") for _ in range(3)))
    # and two more from other processes at the same moment
    code = "import asyncio, drivers; asyncio.run(drivers.open('qemu:///session'))"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=session.env()) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=30) == 0
    assert len(session.daemon_pids()) == 1
    assert session.daemon_pid() in session.daemon_pids()
    assert stat.S_IMODE(session.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(session.runtime.stat().st_mode) == 0o700
    assert stat.S_IMODE(session.state.stat().st_mode) == 0o700
    for conn in conns:
        assert isinstance(conn, RemoteConnection)
        assert conn.welcome["uri"] == "qemu:///session"
        await conn.close()


async def test_daemon_sigkill_leaves_guests_running(session: Session, short_tmp: object) -> None:
    guest = require_guest()
    serial = session.base / "g.sock"
    conn = await drivers.open("qemu:///session")
    g = await conn.define_xml(guest_xml("g1", guest, serial))
    d = await conn.define_xml(diskless_xml("d2"))
    await g.start()
    await d.start()
    await d.suspend()
    console = await SerialConsole.connect(serial)
    await console.wait_for(READY_RE, timeout=30)
    definitions = {
        name: await (await conn.lookup(name)).xml(inactive=True) for name in ("g1", "d2")
    }
    events = conn.events()
    old = session.daemon_pid()
    assert old is not None

    session.kill_daemons(signal.SIGKILL)
    closed = await events.get(timeout=5)
    assert isinstance(closed, ConnectionClosedEvent) and closed.lost
    with pytest.raises(ConnectionLost):
        await conn.list_summaries()

    # the next client starts a new daemon, which finds both guests as they were
    conn = await drivers.open("qemu:///session")
    assert session.daemon_pid() not in (None, old)
    assert await words(conn, "g1") == "running (booted)"
    assert await words(conn, "d2") == "paused (user)"
    for name, xml in definitions.items():
        assert await (await conn.lookup(name)).xml(inactive=True) == xml
    await console.send("ping")
    await console.wait_for("VIRTDECK-PONG")
    await console.close()
    rec = EventRecorder(conn)
    mark = rec.mark()
    await (await conn.lookup("d2")).resume()
    await rec.wait_lifecycle(["Resumed Unpaused"], mark)
    for name in ("g1", "d2"):
        await (await conn.lookup(name)).destroy()
    await rec.close()
    await conn.close()


async def test_sigterm_says_why_and_guests_survive(session: Session) -> None:
    require_qemu()
    conn = await drivers.open("qemu:///session")
    dom = await conn.define_xml(diskless_xml("t1"))
    await dom.start()
    stream = conn.events()
    session.kill_daemons(signal.SIGTERM)
    closed = await stream.get(timeout=10)
    assert isinstance(closed, ConnectionClosedEvent)
    assert "shutting down" in closed.reason
    conn = await drivers.open("qemu:///session")
    assert await words(conn, "t1") == "running (booted)"
    await (await conn.lookup("t1")).destroy()
    await conn.close()


async def test_one_daemon_per_state_directory(session: Session) -> None:
    require_qemu()
    conn = await drivers.open("qemu:///session")
    second = subprocess.run(
        [sys.executable, "-m", "drivers.daemon", "--session"],
        env=session.env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 0 and "already serves" in second.stderr
    # another runtime directory but the same state: the driver's lock refuses it
    env = session.env() | {"XDG_RUNTIME_DIR": str(session.base / "rt2")}
    (session.base / "rt2").mkdir(mode=0o700)
    third = subprocess.run(
        [sys.executable, "-m", "drivers.daemon", "--session"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert third.returncode == 1 and "already manages" in third.stderr
    assert len(session.daemon_pids()) == 1
    await conn.close()


async def test_stdio_serves_one_client() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.daemon",
        "--driver",
        "test:///default",
        "--stdio",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    conn = RemoteConnection(proc.stdout, proc.stdin, "test:///default")
    started = time.monotonic()
    try:
        await conn.handshake()
        names = [s.name for s in await conn.list_summaries()]
        assert "test" in names
        rec = EventRecorder(conn)
        mark = rec.mark()
        await (await conn.lookup("test")).suspend()
        await rec.wait_lifecycle(["Suspended Paused"], mark)
        await rec.close()
    finally:
        await conn.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert time.monotonic() - started < 10


async def test_daemon_shows_as_virtdeckd(session: Session) -> None:
    """ps, top and pgrep find the daemon by the name people look for, as with libvirtd."""
    conn = await drivers.open("qemu:///session")
    try:
        (pid,) = session.daemon_pids()
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
        assert comm == "virtdeckd"
        assert cmdline.startswith(b"virtdeckd --session"), cmdline
        found = subprocess.run(["pgrep", "-x", "virtdeckd"], capture_output=True, text=True)
        assert str(pid) in found.stdout.split()
    finally:
        await conn.close()
