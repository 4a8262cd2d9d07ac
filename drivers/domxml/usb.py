"""USB ports: ``<address type='usb' bus='0' port='N'>`` on USB disks, inputs and sound
cards, read, checked and assigned at define time the way libvirt 9.0 does (lowest free
port, disks first, then inputs, then sound cards; ``qemu-xhci`` has 4 ports unless the
controller says ``ports=``, ``piix3-uhci`` 2). libvirt adds a USB hub when the ports run
out; virtdeck builds no hubs and refuses instead.
"""

from __future__ import annotations

from lxml import etree

from drivers.domxml.drive import disk_bus
from drivers.domxml.tree import children, show
from drivers.errors import InvalidXML

_DEFAULT_PORTS = {"qemu-xhci": 4, "piix3-uhci": 2}


def usb_controller_ports(devices: etree._Element, family: str) -> int:
    """How many ports the domain's USB controller has (0 without one)."""
    nodes = [n for n in children(devices, "controller") if n.get("type") == "usb"]
    if not nodes:
        return _DEFAULT_PORTS["qemu-xhci" if family == "q35" else "piix3-uhci"]
    model = nodes[0].get("model") or ("qemu-xhci" if family == "q35" else "piix3-uhci")
    if model == "none":
        return 0
    ports = nodes[0].get("ports")
    if ports is not None and ports.isdigit():
        return int(ports)
    return _DEFAULT_PORTS.get(model, 4)


def usb_devices(devices: etree._Element) -> list[etree._Element]:
    """The elements that sit on a USB port, in libvirt's assignment order."""
    disks = [d for d in children(devices, "disk") if disk_bus(d) == "usb"]
    inputs = [i for i in children(devices, "input") if _input_bus(i) == "usb"]
    sounds = [s for s in children(devices, "sound") if s.get("model") == "usb"]
    return [*disks, *inputs, *sounds]


def _input_bus(node: etree._Element) -> str:
    bus = node.get("bus")
    if bus is not None:
        return bus
    return "usb" if node.get("type") == "tablet" else "ps2"


def _label(node: etree._Element) -> str:
    if node.tag == "disk":
        target = node.find("target")
        return f"<disk> {show((target.get('dev') if target is not None else None) or '')}"
    parent = node.getparent()
    ordinal = children(parent, str(node.tag)).index(node) + 1 if parent is not None else 1
    return f"<{node.tag}> #{ordinal}"


def usb_port(node: etree._Element) -> int | None:
    """The port of ``node``'s ``<address type='usb'>``, None when it has none."""
    address = node.find("address")
    if address is None or address.get("type") != "usb":
        return None
    where = f"{_label(node)} <address type='usb'>"
    bus = address.get("bus") or "0"
    if bus != "0":
        raise InvalidXML(
            f"{where}: bus={show(bus)}; virtdeck gives a guest one USB controller, so write "
            "bus='0'."
        )
    port = address.get("port")
    if port is None:
        return None
    if "." in port:
        raise InvalidXML(
            f"{where}: port={show(port)} is a port of a USB hub, and virtdeck builds no hubs; "
            "write a port of the controller, e.g. port='1'."
        )
    if not port.isdigit() or int(port) < 1:
        raise InvalidXML(f"{where}: port={show(port)} is not a port number; write e.g. port='1'.")
    return int(port)


def check_usb_ports(devices: etree._Element, family: str) -> None:
    """Every given USB port exists and is used once."""
    ports = usb_controller_ports(devices, family)
    used: dict[int, str] = {}
    for node in usb_devices(devices):
        port = usb_port(node)
        if port is None:
            continue
        if port > ports:
            raise InvalidXML(
                f"{_label(node)} <address type='usb'>: port {port} does not exist; the USB "
                f"controller has {ports} ports (1-{ports})."
            )
        if port in used:
            raise InvalidXML(
                f"{_label(node)} and {used[port]} are both on USB port {port}; give each its "
                "own port, or remove one <address> to let virtdeck choose."
            )
        used[port] = _label(node)


def assign_usb_ports(devices: etree._Element, family: str) -> None:
    """Give each USB device without a port the lowest free one (written into the XML)."""
    nodes = usb_devices(devices)
    if not nodes:
        return
    check_usb_ports(devices, family)
    ports = usb_controller_ports(devices, family)
    if ports == 0:
        raise InvalidXML(
            f"<controller type='usb'> has model='none', but {_label(nodes[0])} needs a USB "
            "controller; write model='qemu-xhci' or remove the USB devices."
        )
    used = {port for port in (usb_port(node) for node in nodes) if port is not None}
    for node in nodes:
        if usb_port(node) is not None:
            continue
        free = next((p for p in range(1, ports + 1) if p not in used), None)
        if free is None:
            raise InvalidXML(
                f"{_label(node)}: the USB controller's {ports} ports are all taken ("
                f"{len(nodes)} USB devices); libvirt would add a USB hub, which virtdeck does "
                "not build: remove USB devices, use virtio or PS/2 inputs, or give the "
                "controller more ports (<controller type='usb' model='qemu-xhci' ports='8'/>)."
            )
        used.add(free)
        address = node.find("address")
        if address is None:
            address = etree.SubElement(node, "address")
        address.attrib.clear()
        address.set("type", "usb")
        address.set("bus", "0")
        address.set("port", str(free))
