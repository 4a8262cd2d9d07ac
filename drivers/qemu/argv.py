"""DomainDef → QEMU command line, as a pure function.

The command line follows the shape of libvirt's modern QEMU argv (``-blockdev`` and JSON
``-device`` / ``-netdev``, ``-nodefaults``, a monitor on a socket the driver passes in as
an fd, ``-S`` so the driver can configure the guest before its CPUs run).

PCI: every ``<address type='pci'>`` the XML gives a device is honoured, written as libvirt
writes it (``"bus":"pci.N"``, ``"addr":"0xS"`` / ``"0xS.0xF"``, ``"multifunction":true``),
and the ``<controller type='pci'>`` elements become their QEMU devices (``pcie-root-port``,
``pci-bridge``, ``i82801b11-bridge``, ``pcie-pci-bridge``) with libvirt's ids ``pci.N``. A
device without an address is left for QEMU to place (the drivers give every device an
address when a domain is defined: :func:`drivers.domxml.pci.assign_addresses`).

Sound cards and audio backends come from :mod:`drivers.qemu.sound`, the machine around the
devices (CPU features and topology, timers, ``<pm>``, SMBIOS, I/O threads) from
:mod:`drivers.qemu.platform`, ``<qemu:commandline>`` from :mod:`drivers.qemu.qemu_namespace`,
virtio-serial channels from :mod:`drivers.qemu.channels`.
What none of them builds is refused at define time (:func:`refused_devices`), never left
out; controllers the XML does not list are added here as the modelled devices need them.

Device ids follow libvirt's aliases (``virtio-disk0``, ``net0``, ``serial0``,
``charserial0`` …) so that QMP replies (``query-chardev``, ``query-block``) can be matched
to devices the same way libvirt does; :func:`chardev_aliases` gives the chardev labels.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from lxml import etree

from drivers.domxml import CharDevDef, DiskDef, DomainDef
from drivers.domxml.channels import channel_problems
from drivers.domxml.drive import (
    DEFAULT_SCSI_MODEL,
    SCSI_MODELS,
    DriveAddress,
    drive_address,
    scsi_models,
)
from drivers.domxml.pci import CONTROLLER_DRIVERS, bus_name, read_address
from drivers.domxml.tree import show
from drivers.domxml.usb import usb_port
from drivers.errors import InvalidXML
from drivers.qemu import channels, device_parts, platform, qemu_namespace, sound


@dataclass(frozen=True)
class LaunchContext:
    """What the driver supplies for one start of a domain."""

    monitor_fd: int
    """A listening unix socket (inherited by QEMU) that becomes the QMP monitor."""
    domain_dir: str
    """The per-domain runtime directory, for sockets the XML leaves unnamed."""
    default_emulator: str = "qemu-system-x86_64"
    """The QEMU binary to run when the XML has no ``<emulator>``."""
    incoming: bool = False
    """Start as a migration's destination: ``-incoming defer`` (the address comes later,
    with ``migrate-incoming``)."""
    console_log: str | None = None
    """Where QEMU copies everything the guest writes on its console (unless the XML's
    ``<log file=…>`` names a file itself): kept from the first byte of boot, whether or not
    anybody is attached."""


# q35's built-in AHCI controller has six ports; libvirt's AHCI controller on pc too.
_SATA_PORTS = 6

_NIC_DRIVERS = {
    "virtio": "virtio-net-pci",
    "e1000": "e1000",
    "e1000e": "e1000e",
    "rtl8139": "rtl8139",
}
_PRIMARY_VIDEO = {
    "vga": "VGA",
    "cirrus": "cirrus-vga",
    "virtio": "virtio-vga",
    "qxl": "qxl-vga",
    "bochs": "bochs-display",
}
_SECONDARY_VIDEO = {"virtio": "virtio-gpu-pci", "qxl": "qxl"}
_USB_INPUTS = {"tablet": "usb-tablet", "mouse": "usb-mouse", "keyboard": "usb-kbd"}
_VIRTIO_INPUTS = {
    "tablet": "virtio-tablet-pci",
    "mouse": "virtio-mouse-pci",
    "keyboard": "virtio-keyboard-pci",
}
# cache mode → (cache.direct, cache.no-flush, device write-cache), libvirt's mapping
_CACHE: dict[str, tuple[bool, bool, str]] = {
    "none": (True, False, "on"),
    "writethrough": (False, False, "off"),
    "writeback": (False, False, "on"),
    "directsync": (True, False, "off"),
    "unsafe": (False, True, "on"),
}
# <memballoon> switches → virtio-balloon properties, as libvirt passes them
_BALLOON_SWITCHES = (
    ("autodeflate", "deflate-on-oom"),
    ("freePageReporting", "free-page-reporting"),
)
# QEMU has no "dump" watchdog action; libvirt pauses the guest and dumps it itself.
_WATCHDOG_ACTIONS = {"dump": "pause"}


def _json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _opt(value: str) -> str:
    """``value`` escaped for QEMU's comma-separated option syntax (',' is written ',,')."""
    return value.replace(",", ",,")


def _machine_family(machine: str) -> str:
    if machine == "q35" or machine.startswith("pc-q35-"):
        return "q35"
    if machine == "pc" or machine.startswith("pc-i440fx-"):
        return "pc"
    raise InvalidXML(
        f"<os><type>: machine='{machine}' is not supported; virtdeck builds PC guests, so "
        "write machine='q35' (or 'pc' for the older i440FX board)."
    )


# Device elements the QEMU driver does not build: refused at define time (rather than
# silently left out of the guest), each with what to do instead. docs/devices.md lists them.
_REFUSED_DEVICES = {
    "filesystem": "shared folders (virtiofs, 9p) are not implemented; remove <filesystem> "
    "and share files over the network or a disk image",
    "hostdev": "device passthrough is not implemented; remove <hostdev>",
    "redirdev": "USB redirection is not implemented; remove <redirdev>",
    "smartcard": "smartcards are not implemented; remove <smartcard>",
    "tpm": "TPM devices are not implemented; remove <tpm>",
    "vsock": "vsock is not implemented; remove <vsock>",
    "shmem": "shared memory devices are not implemented; remove <shmem>",
    "iommu": "a virtual IOMMU is not implemented; remove <iommu>",
    "parallel": "parallel ports are not implemented; remove <parallel>",
    "hub": "USB hubs are not implemented; remove <hub>",
    "lease": "lock leases are not implemented; remove <lease>",
    "memory": "memory hotplug devices are not implemented; remove <devices><memory>",
    "crypto": "crypto devices are not implemented; remove <crypto>",
    "nvram": "the nvram device is not implemented; remove <devices><nvram>",
}
_CONTROLLER_TYPES = ("pci", "usb", "sata", "ide", "scsi", "virtio-serial")
# <disk><driver> attributes virtdeck builds; any other is refused
_DISK_DRIVER_ATTRS = ("name", "type", "cache", "discard", "iothread")
_SCSI_DRIVERS = {"lsilogic": "lsi", "virtio-scsi": "virtio-scsi-pci"}


def _rng_problems(node: etree._Element) -> list[str]:
    if node.get("model") != "virtio":
        return [
            f"<rng model={show(node.get('model') or '')}>: only model='virtio' is "
            "implemented; write <rng model='virtio'>."
        ]
    backend = node.find("backend")
    kind = backend.get("model") if backend is not None else None
    if kind not in ("random", "builtin"):
        return [
            f"<rng> <backend model={show(kind or '')}>: only 'random' (a host device) and "
            "'builtin' are implemented; write <backend model='random'>/dev/urandom</backend>."
        ]
    if kind == "random" and backend is not None:
        path = (backend.text or "").strip() or "/dev/urandom"
        if not path.startswith("/"):
            return [
                f"<rng> <backend>: {show(path)} is not a device path; write e.g. "
                "<backend model='random'>/dev/urandom</backend>."
            ]
    rate = node.find("rate")
    if rate is not None:
        for attr in ("bytes", "period"):
            value = rate.get(attr)
            if value is not None and not (value.isdigit() and int(value) > 0):
                return [
                    f"<rng> <rate {attr}={show(value)}>: write a positive whole number, "
                    "e.g. <rate bytes='1024' period='1000'/>."
                ]
    return []


def _disk_driver(disk: DiskDef, attr: str) -> str | None:
    node = disk.element.find("driver")
    return None if node is None else node.get(attr)


# qxl's memory sizes: libvirt fills its defaults into the XML (KiB) and passes them all
_QXL_DEFAULTS = (("ram", "ram_size", 65536), ("vram", "vram_size", 65536))


def _qxl_props(video: etree._Element) -> dict[str, Any]:
    model = video.find("model")

    def size(attr: str, default: int) -> int:
        value = model.get(attr) if model is not None else None
        return int(value) if value is not None and value.isdigit() else default

    props: dict[str, Any] = {"max_outputs": size("heads", 1)}
    for attr, prop, default in _QXL_DEFAULTS:
        props[prop] = size(attr, default) * 1024
    props["vram64_size_mb"] = size("vram64", 0) // 1024
    props["vgamem_mb"] = size("vgamem", 16384) // 1024
    return props


def refused_devices(defn: DomainDef) -> list[str]:
    """Why the QEMU driver cannot build ``defn``'s devices as written: one sentence per
    element it would otherwise leave out of the guest (empty when it builds them all)."""
    devices = defn.root.find("devices")
    if devices is None:
        return []
    problems: list[str] = []
    seen: set[str] = set()
    for node in devices:
        if not isinstance(node.tag, str):
            continue
        tag = str(node.tag)
        why = _REFUSED_DEVICES.get(tag)
        if why is not None and tag not in seen:
            seen.add(tag)
            problems.append(f"<{tag}>: {why}.")
        elif tag == "controller" and node.get("type") not in _CONTROLLER_TYPES:
            problems.append(
                f"<controller type='{node.get('type')}'>: this controller is not implemented; "
                "remove it (virtdeck supports pci, usb, sata, ide, scsi and virtio-serial "
                "controllers)."
            )
        elif tag == "rng":
            problems.extend(_rng_problems(node))
        elif tag == "controller" and node.get("type") == "scsi":
            model = node.get("model") or DEFAULT_SCSI_MODEL
            if model not in SCSI_MODELS:
                problems.append(
                    f"<controller type='scsi' model={show(model)}>: this SCSI controller is not "
                    "implemented; write model='lsilogic' or model='virtio-scsi'."
                )
        elif tag == "input":
            problems.extend(_input_problems(node))
        elif tag == "disk":
            problems.extend(_disk_problems(node))
    problems.extend(channel_problems(devices))
    problems.extend(device_parts.refused_parts(devices))
    problems.extend(sound.refused_sound(devices))
    problems.extend(platform.refused_settings(defn))
    problems.extend(qemu_namespace.refused_namespace(defn))
    return problems


def _input_problems(node: etree._Element) -> list[str]:
    kind = node.get("type")
    if kind in ("passthrough", "evdev"):
        return [
            f"<input type='{kind}'>: passing a host input device to the guest is not "
            "implemented; remove it (a guest gets keyboard, mouse and tablet inputs on "
            "the usb, virtio or ps2 bus)."
        ]
    return []


def _disk_problems(node: etree._Element) -> list[str]:
    driver = node.find("driver")
    target = node.find("target")
    label = f"<disk> {show((target.get('dev') if target is not None else None) or '')}"
    problems = []
    if driver is not None:
        extra = sorted({str(key) for key in driver.attrib} - set(_DISK_DRIVER_ATTRS))
        if extra:
            problems.append(
                f"{label} <driver>: {', '.join(extra)} is not implemented; remove it "
                "(virtdeck builds name, type, cache, discard and iothread)."
            )
        discard = driver.get("discard")
        if discard not in (None, "unmap", "ignore"):
            problems.append(
                f"{label} <driver discard={show(discard)}>: write discard='unmap' or 'ignore'."
            )
    serial = node.findtext("serial")
    if serial is not None and not all(c.isalnum() or c in "-_.+ " for c in serial):
        problems.append(
            f"{label} <serial>: {show(serial)} may hold only letters, digits, space and "
            "'-', '_', '.', '+' (as in libvirt); write e.g. <serial>WD-1234</serial>."
        )
    return problems


def qemu_environment(defn: DomainDef) -> dict[str, str]:
    """The environment variables ``<qemu:commandline><qemu:env>`` sets for QEMU."""
    return qemu_namespace.environment(defn)


def chardev_aliases(defn: DomainDef) -> dict[str, list[CharDevDef]]:
    """QEMU chardev label → the serials/consoles it backs, in :func:`build_argv`'s naming.

    After a start, ``query-chardev`` reports e.g. ``charserial0`` → ``pty:/dev/pts/3``;
    every definition listed under that label shows the same host side, so the driver
    writes the path into each of them (a serial console backs both ``<serial>`` and
    ``<console>``).
    """
    aliases: dict[str, list[CharDevDef]] = {}
    serials = defn.serials
    for index, serial in enumerate(serials):
        aliases[f"charserial{index}"] = [serial]
    for index, console in enumerate(defn.consoles):
        if console.target_type == "serial":
            aliases.setdefault("charserial0", []).append(console)
        else:
            aliases[f"charconsole{index}"] = [console]
    for index, channel in enumerate(defn.channels):
        aliases[f"charchannel{index}"] = [channel]
    return aliases


def console_chardev(defn: DomainDef) -> tuple[CharDevDef, str] | None:
    """The guest's console and its chardev id: the first serial port (which a
    ``<console type='serial'>`` also names), else the first virtio console."""
    if defn.serials:
        return defn.serials[0], "charserial0"
    for index, console in enumerate(defn.consoles):
        return console, "charserial0" if console.target_type == "serial" else f"charconsole{index}"
    return None


def disk_nodes(defn: DomainDef) -> list[tuple[DiskDef, str]]:
    """Each disk with a source and the block node its device reads (:func:`build_argv`'s
    names: ``libvirt-N-format`` for qcow2, else ``libvirt-N-storage``; the last disk is 1)."""
    found: list[tuple[DiskDef, str]] = []
    number = sum(1 for disk in defn.disks if disk.source is not None)
    for disk in defn.disks:
        if disk.source is None:
            continue
        kind = "format" if disk.driver_type == "qcow2" else "storage"
        found.append((disk, f"libvirt-{number}-{kind}"))
        number -= 1
    return found


def disk_alias(disk: DiskDef) -> str:
    """The QEMU device id :func:`build_argv` gives ``disk`` (libvirt's alias)."""
    index = disk.target_index
    bus = disk.target_bus
    if bus == "virtio":
        return f"virtio-disk{index}"
    if bus == "usb":
        return f"usb-disk{index}"
    addr = drive_address(disk.element, disk.label)
    if bus == "sata":
        return f"sata{addr.controller}-0-{addr.unit}"
    if bus == "ide":
        return f"ide{addr.controller}-{addr.bus}-{addr.unit}"
    if scsi_models(disk.element.getparent()).get(addr.controller) == "virtio-scsi":
        return f"scsi{addr.controller}-{addr.bus}-{addr.target}-{addr.unit}"
    return f"scsi{addr.controller}-{addr.bus}-{addr.unit}"


def build_argv(defn: DomainDef, ctx: LaunchContext) -> list[str]:
    """The full QEMU command line that starts ``defn`` paused (``-S``).

    Raises:
        InvalidXML: the definition asks for something QEMU cannot do (the message says
            what to write instead).
        ValueError: the driver did not prepare ``defn`` (a VNC port still -1).
    """
    return _Builder(defn, ctx).build()


class _Builder:
    def __init__(self, defn: DomainDef, ctx: LaunchContext) -> None:
        self.defn = defn
        self.ctx = ctx
        self.args: list[str] = []
        self.family = _machine_family(defn.machine)
        self.ids: dict[str, str] = {}
        console = console_chardev(defn)
        self.console_id = console[1] if console is not None else None

    def add(self, *args: str) -> None:
        self.args.extend(args)

    def pci(self, element: etree._Element | None, where: str) -> dict[str, Any]:
        """The ``bus``/``multifunction``/``addr`` properties of ``element``'s PCI address
        ({} when it has none: QEMU then picks a slot)."""
        if element is None:
            return {}
        addr = read_address(element, where)
        if addr is None:
            return {}
        return addr.qemu(bus_name(addr.bus, self.family))

    def controller_nodes(self, kind: str) -> list[etree._Element]:
        devices = self.defn.root.find("devices")
        if devices is None:
            return []
        return [node for node in devices.findall("controller") if node.get("type") == kind]

    def device(self, props: dict[str, Any], owner: str) -> None:
        """Add ``-device``; a clash of ids (two targets with one index) is the XML's fault."""
        dev_id = props.get("id")
        if isinstance(dev_id, str):
            if dev_id in self.ids:
                raise InvalidXML(
                    f"{owner} and {self.ids[dev_id]} would both be QEMU device '{dev_id}'; "
                    "give them target names with different letters (vda, vdb, …)."
                )
            self.ids[dev_id] = owner
        self.add("-device", _json(props))

    def build(self) -> list[str]:
        defn = self.defn
        if defn.virt_type not in ("qemu", "kvm"):
            raise InvalidXML(
                f"<domain type='{defn.virt_type}'> is not run by QEMU; write "
                "<domain type='qemu'> (or 'kvm')."
            )
        accel = "kvm" if defn.virt_type == "kvm" else "tcg"
        machine = (
            f"{defn.machine},usb=off{platform.machine_properties(defn)},dump-guest-core=off"
            f"{platform.machine_tail(defn)}"
        )
        if not defn.acpi:
            machine += ",acpi=off"
        memory_mib = -(-defn.memory_kib // 1024)
        self.add(
            defn.emulator or self.ctx.default_emulator,
            "-name",
            f"guest={_opt(defn.name)},debug-threads=on",
            "-S",
            "-machine",
            machine,
            "-accel",
            accel,
            "-cpu",
            self.cpu(accel),
            "-m",
            f"size={memory_mib * 1024}k",
            "-overcommit",
            "mem-lock=off",
            "-smp",
            platform.smp(defn),
        )
        for obj in platform.iothread_objects(defn):
            self.add("-object", obj)
        self.add("-uuid", defn.uuid)
        for table in platform.smbios(defn):
            self.add("-smbios", table)
        if not defn.graphics:
            self.add("-display", "none")
        self.add(
            "-no-user-config",
            "-nodefaults",
            "-chardev",
            f"socket,id=charmonitor,fd={self.ctx.monitor_fd},server=on,wait=off",
            "-mon",
            "chardev=charmonitor,id=monitor,mode=control",
            "-rtc",
            platform.rtc(defn),
        )
        for value in platform.timer_globals(defn):
            self.add("-global", value)
        # Every guest shutdown stops instead of exiting so the driver can apply
        # on_poweroff (and tell a guest shutdown from a crash) before QEMU goes away.
        self.add("-no-shutdown")
        for value in platform.pm_globals(defn, self.family):
            self.add("-global", value)
        if defn.on_reboot == "destroy":
            self.add("-action", "reboot=shutdown")
        self.add("-boot", "strict=on")
        self.kernel()
        self.controllers()
        self.disks()
        self.nics()
        self.chardevs()
        channels.ports(self)
        self.inputs()
        self.audio()
        self.graphics()
        self.sounds()
        self.misc_devices()
        if self.ctx.incoming:
            self.add("-incoming", "defer")
        # <qemu:commandline>: after everything virtdeck builds, as libvirt appends them
        self.args.extend(qemu_namespace.extra_args(defn))
        self.add("-msg", "timestamp=on")
        return self.args

    def cpu(self, accel: str) -> str:
        mode = self.defn.cpu_mode
        if mode is None:
            return "qemu64"
        if mode == "maximum":
            return "max"
        if mode == "host-model":
            return "host" if accel == "kvm" else "max"
        if mode == "host-passthrough":
            if accel != "kvm":
                raise InvalidXML(
                    "<cpu mode='host-passthrough'> needs type='kvm': without KVM there is no "
                    "host CPU to pass through; write <domain type='kvm'>, or "
                    "<cpu mode='maximum'/> for the most capable emulated CPU."
                )
            return "host"
        return (self.defn.cpu_model or "qemu64") + platform.cpu_features(self.defn)

    def kernel(self) -> None:
        defn = self.defn
        if defn.kernel is None:
            for tag, value in (("initrd", defn.initrd), ("cmdline", defn.cmdline)):
                if value is not None:
                    raise InvalidXML(
                        f"<os><{tag}> needs a <kernel>: QEMU only loads an initrd and "
                        "command line together with a kernel; add <kernel>PATH</kernel> "
                        f"or remove <{tag}>."
                    )
            return
        self.add("-kernel", defn.kernel)
        if defn.initrd is not None:
            self.add("-initrd", defn.initrd)
        if defn.cmdline is not None:
            self.add("-append", defn.cmdline)

    # --- controllers and disks ----------------------------------------------------------

    def pci_controllers(self) -> None:
        """``<controller type='pci'>`` elements in index order, as libvirt emits them."""
        nodes = sorted(self.controller_nodes("pci"), key=lambda n: int(n.get("index") or "0", 0))
        for node in nodes:
            index = int(node.get("index") or "0", 0)
            model = node.get("model") or ""
            driver = CONTROLLER_DRIVERS.get(model)
            if driver is None:
                continue
            where = f"<controller type='pci' index='{index}'>"
            props: dict[str, Any] = {"driver": driver}
            addr = read_address(node, where)
            if model == "pcie-root-port":
                target = node.find("target")
                port = target.get("port") if target is not None else None
                chassis = target.get("chassis") if target is not None else None
                default_port = 0 if addr is None else addr.slot * 8 + addr.function
                props["port"] = int(port, 0) if port is not None else default_port
                props["chassis"] = int(chassis, 0) if chassis is not None else index
            elif model == "pci-bridge":
                target = node.find("target")
                number = target.get("chassisNr") if target is not None else None
                props["chassis_nr"] = int(number, 0) if number is not None else index
            props["id"] = f"pci.{index}"
            props.update(self.pci(node, where))
            self.device(props, where)

    def controllers(self) -> None:
        defn = self.defn
        self.pci_controllers()
        buses = {disk.target_bus for disk in defn.disks}
        usb_inputs = any(i.bus == "usb" for i in defn.inputs) or any(
            node.get("model") == "usb" for node in sound.sound_nodes(defn.root.find("devices"))
        )
        usb_nodes = self.controller_nodes("usb")
        if usb_nodes:
            node = usb_nodes[0]
            model = node.get("model") or ("qemu-xhci" if self.family == "q35" else "piix3-uhci")
            where = "<controller type='usb'>"
            if model == "none":
                if "usb" in buses or usb_inputs:
                    raise InvalidXML(
                        f"{where} has model='none', but a USB disk or input needs a USB "
                        "controller; write model='qemu-xhci' or remove the USB devices."
                    )
            else:
                driver = "piix3-usb-uhci" if model == "piix3-uhci" else "qemu-xhci"
                props: dict[str, Any] = {"driver": driver, "id": "usb"}
                ports = node.get("ports")
                if driver == "qemu-xhci" and ports is not None and ports.isdigit():
                    props["p2"] = props["p3"] = int(ports)
                props.update(self.pci(node, where))
                self.device(props, "the USB controller")
        elif "usb" in buses or usb_inputs:
            self.device({"driver": "qemu-xhci", "id": "usb"}, "the USB controller")
        if "sata" in buses and self.family == "pc":
            props = {"driver": "ahci", "id": "sata0"}
            nodes = self.controller_nodes("sata")
            props.update(self.pci(nodes[0] if nodes else None, "<controller type='sata'>"))
            self.device(props, "the SATA controller")
        self.scsi_controllers()
        channels.controllers(self)

    def scsi_controllers(self) -> None:
        """One controller per index the XML lists or a SCSI disk's address names (libvirt's
        default model lsilogic = QEMU's lsi), in index order."""
        devices = self.defn.root.find("devices")
        models = scsi_models(devices)
        for disk in self.defn.disks:
            if disk.target_bus == "scsi":
                index = drive_address(disk.element, disk.label).controller
                models.setdefault(index, DEFAULT_SCSI_MODEL)
        nodes = {int(n.get("index") or "0"): n for n in self.controller_nodes("scsi")}
        for index, model in sorted(models.items()):
            where = f"<controller type='scsi' index='{index}'>"
            props: dict[str, Any] = {"driver": _SCSI_DRIVERS[model], "id": f"scsi{index}"}
            props.update(self.pci(nodes.get(index), where))
            self.device(props, where)

    def boot_indexes(self) -> tuple[dict[int, int], dict[int, int]]:
        """Boot index per disk and per NIC (by list position)."""
        defn = self.defn
        disks, nics = defn.disks, defn.interfaces
        disk_boot: dict[int, int] = {}
        nic_boot: dict[int, int] = {}
        if defn.boot_devs:
            order = 1
            for dev in defn.boot_devs:
                if dev == "network":
                    if nics and 0 not in nic_boot:
                        nic_boot[0] = order
                        order += 1
                    continue
                wanted = {"hd": "disk", "cdrom": "cdrom"}.get(dev)
                for index, disk in enumerate(disks):
                    if disk.device == wanted and index not in disk_boot:
                        disk_boot[index] = order
                        order += 1
                        break
            return disk_boot, nic_boot
        for index, disk in enumerate(disks):
            if disk.boot_order is not None:
                disk_boot[index] = disk.boot_order
        for index, nic in enumerate(nics):
            if nic.boot_order is not None:
                nic_boot[index] = nic.boot_order
        return disk_boot, nic_boot

    def disks(self) -> None:
        disks = self.defn.disks
        disk_boot, _ = self.boot_indexes()
        node_number = sum(1 for disk in disks if disk.source is not None)
        for index, disk in enumerate(disks):
            props = self.disk_device(disk)
            source = disk.source
            cache = _CACHE.get(disk.cache or "")
            if source is not None:
                storage = f"libvirt-{node_number}-storage"
                if disk.type == "block":
                    driver = "host_cdrom" if disk.device == "cdrom" else "host_device"
                else:
                    driver = "file"
                node: dict[str, Any] = {"driver": driver, "filename": source, "node-name": storage}
                if cache is not None:
                    node["cache"] = {"direct": cache[0], "no-flush": cache[1]}
                node["read-only"] = disk.readonly
                discard = _disk_driver(disk, "discard")
                if discard is not None and disk.driver_type != "qcow2":
                    node["discard"] = discard
                self.add("-blockdev", _json(node))
                top = storage
                if disk.driver_type == "qcow2":
                    top = f"libvirt-{node_number}-format"
                    fmt: dict[str, Any] = {"node-name": top, "read-only": disk.readonly}
                    if discard is not None:
                        fmt["discard"] = discard
                    if cache is not None:
                        fmt["cache"] = {"direct": cache[0], "no-flush": cache[1]}
                    fmt["driver"] = "qcow2"
                    fmt["file"] = storage
                    self.add("-blockdev", _json(fmt))
                props["drive"] = top
                node_number -= 1
            props["id"] = disk_alias(disk)
            if index in disk_boot:
                props["bootindex"] = disk_boot[index]
            if cache is not None:
                props["write-cache"] = cache[2]
            self.device(self.disk_extras(disk, props), disk.label)

    def disk_extras(self, disk: DiskDef, props: dict[str, Any]) -> dict[str, Any]:
        """What libvirt adds to a disk's -device: its I/O thread, a SCSI disk's device_id
        (its serial, else ``drive-`` + its id), the USB port, the ``<serial>``."""
        bus = disk.target_bus
        serial = disk.element.findtext("serial")
        iothread = _disk_driver(disk, "iothread")
        if iothread is not None:
            props = {"driver": props.pop("driver"), "iothread": f"iothread{iothread}", **props}
        if bus == "scsi":
            props["device_id"] = serial if serial is not None else f"drive-{props['id']}"
        if bus == "usb":
            port = usb_port(disk.element)
            if port is not None:
                props["port"] = str(port)
        if serial is not None:
            props["serial"] = serial
        return props

    def disk_device(self, disk: DiskDef) -> dict[str, Any]:
        """The bus-specific part of a disk's -device (driver and bus), id/drive added later."""
        bus, cdrom = disk.target_bus, disk.device == "cdrom"
        where = disk.label
        if disk.readonly and not cdrom and bus in ("ide", "sata"):
            raise InvalidXML(
                f"{where}: QEMU's IDE/SATA hard disks cannot be read-only; use "
                "bus='virtio' or bus='scsi' for a <readonly/> disk, or make it a cdrom."
            )
        if bus != "virtio" and read_address(disk.element, where) is not None:
            raise InvalidXML(
                f"{where}: a bus='{bus}' disk sits on its controller, not on a PCI slot; "
                "remove its <address type='pci'> (or write bus='virtio')."
            )
        if bus == "virtio":
            if cdrom:
                raise InvalidXML(
                    f"{where}: a virtio disk has no removable media, so it cannot be a cdrom; "
                    f"write bus='{'sata' if self.family == 'q35' else 'ide'}' (or 'scsi')."
                )
            return {"driver": "virtio-blk-pci", **self.pci(disk.element, where)}
        if bus == "usb":
            if cdrom:
                raise InvalidXML(
                    f"{where}: QEMU's USB storage cannot be a cdrom; write "
                    f"bus='{'sata' if self.family == 'q35' else 'ide'}' (or 'scsi')."
                )
            return {"driver": "usb-storage", "bus": "usb.0"}  # port: disk_extras
        addr = drive_address(disk.element, where)
        if bus == "scsi":
            return self.scsi_disk(disk, addr)
        ide_driver = "ide-cd" if cdrom else "ide-hd"
        if bus == "ide":
            if self.family == "q35":
                raise InvalidXML(
                    f"{where}: the q35 machine has no IDE bus; use bus='sata' (its AHCI "
                    "controller), or machine='pc' for IDE."
                )
            if addr.controller != 0 or addr.bus > 1 or addr.unit > 1 or addr.target != 0:
                raise InvalidXML(
                    f"{where}: the pc machine's IDE controller has four places (hda-hdd: "
                    "controller 0, bus 0-1, unit 0-1); use bus='sata' or bus='virtio' for "
                    "more disks."
                )
            return {"driver": ide_driver, "bus": f"ide.{addr.bus}", "unit": addr.unit}
        if addr.controller != 0 or addr.unit >= _SATA_PORTS or addr.bus or addr.target:
            raise InvalidXML(
                f"{where}: the SATA controller has six ports (sda-sdf: controller 0, unit "
                "0-5); use bus='virtio' or bus='scsi' for more disks."
            )
        controller = "ide" if self.family == "q35" else "sata0"
        return {"driver": ide_driver, "bus": f"{controller}.{addr.unit}"}

    def scsi_disk(self, disk: DiskDef, addr: DriveAddress) -> dict[str, Any]:
        """A SCSI disk on its controller: an lsilogic bus has units 0-6 (scsi-id); a
        virtio-scsi one channel/target/LUN, as libvirt writes them."""
        driver = "scsi-cd" if disk.device == "cdrom" else "scsi-hd"
        model = scsi_models(self.defn.root.find("devices")).get(addr.controller, DEFAULT_SCSI_MODEL)
        if model == "virtio-scsi":
            return {
                "driver": driver,
                "bus": f"scsi{addr.controller}.0",
                "channel": addr.bus,
                "scsi-id": addr.target,
                "lun": addr.unit,
            }
        if addr.bus or addr.target or addr.unit > 6:
            raise InvalidXML(
                f"{disk.label}: an lsilogic SCSI controller has one bus with units 0-6; write "
                "<address type='drive' controller='N' bus='0' target='0' unit='0-6'/>, or use "
                "<controller type='scsi' model='virtio-scsi'>."
            )
        return {"driver": driver, "bus": f"scsi{addr.controller}.0", "scsi-id": addr.unit}

    # --- network ------------------------------------------------------------------------

    def nics(self) -> None:
        _, nic_boot = self.boot_indexes()
        for index, nic in enumerate(self.defn.interfaces):
            netdev_id = f"hostnet{index}"
            if nic.type == "bridge":
                netdev: dict[str, Any] = {
                    "type": "bridge",
                    "br": nic.source_bridge,
                    "id": netdev_id,
                }
            elif nic.type == "ethernet":
                # An existing tap (managed='no'); libvirt opens it and passes the fd.
                netdev = {
                    "type": "tap",
                    "ifname": nic.target_dev,
                    "script": "no",
                    "downscript": "no",
                    "id": netdev_id,
                }
            else:
                # type='network' maps to user-mode NAT: libvirt's networks need a root
                # daemon (bridge, dnsmasq, firewall rules), virtdeck runs unprivileged,
                # and user-mode networking gives the guest the same outbound NAT.
                netdev = {"type": "user", "id": netdev_id}
            self.add("-netdev", _json(netdev))
            props: dict[str, Any] = {
                "driver": _NIC_DRIVERS[nic.model],
                "netdev": netdev_id,
                "id": f"net{index}",
                "mac": nic.mac,
            }
            props.update(self.pci(nic.element, nic.label))
            if index in nic_boot:
                props["bootindex"] = nic_boot[index]
            self.device(props, nic.label)

    # --- serial ports and consoles ------------------------------------------------------

    def chardev(self, dev: CharDevDef, chardev_id: str) -> None:
        kind = dev.type
        if kind == "pty":
            spec = f"pty,id={chardev_id}"
        elif kind == "file":
            spec = f"file,id={chardev_id},path={_opt(dev.source_path or '')}"
        elif kind == "unix":
            spec = f"socket,id={chardev_id},path={_opt(dev.source_path or '')}"
            if dev.source_mode == "bind":
                spec += ",server=on,wait=off"
        else:
            spec = f"null,id={chardev_id}"
        if dev.log_file is not None:
            spec += f",logfile={_opt(dev.log_file)}"
            append = dev.element.find("log")
            if append is not None and append.get("append") is not None:
                # as libvirt: QEMU's default (off) unless the XML says
                spec += f",logappend={'on' if dev.log_append else 'off'}"
        elif self.ctx.console_log is not None and chardev_id == self.console_id:
            spec += f",logfile={_opt(self.ctx.console_log)},logappend=on"
        self.add("-chardev", spec)

    def isa_serial(self, dev: CharDevDef, index: int) -> None:
        self.chardev(dev, f"charserial{index}")
        self.device(
            {
                "driver": "isa-serial",
                "chardev": f"charserial{index}",
                "id": f"serial{index}",
                "index": dev.target_port,
            },
            dev.label,
        )

    def chardevs(self) -> None:
        serials = self.defn.serials
        for index, serial in enumerate(serials):
            self.isa_serial(serial, index)
        for index, console in enumerate(self.defn.consoles):
            if console.target_type == "serial":
                # The serial console is serial0; only without a <serial> does it create
                # that port itself, as in libvirt.
                if not serials:
                    self.isa_serial(console, 0)
                continue
            self.chardev(console, f"charconsole{index}")
            self.device(
                {
                    "driver": "virtconsole",
                    "chardev": f"charconsole{index}",
                    "id": f"console{index}",
                },
                console.label,
            )

    # --- display ------------------------------------------------------------------------

    def graphics(self) -> None:
        defn = self.defn
        graphics = defn.graphics
        if graphics:
            vnc = graphics[0]
            if vnc.listen_type == "socket":
                path = vnc.socket or f"{self.ctx.domain_dir}/vnc.sock"
                spec = f"unix:{_opt(path)}"
            else:
                if vnc.port == -1:
                    raise ValueError(
                        f"domain '{defn.name}': the VNC port is still -1; the driver must "
                        "pick a port for autoport displays before build_argv"
                    )
                host = vnc.listen
                try:
                    if ipaddress.ip_address(host).version == 6:
                        host = f"[{host}]"
                except ValueError:
                    pass
                spec = f"{host}:{vnc.port - 5900}"
            if vnc.passwd is not None:
                # The password itself never goes on the command line (it would show in
                # ps); the driver sets it with QMP set_password before the guest runs.
                spec += ",password=on"
            share = vnc.element.get("sharePolicy")
            if share is not None:
                spec += f",share={share}"
            audio = sound.first_audio(defn.root.find("devices"))
            self.add("-vnc", f"{spec},audiodev={audio}")
            keymap = vnc.element.get("keymap")
            if keymap is not None:
                self.add("-k", keymap)
        videos = defn.videos
        if not videos and graphics:
            self.device({"driver": "VGA", "id": "video0"}, "<video>")
        primary_done = False
        for index, video in enumerate(videos):
            if video.model == "none":
                continue
            props: dict[str, Any]
            if not primary_done:
                props = {"driver": _PRIMARY_VIDEO[video.model], "id": f"video{index}"}
                primary_done = True
            elif video.model in _SECONDARY_VIDEO:
                props = {"driver": _SECONDARY_VIDEO[video.model], "id": f"video{index}"}
            else:
                raise InvalidXML(
                    f"{video.label}: only virtio and qxl cards can be a second video device; "
                    "write <model type='virtio'/> or remove it."
                )
            if video.model == "vga":
                # libvirt writes its default vram (16 MiB) into every VGA card's XML
                props["vgamem_mb"] = max(1, (video.vram_kib or 16384) // 1024)
            elif video.model == "bochs":
                props["vgamem"] = (video.vram_kib or 16384) * 1024
            if video.model == "qxl":
                props.update(_qxl_props(video.element))
            elif video.model == "virtio":
                # libvirt fills heads='1' into every card and writes it for virtio
                props["max_outputs"] = video.heads
            props.update(self.pci(video.element, video.label))
            self.device(props, video.label)

    def inputs(self) -> None:
        for index, item in enumerate(self.defn.inputs):
            if item.bus == "usb":
                props = {"driver": _USB_INPUTS[item.type], "id": f"input{index}", "bus": "usb.0"}
                port = usb_port(item.element)
                if port is not None:
                    props["port"] = str(port)
            elif item.bus == "virtio":
                props = {"driver": _VIRTIO_INPUTS[item.type], "id": f"input{index}"}
                props.update(self.pci(item.element, item.label))
            else:
                # PS/2 mouse and keyboard are part of every PC machine.
                continue
            self.device(props, item.label)

    # --- audio and sound ----------------------------------------------------------------

    def audio(self) -> None:
        """``-audiodev`` for each ``<audio>`` (an implicit silent one when a display or a
        sound card needs a backend and the XML has none, as libvirt adds)."""
        devices = self.defn.root.find("devices")
        needed = bool(self.defn.graphics or sound.sound_nodes(devices))
        for props in sound.audiodevs(devices, needed):
            self.add("-audiodev", _json(props))

    def sounds(self) -> None:
        devices = self.defn.root.find("devices")
        default = sound.first_audio(devices)
        for index, node in enumerate(sound.sound_nodes(devices)):
            where = f"<sound> #{index + 1}"
            placement: dict[str, Any]
            if node.get("model") == "usb":
                placement = {"bus": "usb.0"}
                port = usb_port(node)
                if port is not None:
                    placement["port"] = str(port)
            elif node.get("model") == "sb16":
                placement = {}  # an ISA card
            else:
                placement = self.pci(node, where)
            for props in sound.sound_devices(node, index, default, placement):
                self.device(props, where)

    # --- panic, balloon, rng, watchdog --------------------------------------------------

    def rngs(self) -> None:
        """``<rng model='virtio'>``: a backend object and virtio-rng-pci, as libvirt."""
        devices = self.defn.root.find("devices")
        nodes = devices.findall("rng") if devices is not None else []
        for index, node in enumerate(nodes):
            where = f"<rng> #{index + 1}"
            problems = _rng_problems(node)
            if problems:
                raise InvalidXML(problems[0])
            backend = node.find("backend")
            obj: dict[str, Any]
            if backend is not None and backend.get("model") == "builtin":
                obj = {"qom-type": "rng-builtin", "id": f"objrng{index}"}
            else:
                path = ((backend.text if backend is not None else None) or "").strip()
                obj = {
                    "qom-type": "rng-random",
                    "id": f"objrng{index}",
                    "filename": path or "/dev/urandom",
                }
            self.add("-object", _json(obj))
            props: dict[str, Any] = {
                "driver": "virtio-rng-pci",
                "rng": f"objrng{index}",
                "id": f"rng{index}",
            }
            rate = node.find("rate")
            if rate is not None and rate.get("bytes") is not None:
                props["max-bytes"] = int(rate.get("bytes") or "0")
                props["period"] = int(rate.get("period") or "1000")
            props.update(self.pci(node, where))
            self.device(props, where)

    def misc_devices(self) -> None:
        defn = self.defn
        for panic in defn.panics:
            if panic.model == "isa":
                # at QEMU's default port 0x505, which libvirt does not write either
                self.device({"driver": "pvpanic"}, panic.label)
            else:
                self.device(
                    {"driver": "pvpanic-pci", **self.pci(panic.element, panic.label)},
                    panic.label,
                )
        balloon = defn.memballoon
        if balloon is not None and balloon.model == "virtio":
            props: dict[str, Any] = {"driver": "virtio-balloon-pci", "id": "balloon0"}
            for attr, prop in _BALLOON_SWITCHES:
                if balloon.element.get(attr) in ("on", "off"):
                    props[prop] = balloon.element.get(attr) == "on"
            self.device({**props, **self.pci(balloon.element, "<memballoon>")}, "<memballoon>")
        self.rngs()
        seen: set[str] = set()
        for index, watchdog in enumerate(defn.watchdogs):
            if watchdog.model in seen and watchdog.model in ("ib700", "itco"):
                raise InvalidXML(
                    f"{watchdog.label}: a PC has only one {watchdog.model} watchdog; remove "
                    "the second one (an i6300esb can be added next to it)."
                )
            seen.add(watchdog.model)
            if watchdog.model == "itco":
                if self.family != "q35":
                    raise InvalidXML(
                        f"{watchdog.label}: the iTCO watchdog is part of the q35 chipset; "
                        "write machine='q35', or model='i6300esb' for the pc machine."
                    )
                # The chipset's watchdog exists already; it only has to be allowed to
                # reset the machine.
                self.add("-global", "ICH9-LPC.noreboot=off")
                continue
            self.device(
                {
                    "driver": watchdog.model,
                    "id": f"watchdog{index}",
                    **self.pci(watchdog.element, watchdog.label),
                },
                watchdog.label,
            )
        if defn.watchdogs:
            # QEMU 7.2's -watchdog-action, as libvirt 9.0 writes it (also for the default)
            action = defn.watchdogs[0].action
            self.add("-watchdog-action", _WATCHDOG_ACTIONS.get(action, action))
