"""The real guest sees its PCI devices where the XML puts them.

The tiny guest is started by the QEMU driver with explicit ``<address type='pci'>`` on a
virtio disk, a virtio NIC, the balloon and an RNG, two ``pcie-root-port`` controllers on a
multifunction slot, and a device directly on ``pcie.0``; the guest's
``/sys/bus/pci/devices`` (read over its serial console) must list each of them at that
place, with the vendor:device of what the XML asked for.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drivers.api import Connection
from tests.e2e.helpers import guest_xml
from tests.guest import READY_RE, GuestImage, SerialConsole

pytestmark = [pytest.mark.guest, pytest.mark.qemu]

PCI_RE = re.compile(r"\b0000:([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])\b")
ID_RE = re.compile(r"^(0000:[0-9a-f:.]+) (0x[0-9a-f]{4}) (0x[0-9a-f]{4})$")
REDHAT, VIRTIO = "0x1b36", "0x1af4"


def _addr(bus: int, slot: int, function: int = 0, multi: bool = False) -> str:
    extra = " multifunction='on'" if multi else ""
    return (
        f"<address type='pci' domain='0x0000' bus='{bus:#04x}' slot='{slot:#04x}' "
        f"function='{function:#x}'{extra}/>"
    )


def _devices(image: Path) -> str:
    return (
        "<controller type='pci' index='0' model='pcie-root'/>"
        "<controller type='pci' index='1' model='pcie-root-port'><model name='pcie-root-port'/>"
        f"<target chassis='1' port='0x18'/>{_addr(0, 3, 0, True)}</controller>"
        "<controller type='pci' index='2' model='pcie-root-port'><model name='pcie-root-port'/>"
        f"<target chassis='2' port='0x19'/>{_addr(0, 3, 1)}</controller>"
        "<controller type='usb' index='0' model='none'/>"
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='{image}'/><target dev='vda' bus='virtio'/>{_addr(2, 0)}</disk>"
        "<interface type='user'><mac address='52:54:00:aa:bb:01'/><model type='virtio'/>"
        f"{_addr(1, 0)}</interface>"
    )


async def test_guest_sees_devices_at_the_xml_addresses(
    conn: Connection, guest: GuestImage, short_tmp: Path
) -> None:
    serial = short_tmp / "pci.sock"
    image = short_tmp / "disk.img"
    image.write_bytes(b"\0" * (1 << 20))
    xml = guest_xml("pci1", guest, serial).replace(
        "<memballoon model='none'/>",
        _devices(image)
        + f"<memballoon model='virtio'>{_addr(0, 7)}</memballoon>"
        + "<rng model='virtio'><backend model='random'>/dev/urandom</backend>"
        + f"{_addr(0, 8)}</rng>",
    )
    dom = await conn.define_xml(xml)
    stored = await dom.xml(inactive=True)
    # The given addresses are kept as they are; nothing was added on another slot.
    assert stored.count('<address type="pci"') + stored.count("<address type='pci'") >= 6
    await dom.start()
    console = await SerialConsole.connect(serial)
    try:
        await console.wait_for(READY_RE, timeout=30)
        console.mark()
        await console.send(
            "sh for d in /sys/bus/pci/devices/*; do "
            'echo "${d##*/} $(cat $d/vendor) $(cat $d/device)"; done'
        )
        await console.wait_for("VIRTDECK-DONE rc=0", timeout=15)
        seen: dict[str, tuple[str, str]] = {}
        for line in console.lines:
            match = ID_RE.match(line.strip())
            if match:
                seen[match[1]] = (match[2], match[3])
    finally:
        await console.close()
        await dom.destroy()
    # the two root ports: QEMU's Red Hat PCIe root port (1b36:000c) on pcie.0 slot 3
    assert seen.get("0000:00:03.0") == (REDHAT, "0x000c"), seen
    assert seen.get("0000:00:03.1") == (REDHAT, "0x000c"), seen
    # the firmware numbers the buses behind them 1 and 2, in slot order (as the XML's
    # pci.1/pci.2): the NIC behind the first port, the disk behind the second
    # (virtio 1.0 ids on PCIe: net 0x1041, block 0x1042, balloon 0x1045)
    assert seen.get("0000:01:00.0") == (VIRTIO, "0x1041"), seen
    assert seen.get("0000:02:00.0") == (VIRTIO, "0x1042"), seen
    # the balloon directly on pcie.0 (an integrated endpoint keeps the legacy id)
    assert seen.get("0000:00:07.0", ("", ""))[0] == VIRTIO, seen
    assert seen["0000:00:07.0"][1] in ("0x1002", "0x1045"), seen
    # the virtio RNG on pcie.0 slot 8
    assert seen.get("0000:00:08.0", ("", ""))[0] == VIRTIO, seen
    assert seen["0000:00:08.0"][1] in ("0x1005", "0x1044"), seen
    # and nothing else on a root-port bus
    assert {a for a in seen if not a.startswith("0000:00:")} == {
        "0000:01:00.0",
        "0000:02:00.0",
    }, seen
