"""PCI addresses and PCI controllers of a domain, the way libvirt writes and assigns them.

``<address type='pci' domain= bus= slot= function= multifunction=>`` places a device; the
bus number is the ``index`` of a ``<controller type='pci'>`` (0 is the machine's root bus:
``pcie-root`` = ``pcie.0`` on q35, ``pci-root`` = ``pci.0`` on pc; any other index N is
QEMU bus ``pci.N``). :func:`check_addresses` validates them at parse time;
:func:`assign_addresses` gives every address-less device one at define time, following
libvirt 9.0's schemes (q35: every PCIe device behind its own ``pcie-root-port`` on
``pcie.0``, conventional PCI devices on a ``pcie-to-pci-bridge``; pc: devices directly on
``pci.0`` from slot 2), so the guest's hardware never moves between boots or hosts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from lxml import etree

from drivers.domxml import channels
from drivers.domxml.drive import assign_drive_addresses
from drivers.domxml.tree import children, show
from drivers.errors import InvalidXML

# model → the QEMU device that implements it (None: part of the machine)
CONTROLLER_DRIVERS: dict[str, str | None] = {
    "pcie-root": None,
    "pci-root": None,
    "pcie-root-port": "pcie-root-port",
    "pci-bridge": "pci-bridge",
    "dmi-to-pci-bridge": "i82801b11-bridge",
    "pcie-to-pci-bridge": "pcie-pci-bridge",
}
# the <model name=…> libvirt writes for each controller model
_MODEL_NAMES = {
    "pcie-root-port": "pcie-root-port",
    "pci-bridge": "pci-bridge",
    "dmi-to-pci-bridge": "i82801b11-bridge",
    "pcie-to-pci-bridge": "pcie-pci-bridge",
}
USB_MODELS = ("qemu-xhci", "piix3-uhci", "none")
_SLOTS = 32
_FUNCTIONS = 8
# q35: 0 host bridge, 0x1f ICH9 (LPC, SATA, SMBus); pc: 0 host bridge, 1 PIIX3.
_Q35_RESERVED = {0, 0x1F}
_PC_RESERVED = {0, 1}
# NIC models that are conventional PCI devices (on q35 they go on a PCIe-to-PCI bridge)
_CONVENTIONAL_NICS = ("e1000", "rtl8139")
# sound cards on PCI (all conventional PCI for libvirt), and q35's HD audio slot
_PCI_SOUND = ("ich6", "ich9", "ac97", "es1370")
_Q35_HDA_SLOT = 0x1B


@dataclass(frozen=True)
class PciAddress:
    domain: int
    bus: int
    slot: int
    function: int
    multifunction: bool

    def qemu(self, bus_name: str) -> dict[str, object]:
        """``"bus"``, ``"multifunction"`` and ``"addr"`` as libvirt's -device JSON has them."""
        props: dict[str, object] = {"bus": bus_name}
        if self.multifunction:
            props["multifunction"] = True
        addr = f"0x{self.slot:x}"
        if self.function:
            addr += f".0x{self.function:x}"
        props["addr"] = addr
        return props


def _number(value: str | None, where: str, attr: str, high: int) -> int:
    if value is None:
        return 0
    try:
        number = int(value, 0)
    except ValueError:
        number = -1
    if not 0 <= number <= high:
        raise InvalidXML(
            f"{where}: {attr}={show(value)} is not a PCI {attr} number; write a number "
            f"from 0 to {high:#x}, e.g. {attr}='0x{min(high, 1):02x}'."
        )
    return number


def read_address(element: etree._Element, where: str) -> PciAddress | None:
    """The ``<address type='pci'>`` of a device element, None when it has none."""
    node = element.find("address")
    if node is None or node.get("type") != "pci":
        return None
    where = f"{where} <address>"
    domain = _number(node.get("domain"), where, "domain", 0xFFFF)
    if domain != 0:
        raise InvalidXML(f"{where}: QEMU has one PCI domain; write domain='0x0000'.")
    multi = node.get("multifunction")
    if multi not in (None, "on", "off"):
        raise InvalidXML(f"{where}: multifunction={show(multi)}; write 'on' or 'off'.")
    addr = PciAddress(
        domain=0,
        bus=_number(node.get("bus"), where, "bus", 0xFF),
        slot=_number(node.get("slot"), where, "slot", _SLOTS - 1),
        function=_number(node.get("function"), where, "function", _FUNCTIONS - 1),
        multifunction=multi == "on",
    )
    if (addr.bus, addr.slot, addr.function) == (0, 0, 0):
        # libvirt reads 0000:00:00.0 (the host bridge's place) as "no address yet"
        return None
    return addr


def write_address(element: etree._Element, addr: PciAddress) -> None:
    node = element.find("address")
    if node is None:
        node = etree.SubElement(element, "address")
    node.attrib.clear()
    node.set("type", "pci")
    node.set("domain", f"0x{addr.domain:04x}")
    node.set("bus", f"0x{addr.bus:02x}")
    node.set("slot", f"0x{addr.slot:02x}")
    node.set("function", f"0x{addr.function:x}")
    if addr.multifunction:
        node.set("multifunction", "on")


def pci_controllers(devices: etree._Element | None) -> dict[int, etree._Element]:
    """``<controller type='pci'>`` by index."""
    if devices is None:
        return {}
    found: dict[int, etree._Element] = {}
    for node in children(devices, "controller"):
        if node.get("type") == "pci":
            found[int(node.get("index") or "0", 0)] = node
    return found


def bus_name(index: int, family: str) -> str:
    """QEMU's name of PCI bus ``index``: the root is pcie.0 (q35) or pci.0 (pc)."""
    if index == 0:
        return "pcie.0" if family == "q35" else "pci.0"
    return f"pci.{index}"


def root_model(family: str) -> str:
    return "pcie-root" if family == "q35" else "pci-root"


def check_controllers(devices: etree._Element, family: str) -> None:
    """Validate the ``<controller type='pci'>`` elements and every device's PCI address."""
    indexes: dict[int, etree._Element] = {}
    usb = [node for node in children(devices, "controller") if node.get("type") == "usb"]
    if len(usb) > 1:
        raise InvalidXML(
            "<devices> has several <controller type='usb'> elements; virtdeck gives a guest "
            "one USB controller, so keep one (index='0')."
        )
    for node in usb:
        model = node.get("model")
        if model not in (None, *USB_MODELS):
            words = ", ".join(f"'{m}'" for m in USB_MODELS)
            raise InvalidXML(
                f"<controller type='usb'>: model={show(model or '')} is not supported; "
                f"write model={words}."
            )
    for node in children(devices, "controller"):
        if node.get("type") != "pci":
            continue
        where = "<controller type='pci'>"
        index = _number(node.get("index"), where, "index", 0xFF)
        where = f"<controller type='pci' index='{index}'>"
        if index in indexes:
            raise InvalidXML(f"{where} appears twice; give each PCI controller its own index=.")
        indexes[index] = node
        model = node.get("model")
        allowed = (
            [root_model(family)]
            if index == 0
            else [m for m in CONTROLLER_DRIVERS if CONTROLLER_DRIVERS[m] is not None]
        )
        if model not in allowed:
            words = ", ".join(f"'{m}'" for m in allowed)
            raise InvalidXML(
                f"{where}: model={show(model or '')} is not supported "
                f"{'as the root bus' if index == 0 else 'here'} on the "
                f"{'q35' if family == 'q35' else 'pc'} machine; write model={words}."
            )
        if index == 0 and node.find("address") is not None:
            raise InvalidXML(f"{where} is the machine's root bus; remove its <address>.")
        if model == "pcie-root-port" or model == "pcie-to-pci-bridge":
            if family != "q35":
                raise InvalidXML(
                    f"{where}: a {model} needs the PCI Express machine; write "
                    "machine='q35', or use model='pci-bridge' on pc."
                )
        if model == "pcie-root-port":
            target = node.find("target")
            if target is not None:
                _number(target.get("chassis"), f"{where} <target>", "chassis", 0xFF)
                _number(target.get("port"), f"{where} <target>", "port", 0xFF)
    used: dict[tuple[int, int, int], str] = {}
    for node in devices:
        if not isinstance(node.tag, str):
            continue
        where = _label(node)
        addr = read_address(node, where)
        if addr is None:
            continue
        if addr.bus != 0 and addr.bus not in indexes:
            raise InvalidXML(
                f"{where} <address> is on bus {addr.bus:#04x}, but there is no "
                f"<controller type='pci' index='{addr.bus}'>; add that controller "
                "(e.g. model='pcie-root-port') or remove the <address> to let virtdeck "
                "choose one."
            )
        parent = indexes.get(addr.bus)
        parent_model = parent.get("model") if parent is not None else root_model(family)
        if parent_model == "pcie-root-port" and addr.slot != 0:
            raise InvalidXML(
                f"{where} <address>: a pcie-root-port (bus {addr.bus:#04x}) has only slot 0; "
                "write slot='0x00'."
            )
        if parent_model in ("pci-bridge", "pcie-to-pci-bridge") and addr.slot == 0:
            raise InvalidXML(
                f"{where} <address>: slot 0 of a {parent_model} (bus {addr.bus:#04x}) is "
                "not usable; write a slot from 0x01 to 0x1f."
            )
        key = (addr.bus, addr.slot, addr.function)
        if key in used:
            raise InvalidXML(
                f"{where} and {used[key]} both have the PCI address "
                f"{addr.bus:02x}:{addr.slot:02x}.{addr.function}; give each device its own "
                "slot (or function), or remove one <address> to let virtdeck choose."
            )
        used[key] = where


def _label(node: etree._Element) -> str:
    tag = str(node.tag)
    if tag == "disk":
        target = node.find("target")
        if target is not None and target.get("dev"):
            return f"<disk> {show(target.get('dev') or '')}"
    if tag == "controller":
        return f"<controller type='{node.get('type')}' index='{node.get('index') or '0'}'>"
    parent = node.getparent()
    ordinal = children(parent, tag).index(node) + 1 if parent is not None else 1
    return f"<{tag}> #{ordinal}"


# --- define-time assignment -------------------------------------------------------------


def _controller_order(devices: etree._Element) -> list[etree._Element]:
    return children(devices, "controller")


def _insert_controller(devices: etree._Element, node: etree._Element) -> None:
    """Put a new controller after the last existing one (or at the end of <devices>)."""
    existing = children(devices, "controller")
    if existing:
        existing[-1].addnext(node)
    else:
        devices.append(node)


class _Assigner:
    def __init__(self, devices: etree._Element, family: str) -> None:
        self.devices = devices
        self.family = family
        self.used: set[tuple[int, int, int]] = set()
        self.controllers = pci_controllers(devices)
        self.next_index = max(self.controllers, default=0) + 1
        self.free_ports: list[int] = []
        self.bridge: int | None = None
        self.port_slot: int | None = None
        #: the PCI controllers this pass added, (index, model)
        self.created: list[tuple[int, str]] = []
        #: the root ports this pass put on pcie.0 (their multifunction is decided last)
        self.placed_ports: list[etree._Element] = []
        for node in devices:
            if isinstance(node.tag, str):
                addr = read_address(node, _label(node))
                if addr is not None:
                    self.used.add((addr.bus, addr.slot, addr.function))
        for index, node in sorted(self.controllers.items()):
            if node.get("model") == "pcie-root-port" and (index, 0, 0) not in self.used:
                self.free_ports.append(index)
            if node.get("model") in ("pcie-to-pci-bridge", "pci-bridge") and index != 0:
                self.bridge = index if self.bridge is None else self.bridge

    def slot_free(self, bus: int, slot: int) -> bool:
        return all((bus, slot, f) not in self.used for f in range(_FUNCTIONS))

    def free_root_slot(self) -> int | None:
        reserved = _Q35_RESERVED if self.family == "q35" else _PC_RESERVED
        for slot in range(_SLOTS):
            if slot not in reserved and self.slot_free(0, slot):
                return slot
        return None

    def root_slot(self) -> int:
        slot = self.free_root_slot()
        if slot is None:
            raise InvalidXML(
                "<devices>: the root PCI bus has no free slot left for another device; "
                "give some devices addresses behind a <controller type='pci'> "
                f"({'pcie-root-port' if self.family == 'q35' else 'pci-bridge'})."
            )
        return slot

    def pc_address(self) -> PciAddress:
        """pc: the next free pci.0 slot, then the free slots of the pci-bridges."""
        slot = self.free_root_slot()
        if slot is not None:
            return PciAddress(0, 0, slot, 0, False)
        for index, node in sorted(self.controllers.items()):
            if node.get("model") != "pci-bridge":
                continue
            for slot in range(1, _SLOTS):
                if self.slot_free(index, slot):
                    return PciAddress(0, index, slot, 0, False)
        raise InvalidXML(
            "<devices>: pci.0 and its bridges have no free slot left; add a "
            "<controller type='pci' model='pci-bridge'> with an <address> on a bridge that "
            "has room, or give the devices addresses."
        )

    def new_controller(self, model: str, addr: PciAddress) -> int:
        index = self.next_index
        self.next_index += 1
        node = etree.Element("controller", type="pci", index=str(index), model=model)
        etree.SubElement(node, "model", name=_MODEL_NAMES[model])
        if model == "pcie-root-port":
            etree.SubElement(
                node, "target", chassis=str(index), port=f"{addr.slot * 8 + addr.function:#x}"
            )
        elif model == "pci-bridge":
            etree.SubElement(node, "target", chassisNr=str(index))
        write_address(node, addr)
        self.used.add((addr.bus, addr.slot, addr.function))
        _insert_controller(self.devices, node)
        self.controllers[index] = node
        self.created.append((index, model))
        if model == "pcie-root-port":
            self.placed_ports.append(node)
        return index

    def port_address(self) -> PciAddress:
        """Where the next new pcie-root-port goes: libvirt fills the eight functions of
        one pcie.0 slot (multifunction on function 0) before it takes the next slot."""
        slot = self.port_slot
        if slot is not None:
            for function in range(1, _FUNCTIONS):
                if (0, slot, function) not in self.used:
                    return PciAddress(0, 0, slot, function, False)
        slot = self.root_slot()
        self.port_slot = slot
        return PciAddress(0, 0, slot, 0, False)

    def root_port(self) -> int:
        """A free pcie-root-port (a new one on pcie.0 when none is left)."""
        if self.free_ports:
            return self.free_ports.pop(0)
        return self.new_controller("pcie-root-port", self.port_address())

    def place(self, node: etree._Element, kind: str) -> None:
        """Give ``node`` an address: ``kind`` is 'pcie' (a root port on q35) or 'pci'."""
        if read_address(node, _label(node)) is not None:
            return
        if self.family == "pc":
            addr = self.pc_address()
        elif kind == "root":
            addr = self.port_address()
            self.placed_ports.append(node)
        elif kind == "pcie":
            addr = PciAddress(0, self.root_port(), 0, 0, False)
        else:
            bridge = self.bridge
            if bridge is None or not any(self.slot_free(bridge, s) for s in range(1, _SLOTS)):
                port = self.root_port()
                bridge = self.new_controller("pcie-to-pci-bridge", PciAddress(0, port, 0, 0, False))
                self.bridge = bridge
            slot = next(s for s in range(1, _SLOTS) if self.slot_free(bridge, s))
            addr = PciAddress(0, bridge, slot, 0, False)
        self.used.add((addr.bus, addr.slot, addr.function))
        write_address(node, addr)


def assign_addresses(devices: etree._Element, family: str) -> None:
    """Add libvirt's implicit controllers and give every PCI device without an
    ``<address>`` one, in libvirt 9.0's order; the caller stores the result.

    Like libvirt, in two passes: a dry run (on a copy) finds which root ports and bridges
    the devices need, in the order they need them, which fixes the controllers' indexes;
    then those controllers are added without addresses and everything is placed for
    real, controllers first in index order, so that e.g. a pcie-to-pci-bridge needed only
    by the last device still sits behind the first root port (pci.1), as in libvirt.
    """
    dry = copy.deepcopy(devices)
    needed = _assign(dry, family)
    for index, model in needed:
        node = etree.Element("controller", type="pci", index=str(index), model=model)
        etree.SubElement(node, "model", name=_MODEL_NAMES[model])
        _insert_controller(devices, node)
    _assign(devices, family)


def _assign(devices: etree._Element, family: str) -> list[tuple[int, str]]:
    controllers = _controller_order(devices)
    types = {node.get("type") for node in controllers}
    had_pci = any(
        node.get("type") == "pci" and (node.get("index") or "0") != "0" for node in controllers
    )
    if "pci" not in {node.get("type") for node in controllers if node.get("index") in (None, "0")}:
        root = etree.Element("controller", type="pci", index="0", model=root_model(family))
        _insert_controller(devices, root)
    if family == "q35" and "sata" not in types:
        sata = etree.Element("controller", type="sata", index="0")
        write_address(sata, PciAddress(0, 0, 0x1F, 2, False))
        _insert_controller(devices, sata)
    # libvirt lists PIIX3's IDE controller once a disk uses it; q35's SATA always.
    ide_disks = any(_bus(disk) == "ide" for disk in children(devices, "disk"))
    if family == "pc" and "ide" not in types and ide_disks:
        ide = etree.Element("controller", type="ide", index="0")
        write_address(ide, PciAddress(0, 0, 1, 1, False))
        _insert_controller(devices, ide)
    if "usb" not in types:
        model = "qemu-xhci" if family == "q35" else "piix3-uhci"
        usb = etree.Element("controller", type="usb", index="0", model=model)
        if family == "pc":
            write_address(usb, PciAddress(0, 0, 1, 2, False))
        _insert_controller(devices, usb)
    virtio_channels = [
        node
        for node in children(devices, "channel")
        if channels.ChannelDef(node).target_type == "virtio"
    ]
    if "virtio-serial" not in types:
        consoles = family == "q35" and any(
            _virtio_console(node) for node in children(devices, "console")
        )
        if consoles or virtio_channels:
            _insert_controller(
                devices, etree.Element("controller", type="virtio-serial", index="0")
            )
    channels.assign_ports(devices)
    # libvirt lists the SCSI controllers its drive addresses name after these
    assign_drive_addresses(devices)
    if (
        family == "pc"
        and "sata" not in types
        and any(_bus(disk) == "sata" for disk in children(devices, "disk"))
    ):
        # pc has no built-in AHCI: libvirt adds the controller and places it like a device
        _insert_controller(devices, etree.Element("controller", type="sata", index="0"))
    work = _Assigner(devices, family)
    videos = [v for v in children(devices, "video") if _video_model(v) != "none"]
    if videos and read_address(videos[0], "<video> #1") is None:
        slot = 1 if family == "q35" else 2
        if work.slot_free(0, slot):
            work.used.add((0, slot, 0))
            write_address(videos[0], PciAddress(0, 0, slot, 0, False))
    sounds = [node for node in children(devices, "sound") if node.get("model") in _PCI_SOUND]
    ich9 = next((node for node in sounds if node.get("model") == "ich9"), None)
    if family == "q35" and ich9 is not None and read_address(ich9, "<sound>") is None:
        # q35's own HD audio function, where libvirt puts the first ich9 card
        if work.slot_free(0, _Q35_HDA_SLOT):
            work.used.add((0, _Q35_HDA_SLOT, 0))
            write_address(ich9, PciAddress(0, 0, _Q35_HDA_SLOT, 0, False))
    for node in _controller_order(devices):
        pci_model = node.get("model")
        if node.get("type") == "pci" and pci_model not in ("pcie-root", "pci-root"):
            if pci_model == "pcie-root-port":
                work.place(node, "root")
            elif pci_model == "pcie-to-pci-bridge":
                work.place(node, "pcie")
            else:
                work.place(node, "pci")
    for nic in children(devices, "interface"):
        model_node = nic.find("model")
        nic_model = model_node.get("type") if model_node is not None else None
        work.place(nic, "pci" if nic_model in _CONVENTIONAL_NICS else "pcie")
    for node in sounds:
        work.place(node, "pci")
    for node in _controller_order(devices):
        kind = node.get("type")
        if kind == "usb" and node.get("model") == "qemu-xhci":
            work.place(node, "pcie")
        elif kind == "virtio-serial" or (kind == "scsi" and node.get("model") == "virtio-scsi"):
            work.place(node, "pcie")
        elif kind == "scsi" or (kind == "sata" and family == "pc"):
            # lsilogic (libvirt's default SCSI model) is a conventional PCI device
            work.place(node, "pci")
    for disk in children(devices, "disk"):
        if _bus(disk) == "virtio":
            work.place(disk, "pcie")
    for balloon in children(devices, "memballoon"):
        if balloon.get("model") == "virtio":
            work.place(balloon, "pcie")
    for rng in children(devices, "rng"):
        if rng.get("model") == "virtio":
            work.place(rng, "pcie")
    for watchdog in children(devices, "watchdog"):
        if watchdog.get("model") == "i6300esb":
            work.place(watchdog, "pci")
    for video in videos[1:]:
        # libvirt treats a secondary qxl as conventional PCI, virtio-gpu as PCIe
        work.place(video, "pci" if _video_model(video) == "qxl" else "pcie")
    for item in children(devices, "input"):
        if item.get("bus") == "virtio":
            work.place(item, "pcie")
    if family == "q35" and not had_pci and not work.free_ports:
        # libvirt leaves one empty root port so that a device can be hot-plugged later.
        work.root_port()
    for port_node in work.placed_ports:
        addr = read_address(port_node, "")
        if addr is not None and addr.function == 0:
            others = any((0, addr.slot, f) in work.used for f in range(1, _FUNCTIONS))
            if others:
                write_address(port_node, PciAddress(0, 0, addr.slot, 0, True))
    for index, node in pci_controllers(devices).items():
        _fill_controller(node, index)
    return work.created


def _fill_controller(node: etree._Element, index: int) -> None:
    """Write the ``<model name>`` and ``<target>`` libvirt fills into a PCI controller."""
    model = node.get("model") or ""
    name = _MODEL_NAMES.get(model)
    if name is None:
        return
    model_node = node.find("model")
    if model_node is None:
        model_node = etree.Element("model", name=name)
        node.insert(0, model_node)
    if node.find("target") is not None:
        return
    if model == "pcie-root-port":
        addr = read_address(node, "")
        port = 0 if addr is None else addr.slot * 8 + addr.function
        model_node.addnext(etree.Element("target", chassis=str(index), port=f"{port:#x}"))
    elif model == "pci-bridge":
        model_node.addnext(etree.Element("target", chassisNr=str(index)))


def _bus(disk: etree._Element) -> str:
    target = disk.find("target")
    bus = target.get("bus") if target is not None else None
    if bus:
        return bus
    dev = (target.get("dev") if target is not None else None) or ""
    return {"hd": "ide", "sd": "scsi", "vd": "virtio"}.get(dev[:2], "virtio")


def _video_model(video: etree._Element) -> str:
    model = video.find("model")
    return (model.get("type") if model is not None else None) or "vga"


def _virtio_console(console: etree._Element) -> bool:
    target = console.find("target")
    return target is not None and target.get("type") == "virtio"


def strip_runtime(root: etree._Element) -> None:
    """Drop what only a running domain has (libvirt's inactive XML never shows them):
    ``<domain id=…>``, every device ``<alias>``, a pty's ``<source path>``, the
    console's ``tty=`` and the port an autoport display got."""
    if "id" in root.attrib:
        del root.attrib["id"]
    devices = root.find("devices")
    if devices is None:
        return
    for graphics in devices.findall("graphics"):
        # an automatic display port is chosen at each start; libvirt stores -1
        if graphics.get("autoport") == "yes" and graphics.get("port") is not None:
            graphics.set("port", "-1")
    for alias in list(devices.iter("alias")):
        parent = alias.getparent()
        if parent is not None:
            parent.remove(alias)
    channels.strip_state(devices, root.findtext("name") or "")
    for node in devices:
        if node.tag not in ("serial", "console", "parallel", "channel"):
            continue
        if "tty" in node.attrib:
            del node.attrib["tty"]
        if node.get("type") == "pty":
            for source in node.findall("source"):
                node.remove(source)
