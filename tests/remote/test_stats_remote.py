"""Live statistics through a session daemon (the protocol's stats stream)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

import drivers
from tests.conftest import require_qemu
from tests.e2e.helpers import diskless_xml, guest_xml
from tests.e2e.test_stats import busy_then_idle
from tests.guest import require_guest
from tests.remote.conftest import Session, run_cli

pytestmark = [pytest.mark.qemu, pytest.mark.guest]


async def test_stats_through_the_daemon(session: Session, short_tmp: Path) -> None:
    require_qemu()
    async with await drivers.open("qemu:///session") as conn:
        assert "stats" in conn.capabilities
        await busy_then_idle(conn, require_guest(), short_tmp / "st2.sock", "st2")


async def test_cli_domstats(session: Session, short_tmp: Path) -> None:
    require_qemu()
    disk = short_tmp / "st3.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    xml = guest_xml("st3", require_guest(), short_tmp / "st3.sock").replace(
        "<devices>",
        "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>",
    )
    async with await drivers.open("qemu:///session") as conn:
        await conn.define_xml(diskless_xml("idle3"))
        dom = await conn.define_xml(xml)
        await dom.start()
        out = (await asyncio.to_thread(run_cli, session, "domstats")).stdout
        print(out)
        assert "Domain: 'idle3'\n  state.state=5\n  state.reason=0\n\n" in out
        mine = out[out.index("Domain: 'st3'") :]
        keys = ["state.state=1", "cpu.time=", "vcpu.current=1", "vcpu.0.time="]
        keys += ["block.count=1", "block.0.name=vda", "block.0.rd.bytes=", "net.count=0"]
        for key in keys:
            assert f"  {key}" in mine, key
        only = (await asyncio.to_thread(run_cli, session, "domstats", "--cpu-total", "st3")).stdout
        assert only.splitlines()[:2] == ["Domain: 'st3'", only.splitlines()[1]]
        assert only.splitlines()[1].startswith("  cpu.time=") and "state.state" not in only
        await dom.destroy()
