"""The default storage pool: in memory (test driver), real files via qemu-img, over the wire."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

import drivers
from drivers.errors import DomainExists, InvalidArgument, OperationInvalid
from drivers.remote.client import RemoteConnection
from tests.conftest import require_qemu
from tests.e2e.conftest import kill_root_processes
from tests.e2e.helpers import diskless_xml

GIB = 1 << 30


async def test_memory_pool() -> None:
    conn = await drivers.open("test:///default")
    assert "storage" in conn.capabilities
    names = [v.name for v in await conn.list_volumes()]
    assert "test.qcow2" in names and any(n.endswith(".iso") for n in names)
    volume = await conn.create_volume("new.qcow2", 8 * GIB)
    assert volume.format == "qcow2" and volume.capacity_bytes == 8 * GIB
    with pytest.raises(DomainExists):
        await conn.create_volume("new.qcow2", GIB)
    for bad in ("../etc/passwd", "x.vmdk", ".hidden.qcow2", ""):
        with pytest.raises(InvalidArgument):
            await conn.create_volume(bad, GIB)
    with pytest.raises(InvalidArgument, match="between 1 MiB"):
        await conn.create_volume("tiny.raw", 10)
    with pytest.raises(OperationInvalid, match="in use by running domain"):
        await conn.delete_volume("test.qcow2")
    await conn.delete_volume("new.qcow2")
    info = await conn.pool_info()
    assert info.available_bytes <= info.capacity_bytes
    await conn.close()


async def test_directory_pool_with_qemu_img(short_tmp: Path) -> None:
    require_qemu()
    root = short_tmp / "root"
    conn = await drivers.open(f"qemu:///embed?root={root}")
    try:
        volume = await conn.create_volume("disk1.qcow2", 2 * GIB)
        assert Path(volume.path) == root / "images" / "disk1.qcow2"
        assert volume.capacity_bytes == 2 * GIB
        raw = await conn.create_volume("disk2.img", 64 << 20, "raw")
        assert raw.format == "raw" and Path(raw.path).stat().st_size == 64 << 20
        assert [v.name for v in await conn.list_volumes()] == ["disk1.qcow2", "disk2.img"]
        xml = diskless_xml("u1").replace(
            "<devices>",
            f"<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
            f"<source file='{volume.path}'/><target dev='vda' bus='virtio'/></disk>",
        )
        dom = await conn.define_xml(xml)
        await dom.start()
        with pytest.raises(OperationInvalid, match="u1"):
            await conn.delete_volume("disk1.qcow2")
        await dom.destroy()
        await conn.delete_volume("disk1.qcow2")
        assert not Path(volume.path).exists()
    finally:
        await conn.close()
        kill_root_processes(root)


async def test_pool_over_the_protocol() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "drivers.daemon", "--driver", "test:///default", "--stdio",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    conn = RemoteConnection(proc.stdout, proc.stdin, "test:///default")
    try:
        await conn.handshake()
        assert "storage" in conn.capabilities
        created = await conn.create_volume("wire.qcow2", GIB)
        assert created in await conn.list_volumes()
        with pytest.raises(InvalidArgument):
            await conn.call("storage.create_volume", name="x.qcow2", capacity_bytes="big")
        await conn.delete_volume("wire.qcow2")
        assert (await conn.pool_info()).name == "default"
    finally:
        await conn.close()
        await asyncio.wait_for(proc.wait(), 10)
