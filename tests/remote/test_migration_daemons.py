"""Live migration of the real guest between two virtdeckd processes on loopback.

Each daemon serves its own QEMU driver root on its own socket (two hosts on one machine);
the client in this test drives the five phases over the daemon protocol, directly
(QEMU to QEMU over loopback TCP) and tunnelled (through both daemons and this client).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import drivers
from drivers.api import Connection, Domain
from drivers.errors import OperationFailed
from drivers.model import JobInfo
from tests.conftest import require, require_qemu
from tests.e2e.conftest import kill_root_processes
from tests.e2e.helpers import (
    EventRecorder,
    boot_guest,
    guest_answers,
    guest_uptime,
    guest_xml,
    state_of,
)
from tests.guest import READY_RE, GuestImage, SerialConsole, require_guest
from tests.remote.conftest import Session, run_cli, spawn_daemon

pytestmark = [pytest.mark.qemu, pytest.mark.guest]


@dataclass
class Host:
    name: str
    root: Path
    socket: Path
    proc: subprocess.Popen[bytes]

    @property
    def uri(self) -> str:
        return f"qemu:///system?socket={self.socket}"


def start_host(session: Session, name: str) -> Host:
    root = session.base / name
    socket = session.base / f"{name}.sock"
    proc = spawn_daemon(session, socket, driver=f"qemu:///embed?root={root}")
    return Host(name, root, socket, proc)


def stop_host(host: Host) -> None:
    if host.proc.poll() is None:
        host.proc.send_signal(signal.SIGKILL)
        host.proc.wait(10)
    kill_root_processes(host.root)


@pytest.fixture
def guest() -> GuestImage:
    return require_guest()


@pytest.fixture
def two_hosts(session: Session) -> Iterator[tuple[Host, Host]]:
    require_qemu()
    hosts = [start_host(session, "h1"), start_host(session, "h2")]
    try:
        yield hosts[0], hosts[1]
    finally:
        for host in hosts:
            stop_host(host)


@pytest.fixture
async def conns(two_hosts: tuple[Host, Host]) -> AsyncIterator[tuple[Connection, Connection]]:
    a = await drivers.open(two_hosts[0].uri)
    b = await drivers.open(two_hosts[1].uri)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("tunnelled", [False, True], ids=["direct", "tunnelled"])
async def test_live_migration_through_daemons(
    conns: tuple[Connection, Connection], guest: GuestImage, short_tmp: Path, tunnelled: bool
) -> None:
    src, dst = conns
    serial_a, serial_b = short_tmp / "a.sock", short_tmp / "b.sock"
    dom = await boot_guest(src, "dm1", guest, serial_a)
    before = await guest_uptime(serial_a)
    rec_src, rec_dst = EventRecorder(src), EventRecorder(dst)
    mark_src, mark_dst = rec_src.mark(), rec_dst.mark()
    seen: list[JobInfo] = []
    moved = await dom.migrate(
        dst,
        xml=guest_xml("dm1", guest, serial_b, uuid=dom.uuid),
        undefine_source=True,
        tunnelled=tunnelled,
        progress=seen.append,
    )
    assert await state_of(dst, "dm1") == "running (migrated)"
    await rec_src.wait_lifecycle(
        ["Suspended Migrated", "Stopped Migrated", "Undefined Removed"], mark_src
    )
    await rec_dst.wait_lifecycle(
        ["Started Migrated", "Defined Added", "Resumed Migrated"], mark_dst
    )
    assert [d.name for d in await src.list_domains()] == []
    final = seen[-1]
    assert final.type == "completed" and final.ram_transferred > 0
    rate = final.ram_transferred / max(final.elapsed_ms, 1) * 1000
    print(f"{'tunnelled' if tunnelled else 'direct'}: {final.elapsed_ms} ms, "
          f"{final.ram_transferred >> 20} MiB, {rate / 2**20:.0f} MiB/s, "
          f"downtime {final.downtime_ms} ms")  # fmt: skip
    await guest_answers(serial_b)
    assert await guest_uptime(serial_b) > before  # no reboot: the guest went on
    await moved.destroy()
    assert await state_of(dst, "dm1") == "shut off (destroyed)"  # the definition moved
    await rec_src.close()
    await rec_dst.close()


async def _migrating(dom: Domain) -> None:
    for _ in range(500):
        info = await dom.job_info()
        if info.active and info.ram_transferred > 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the migration did not get going")


async def test_destination_qemu_killed_mid_migration(
    conns: tuple[Connection, Connection],
    two_hosts: tuple[Host, Host],
    guest: GuestImage,
    short_tmp: Path,
) -> None:
    src, dst = conns
    serial_a, serial_b = short_tmp / "a.sock", short_tmp / "b.sock"
    dom = await boot_guest(src, "dm2", guest, serial_a)
    task = asyncio.create_task(
        dom.migrate(dst, xml=guest_xml("dm2", guest, serial_b, uuid=dom.uuid), bandwidth_mib=8)
    )
    await _migrating(dom)
    kill_root_processes(two_hosts[1].root)  # the destination's QEMU dies
    with pytest.raises(drivers.VirtError):
        await task
    assert await state_of(src, "dm2") in ("running (booted)", "running (migration canceled)")
    assert [d.name for d in await dst.list_domains()] == []
    await guest_answers(serial_a)


async def test_domjobabort_mid_migration(
    conns: tuple[Connection, Connection], guest: GuestImage, short_tmp: Path
) -> None:
    src, dst = conns
    serial_a, serial_b = short_tmp / "a.sock", short_tmp / "b.sock"
    dom = await boot_guest(src, "dm3", guest, serial_a)
    rec = EventRecorder(src)
    mark = rec.mark()
    task = asyncio.create_task(
        dom.migrate(dst, xml=guest_xml("dm3", guest, serial_b, uuid=dom.uuid), bandwidth_mib=8)
    )
    await _migrating(dom)
    await dom.abort_job()
    with pytest.raises(OperationFailed, match="cancelled"):
        await task
    assert await state_of(src, "dm3") == "running (booted)"
    assert rec.lifecycle(mark) == []
    assert [d.name for d in await dst.list_domains()] == []
    assert (await dom.job_info()).type == "cancelled"
    await guest_answers(serial_a)
    await rec.close()


def _qemu_io(image: Path, command: str) -> None:
    tool = shutil.which("qemu-io")
    require(tool is not None, "qemu-io is not installed (apt-get install qemu-utils)")
    assert tool is not None
    subprocess.run([tool, "-f", "qcow2", "-c", command, str(image)], check=True,
                   capture_output=True)  # fmt: skip


def _raw_digest(image: Path) -> str:
    raw = image.with_suffix(".raw")
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(image), str(raw)], check=True)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    raw.unlink()
    return digest


async def test_copy_storage_moves_the_disk_intact(
    conns: tuple[Connection, Connection], guest: GuestImage, short_tmp: Path
) -> None:
    src, dst = conns
    disk_a, disk_b = short_tmp / "a.qcow2", short_tmp / "b.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk_a), "64M"], check=True)
    _qemu_io(disk_a, "write -P 0xab 0 4M")
    _qemu_io(disk_a, "write -P 0x5c 40M 1M")
    expected = _raw_digest(disk_a)

    def with_disk(serial: Path, disk: Path, uuid: str | None = None) -> str:
        return guest_xml("dm4", guest, serial, uuid=uuid).replace(
            "<devices>",
            "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
            f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>",
        )

    serial_a, serial_b = short_tmp / "a.sock", short_tmp / "b.sock"
    dom = await src.define_xml(with_disk(serial_a, disk_a))
    await dom.start()
    async with await SerialConsole.connect(serial_a) as console:
        await console.wait_for(READY_RE, timeout=60)
    seen: list[JobInfo] = []
    await dom.migrate(
        dst, xml=with_disk(serial_b, disk_b, dom.uuid), copy_storage="all", progress=seen.append
    )
    assert await state_of(dst, "dm4") == "running (migrated)"
    assert any(info.disk_total > 0 for info in seen)
    await guest_answers(serial_b)
    assert os.path.exists(disk_b)
    assert _raw_digest(disk_b) == expected


async def test_cli_migrate_domjobinfo_domjobabort(
    session: Session,
    two_hosts: tuple[Host, Host],
    conns: tuple[Connection, Connection],
    guest: GuestImage,
    short_tmp: Path,
) -> None:
    h1, h2 = two_hosts
    src, _ = conns
    serial_a, serial_b = short_tmp / "a.sock", short_tmp / "b.sock"
    dom = await boot_guest(src, "dm5", guest, serial_a)
    dest_xml = short_tmp / "dest.xml"
    dest_xml.write_text(guest_xml("dm5", guest, serial_b, uuid=dom.uuid))

    # domjobabort from another process stops a slow migration; the guest stays.
    slow = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "-c", h1.uri, "migrate", "--live", "--bandwidth", "8",
        "--xml", str(dest_xml), "dm5", h2.uri,
        stderr=asyncio.subprocess.PIPE, env=session.env(),
    )  # fmt: skip
    await _migrating(dom)
    aborted = await asyncio.to_thread(run_cli, session, "-c", h1.uri, "domjobabort", "dm5")
    assert aborted.returncode == 0, aborted.stderr
    _, err = await asyncio.wait_for(slow.communicate(), 30)
    assert slow.returncode == 1
    assert "cancelled" in err.decode()
    info = await asyncio.to_thread(run_cli, session, "-c", h1.uri, "domjobinfo", "dm5")
    assert info.stdout.startswith("Job type:         Cancelled\n"), info.stdout

    done = await asyncio.to_thread(
        run_cli, session, "-c", h1.uri, "migrate", "--live", "--persistent", "--undefinesource",
        "--verbose", "--xml", str(dest_xml), "dm5", h2.uri,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Migration: [100 %]" in done.stderr
    state = await asyncio.to_thread(run_cli, session, "-c", h2.uri, "domstate", "--reason", "dm5")
    assert state.stdout == "running (migrated)\n\n"
    info = await asyncio.to_thread(run_cli, session, "-c", h2.uri, "domjobinfo", "dm5")
    assert info.stdout.startswith("Job type:         Completed\nOperation:        Incoming"), (
        info.stdout
    )
    gone = await asyncio.to_thread(run_cli, session, "-c", h1.uri, "domstate", "dm5")
    assert gone.returncode == 1 and "not found" in gone.stderr
    await guest_answers(serial_b)


async def _until(predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def test_client_killed_mid_migration_rolls_back(
    session: Session,
    two_hosts: tuple[Host, Host],
    conns: tuple[Connection, Connection],
    guest: GuestImage,
    short_tmp: Path,
) -> None:
    """The CLI running a (non-live) migration is SIGKILLed: both daemons see their client
    go; the destination discards its copy, the source takes the guest back."""
    h1, h2 = two_hosts
    src, dst = conns
    serial_a, serial_b = short_tmp / "a.sock", short_tmp / "b.sock"
    dom = await boot_guest(src, "dm6", guest, serial_a)
    dest_xml = short_tmp / "dest.xml"
    dest_xml.write_text(guest_xml("dm6", guest, serial_b, uuid=dom.uuid))
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "-c", h1.uri, "migrate", "--bandwidth", "8",
        "--xml", str(dest_xml), "dm6", h2.uri, env=session.env(),
    )  # fmt: skip
    await _migrating(dom)
    assert await state_of(src, "dm6") == "paused (migrating)"  # not --live: paused for the copy
    client.kill()
    await client.wait()

    async def rolled_back() -> bool:
        names = [d.name for d in await dst.list_domains()]
        return not names and await state_of(src, "dm6") == "running (migration canceled)"

    await _until(rolled_back, "the destination discarded its copy and the source continued")
    await guest_answers(serial_a)


async def test_source_daemon_killed_mid_migration_recovers(
    session: Session,
    two_hosts: tuple[Host, Host],
    conns: tuple[Connection, Connection],
    guest: GuestImage,
    short_tmp: Path,
) -> None:
    h1, _ = two_hosts
    src, dst = conns
    serial_a, serial_b = short_tmp / "a.sock", short_tmp / "b.sock"
    dom = await boot_guest(src, "dm7", guest, serial_a)
    xml = guest_xml("dm7", guest, serial_b, uuid=dom.uuid)
    task = asyncio.create_task(dom.migrate(dst, xml=xml, live=True, bandwidth_mib=8))
    await _migrating(dom)
    h1.proc.send_signal(signal.SIGKILL)
    h1.proc.wait(10)
    with pytest.raises(drivers.ConnectionLost):
        await task
    assert [d.name for d in await dst.list_domains()] == []  # rolled back there
    h1.socket.unlink()  # the killed daemon's; spawn_daemon waits for the new one's
    h1.proc = spawn_daemon(session, h1.socket, driver=f"qemu:///embed?root={h1.root}")
    async with await drivers.open(h1.uri) as again:
        assert await state_of(again, "dm7") in ("running (booted)", "running (migration canceled)")
        await guest_answers(serial_a)
        # Nothing of the broken migration is left: the next one goes through.
        moved = await (await again.lookup("dm7")).migrate(dst, xml=xml)
        assert await state_of(dst, moved.name) == "running (migrated)"
    await guest_answers(serial_b)


def _qemu_processes(name: str) -> int:
    """QEMU processes running the guest called ``name`` on this machine (all hosts)."""
    found = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            cmdline
            and b"qemu-system" in cmdline[0]
            and f"guest={name},".encode() in b" ".join(cmdline)
        ):
            found += 1
    return found


async def test_drain_three_guests_to_two_hosts_in_parallel(
    session: Session, two_hosts: tuple[Host, Host], guest: GuestImage, short_tmp: Path
) -> None:
    h1, h2 = two_hosts
    h3 = start_host(session, "h3")
    try:
        async with (
            await drivers.open(h1.uri) as src,
            await drivers.open(h2.uri) as t1,
            await drivers.open(h3.uri) as t2,
        ):
            names = ["dr1", "dr2", "dr3"]
            doms = await asyncio.gather(
                *(boot_guest(src, n, guest, short_tmp / f"{n}-a.sock") for n in names)
            )
            plan = [(doms[0], t1), (doms[1], t2), (doms[2], t1)]
            limit = asyncio.Semaphore(2)

            async def move(dom: Domain, target: Connection) -> Domain:
                async with limit:
                    xml = guest_xml(
                        dom.name, guest, short_tmp / f"{dom.name}-b.sock", uuid=dom.uuid
                    )
                    return await dom.migrate(target, xml=xml)

            moved = await asyncio.gather(*(move(d, t) for d, t in plan))
            assert [m.name for m in moved] == names
            for (_, target), name in zip(plan, names, strict=True):
                assert await state_of(target, name) == "running (migrated)"
                assert await state_of(src, name) == "shut off (migrated)"
                assert _qemu_processes(name) == 1  # exactly once, on its new host
                await guest_answers(short_tmp / f"{name}-b.sock")
    finally:
        stop_host(h3)
