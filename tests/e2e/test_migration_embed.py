"""Live migration of the real guest between two QEMU driver roots in this process.

Two ``qemu:///embed`` roots play two hosts on loopback: the five phases run through the
same code the daemons run, and the states and events match libvirt's (rows 36-42).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import drivers
from drivers.api import Connection
from drivers.errors import OperationFailed, OperationInvalid
from drivers.model import DomainState, JobInfo
from tests.e2e.conftest import kill_root_processes
from tests.e2e.helpers import (
    EventRecorder,
    boot_guest,
    diskless_xml,
    guest_answers,
    guest_uptime,
    guest_xml,
    state_of,
)
from tests.guest import GuestImage

pytestmark = [pytest.mark.qemu]


@pytest.fixture
async def hosts(short_tmp: Path) -> AsyncIterator[tuple[Connection, Connection]]:
    from tests.conftest import require_qemu

    require_qemu()
    roots = [short_tmp / "h1", short_tmp / "h2"]
    conns: list[Connection] = []
    try:
        for root in roots:
            conns.append(await drivers.open(f"qemu:///embed?root={root}"))
        yield conns[0], conns[1]
    finally:
        for conn in conns:
            await conn.close()
        for root in roots:
            kill_root_processes(root)


@pytest.mark.guest
async def test_live_migration_of_the_guest(
    hosts: tuple[Connection, Connection], guest: GuestImage, short_tmp: Path
) -> None:
    src, dst = hosts
    serial_a, serial_b = short_tmp / "a.sock", short_tmp / "b.sock"
    dom = await boot_guest(src, "mig1", guest, serial_a)
    before = await guest_uptime(serial_a)

    rec_src, rec_dst = EventRecorder(src), EventRecorder(dst)
    mark_src, mark_dst = rec_src.mark(), rec_dst.mark()
    seen: list[JobInfo] = []
    dest_xml = guest_xml("mig1", guest, serial_b, uuid=dom.uuid)
    moved = await dom.migrate(dst, xml=dest_xml, undefine_source=True, progress=seen.append)

    assert await state_of(dst, "mig1") == "running (migrated)"
    await rec_src.wait_lifecycle(
        ["Suspended Migrated", "Stopped Migrated", "Undefined Removed"], mark_src
    )
    await rec_dst.wait_lifecycle(
        ["Started Migrated", "Defined Added", "Resumed Migrated"], mark_dst
    )
    with pytest.raises(drivers.NoSuchDomain):
        await src.lookup("mig1")
    info = await moved.job_info()
    assert info.type == "completed"
    src_info = seen[-1] if seen else None
    assert src_info is not None and src_info.ram_transferred > 0
    print(f"migration: {len(seen)} progress reports; last {src_info}")

    # The guest goes on where it was: it answers on the destination's console, and its
    # uptime continued (no reboot).
    await guest_answers(serial_b)
    assert await guest_uptime(serial_b) > before
    # The definition moved: the destination keeps it after the guest stops.
    await moved.destroy()
    assert await state_of(dst, "mig1") == "shut off (destroyed)"
    await rec_src.close()
    await rec_dst.close()


async def test_unreachable_destination_leaves_the_source_running(
    hosts: tuple[Connection, Connection],
) -> None:
    src, dst = hosts
    dom = await src.define_xml(diskless_xml("mig2"))
    await dom.start()
    with pytest.raises(OperationFailed, match=r"cannot reach the destination.*--tunnelled"):
        # The destination listens on IPv4 only: on IPv6 loopback nothing answers.
        await dom.migrate(dst, migrate_uri="tcp:[::1]")
    assert await state_of(src, "mig2") in ("running (booted)", "running (migration canceled)")
    assert [d.name for d in await dst.list_domains()] == []


async def test_a_port_taken_behind_the_allocators_back_is_skipped(
    hosts: tuple[Connection, Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process (a second daemon on this host) binds the port the allocator found
    # free before the destination's QEMU does: Prepare moves on to the next port.
    from drivers.qemu.migration import PortAllocator

    src, dst = hosts
    real_take = PortAllocator.take
    held: list[socket.socket] = []

    def take(self: PortAllocator) -> int:
        port = real_take(self)
        if not held:
            blocker = socket.socket()
            # as the allocator's probe: a port in TIME_WAIT from an earlier test is free
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind(("0.0.0.0", port))
            blocker.listen()
            held.append(blocker)
        return port

    monkeypatch.setattr(PortAllocator, "take", take)
    try:
        dom = await src.define_xml(diskless_xml("mig5"))
        await dom.start()
        moved = await dom.migrate(dst)
        assert held and await state_of(dst, "mig5") == "running (migrated)"
        await moved.destroy()
    finally:
        for blocker in held:
            blocker.close()


async def test_same_host_is_refused(hosts: tuple[Connection, Connection]) -> None:
    src, _ = hosts
    dom = await src.define_xml(diskless_xml("mig3"))
    await dom.start()
    with pytest.raises(OperationInvalid, match="already on"):
        await dom.migrate(src)
    assert (await dom.state())[0] is DomainState.RUNNING


@pytest.mark.guest
async def test_abort_rolls_back(
    hosts: tuple[Connection, Connection], guest: GuestImage, short_tmp: Path
) -> None:
    src, dst = hosts
    dom = await boot_guest(src, "mig4", guest, short_tmp / "a4.sock")
    rec = EventRecorder(src)
    mark = rec.mark()
    xml = guest_xml("mig4", guest, short_tmp / "b4.sock", uuid=dom.uuid)
    # ~90 MiB at 8 MiB/s: seconds, so the abort always comes in time.
    task = asyncio.create_task(dom.migrate(dst, xml=xml, bandwidth_mib=8))
    for _ in range(500):
        info = await dom.job_info()
        if info.active and info.ram_transferred > 0:
            break
        await asyncio.sleep(0.01)
    await dom.abort_job()
    with pytest.raises(OperationFailed, match="cancelled"):
        await task
    assert await state_of(src, "mig4") == "running (booted)"
    assert rec.lifecycle(mark) == []
    assert [d.name for d in await dst.list_domains()] == []
    assert (await dom.job_info()).type == "cancelled"
    await rec.close()


async def test_preflight_gives_reasons(
    hosts: tuple[Connection, Connection], short_tmp: Path
) -> None:
    _, dst = hosts
    assert await dst.migrate_preflight(diskless_xml("pf1")) == ()
    huge = diskless_xml("pf2", memory_mib=1 << 24)
    missing = diskless_xml("pf3").replace(
        "<devices>",
        f"<devices><disk type='file' device='disk'><source file='{short_tmp}/nope.qcow2'/>"
        "<driver name='qemu' type='qcow2'/><target dev='vda' bus='virtio'/></disk>",
    )
    (reason,) = await dst.migrate_preflight(huge)
    assert "needs 16777216 MiB of memory" in reason
    (reason,) = await dst.migrate_preflight(missing)
    assert "is not present on the destination" in reason and "--copy-storage-all" in reason
    assert await dst.migrate_preflight(missing, copy_storage=True) == ()
    wrong = diskless_xml("pf4").replace("machine='q35'", "machine='no-such-machine'")
    (reason,) = await dst.migrate_preflight(wrong)
    assert "no machine type 'no-such-machine'" in reason
    assert await dst.free_memory() > 0


async def test_offline_migration_moves_the_definition(
    hosts: tuple[Connection, Connection],
) -> None:
    src, dst = hosts
    dom = await src.define_xml(diskless_xml("off1"))
    with pytest.raises(OperationInvalid, match="--offline"):
        await dom.migrate(dst)
    rec_src, rec_dst = EventRecorder(src), EventRecorder(dst)
    mark_src, mark_dst = rec_src.mark(), rec_dst.mark()
    moved = await dom.migrate(dst, offline=True, undefine_source=True)
    assert await state_of(dst, "off1") == "shut off (unknown)"
    assert moved.uuid == dom.uuid
    await rec_src.wait_lifecycle(["Undefined Removed"], mark_src)
    await rec_dst.wait_lifecycle(["Defined Added"], mark_dst)
    assert [d.name for d in await src.list_domains()] == []
    await moved.start()
    with pytest.raises(OperationInvalid, match="offline migration moves only shut-off"):
        await moved.migrate(src, offline=True)
    await rec_src.close()
    await rec_dst.close()
