"""The libvirt driver against a real libvirtd running the real tiny guest (QEMU, TCG).

Through the virtdeck API (``libvirt:qemu:///system``): list, define, start, suspend,
resume, reboot, shutdown, destroy, undefine, each checked by the state libvirt reports and
by the lifecycle events; and the events are exactly what ``virsh event --all --loop``
prints for the same run, line for line. Then the console over a libvirt stream, the
statistics from virConnectGetAllDomainStats, errors in virtdeck's hierarchy, and the
read-only guard.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

import drivers
from bench.libvirt_peer import LibvirtPeer
from drivers.api import Connection
from drivers.errors import AccessDenied, DomainBusy, InvalidXML, NoSuchDomain, OperationInvalid
from drivers.model import DomainEvent, DomainState, Event, LifecycleEvent
from tests.conftest import require_qemu
from tests.e2e.helpers import EventRecorder, guest_xml, state_of
from tests.guest import READY_RE, SerialConsole, require_guest
from tests.libvirt.conftest import PREFIX, SYSTEM
from tui.virsh.formats import event_lines

# The first test may wait for the machine's libvirtd lock (another run holding it).
pytestmark = [pytest.mark.guest, pytest.mark.qemu, pytest.mark.timeout(1200)]


@pytest.fixture
async def conn(libvirtd: LibvirtPeer) -> AsyncIterator[Connection]:
    require_qemu()
    connection = await drivers.open(SYSTEM)
    try:
        yield connection
    finally:
        await connection.close()


def pty_guest_xml(name: str, serial: Path) -> str:
    """The test guest with a pty serial port (what libvirt's console stream can open)."""
    xml = guest_xml(name, require_guest(), serial)
    start = xml.index("<serial type='unix'>")
    end = xml.index("</serial>") + len("</serial>")
    return xml[:start] + "<serial type='pty'><target port='0'/></serial>" + xml[end:]


async def ready(serial: Path, timeout: float = 60) -> None:
    async with await SerialConsole.connect(serial, timeout=10) as console:
        await console.wait_for(READY_RE, timeout=timeout)


class VirshEvents:
    """``virsh event --all --loop`` running alongside, as a user would watch."""

    def __init__(self, peer: LibvirtPeer) -> None:
        self.proc = subprocess.Popen(
            peer.virsh_argv("event", "--all", "--loop"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def stop(self) -> list[str]:
        out, _ = _interrupt(self.proc)
        return [line for line in out.splitlines() if line.startswith("event ")]


def _interrupt(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """What ``proc`` printed until ctrl+C ended it (killed if it does not end)."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def our_lines(events: Sequence[Event], name: str) -> list[str]:
    lines: list[str] = []
    for event in events:
        if isinstance(event, DomainEvent) and event.domain == name:
            lines.extend(line.rstrip("\n") for _, line in event_lines(event))
    return lines


async def test_lifecycle_through_the_api_matches_virsh_event(
    libvirtd: LibvirtPeer, conn: Connection, short_tmp: Path
) -> None:
    name = PREFIX + "life"
    serial = short_tmp / "life.sock"
    watcher = VirshEvents(libvirtd)
    await asyncio.sleep(0.3)  # virsh has subscribed
    recorder = EventRecorder(conn)
    try:
        dom = await conn.define_xml(guest_xml(name, require_guest(), serial))
        await recorder.wait_lifecycle(["Defined Added"], 0)
        listed = {s.name: s for s in await conn.list_summaries()}
        assert listed[name].state is DomainState.SHUTOFF and listed[name].persistent
        assert name in [d.name for d in await conn.list_domains()]
        assert await state_of(conn, name) == "shut off (unknown)"

        mark = recorder.mark()
        await dom.start()
        await recorder.wait_lifecycle(["Resumed Unpaused", "Started Booted"], mark)
        await ready(serial)
        assert await state_of(conn, name) == "running (booted)"
        assert await dom.id() is not None
        with pytest.raises(OperationInvalid, match="not a pty"):
            await dom.console()  # its serial port is a unix socket
        summary = {s.name: s for s in await conn.list_summaries()}[name]
        assert summary.state is DomainState.RUNNING and summary.id == await dom.id()
        assert summary.vcpus == 1 and summary.memory_kib == 256 * 1024

        mark = recorder.mark()
        await dom.suspend()
        await recorder.wait_lifecycle(["Suspended Paused"], mark)
        assert await state_of(conn, name) == "paused (user)"
        mark = recorder.mark()
        await dom.resume()
        await recorder.wait_lifecycle(["Resumed Unpaused"], mark)
        assert await state_of(conn, name) == "running (unpaused)"

        # reboot: the ACPI button, then libvirt's fake reboot; the guest boots again
        mark = recorder.mark()
        async with await SerialConsole.connect(serial) as console:
            console.mark()
            await dom.reboot()
            await console.wait_for(READY_RE, timeout=60)
        assert recorder.reboots(mark) >= 1
        assert await state_of(conn, name) == "running (unpaused)"

        mark = recorder.mark()
        await dom.shutdown()
        await recorder.wait_lifecycle(
            ["Shutdown Finished after guest request", "Stopped Shutdown"], mark, timeout=30
        )
        assert await state_of(conn, name) == "shut off (shutdown)"

        mark = recorder.mark()
        await dom.start()
        await recorder.wait_lifecycle(["Resumed Unpaused", "Started Booted"], mark)
        await ready(serial)
        mark = recorder.mark()
        await dom.destroy()
        await recorder.wait_lifecycle(
            ["Shutdown Finished after host request", "Stopped Destroyed"], mark, timeout=30
        )
        assert await state_of(conn, name) == "shut off (destroyed)"
        assert await dom.id() is None

        mark = recorder.mark()
        await dom.undefine()
        await recorder.wait_lifecycle(["Undefined Removed"], mark)
        with pytest.raises(NoSuchDomain):
            await conn.lookup(name)
        with pytest.raises(NoSuchDomain):
            await dom.state()
        await asyncio.sleep(0.3)  # virsh has printed the last one
    finally:
        theirs = watcher.stop()
        await recorder.close()
    ours = our_lines(recorder.events, name)
    assert [line for line in theirs if f"'{name}'" in line] == ours
    assert "event 'lifecycle' for domain 'vdlv-life': Started Booted" in ours


async def test_console_stats_and_xml(conn: Connection, short_tmp: Path) -> None:
    name = PREFIX + "con"
    dom = await conn.define_xml(pty_guest_xml(name, short_tmp / "unused.sock"))
    with pytest.raises(OperationInvalid, match="not running"):
        await dom.console()
    try:
        await dom.start()
        async with await dom.console() as console:
            seen = b""
            async with asyncio.timeout(90):
                while b"VIRTDECK-GUEST-READY" not in seen:
                    seen += await console.read()
                # a second writer is refused; with force it takes over
                with pytest.raises(DomainBusy):
                    await dom.console()
                await console.write(b"ping\n")
                while b"VIRTDECK-PONG" not in seen:
                    seen += await console.read()
        # the statistics: virConnectGetAllDomainStats, twice for rates
        samples = []
        async for sample in conn.stats_stream(0.2):
            samples.append(sample)
            if len(samples) == 2:
                break
        figures = {d.name: d for d in samples[-1].domains}[name]
        assert figures.cpu_time_ns > 0 and len(figures.vcpu_time_ns) == 1
        assert samples[-1].host.cpus >= 1 and samples[-1].host.memory_total > 0
        assert samples[-1].host.running >= 1
        live = await dom.xml()
        assert "<name>vdlv-con</name>" in live and "id=" in live.splitlines()[0]
        assert "id=" not in (await dom.xml(inactive=True)).splitlines()[0]
        info = await dom.info()
        assert info.state is DomainState.RUNNING and info.vcpus == 1
        assert info.max_memory_kib == 256 * 1024 and info.cpu_time_ns > 0
    finally:
        if (await dom.state())[0].is_active:
            await dom.destroy()
        await dom.undefine()


async def test_errors_are_virtdeck_errors(conn: Connection) -> None:
    with pytest.raises(NoSuchDomain, match="vdlv-nothing"):
        await conn.lookup(PREFIX + "nothing")
    with pytest.raises(InvalidXML, match="libvirt at libvirt:qemu:///system could not define"):
        await conn.define_xml("<domain type='qemu'><name>vdlv-broken</name>")
    dom = await conn.define_xml(
        f"<domain type='qemu'><name>{PREFIX}off</name><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64'>hvm</type></os></domain>"
    )
    try:
        with pytest.raises(OperationInvalid, match="could not suspend domain 'vdlv-off'"):
            await dom.suspend()
    finally:
        await dom.undefine()


async def test_read_only_connection_refuses_changes(conn: Connection) -> None:
    dom = await conn.define_xml(
        f"<domain type='qemu'><name>{PREFIX}ro</name><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64'>hvm</type></os></domain>"
    )
    ro = await drivers.open(SYSTEM + "?ro=1")
    try:
        assert "read-only" in ro.capabilities
        looked = await ro.lookup(PREFIX + "ro")
        assert (await looked.state())[0] is DomainState.SHUTOFF
        with pytest.raises(AccessDenied):
            await looked.start()
        with pytest.raises(AccessDenied):
            await ro.define_xml(await dom.xml())
        # events reach read-only connections too
        stream = ro.events()
        await dom.undefine()
        event = await stream.get(10)
        assert isinstance(event, LifecycleEvent) and event.words == "Undefined Removed"
    finally:
        await ro.close()



def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    from tests.cli.helpers import cli as run_cli

    return run_cli("-c", SYSTEM, *args, timeout=timeout)


def _until_state(name: str, words: str, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while True:
        now = cli("domstate", "--reason", name).stdout.strip()
        if now == words:
            return
        assert time.monotonic() < deadline, f"{name} is {now!r}, not {words!r}"
        time.sleep(0.2)


class CliEvents:
    """``virtdeck -c libvirt:... event --all --loop``, next to virsh's."""

    def __init__(self) -> None:
        import sys

        from tests.cli.helpers import REPO

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tui.cli", "-c", SYSTEM, "event", "--all", "--loop"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )

    def stop(self) -> list[str]:
        out, err = _interrupt(self.proc)
        assert "Traceback" not in err, err
        assert out.rstrip().splitlines()[-1].startswith("events received: "), out
        return [line for line in out.splitlines() if line.startswith("event ")]


def test_lifecycle_through_the_cli_prints_what_virsh_prints(
    libvirtd: LibvirtPeer, short_tmp: Path
) -> None:
    """virtdeck's CLI drives libvirtd; ``virtdeck event --loop`` and ``virsh event --loop``
    print the same lines, and ``list``/``domstate`` read as virsh's do."""
    require_qemu()
    name = PREFIX + "cli"
    serial = short_tmp / "cli.sock"
    xml_file = short_tmp / "cli.xml"
    xml_file.write_text(guest_xml(name, require_guest(), serial))
    ours, theirs = CliEvents(), VirshEvents(libvirtd)
    try:
        import time

        time.sleep(1.5)  # both have subscribed
        done = cli("define", str(xml_file))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"Domain '{name}' defined from {xml_file}"
        listed = cli("list", "--all").stdout
        assert any(line.split()[1:] == [name, "shut", "off"] for line in listed.splitlines()[2:])
        assert cli("start", name).stdout.strip() == f"Domain '{name}' started"
        asyncio.run(ready(serial))
        assert cli("domstate", "--reason", name).stdout.strip() == "running (booted)"
        virsh_list = libvirtd.virsh("list").stdout
        assert cli("list").stdout.split() == virsh_list.split()
        for command, state in (("suspend", "paused (user)"), ("resume", "running (unpaused)")):
            done = cli(command, name)
            assert done.returncode == 0, done.stderr
            _until_state(name, state)

        async def reboot() -> None:
            async with await SerialConsole.connect(serial) as console:
                console.mark()
                done = cli("reboot", name)
                assert done.stdout.strip() == f"Domain '{name}' is being rebooted", done.stderr
                await console.wait_for(READY_RE, timeout=60)

        asyncio.run(reboot())
        assert cli("domstate", "--reason", name).stdout.strip() == "running (unpaused)"
        done = cli("shutdown", name)
        assert done.returncode == 0, done.stderr
        _until_state(name, "shut off (shutdown)")
        cli("start", name)
        asyncio.run(ready(serial))
        assert cli("destroy", name).stdout.strip() == f"Domain '{name}' destroyed"
        assert cli("domstate", "--reason", name).stdout.strip() == "shut off (destroyed)"
        assert cli("undefine", name).stdout.strip() == f"Domain '{name}' has been undefined"
        missing = cli("domstate", name)
        assert missing.returncode == 1 and "error:" in missing.stderr
        time.sleep(0.5)  # the last events have been printed
    finally:
        lines, virsh_lines = ours.stop(), theirs.stop()
    mine = [line for line in lines if f"'{name}'" in line]
    assert mine == [line for line in virsh_lines if f"'{name}'" in line]
    assert f"event 'lifecycle' for domain '{name}': Stopped Destroyed" in mine


async def test_a_libvirtd_that_dies_ends_the_event_stream_as_lost(libvirtd: LibvirtPeer) -> None:
    """(Last in this module: it kills the module's libvirtd.) The stream ends with a lost
    ConnectionClosedEvent, as the reconnecting wrapper and the TUI expect; calls then say
    the connection is lost."""
    import os

    from drivers.errors import ConnectionLost
    from drivers.model import ConnectionClosedEvent

    connection = await drivers.open(SYSTEM)
    try:
        stream = connection.events()
        assert libvirtd.pid is not None
        os.kill(libvirtd.pid, signal.SIGKILL)
        event = await stream.get(30)
        assert isinstance(event, ConnectionClosedEvent) and event.lost
        # (a killed daemon's socket reads as an I/O error rather than an orderly end)
        assert event.reason in (
            "the connection to libvirtd failed (libvirtd may have stopped)",
            "libvirtd closed the connection",
        )
        with pytest.raises(ConnectionLost, match="is lost"):
            await connection.list_domains()
    finally:
        await connection.close()
