"""Which on_poweroff/on_reboot/on_crash combinations define: virtdeck's QEMU driver and
libvirtd 9.0's, for all 96 of them (libvirt refuses 81; virtdeck used to accept them all)."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import drivers
from drivers.api import Connection
from drivers.errors import NotSupported
from tests.conftest import require, require_qemu
from tests.e2e.conftest import kill_root_processes

pytestmark = [pytest.mark.differential]

PREFIX = "vdlc-"
POWER = ("destroy", "restart", "preserve", "rename-restart")
CRASH = (*POWER, "coredump-destroy", "coredump-restart")
COMBOS = list(itertools.product(POWER, POWER, CRASH))


def xml(name: str, on_poweroff: str, on_reboot: str, on_crash: str) -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <on_poweroff>{on_poweroff}</on_poweroff>
  <on_reboot>{on_reboot}</on_reboot>
  <on_crash>{on_crash}</on_crash>
  <devices><memballoon model='none'/></devices>
</domain>"""


@pytest.fixture
def peer(short_tmp: Path) -> Iterator[object]:
    from bench.libvirt_peer import LibvirtPeer, PeerUnavailable

    require(os.geteuid() == 0, "libvirtd as a peer needs root (qemu:///system)")
    lv = LibvirtPeer(prefix=PREFIX, host_uuid=str(uuid.uuid4()))
    try:
        lv.start()
    except PeerUnavailable as err:
        lv.stop()
        require(False, f"libvirtd cannot come up here: {err}")
    try:
        yield lv
    finally:
        lv.stop()


@pytest.fixture
async def embed(short_tmp: Path) -> AsyncIterator[Connection]:
    require_qemu()
    root = short_tmp / "root"
    conn = await drivers.open(f"qemu:///embed?root={root}")
    try:
        yield conn
    finally:
        await conn.close()
        kill_root_processes(root)


def _libvirt_accepts(peer: object, short_tmp: Path) -> dict[tuple[str, str, str], bool]:
    from bench.libvirt_peer import LibvirtPeer

    assert isinstance(peer, LibvirtPeer)
    found = {}
    for index, combo in enumerate(COMBOS):
        path = short_tmp / f"{index}.xml"
        path.write_text(xml(f"{PREFIX}{index}", *combo))
        done = peer.virsh("define", str(path), check=False)
        found[combo] = done.returncode == 0
        if done.returncode == 0:
            peer.virsh("undefine", f"{PREFIX}{index}")
    return found


async def test_the_same_combinations_define_as_on_libvirt(
    peer: object, embed: Connection, short_tmp: Path
) -> None:
    theirs = _libvirt_accepts(peer, short_tmp)
    ours = {}
    for index, combo in enumerate(COMBOS):
        try:
            dom = await embed.define_xml(xml(f"lc{index}", *combo))
        except NotSupported as err:
            assert "cannot be defined" in str(err), err
            ours[combo] = False
            continue
        await dom.undefine()
        ours[combo] = True
    differ = {c: (theirs[c], ours[c]) for c in COMBOS if theirs[c] != ours[c]}
    assert not differ, f"(on_poweroff, on_reboot, on_crash): (libvirt, virtdeck) {differ}"
    assert sum(theirs.values()) == 15  # what libvirt 9.0 took when this test was written
