"""Migration on the test driver: the simulated QEMUs migrate as QEMU 7.2 does.

Two test-driver hosts in one process: ``test:///default`` and a ``test:///PATH.xml`` node
file (every ``test:///default`` connection of a process reaches the same host, so two of
them are one host, which a migration refuses).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import drivers
from drivers.api import Connection
from drivers.errors import OperationFailed, OperationInvalid
from drivers.model import JobInfo, JobPhase, JobProgressEvent, state_words
from drivers.test import simmigration
from drivers.test.driver import TestRegistry, domain_xml, node_xml
from tests.e2e.helpers import EventRecorder

SMALL = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
async def hosts(tmp_path: Path) -> AsyncIterator[tuple[Connection, Connection]]:
    """test:///default and an empty second host with 64 GiB."""
    node = tmp_path / "other.xml"
    node.write_text(node_xml([], memory_kib=64 << 20))
    src = await drivers.open("test:///default")
    dst = await drivers.open(f"test://{node}")
    try:
        yield src, dst
    finally:
        await src.close()
        await dst.close()


async def words(conn: Connection, name: str) -> str:
    state, reason = await (await conn.lookup(name)).state()
    return state_words(state, reason)


async def test_live_migration_moves_the_domain(hosts: tuple[Connection, Connection]) -> None:
    src, dst = hosts
    rec_src, rec_dst = EventRecorder(src), EventRecorder(dst)
    dom = await src.lookup("web1")
    assert await dst.migrate_preflight(await dom.xml()) == ()
    seen: list[JobInfo] = []
    moved = await dom.migrate(dst, progress=seen.append)

    assert await words(dst, "web1") == "running (migrated)"
    assert await words(src, "web1") == "shut off (migrated)"
    await rec_src.wait_lifecycle(["Suspended Migrated", "Stopped Migrated"], 0)
    await rec_dst.wait_lifecycle(["Started Migrated", "Defined Added", "Resumed Migrated"], 0)
    # the figures move like QEMU's: RAM total is the guest's, some of it sent, then done
    active = [i for i in seen if i.status == "active"]
    assert active and all(i.ram_total == 2048 << 20 for i in active)
    assert all(0 < i.ram_remaining < i.ram_total for i in active)
    assert all(i.ram_rate > 0 and i.dirty_rate > 0 for i in active)
    final = seen[-1]
    assert final.phase is JobPhase.COMPLETED and final.type == "completed"
    assert final.ram_remaining == 0 and final.ram_transferred > 0
    assert final.downtime_ms is not None and 1 <= final.downtime_ms < 300
    assert 0 < final.elapsed_ms < 5000
    # everyone watching the source sees the progress too
    progress = [e for e in rec_src.events if isinstance(e, JobProgressEvent)]
    assert progress and progress[-1].info.type == "completed"
    assert (await moved.job_info()).type == "completed"
    # the definition moved too; the source keeps its own (no undefine asked)
    assert (await dst.lookup("web1")).uuid == dom.uuid
    await rec_src.close()
    await rec_dst.close()


async def test_undefine_source_and_a_paused_guest(hosts: tuple[Connection, Connection]) -> None:
    src, dst = hosts
    rec_src, rec_dst = EventRecorder(src), EventRecorder(dst)
    dom = await src.lookup("db1")  # paused (user)
    await dom.migrate(dst, undefine_source=True, paused=True)
    assert await words(dst, "db1") == "paused (user)"
    with pytest.raises(drivers.NoSuchDomain):
        await src.lookup("db1")
    # its vCPUs were stopped already: no Suspended at the switchover
    await rec_src.wait_lifecycle(["Stopped Migrated", "Undefined Removed"], 0)
    await rec_dst.wait_lifecycle(["Started Migrated", "Defined Added", "Suspended Paused"], 0)
    await rec_src.close()
    await rec_dst.close()


async def test_abort_rolls_back(
    hosts: tuple[Connection, Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = hosts
    rec_src, rec_dst = EventRecorder(src), EventRecorder(dst)
    dom = await src.lookup("test")
    # 1 MiB/s against a guest that dirties more than that: it would never finish
    task = asyncio.create_task(dom.migrate(dst, bandwidth_mib=1))
    for _ in range(200):
        info = await dom.job_info()
        if info.active and info.status == "active":
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the migration did not start")
    assert await words(dst, "test") == "paused (migrating)"
    await dom.abort_job()
    with pytest.raises(OperationFailed, match="cancelled"):
        await task
    assert await words(src, "test") == "running (booted)"
    assert rec_src.lifecycle() == []
    await rec_dst.wait_lifecycle(["Started Migrated", "Stopped Failed"], 0)
    assert [d.name for d in await dst.list_domains()] == []
    assert (await dom.job_info()).type == "cancelled"
    await rec_src.close()
    await rec_dst.close()


async def test_unreachable_destination(hosts: tuple[Connection, Connection]) -> None:
    src, dst = hosts
    dom = await src.lookup("web1")
    with pytest.raises(OperationFailed, match=r"cannot reach the destination"):
        # the destination listens on IPv4: nothing answers on IPv6 loopback
        await dom.migrate(dst, migrate_uri="tcp:[::1]")
    assert (await dom.state())[0].is_active
    assert [d.name for d in await dst.list_domains()] == []


async def test_same_host_refused_and_preflight_reasons(
    hosts: tuple[Connection, Connection], tmp_path: Path
) -> None:
    src, dst = hosts
    dom = await src.lookup("web1")
    again = await drivers.open("test:///default")
    with pytest.raises(OperationInvalid, match="already on"):
        await dom.migrate(again)
    await again.close()
    small = tmp_path / "small.xml"
    small.write_text(node_xml([], memory_kib=1 << 20))
    tiny = await drivers.open(f"test://{small}")
    (reason,) = await tiny.migrate_preflight(await dom.xml())
    assert "needs 2048 MiB of memory; the destination has 1024 MiB free" in reason
    assert await tiny.free_memory() == 1 << 30
    # a disk the destination's pool does not have
    lone = domain_xml("lone", SMALL, 256, 1)
    (reason,) = await dst.migrate_preflight(lone)
    assert "lone.qcow2) is not present on the destination" in reason
    await tiny.close()


async def test_concurrent_migrations_to_two_hosts(tmp_path: Path) -> None:
    """Two destinations listen at once without their ports clashing."""
    conns = []
    for name in ("b", "c"):
        path = tmp_path / f"{name}.xml"
        path.write_text(node_xml([], memory_kib=64 << 20))
        conns.append(await drivers.open(f"test://{path}"))
    src = await drivers.open("test:///default")
    web1, test = await src.lookup("web1"), await src.lookup("test")
    await asyncio.gather(web1.migrate(conns[0]), test.migrate(conns[1]))
    assert await words(conns[0], "web1") == "running (migrated)"
    assert await words(conns[1], "test") == "running (migrated)"
    for conn in (*conns, src):
        await conn.close()


def test_node_memory_and_the_guest_traits() -> None:
    assert TestRegistry().free_memory() > 0
    resident, dirty = simmigration._traits(SMALL, 2048 << 20)
    assert simmigration.RESIDENT_MIN <= resident <= simmigration.RESIDENT_MAX
    assert 200 <= dirty <= 2500
    assert simmigration.parse_tcp("tcp:[::1]:49152") == ("::1", 49152)
    assert simmigration.parse_tcp("tcp:10.0.0.2:49153") == ("10.0.0.2", 49153)
