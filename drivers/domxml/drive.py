"""Drive addresses of IDE, SATA and SCSI disks, as libvirt assigns and writes them.

``<address type='drive' controller= bus= target= unit=>`` places a disk on its
controller. A disk without one gets libvirt's address from its target name at define
time: IDE ``hda``… → controller index/4, bus (index%4)/2, unit index%2; SATA ``sda``… →
controller index/6, unit index%6; SCSI → controller index/7, unit index%7 (a narrow SCSI
bus has seven units besides the controller), and libvirt adds the SCSI controllers those
addresses name (model ``lsilogic``, its default).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from drivers.domxml.tree import children, show
from drivers.errors import InvalidXML

# units per controller (and buses per controller) by disk bus, libvirt's numbers
_UNITS = {"ide": 2, "sata": 6, "scsi": 7}
_BUSES = {"ide": 2, "sata": 1, "scsi": 1}
#: libvirt's SCSI controller model when the XML names none
DEFAULT_SCSI_MODEL = "lsilogic"
SCSI_MODELS = ("lsilogic", "virtio-scsi")
_PREFIX_BUS = {"hd": "ide", "sd": "scsi", "vd": "virtio"}


@dataclass(frozen=True)
class DriveAddress:
    controller: int
    bus: int
    target: int
    unit: int


def disk_bus(disk: etree._Element) -> str:
    target = disk.find("target")
    bus = target.get("bus") if target is not None else None
    if bus:
        return bus
    dev = (target.get("dev") if target is not None else None) or ""
    return _PREFIX_BUS.get(dev[:2], "virtio")


def _index(disk: etree._Element) -> int:
    target = disk.find("target")
    dev = (target.get("dev") if target is not None else None) or ""
    index = 0
    for letter in dev[2:]:
        if not "a" <= letter <= "z":
            return 0
        index = index * 26 + (ord(letter) - ord("a") + 1)
    return max(index - 1, 0)


def _number(node: etree._Element, attr: str, where: str) -> int:
    value = node.get(attr) or "0"
    try:
        number = int(value, 0)
    except ValueError:
        number = -1
    if not 0 <= number <= 0xFFFF:
        raise InvalidXML(
            f"{where} <address type='drive'>: {attr}={show(value)} is not a number; write "
            f"e.g. {attr}='0'."
        )
    return number


def drive_address(disk: etree._Element, where: str) -> DriveAddress:
    """The disk's drive address: the XML's, else libvirt's from the target name."""
    bus = disk_bus(disk)
    node = disk.find("address")
    if node is not None and node.get("type") == "drive":
        return DriveAddress(
            controller=_number(node, "controller", where),
            bus=_number(node, "bus", where),
            target=_number(node, "target", where),
            unit=_number(node, "unit", where),
        )
    index = _index(disk)
    units = _UNITS.get(bus, 1)
    per_controller = units * _BUSES.get(bus, 1)
    return DriveAddress(
        controller=index // per_controller,
        bus=(index % per_controller) // units,
        target=0,
        unit=index % units,
    )


def scsi_models(devices: etree._Element | None) -> dict[int, str]:
    """``<controller type='scsi'>`` models by index (libvirt's default when unnamed)."""
    if devices is None:
        return {}
    return {
        int(node.get("index") or "0"): node.get("model") or DEFAULT_SCSI_MODEL
        for node in children(devices, "controller")
        if node.get("type") == "scsi" and (node.get("index") or "0").isdigit()
    }


def assign_drive_addresses(devices: etree._Element) -> None:
    """Write libvirt's drive address into every IDE/SATA/SCSI disk that has none, and add
    the SCSI controllers they name (model lsilogic), as libvirt does at define time."""
    wanted: list[int] = []
    for disk in children(devices, "disk"):
        bus = disk_bus(disk)
        if bus not in _UNITS:
            continue
        node = disk.find("address")
        if node is not None and node.get("type") == "drive":
            addr = drive_address(disk, "<disk>")
        else:
            addr = drive_address(disk, "<disk>")
            if node is None:
                node = etree.SubElement(disk, "address")
            node.attrib.clear()
            node.set("type", "drive")
            for attr in ("controller", "bus", "target", "unit"):
                node.set(attr, str(getattr(addr, attr)))
        if bus == "scsi" and addr.controller not in wanted:
            wanted.append(addr.controller)
    have = scsi_models(devices)
    for index in sorted(wanted):
        if index in have:
            continue
        node = etree.Element("controller", type="scsi", index=str(index), model=DEFAULT_SCSI_MODEL)
        existing = children(devices, "controller")
        if existing:
            existing[-1].addnext(node)
        else:
            devices.append(node)
