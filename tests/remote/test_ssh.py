"""qemu+ssh:// against a real OpenSSH sshd on loopback (the test machine is the remote host)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

import drivers
from drivers.errors import AccessDenied, ConnectionFailed, ConnectionLost, InvalidURI
from drivers.model import ConnectionClosedEvent
from drivers.remote.client import RemoteConnection
from drivers.remote.ssh import (
    link_connect_seconds,
    open_ssh_connections,
    remote_command,
    ssh_connection,
)
from tests.conftest import require_qemu
from tests.e2e.helpers import EventRecorder, diskless_xml
from tests.remote.conftest import Session
from tests.remote.sshd import (
    Sshd,
    daemon_command,
    free_port,
    known_hosts_line,
    new_key,
    sshd_fixture,  # noqa: F401 - the "sshd" fixture
)

TEST_DRIVER = ("--driver", "test:///default")


def remote_daemons(sshd: Sshd) -> list[int]:
    """The virtdeckd processes sshd runs for our channels (one per channel)."""
    found = []
    for pid in sshd.session_pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"drivers.daemon" in cmdline or cmdline.startswith(b"virtdeckd"):
            found.append(pid)
    return found


async def lost_event(stream: drivers.EventStream) -> None:
    """Wait for the stream's end: a ConnectionClosedEvent marked lost."""
    while True:
        event = await stream.get(timeout=5)
        if isinstance(event, ConnectionClosedEvent):
            assert event.lost, event
            return


async def test_uri_is_checked_before_connecting() -> None:
    for uri, words in [
        ("qemu+ssh://h/embed", "/session"),
        ("qemu+ssh://h/session?keyFile=/k", "unknown query parameter"),
        ("qemu+ssh://h/session?keepalive=0", "keepalive=0"),
        ("qemu+ssh://h/session?command=%27unbalanced", "not a valid command line"),
        ("qemu+ssh://h/session?keyfile=/nonexistent/key", "is not a file"),
    ]:
        with pytest.raises(InvalidURI, match=words):
            await drivers.open(uri)
    assert remote_command(["virtdeckd"], "system") == "virtdeckd --stdio --system"
    assert (
        remote_command(["/opt/my venv/virtdeckd", "$(reboot);x"], "session")
        == "'/opt/my venv/virtdeckd' '$(reboot);x' --stdio --session"
    )


@pytest.mark.qemu
async def test_session_daemon_over_ssh(session: Session, sshd: Sshd) -> None:
    require_qemu()
    uri = sshd.uri(daemon_command(session))
    started = time.monotonic()
    a = await drivers.open(uri)
    opened = time.monotonic() - started
    assert isinstance(a, RemoteConnection)
    print(
        f"\nasyncssh connect {1000 * (link_connect_seconds(a) or 0):.1f} ms; "
        f"open incl. session daemon autostart {1000 * opened:.0f} ms"
    )
    assert a.welcome["uri"] == "qemu:///session"
    assert session.daemon_pid() is not None  # started on demand by the remote relay
    assert await a.list_summaries() == []

    started = time.monotonic()
    b = await drivers.open(uri)
    print(f"second channel over the same link {1000 * (time.monotonic() - started):.0f} ms")
    assert isinstance(b, RemoteConnection)
    assert ssh_connection(a) is not None and ssh_connection(a) is ssh_connection(b)
    assert open_ssh_connections() == 1
    assert len(sshd.connection_pids()) == 1  # sshd saw one TCP connection

    rec = EventRecorder(b)  # events through the other channel
    mark = rec.mark()
    dom = await a.define_xml(diskless_xml("ssh1"))
    await rec.wait_lifecycle(["Defined Added"], mark)
    mark = rec.mark()
    await dom.start()
    await rec.wait_lifecycle(["Resumed Unpaused", "Started Booted"], mark)
    [summary] = await b.list_summaries()
    assert (summary.name, summary.state.name) == ("ssh1", "RUNNING")
    mark = rec.mark()
    await (await b.lookup("ssh1")).destroy()
    await rec.wait_lifecycle(["Shutdown Finished after host request", "Stopped Destroyed"], mark)
    await rec.close()

    await a.close()
    assert open_ssh_connections() == 1
    link = ssh_connection(b)
    assert link is not None and not link.is_closed()
    await b.close()
    assert open_ssh_connections() == 0


async def test_stdio_driver_and_one_channel_ending(session: Session, sshd: Sshd) -> None:
    marker = session.base / "pwned"
    # A hostile-looking argument travels as one literal word, never as shell syntax.
    command = ["env", f"VD_ARG=x; touch {marker}", *daemon_command(session, *TEST_DRIVER)]
    uri = sshd.uri(command)
    a, b = await asyncio.gather(drivers.open(uri), drivers.open(uri))
    assert isinstance(a, RemoteConnection) and isinstance(b, RemoteConnection)
    assert not marker.exists()
    assert a.welcome["uri"] == "test:///default"
    assert ssh_connection(a) is ssh_connection(b)  # the two opens raced for one login
    assert len(sshd.connection_pids()) == 1
    assert "test" in [s.name for s in await a.list_summaries()]
    rec = EventRecorder(a)
    mark = rec.mark()
    await (await a.lookup("test")).suspend()
    await rec.wait_lifecycle(["Suspended Paused"], mark)
    await rec.close()

    # Each channel runs its own virtdeckd here; killing one loses only its connection.
    streams = {a: a.events(), b: b.events()}
    daemons = remote_daemons(sshd)
    assert len(daemons) == 2
    os.kill(daemons[0], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while not (a.closed or b.closed) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    lost, alive = (a, b) if a.closed else (b, a)
    assert lost.closed and not alive.closed
    await lost_event(streams[lost])
    with pytest.raises(ConnectionLost, match="SIGKILL"):
        await lost.list_summaries()
    assert "test" in [s.name for s in await alive.list_summaries()]
    assert open_ssh_connections() == 1
    streams[alive].close()
    await alive.close()
    assert open_ssh_connections() == 0


async def test_killed_sshd_session_loses_every_connection(session: Session, sshd: Sshd) -> None:
    uri = sshd.uri(daemon_command(session, *TEST_DRIVER))
    conns = [await drivers.open(uri) for _ in range(2)]
    streams = [c.events() for c in conns]
    cut = time.monotonic()
    sshd.kill_sessions()
    for conn, stream in zip(conns, streams, strict=True):
        assert isinstance(conn, RemoteConnection)
        await lost_event(stream)
        with pytest.raises(ConnectionLost):
            await conn.list_summaries()
    print(f"\nsshd session killed → lost after {1000 * (time.monotonic() - cut):.1f} ms")
    await asyncio.sleep(0)  # let the scheduled releases run
    assert open_ssh_connections() == 0
    # and the next open makes a new connection
    again = await drivers.open(uri)
    assert "test" in [s.name for s in await again.list_summaries()]
    await again.close()


async def test_frozen_peer_is_noticed_by_keepalives(session: Session, sshd: Sshd) -> None:
    # Short keepalives so the test is quick; the netns test checks the default (1 s).
    conn = await drivers.open(sshd.uri(daemon_command(session, *TEST_DRIVER), keepalive="0.25"))
    stream = conn.events()
    pids = sshd.session_pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        frozen = time.monotonic()
        with pytest.raises(ConnectionLost, match="keepalive"):
            await asyncio.wait_for(conn.list_summaries(), 5)  # in flight when noticed
        noticed = time.monotonic() - frozen
        print(f"\nfrozen peer noticed after {noticed:.2f} s (keepalive 0.25 s, 4 missed)")
        assert noticed < 2
        assert isinstance(conn, RemoteConnection)
        await lost_event(stream)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


async def test_unknown_host_key_is_refused(sshd: Sshd) -> None:
    empty = sshd.dir / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(ConnectionFailed) as info:
        await drivers.open(sshd.uri(known_hosts=str(empty)))
    message = str(info.value)
    print("\n" + message)
    assert not isinstance(info.value, AccessDenied)
    assert f"host key of 127.0.0.1:{sshd.port} is not known" in message
    assert sshd.host_key.get_fingerprint("sha256") in message
    assert f"ssh -p {sshd.port}" in message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty}" in message
    assert open_ssh_connections() == 0


async def test_changed_host_key_is_refused(sshd: Sshd) -> None:
    stale = sshd.dir / "stale_known_hosts"
    stale.write_text(known_hosts_line("127.0.0.1", sshd.port, new_key(sshd.dir / "old_host")))
    with pytest.raises(ConnectionFailed) as info:
        await drivers.open(sshd.uri(known_hosts=str(stale)))
    message = str(info.value)
    print("\n" + message)
    assert "CHANGED" in message and "man-in-the-middle" in message
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}'" in message
    assert sshd.host_key.get_fingerprint("sha256") in message


async def test_wrong_client_key_is_access_denied(sshd: Sshd) -> None:
    new_key(sshd.dir / "stranger")
    with pytest.raises(AccessDenied, match="refused the SSH login of root"):
        await drivers.open(sshd.uri(keyfile=str(sshd.dir / "stranger")))
    assert open_ssh_connections() == 0


async def test_missing_virtdeck_says_how_to_point_at_it(sshd: Sshd) -> None:
    with pytest.raises(ConnectionFailed) as info:
        await drivers.open(sshd.uri(["/nonexistent/virtdeckd"]))
    message = str(info.value)
    print("\n" + message)
    assert "virtdeck is not installed on 127.0.0.1" in message
    assert "No such file" in message and "?command=" in message
    assert open_ssh_connections() == 0


async def test_system_mode_without_a_system_daemon(session: Session, sshd: Sshd) -> None:
    # --socket (before the appended --stdio --system) keeps the test away from /run.
    command = daemon_command(session, "--socket", str(session.base / "none.sock"))
    with pytest.raises(ConnectionFailed) as info:
        await drivers.open(sshd.uri(command, mode="system"))
    message = str(info.value)
    print("\n" + message)
    assert "gave up before answering" in message and "exit status 1" in message
    assert "no virtdeck daemon listens on" in message


async def test_invalid_known_hosts_file(sshd: Sshd) -> None:
    bad = sshd.dir / "bad_known_hosts"
    bad.write_text("@bogus-marker 127.0.0.1 ssh-ed25519 AAAA\n")
    with pytest.raises(ConnectionFailed, match="not a valid known_hosts file"):
        await drivers.open(sshd.uri(known_hosts=str(bad)))
    assert open_ssh_connections() == 0


async def test_refused_port_is_connection_failed(sshd: Sshd) -> None:
    uri = sshd.uri().replace(f":{sshd.port}/", f":{free_port()}/")
    with pytest.raises(ConnectionFailed, match="refused the connection"):
        await drivers.open(uri)


async def test_silent_server_times_out(tmp_path: Path) -> None:
    # A ConnectTimeout from the ssh config file is honoured (the default is 15 s).
    config = tmp_path / "ssh_config"
    config.write_text("ConnectTimeout 1\n")
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed, match="within 1 s"):
            await drivers.open(f"qemu+ssh://127.0.0.1:{port}/session?config={config}")
        assert time.monotonic() - started < 3
    finally:
        server.close()
    assert open_ssh_connections() == 0
