"""``<channel>``: virtio-serial ports between host and guest (the guest agent's among them).

A channel is a character device like a serial port, seen by the guest as a named
virtio-serial port (``/dev/virtio-ports/NAME``) instead of a UART. virtdeck builds
``type='unix'`` and ``type='pty'`` channels with ``<target type='virtio' name=…>``; the
other kinds (spicevmc, spiceport, guestfwd, xen …) are refused by the QEMU driver at define
time (:func:`channel_problems`).

Like libvirt 9.0, every channel gets ``<address type='virtio-serial' controller= bus=
port=>`` when it is defined (:func:`assign_ports`): ports count from 1 on the first
controller with room (port 0 belongs to a virtio console), and a new
``<controller type='virtio-serial'>`` is added when all are full. A unix channel without a
``<source path>`` listens (mode bind) on a socket the driver names at each start under the
domain's runtime directory; the live definition shows that path and, from QEMU's
VSERPORT_CHANGE events, whether the guest has the port open (``<target state=…>``).
"""

from __future__ import annotations

import re

from lxml import etree

from drivers.domxml.devices import CharDevDef, choice
from drivers.domxml.tree import check_path, children, show, single
from drivers.errors import InvalidXML

#: The port name qemu-guest-agent opens in the guest (virt-manager adds it by default).
GUEST_AGENT = "org.qemu.guest_agent.0"
CHANNEL_TYPES = ("unix", "pty")
#: QEMU's default number of ports of a virtio-serial controller (``max_ports``).
DEFAULT_PORTS = 31
CHANNEL_STATES = ("connected", "disconnected")
# A port name becomes a socket file name: letters, digits, '.', '_', '-'.
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)
_REFUSED_TYPES = {
    "spicevmc": "it needs a SPICE display, which virtdeck does not build",
    "spiceport": "it needs a SPICE display, which virtdeck does not build",
    "qemu-vdagent": "the QEMU clipboard agent is not implemented",
    "dbus": "D-Bus displays are not implemented",
}


class ChannelDef(CharDevDef):
    """``<channel>``: a character device on a virtio-serial port."""

    __slots__ = ()
    tag = "channel"

    @property
    def label(self) -> str:
        name = self.target_name
        return f"<channel> {show(name)}" if name else super().label

    @property
    def target_type(self) -> str:
        """'virtio' (the only kind virtdeck builds), 'guestfwd' or 'xen'."""
        return self._attr("target", "type") or "virtio"

    @property
    def target_name(self) -> str | None:
        """The port's name in the guest, e.g. 'org.qemu.guest_agent.0'."""
        return self._attr("target", "name")

    @property
    def is_guest_agent(self) -> bool:
        return self.target_type == "virtio" and self.target_name == GUEST_AGENT

    @property
    def source_mode(self) -> str | None:
        """'bind' (QEMU listens) or 'connect'; a unix channel with no ``<source>``, or
        with a source but no path, listens on a socket the driver names."""
        if self.type != "unix":
            return None
        mode = self._attr("source", "mode")
        if mode is not None:
            return mode
        return "connect" if self.source_path else "bind"

    @property
    def state(self) -> str | None:
        """Live definitions only: 'connected' while the guest has the port open."""
        return self._attr("target", "state")

    @state.setter
    def state(self, value: str | None) -> None:
        target = self.element.find("target")
        if target is None:
            return
        if value is None:
            if "state" in target.attrib:
                del target.attrib["state"]
        else:
            target.set("state", value)

    @property
    def port_address(self) -> tuple[int, int, int] | None:
        """(controller, bus, port) of its ``<address type='virtio-serial'>``, if any."""
        return read_port_address(self.element, self.label)

    def set_source_path(self, path: str) -> None:
        """Name the socket of a bind-mode unix channel (the driver does, at start)."""
        node = self.element.find("source")
        if node is None:
            node = etree.Element("source")
            self.element.insert(0, node)
        node.set("mode", "bind")
        node.set("path", path)

    def validate(self) -> None:
        """Structural checks for every driver; which kinds QEMU builds is decided by
        :func:`channel_problems`."""
        where = self.label
        source = single(self.element, "source", where)
        target = single(self.element, "target", where)
        if self.type == "unix" and source is not None:
            choice(source.get("mode"), ("bind", "connect"), f"{where} <source>", "mode", "bind")
            if source.get("path") is not None or source.get("mode") == "connect":
                check_path(
                    source.get("path"),
                    f"{where} <source path>",
                    "<source mode='bind' path='/run/guest-agent.sock'/>",
                )
        if target is not None:
            name = target.get("name")
            if name is not None and not _NAME_RE.fullmatch(name):
                raise InvalidXML(
                    f"{where} <target>: name={show(name)} is not a port name; use letters, "
                    f"digits, '.', '_' and '-' only, e.g. name='{GUEST_AGENT}'."
                )
            state = target.get("state")
            if state is not None:
                choice(state, CHANNEL_STATES, f"{where} <target>", "state")
        read_port_address(self.element, where)


def _number(value: str | None, where: str, attr: str, high: int) -> int | None:
    if value is None:
        return None
    try:
        number = int(value, 0)
    except ValueError:
        number = -1
    if not 0 <= number <= high:
        raise InvalidXML(
            f"{where}: {attr}={show(value)} is not a virtio-serial {attr} number; write a "
            f"number from 0 to {high}, e.g. {attr}='1'."
        )
    return number


def read_port_address(element: etree._Element, where: str) -> tuple[int, int, int] | None:
    """(controller, bus, port) of ``<address type='virtio-serial'>``; None without one (or
    without a port: libvirt then assigns it)."""
    node = element.find("address")
    if node is None or node.get("type") != "virtio-serial":
        return None
    where = f"{where} <address>"
    controller = _number(node.get("controller"), where, "controller", 255) or 0
    bus = _number(node.get("bus"), where, "bus", 0) or 0
    port = _number(node.get("port"), where, "port", 1023)
    if port is None:
        return None
    return controller, bus, port


def _write_port_address(element: etree._Element, controller: int, port: int) -> None:
    node = element.find("address")
    if node is None:
        node = etree.SubElement(element, "address")
    node.attrib.clear()
    node.set("type", "virtio-serial")
    node.set("controller", str(controller))
    node.set("bus", "0")
    node.set("port", str(port))


def channel_problems(devices: etree._Element | None) -> list[str]:
    """Why the QEMU driver cannot build these ``<channel>`` elements: one sentence each."""
    if devices is None:
        return []
    problems: list[str] = []
    for node in children(devices, "channel"):
        channel = ChannelDef(node)
        where = channel.label
        kind = node.get("type") or "pty"
        target_type = channel.target_type
        if kind not in CHANNEL_TYPES:
            why = _REFUSED_TYPES.get(kind, "only unix and pty channels are implemented")
            problems.append(
                f"<channel type={show(kind)}> is not supported: {why}; remove it, or write "
                "<channel type='unix'> (the guest agent's channel is "
                f"<channel type='unix'><target type='virtio' name='{GUEST_AGENT}'/></channel>)."
            )
        elif target_type != "virtio":
            problems.append(
                f"{where} <target type={show(target_type)}> is not supported: virtdeck builds "
                "virtio-serial channels only; write <target type='virtio' name='…'/> or "
                "remove the channel."
            )
        elif kind == "unix" and channel.source_mode == "bind" and not channel.source_path:
            if not channel.target_name:
                problems.append(
                    f"{where}: a unix channel without a <source path> needs a <target "
                    "name=…> to name its socket; add name='…' or a <source mode='bind' "
                    "path='…'/>."
                )
    return problems


def _controllers(devices: etree._Element) -> dict[int, int]:
    """Index → number of ports of each ``<controller type='virtio-serial'>``."""
    found: dict[int, int] = {}
    for node in children(devices, "controller"):
        if node.get("type") == "virtio-serial":
            index = int(node.get("index") or "0", 0)
            ports = node.get("ports")
            found[index] = int(ports, 0) if ports and ports.isdigit() else DEFAULT_PORTS
    return found


def assign_ports(devices: etree._Element) -> list[etree._Element]:
    """Give every virtio channel without a port one, as libvirt 9.0 does; returns the
    virtio-serial controllers added because the existing ones were full (the caller
    places them on PCI). The first controller must exist already."""
    controllers = _controllers(devices)
    used: set[tuple[int, int]] = set()
    channels = [
        ChannelDef(node)
        for node in children(devices, "channel")
        if ChannelDef(node).target_type == "virtio"
    ]
    for channel in channels:
        addr = channel.port_address
        if addr is not None:
            used.add((addr[0], addr[2]))
    added: list[etree._Element] = []
    for channel in channels:
        if channel.port_address is not None:
            continue
        node = channel.element.find("address")
        wanted = None
        if node is not None and node.get("type") == "virtio-serial":
            wanted = _number(node.get("controller"), channel.label, "controller", 255)
        free = _free_port(controllers, used, wanted)
        if free is None:
            index = max(controllers, default=-1) + 1
            controller = etree.Element("controller", type="virtio-serial", index=str(index))
            existing = children(devices, "controller")
            if existing:
                existing[-1].addnext(controller)
            else:
                devices.append(controller)
            controllers[index] = DEFAULT_PORTS
            added.append(controller)
            free = (index, 1)
        used.add(free)
        _write_port_address(channel.element, *free)
    return added


def _free_port(
    controllers: dict[int, int], used: set[tuple[int, int]], wanted: int | None
) -> tuple[int, int] | None:
    for index in sorted(controllers):
        if wanted is not None and index != wanted:
            continue
        for port in range(1, controllers[index]):
            if (index, port) not in used:
                return index, port
    return None


def generated_path(path: str, domain: str, port: str) -> bool:
    """Whether ``path`` is a socket a driver named itself for channel ``port``: libvirt's
    ``…/qemu/channel/target/domain-N-NAME/PORT`` or virtdeck's ``…/NAME/channel/PORT``.
    Such a path belongs to the host (and the start) that made it, like libvirt, which
    drops its own on define."""
    return "/qemu/channel/target/" in path or path.endswith(f"/{domain}/channel/{port}")


def strip_state(devices: etree._Element, domain: str = "") -> None:
    """Drop what only a running domain's channels have: ``<target state=…>``, and a
    socket path the driver generated (the next start names it again)."""
    for node in children(devices, "channel"):
        channel = ChannelDef(node)
        channel.state = None
        path, port = channel.source_path, channel.target_name
        if channel.type == "unix" and path and port and channel.source_mode == "bind":
            if generated_path(path, domain, port):
                source = node.find("source")
                if source is not None:
                    node.remove(source)
