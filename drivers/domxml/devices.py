"""Typed views over the device elements of a domain (``<disk>``, ``<interface>``, …).

A view holds its element and nothing else: every property reads the element when asked
and every setter writes it, so the tree stays the one source of truth and anything the
views do not model (addresses, aliases, unknown attributes) is never lost.

``validate()`` checks an element against the subset virtdeck supports and raises
:class:`~drivers.errors.InvalidXML` naming the element; the properties assume it passed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import ClassVar

from lxml import etree

from drivers.domxml.ids import canonical_mac, is_multicast_mac
from drivers.domxml.tree import check_path, children, show, single
from drivers.domxml.units import parse_int
from drivers.errors import InvalidXML


def _one_of(allowed: Sequence[str]) -> str:
    quoted = [f"'{value}'" for value in allowed]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def choice(
    value: str | None,
    allowed: Sequence[str],
    where: str,
    attr: str,
    default: str | None = None,
) -> str:
    """``value`` if it is one of ``allowed`` (``default`` when absent), else InvalidXML."""
    if value is None:
        if default is None:
            raise InvalidXML(f"{where} needs {attr}=…; write {attr}={_one_of(allowed)}.")
        return default
    if value not in allowed:
        raise InvalidXML(
            f"{where}: {attr}={show(value)} is not supported; write {attr}={_one_of(allowed)}."
        )
    return value


class DeviceView:
    """The common part of all device views: the element and a few readers."""

    __slots__ = ("element",)

    tag: ClassVar[str] = ""

    def __init__(self, element: etree._Element) -> None:
        self.element = element

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.element is getattr(other, "element", None)

    def __hash__(self) -> int:
        return hash(self.element)

    def _attr(self, child: str, name: str) -> str | None:
        node = self.element.find(child)
        return None if node is None else node.get(name)

    def _child(self, tag: str) -> etree._Element:
        """The child ``tag``, created (as the first child) when missing."""
        node = self.element.find(tag)
        if node is None:
            node = etree.Element(tag)
            self.element.insert(0, node)
        return node

    def _ordinal(self) -> int:
        """This element's position among its parent's children of the same tag."""
        parent = self.element.getparent()
        if parent is None:
            return 0
        return children(parent, str(self.element.tag)).index(self.element)

    @property
    def label(self) -> str:
        """How error messages name this device, e.g. ``<serial> #2``."""
        return f"<{self.element.tag}> #{self._ordinal() + 1}"

    def _boot_order(self) -> int | None:
        order = self._attr("boot", "order")
        return None if order is None else int(order)

    def _check_boot(self) -> None:
        boot = single(self.element, "boot", self.label)
        if boot is not None:
            parse_int(
                boot.get("order"),
                f"{self.label} <boot order>",
                "<boot order='1'/>",
                low=1,
                high=65535,
            )

    def validate(self) -> None:
        """Raise InvalidXML if the element is outside the supported subset."""


# --- disks ------------------------------------------------------------------------------

DISK_TYPES = ("file", "block")
DISK_DEVICES = ("disk", "cdrom")
DISK_FORMATS = ("raw", "qcow2")
DISK_BUSES = ("virtio", "sata", "ide", "scsi", "usb")
CACHE_MODES = ("default", "none", "writethrough", "writeback", "directsync", "unsafe")
_TARGET_RE = re.compile(r"(hd|sd|vd)([a-z]{1,3})", re.ASCII)
# libvirt's default bus for a target name without bus=
_PREFIX_BUS = {"hd": "ide", "sd": "scsi", "vd": "virtio"}


class DiskDef(DeviceView):
    """``<disk>``: a file or block device shown to the guest as a disk or a cdrom."""

    __slots__ = ()
    tag = "disk"

    @property
    def label(self) -> str:
        dev = self._attr("target", "dev")
        return f"<disk> {show(dev)}" if dev else super().label

    @property
    def type(self) -> str:
        """'file' or 'block'."""
        return self.element.get("type") or "file"

    @property
    def device(self) -> str:
        """'disk' or 'cdrom'."""
        return self.element.get("device") or "disk"

    @property
    def driver_type(self) -> str:
        """The image format: 'raw' or 'qcow2'."""
        return self._attr("driver", "type") or "raw"

    @property
    def cache(self) -> str | None:
        """The cache mode of ``<driver cache=…>``, None for QEMU's default."""
        return self._attr("driver", "cache")

    @property
    def source(self) -> str | None:
        """The image path (file=) or device (dev=); None for an empty cdrom."""
        return self._attr("source", self._source_key) or None

    @source.setter
    def source(self, path: str | None) -> None:
        if path is None:
            if self.device != "cdrom":
                raise ValueError(f"{self.label} is a disk; only a cdrom can be empty")
            node = self.element.find("source")
            if node is not None:
                self.element.remove(node)
            return
        node = self.element.find("source")
        if node is None:
            node = etree.Element("source")
            driver = self.element.find("driver")
            if driver is not None:
                driver.addnext(node)
            else:
                self.element.insert(0, node)
        node.set(self._source_key, path)

    @property
    def _source_key(self) -> str:
        return "dev" if self.type == "block" else "file"

    @property
    def target_dev(self) -> str:
        """The guest-side name, e.g. 'vda'; unique within a domain."""
        return self._attr("target", "dev") or ""

    @property
    def target_bus(self) -> str:
        """'virtio', 'sata', 'ide', 'scsi' or 'usb' (default from the target name)."""
        bus = self._attr("target", "bus")
        if bus is not None:
            return bus
        return _PREFIX_BUS.get(self.target_dev[:2], "virtio")

    @property
    def target_index(self) -> int:
        """The position the target name encodes: 'vda' is 0, 'sdb' 1, 'hdaa' 26."""
        match = _TARGET_RE.fullmatch(self.target_dev)
        if match is None:
            return 0
        index = 0
        for letter in match.group(2):
            index = index * 26 + (ord(letter) - ord("a") + 1)
        return index - 1

    @property
    def readonly(self) -> bool:
        """True for ``<readonly/>`` disks and for every cdrom."""
        return self.device == "cdrom" or self.element.find("readonly") is not None

    @property
    def boot_order(self) -> int | None:
        """``<boot order=N/>``, None if the disk has no boot element."""
        return self._boot_order()

    def validate(self) -> None:
        where = self.label
        kind = choice(self.element.get("type"), DISK_TYPES, where, "type", "file")
        device = choice(self.element.get("device"), DISK_DEVICES, where, "device", "disk")
        driver = single(self.element, "driver", where)
        if driver is not None:
            name = driver.get("name")
            if name is not None and name != "qemu":
                raise InvalidXML(
                    f"{where} <driver>: name={show(name)} is not supported; write name='qemu'."
                )
            choice(driver.get("type"), DISK_FORMATS, f"{where} <driver>", "type", "raw")
            choice(driver.get("cache"), CACHE_MODES, f"{where} <driver>", "cache", "default")
        target = single(self.element, "target", where)
        example = "<target dev='vda' bus='virtio'/>"
        if target is None:
            raise InvalidXML(f"{where} needs a <target>; write e.g. {example}.")
        dev = target.get("dev")
        if dev is None or not _TARGET_RE.fullmatch(dev):
            shown = "no dev=" if dev is None else f"dev={show(dev)}"
            raise InvalidXML(
                f"{where} <target> has {shown}; write a name such as 'vda', 'sda' or 'hda', "
                f"e.g. {example}."
            )
        choice(target.get("bus"), DISK_BUSES, f"{where} <target>", "bus", "virtio")
        source = single(self.element, "source", where)
        key = "dev" if kind == "block" else "file"
        path_example = f"<source {key}='{'/dev/vg0/disk' if key == 'dev' else '/srv/disk.img'}'/>"
        if source is not None:
            other = "file" if key == "dev" else "dev"
            if source.get(key) is None and source.get(other) is not None:
                raise InvalidXML(
                    f"{where}: a type='{kind}' disk names its source with {key}=, not "
                    f"{other}=; write {path_example}."
                )
            if source.get(key) is not None:
                check_path(source.get(key), f"{where} <source {key}>", path_example)
        if device == "disk" and self.source is None:
            raise InvalidXML(
                f"{where} has no source; a disk needs one, e.g. {path_example} "
                "(only a cdrom may be empty)."
            )
        single(self.element, "readonly", where)
        self._check_boot()


# --- network interfaces -----------------------------------------------------------------

NIC_TYPES = ("user", "network", "bridge", "ethernet")
NIC_MODELS = ("virtio", "e1000", "e1000e", "rtl8139")
# Linux interface names: at most 15 bytes, no '/', ':' or whitespace.
_BRIDGE_RE = re.compile(r"[A-Za-z0-9_.-]{1,15}", re.ASCII)


class InterfaceDef(DeviceView):
    """``<interface>``: a NIC on user-mode networking, a named network or a bridge."""

    __slots__ = ()
    tag = "interface"

    @property
    def type(self) -> str:
        """'user', 'network' or 'bridge'."""
        return self.element.get("type") or "user"

    @property
    def mac(self) -> str:
        """The MAC address, lowercase (one is generated at parse time when missing)."""
        return self._attr("mac", "address") or ""

    @property
    def model(self) -> str:
        """The NIC model: 'virtio', 'e1000', 'e1000e' or 'rtl8139' (libvirt's default)."""
        return self._attr("model", "type") or "rtl8139"

    @property
    def source_network(self) -> str | None:
        """``<source network=…>`` of a type='network' interface."""
        return self._attr("source", "network")

    @property
    def source_bridge(self) -> str | None:
        """``<source bridge=…>`` of a type='bridge' interface."""
        return self._attr("source", "bridge")

    @property
    def target_dev(self) -> str | None:
        """``<target dev=…>``: the host's tap device (type='ethernet')."""
        return self._attr("target", "dev")

    @property
    def boot_order(self) -> int | None:
        """``<boot order=N/>``, None if the interface has no boot element."""
        return self._boot_order()

    def validate(self) -> None:
        where = self.label
        kind = self.element.get("type")
        if kind is None:
            raise InvalidXML(
                f"{where} needs a type; write e.g. <interface type='user'> "
                "(or type='network' / type='bridge')."
            )
        choice(kind, NIC_TYPES, where, "type")
        mac = single(self.element, "mac", where)
        if mac is not None:
            address = mac.get("address") or ""
            canonical = canonical_mac(address)
            if canonical is None:
                raise InvalidXML(
                    f"{where} <mac>: address={show(address)} is not a MAC address; write "
                    "e.g. <mac address='52:54:00:12:34:56'/>, or leave <mac> out to get one."
                )
            if is_multicast_mac(canonical):
                raise InvalidXML(
                    f"{where} <mac>: {canonical} is a multicast address, which a NIC cannot "
                    "own; write e.g. <mac address='52:54:00:12:34:56'/>."
                )
        source = single(self.element, "source", where)
        if kind == "network":
            network = None if source is None else source.get("network")
            if not network:
                raise InvalidXML(
                    f"{where}: a type='network' interface needs the network's name; write "
                    "e.g. <source network='default'/>."
                )
        if kind == "bridge":
            bridge = None if source is None else source.get("bridge")
            if bridge is None or not _BRIDGE_RE.fullmatch(bridge):
                found = "no bridge=" if bridge is None else f"bridge={show(bridge)}"
                raise InvalidXML(
                    f"{where}: a type='bridge' interface needs a bridge name (up to 15 "
                    f"letters, digits, '.', '_' or '-'), not {found}; write e.g. "
                    "<source bridge='br0'/>."
                )
        if kind == "ethernet":
            target = single(self.element, "target", where)
            dev = None if target is None else target.get("dev")
            example = "<target dev='tap0' managed='no'/>"
            if dev is None or not _BRIDGE_RE.fullmatch(dev):
                found = "no dev=" if dev is None else f"dev={show(dev)}"
                raise InvalidXML(
                    f"{where}: a type='ethernet' interface needs the name of an existing tap "
                    f"device (up to 15 letters, digits, '.', '_' or '-'), not {found}; write "
                    f"e.g. {example}."
                )
            if target is not None and target.get("managed") != "no":
                raise InvalidXML(
                    f"{where}: virtdeck does not create tap devices, so a type='ethernet' "
                    f"interface uses one that exists: create it (ip tuntap add dev {dev} "
                    f"mode tap) and write <target dev='{dev}' managed='no'/>."
                )
        model = single(self.element, "model", where)
        if model is not None:
            choice(model.get("type"), NIC_MODELS, f"{where} <model>", "type")
        self._check_boot()

    def fill_mac(self, mac: str) -> None:
        """Give the interface ``mac`` if it has none; otherwise write its own canonically."""
        node = self.element.find("mac")
        if node is None:
            node = etree.Element("mac")
            self.element.insert(0, node)
            node.set("address", mac)
            return
        canonical = canonical_mac(node.get("address") or "")
        if canonical is not None:
            node.set("address", canonical)


# --- serial ports and consoles ----------------------------------------------------------

CHAR_TYPES = ("pty", "file", "unix", "null")
SERIAL_TARGETS = ("isa-serial",)
CONSOLE_TARGETS = ("serial", "virtio")
UNIX_MODES = ("bind", "connect")
# QEMU's PC machines have four ISA serial ports (COM1-COM4).
MAX_ISA_SERIAL_PORT = 3


class CharDevDef(DeviceView):
    """``<serial>`` or ``<console>``: a character device and where its host side goes."""

    __slots__ = ()

    @property
    def kind(self) -> str:
        """'serial' or 'console' (the element's name)."""
        return str(self.element.tag)

    @property
    def type(self) -> str:
        """'pty', 'file', 'unix' or 'null'."""
        return self.element.get("type") or "pty"

    @property
    def source_path(self) -> str | None:
        """The host-side path: file, unix socket, or (live XML) the pty QEMU allocated."""
        return self._attr("source", "path")

    @source_path.setter
    def source_path(self, path: str | None) -> None:
        node = self.element.find("source")
        if path is None:
            if node is not None:
                if "path" in node.attrib:
                    del node.attrib["path"]
                if not node.attrib and not len(node):
                    self.element.remove(node)
            return
        if node is None:
            node = self._child("source")
        node.set("path", path)

    @property
    def source_mode(self) -> str | None:
        """For unix sockets 'bind' (QEMU listens) or 'connect'; None for other types."""
        if self.type != "unix":
            return None
        return self._attr("source", "mode") or "connect"

    @property
    def target_type(self) -> str:
        """'isa-serial' for a serial; 'serial' or 'virtio' for a console."""
        default = "isa-serial" if self.kind == "serial" else "serial"
        return self._attr("target", "type") or default

    @property
    def target_port(self) -> int:
        """The guest-side port; serials without one count up from 0 in document order."""
        port = self._attr("target", "port")
        if port is not None:
            return int(port)
        return self._ordinal() if self.kind == "serial" else 0

    @property
    def log_file(self) -> str | None:
        """``<log file=…>``: where QEMU copies everything the guest writes."""
        return self._attr("log", "file")

    @property
    def log_append(self) -> bool:
        """``<log append='on'>``: keep the log's old content across starts."""
        return self._attr("log", "append") == "on"

    def validate(self) -> None:
        where = self.label
        kind = self.element.get("type")
        if kind == "stdio":
            raise InvalidXML(
                f"{where}: type='stdio' would tie the guest to the daemon's own terminal; "
                "write type='pty' (or 'unix' with <source mode='bind' path='…'/>)."
            )
        kind = choice(kind, CHAR_TYPES, where, "type", "pty")
        source = single(self.element, "source", where)
        path = None if source is None else source.get("path")
        example = {
            "file": "<source path='/var/log/guest-serial.log'/>",
            "unix": "<source mode='bind' path='/run/guest-serial.sock'/>",
        }.get(kind, "<source path='/dev/pts/1'/>")
        if kind in ("file", "unix") or path is not None:
            check_path(path, f"{where} <source path>", example)
        if kind == "unix" and source is not None:
            choice(source.get("mode"), UNIX_MODES, f"{where} <source>", "mode", "connect")
        target = single(self.element, "target", where)
        allowed = SERIAL_TARGETS if self.kind == "serial" else CONSOLE_TARGETS
        target_type = choice(
            None if target is None else target.get("type"),
            allowed,
            f"{where} <target>",
            "type",
            allowed[0],
        )
        if target is not None and target.get("port") is not None:
            high = MAX_ISA_SERIAL_PORT if target_type in ("isa-serial", "serial") else 65535
            parse_int(
                target.get("port"),
                f"{where} <target port>",
                "<target port='0'/>",
                low=0,
                high=high,
            )
        elif self.target_port > MAX_ISA_SERIAL_PORT:
            raise InvalidXML(
                f"{where}: a PC has four serial ports (0-3) and this would be port "
                f"{self.target_port}; remove a <serial> or give each <target port='N'/>."
            )
        log = single(self.element, "log", where)
        if log is not None:
            check_path(log.get("file"), f"{where} <log file>", "<log file='/var/log/serial.log'/>")
            choice(log.get("append"), ("on", "off"), f"{where} <log>", "append", "off")


# --- graphics ---------------------------------------------------------------------------

LISTEN_TYPES = ("address", "socket")
VNC_PORT_MIN = 5900
_HOSTNAME_RE = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*", re.ASCII
)


def _check_listen(value: str, where: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME_RE.fullmatch(value) or len(value) > 253:
            raise InvalidXML(
                f"{where}: {show(value)} is neither an IP address nor a host name; write "
                "e.g. listen='127.0.0.1'."
            ) from None


class GraphicsDef(DeviceView):
    """``<graphics type='vnc'>``: a VNC server on an address and port or on a unix socket."""

    __slots__ = ()
    tag = "graphics"

    def _first_listen(self) -> etree._Element | None:
        return self.element.find("listen")

    @property
    def type(self) -> str:
        """Always 'vnc': other display types are refused at parse time."""
        return self.element.get("type") or "vnc"

    @property
    def port(self) -> int:
        """The TCP port; -1 until the driver has picked one for an autoport display."""
        value = self.element.get("port")
        return -1 if value is None else int(value)

    @port.setter
    def port(self, value: int) -> None:
        if value != -1 and not VNC_PORT_MIN <= value <= 65535:
            raise ValueError(f"a VNC port must be -1 or {VNC_PORT_MIN}..65535, not {value}")
        self.element.set("port", str(value))

    @property
    def autoport(self) -> bool:
        """True when the driver picks the port at start (autoport='yes' or port -1)."""
        return self.element.get("autoport") == "yes" or self.port == -1

    @property
    def listen(self) -> str:
        """The address VNC listens on; '127.0.0.1' unless the XML says otherwise."""
        value = self.element.get("listen")
        if value:
            return value
        first = self._first_listen()
        if first is not None and (first.get("type") or "address") == "address":
            address = first.get("address")
            if address:
                return address
        return "127.0.0.1"

    @property
    def listen_type(self) -> str:
        """'socket' for a unix-socket display (path possibly left to the driver), else 'address'."""
        first = self._first_listen()
        if self.element.get("socket") or (first is not None and first.get("type") == "socket"):
            return "socket"
        return "address"

    @property
    def socket(self) -> str | None:
        """The unix socket path, None for TCP displays and for auto-named sockets."""
        value = self.element.get("socket")
        if value:
            return value
        first = self._first_listen()
        if first is not None and first.get("type") == "socket":
            return first.get("socket") or None
        return None

    @property
    def passwd(self) -> str | None:
        """The VNC password; the driver sets it over QMP once QEMU runs."""
        return self.element.get("passwd")

    def validate(self) -> None:
        where = "<graphics>"
        kind = self.element.get("type")
        if kind != "vnc":
            shown = "has no type" if kind is None else f"type={show(kind)} is not supported"
            raise InvalidXML(
                f"{where} {shown}; virtdeck shows consoles over VNC, so write "
                "<graphics type='vnc'/>."
            )
        port = self.element.get("port")
        if port is not None:
            number = parse_int(port, f"{where} port", "port='5901'", low=-1, high=65535)
            if number != -1 and number < VNC_PORT_MIN:
                raise InvalidXML(
                    f"{where}: port={number} is below VNC's range; write a port from "
                    f"{VNC_PORT_MIN} to 65535, or port='-1' autoport='yes' to pick one at start."
                )
        choice(self.element.get("autoport"), ("yes", "no"), where, "autoport", "yes")
        listen = self.element.get("listen")
        if listen is not None:
            _check_listen(listen, f"{where} listen")
        socket = self.element.get("socket")
        if socket is not None:
            check_path(socket, f"{where} socket", "socket='/run/vnc.sock'")
        listens = children(self.element, "listen")
        for index, node in enumerate(listens):
            node_where = f"{where} <listen> #{index + 1}"
            node_type = choice(node.get("type"), LISTEN_TYPES, node_where, "type", "address")
            if node_type == "address" and node.get("address") is not None:
                _check_listen(node.get("address") or "", f"{node_where} address")
            if node_type == "socket" and node.get("socket") is not None:
                check_path(node.get("socket"), f"{node_where} socket", "socket='/run/vnc.sock'")
        if listens and listen is not None:
            first = listens[0]
            if (first.get("type") or "address") == "address" and first.get("address") not in (
                None,
                listen,
            ):
                raise InvalidXML(
                    f"{where}: listen='{listen}' differs from <listen address='"
                    f"{first.get('address')}'/>; write the same address in both, or only one."
                )


# --- video, input, panic, memballoon, watchdog -------------------------------------------

VIDEO_MODELS = ("vga", "cirrus", "virtio", "qxl", "bochs", "none")


class VideoDef(DeviceView):
    """``<video>``: the emulated graphics card."""

    __slots__ = ()
    tag = "video"

    @property
    def model(self) -> str:
        """'vga' (the default), 'cirrus', 'virtio', 'qxl', 'bochs' or 'none'."""
        return self._attr("model", "type") or "vga"

    @property
    def vram_kib(self) -> int | None:
        """Video memory in KiB, None for the card's default."""
        value = self._attr("model", "vram")
        return None if value is None else int(value)

    @property
    def heads(self) -> int:
        """Number of outputs (monitors)."""
        value = self._attr("model", "heads")
        return 1 if value is None else int(value)

    def validate(self) -> None:
        where = self.label
        model = single(self.element, "model", where)
        if model is None:
            return
        choice(model.get("type"), VIDEO_MODELS, f"{where} <model>", "type", "vga")
        if model.get("vram") is not None:
            parse_int(
                model.get("vram"),
                f"{where} <model vram>",
                "vram='16384' (KiB)",
                low=1024,
                high=1 << 24,
            )
        if model.get("heads") is not None:
            parse_int(model.get("heads"), f"{where} <model heads>", "heads='1'", low=1, high=16)


INPUT_TYPES = ("mouse", "keyboard", "tablet")
INPUT_BUSES = ("ps2", "usb", "virtio")
PASSTHROUGH_INPUTS = ("passthrough", "evdev")


class InputDef(DeviceView):
    """``<input>``: a mouse, keyboard or tablet."""

    __slots__ = ()
    tag = "input"

    @property
    def type(self) -> str:
        """'mouse', 'keyboard' or 'tablet'."""
        return self.element.get("type") or "mouse"

    @property
    def bus(self) -> str:
        """'ps2' (built into PCs), 'usb' or 'virtio'; tablets default to usb."""
        value = self.element.get("bus")
        if value is not None:
            return value
        return "usb" if self.type == "tablet" else "ps2"

    def validate(self) -> None:
        where = self.label
        if self.element.get("type") in PASSTHROUGH_INPUTS:
            return  # a host device: the QEMU driver refuses it (refused_devices)
        kind = choice(self.element.get("type"), INPUT_TYPES, where, "type")
        bus = choice(self.element.get("bus"), INPUT_BUSES, where, "bus", self.bus)
        if kind == "tablet" and bus == "ps2":
            raise InvalidXML(
                f"{where}: PS/2 has no tablet; write <input type='tablet' bus='usb'/>."
            )


PANIC_MODELS = ("isa", "pvpanic")


class PanicDef(DeviceView):
    """``<panic>``: the device a guest kernel uses to report a panic."""

    __slots__ = ()
    tag = "panic"

    @property
    def model(self) -> str:
        """'isa' (the ISA pvpanic port, the default on PCs) or 'pvpanic' (PCI)."""
        return self.element.get("model") or "isa"

    def validate(self) -> None:
        choice(self.element.get("model"), PANIC_MODELS, self.label, "model", "isa")


BALLOON_MODELS = ("virtio", "none")


class MemballoonDef(DeviceView):
    """``<memballoon>``: lets the host take memory back from a running guest."""

    __slots__ = ()
    tag = "memballoon"

    @property
    def model(self) -> str:
        """'virtio' or 'none'."""
        return self.element.get("model") or "none"

    def validate(self) -> None:
        choice(self.element.get("model"), BALLOON_MODELS, "<memballoon>", "model")
        for attr in ("autodeflate", "freePageReporting"):
            choice(self.element.get(attr), ("on", "off"), "<memballoon>", attr, "off")


WATCHDOG_MODELS = ("i6300esb", "ib700", "itco")
WATCHDOG_ACTIONS = ("reset", "shutdown", "poweroff", "pause", "none", "dump", "inject-nmi")


class WatchdogDef(DeviceView):
    """``<watchdog>``: a hardware watchdog and what happens when it fires."""

    __slots__ = ()
    tag = "watchdog"

    @property
    def model(self) -> str:
        """'i6300esb' (PCI), 'ib700' (ISA) or 'itco' (built into q35)."""
        return self.element.get("model") or "i6300esb"

    @property
    def action(self) -> str:
        """What firing does: 'reset' (the default), 'shutdown', 'poweroff', 'pause', …."""
        return self.element.get("action") or "reset"

    def validate(self) -> None:
        where = self.label
        choice(self.element.get("model"), WATCHDOG_MODELS, where, "model")
        choice(self.element.get("action"), WATCHDOG_ACTIONS, where, "action", "reset")
