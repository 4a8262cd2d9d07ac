"""Migration between two libvirt hosts through the libvirt driver: libvirt's own migrate API.

Two libvirtds on this machine (bench/libvirt_peer.py): the system one, and one in a private
mount namespace with its own host UUID. The real guest moves live from one to the other
with ``dom.migrate(dest)``; both hosts' events say so, as libvirt words them; the guest
answers on its console at the destination, with its uptime going on.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import drivers
from bench.libvirt_peer import LibvirtPeer
from drivers.api import Connection
from drivers.errors import VirtError
from drivers.model import DomainState, JobInfo
from tests.conftest import require_qemu
from tests.e2e.helpers import EventRecorder, guest_answers, guest_uptime, guest_xml, state_of
from tests.guest import READY_RE, SerialConsole, require_guest
from tests.libvirt.conftest import PREFIX, SYSTEM, start_peer

pytestmark = [pytest.mark.guest, pytest.mark.qemu, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def two_hosts() -> Iterator[tuple[LibvirtPeer, LibvirtPeer]]:
    private = Path(tempfile.mkdtemp(prefix="vdlv-", dir="/tmp"))
    first = start_peer(host_uuid=str(uuidlib.uuid4()))
    try:
        second = start_peer(private=private, host_uuid=str(uuidlib.uuid4()))
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()
        shutil.rmtree(private, ignore_errors=True)


@pytest.fixture
async def conns(
    two_hosts: tuple[LibvirtPeer, LibvirtPeer],
) -> AsyncIterator[tuple[Connection, Connection]]:
    require_qemu()
    _, second = two_hosts
    source = await drivers.open(SYSTEM)
    dest = await drivers.open(f"libvirt:{second.uri}")
    try:
        yield source, dest
    finally:
        await dest.close()
        await source.close()


async def test_live_migration_between_two_libvirt_hosts(
    conns: tuple[Connection, Connection], short_tmp: Path
) -> None:
    source, dest = conns
    assert (await source.host_info()).uri != (await dest.host_info()).uri
    name = PREFIX + "mig"
    uuid = str(uuidlib.uuid4())
    serial_a, serial_b = short_tmp / "a.sock", short_tmp / "b.sock"
    image = require_guest()
    dom = await source.define_xml(guest_xml(name, image, serial_a, uuid=uuid))
    src_events, dst_events = EventRecorder(source), EventRecorder(dest)
    figures: list[JobInfo] = []
    try:
        await dom.start()
        async with await SerialConsole.connect(serial_a, timeout=10) as console:
            await console.wait_for(READY_RE, timeout=60)
        before = await guest_uptime(serial_a)
        src_mark, dst_mark = src_events.mark(), dst_events.mark()
        moved = await dom.migrate(
            dest,
            live=True,
            persistent=True,
            migrate_uri="tcp:127.0.0.1",
            xml=guest_xml(name, image, serial_b, uuid=uuid),
            progress=figures.append,
        )
        assert moved.connection is dest and moved.uuid == uuid
        assert await state_of(dest, name) == "running (migrated)"
        await guest_answers(serial_b)
        assert await guest_uptime(serial_b) > before
        # (libvirt persists the definition between the two: --persistent)
        await dst_events.wait_lifecycle(
            ["Started Migrated", "Defined Added", "Resumed Migrated"], dst_mark
        )
        await src_events.wait_lifecycle(["Suspended Migrated", "Stopped Migrated"], src_mark)
        # persistent at the destination; the source keeps its (shut off) definition
        assert [s.persistent for s in await dest.list_summaries() if s.name == name] == [True]
        assert await state_of(source, name) == "shut off (migrated)"
        assert figures and figures[-1].type == "completed"
        assert figures[-1].ram_transferred > 0 and figures[-1].downtime_ms is not None
        # and back again, undefining the source this time
        back = await moved.migrate(
            source,
            migrate_uri="tcp:127.0.0.1",
            xml=guest_xml(name, image, serial_a, uuid=uuid),
            undefine_source=True,
        )
        await guest_answers(serial_a)
        assert (await back.state())[0] is DomainState.RUNNING
        assert name not in [s.name for s in await dest.list_summaries()]
    finally:
        await src_events.close()
        await dst_events.close()
        for conn in (source, dest):
            for summary in await conn.list_summaries():
                if summary.name == name:
                    handle = await conn.lookup(name)
                    with contextlib.suppress(VirtError):
                        await handle.destroy()
                    with contextlib.suppress(VirtError):
                        await handle.undefine()
