"""What the new-domain form asks for, checked and turned into libvirt domain XML.

This module is pure: it imports neither textual nor rich, so it can be tested (and reused by
a future ``virtdeck create`` command) without a terminal. :class:`DomainSpec` holds the
answers, :func:`validate_spec` says what is wrong with them field by field, and
:func:`build_domain_xml` writes a definition that :func:`drivers.domxml.parse_domain`
accepts. UUID and MAC addresses are left out unless given, so the preview is stable and the
driver fills them in at define time, as libvirt does.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from drivers.domxml.domain import MAX_VCPUS, NAME_MAX, NameFault, name_fault
from drivers.storage import VOLUME_CHARS, VOLUME_NAME_MAX

Boot = Literal["iso", "disk", "kernel"]
DiskChoice = Literal["none", "new", "existing"]
DiskFormat = Literal["qcow2", "raw"]
Network = Literal["user", "none", "bridge"]
CrashAction = Literal["destroy", "restart", "preserve"]
VirtType = Literal["qemu", "kvm"]

BOOTS: tuple[Boot, ...] = ("iso", "disk", "kernel")
DISK_CHOICES: tuple[DiskChoice, ...] = ("none", "new", "existing")
DISK_FORMATS: tuple[DiskFormat, ...] = ("qcow2", "raw")
NETWORKS: tuple[Network, ...] = ("user", "none", "bridge")
CRASH_ACTIONS: tuple[CrashAction, ...] = ("destroy", "restart", "preserve")
VIRT_TYPES: tuple[VirtType, ...] = ("qemu", "kvm")

MIN_MEMORY_MIB = 16
MAX_MEMORY_MIB = 4 << 20  # 4 TiB
MAX_DISK_GIB = 1 << 20  # 1 PiB, the storage pool's own limit
_SUFFIX: dict[DiskFormat, str] = {"qcow2": ".qcow2", "raw": ".img"}

_VOLUME_CHAR = re.compile(f"[^{VOLUME_CHARS}]")
# Linux interface names: at most 15 of these (drivers.domxml.devices).
_BRIDGE_RE = re.compile(r"[A-Za-z0-9_.-]{1,15}", re.ASCII)


@dataclass(frozen=True)
class DomainSpec:
    """The answers of the new-domain form.

    Only the fields that the chosen options use matter: ``iso_path`` for an ISO boot,
    ``kernel``/``initrd``/``cmdline`` for a direct kernel boot, ``disk_size_gib`` for a new
    disk, ``existing_disk_path`` for an existing one (and for a disk boot, which boots from
    that image), ``bridge`` for a bridged NIC.
    """

    name: str = ""
    memory_mib: int = 1024
    vcpus: int = 1
    boot: Boot = "iso"
    iso_path: str = ""
    kernel: str = ""
    initrd: str = ""
    cmdline: str = ""
    disk: DiskChoice = "new"
    disk_size_gib: int = 10
    disk_format: DiskFormat = "qcow2"
    """The format of the new image, or of the existing one (the form takes it from the pool)."""
    existing_disk_path: str = ""
    network: Network = "user"
    bridge: str = ""
    vnc: bool = True
    serial: bool = True
    on_crash: CrashAction = "destroy"
    virt_type: VirtType = "qemu"
    """'kvm' only where the caller knows the host allows it."""


# --- validation -----------------------------------------------------------------------------


_NAME_ADVICE: dict[NameFault, str] = {
    "empty": "Give the domain a name, e.g. vm1.",
    "long": "The name is {length} characters long; the limit is {limit}.",
    "control": "The name contains a control character; use letters, digits and '-'.",
    "slash": "The name is used as a file name, so it cannot contain '/'.",
    "dot": "A name starting with '.' would make hidden files; start with a letter or digit.",
    "space": "The name starts or ends with a space; remove it.",
}


def name_error(name: str) -> str | None:
    """Why ``name`` cannot name a domain (the driver's rules), or None."""
    fault = name_fault(name)
    if fault is None:
        return None
    return _NAME_ADVICE[fault].format(length=len(name), limit=NAME_MAX)


def _path_error(path: str, what: str, example: str) -> str | None:
    if not path:
        return f"Give the {what}, e.g. {example}."
    if not path.startswith("/"):
        return f"The {what} must be an absolute path (starting with '/'), e.g. {example}."
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        return f"The {what} contains a control character."
    return None


def validate_spec(
    spec: DomainSpec,
    existing_names: Collection[str],
    *,
    existing_volumes: Collection[str] = (),
    allow_kvm: bool = False,
) -> dict[str, str]:
    """What is wrong with ``spec``: field name → a sentence saying what to do. Empty if valid.

    Args:
        spec: the form's answers.
        existing_names: the names of the domains already on the chosen host.
        existing_volumes: the image names already in the host's pool (a new disk image
            must not take one of them).
        allow_kvm: whether the host may run ``virt_type='kvm'`` domains.
    """
    errors: dict[str, str] = {}
    problem = name_error(spec.name)
    if problem is None and spec.name in existing_names:
        problem = f"A domain called '{spec.name}' already exists on this host; choose another name."
    if problem is not None:
        errors["name"] = problem
    if not MIN_MEMORY_MIB <= spec.memory_mib <= MAX_MEMORY_MIB:
        errors["memory_mib"] = (
            f"Memory must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB, e.g. 1024."
        )
    if not 1 <= spec.vcpus <= MAX_VCPUS:
        errors["vcpus"] = f"A domain has 1 to {MAX_VCPUS} vCPUs."
    if spec.boot not in BOOTS:
        errors["boot"] = "Boot from an ISO image, an existing disk image or a kernel."
    elif spec.boot == "iso":
        problem = _path_error(spec.iso_path, "ISO image", "/var/lib/virtdeck/images/debian.iso")
        if problem is not None:
            errors["iso_path"] = "Choose an ISO image." if not spec.iso_path else problem
    elif spec.boot == "kernel":
        problem = _path_error(spec.kernel, "kernel", "/var/lib/virtdeck/boot/vmlinuz")
        if problem is not None:
            errors["kernel"] = problem
        if spec.initrd:
            problem = _path_error(spec.initrd, "initrd", "/var/lib/virtdeck/boot/initrd.img")
            if problem is not None:
                errors["initrd"] = problem
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in spec.cmdline):
            errors["cmdline"] = "The kernel command line is one line without control characters."
    elif spec.disk != "existing":  # spec.boot == "disk"
        errors["disk"] = "Booting from a disk image uses it as the disk; choose 'Existing image'."
    if spec.disk not in DISK_CHOICES:
        errors["disk"] = "Choose no disk, a new image or an existing image."
    elif spec.disk == "new":
        if spec.disk_format not in DISK_FORMATS:
            errors["disk_format"] = "A new image is qcow2 or raw."
        if not 1 <= spec.disk_size_gib <= MAX_DISK_GIB:
            errors["disk_size_gib"] = f"A new image has 1 to {MAX_DISK_GIB} GiB, e.g. 20."
        elif "name" not in errors and new_disk_name(spec) in existing_volumes:
            errors["disk"] = (
                f"The image {new_disk_name(spec)} already exists in this host's pool; choose "
                "another domain name or use it as an existing image."
            )
    elif spec.disk == "existing":
        problem = _path_error(
            spec.existing_disk_path, "disk image", "/var/lib/virtdeck/images/web1.qcow2"
        )
        if problem is not None:
            errors["existing_disk_path"] = (
                "Choose a disk image." if not spec.existing_disk_path else problem
            )
        if spec.disk_format not in DISK_FORMATS:
            errors["disk_format"] = "A disk image is qcow2 or raw."
    if spec.network not in NETWORKS:
        errors["network"] = "Choose user-mode NAT, no network or a bridge."
    elif spec.network == "bridge" and not _BRIDGE_RE.fullmatch(spec.bridge):
        errors["bridge"] = (
            "Give the host bridge's name (up to 15 letters, digits, '.', '_' or '-'), e.g. br0."
        )
    if spec.on_crash not in CRASH_ACTIONS:
        errors["on_crash"] = "On a crash the domain is destroyed, restarted or preserved."
    if spec.virt_type not in VIRT_TYPES or (spec.virt_type == "kvm" and not allow_kvm):
        errors["virt_type"] = "This host runs domains with QEMU's TCG only (type 'qemu')."
    return errors


# --- the new disk image -----------------------------------------------------------------------


def new_disk_name(spec: DomainSpec) -> str:
    """The pool image name for the new disk: the domain name made file-safe plus a suffix.

    ``web 1`` with qcow2 gives ``web_1.qcow2``; raw images end in ``.img``.
    """
    suffix = _SUFFIX.get(spec.disk_format, ".qcow2")
    base = _VOLUME_CHAR.sub("_", spec.name.strip())
    base = re.sub(r"^[^A-Za-z0-9]+", "", base) or "disk"
    return base[: VOLUME_NAME_MAX - len(suffix)] + suffix


# --- XML -----------------------------------------------------------------------------------------


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    node = etree.SubElement(parent, tag, attrs)
    if text is not None:
        node.text = text
    return node


def build_domain_xml(
    spec: DomainSpec,
    disk_path: str | None,
    *,
    uuid: str | None = None,
    mac: str | None = None,
) -> str:
    """The libvirt domain XML for ``spec``.

    Args:
        spec: the answers; :func:`validate_spec` should have found nothing wrong.
        disk_path: the disk image's path (for a new disk, where the pool put it, or will);
            None uses ``spec.existing_disk_path`` for an existing disk.
        uuid: the domain's UUID; None leaves it to the driver.
        mac: the NIC's MAC address; None leaves it to the driver.

    Raises:
        ValueError: a disk is asked for but no path is known, or a field holds characters
            XML cannot carry.
    """
    root = etree.Element("domain", type=spec.virt_type)
    _sub(root, "name", spec.name)
    if uuid is not None:
        _sub(root, "uuid", uuid)
    _sub(root, "memory", str(spec.memory_mib), unit="MiB")
    _sub(root, "vcpu", str(spec.vcpus))
    os_node = _sub(root, "os")
    _sub(os_node, "type", "hvm", arch="x86_64", machine="q35")
    if spec.boot == "iso":
        _sub(os_node, "boot", dev="cdrom")
        _sub(os_node, "boot", dev="hd")
    elif spec.boot == "disk":
        _sub(os_node, "boot", dev="hd")
    else:
        _sub(os_node, "kernel", spec.kernel)
        if spec.initrd:
            _sub(os_node, "initrd", spec.initrd)
        if spec.cmdline:
            _sub(os_node, "cmdline", spec.cmdline)
    features = _sub(root, "features")
    _sub(features, "acpi")
    if spec.virt_type == "kvm":
        _sub(root, "cpu", mode="host-passthrough")
    _sub(root, "clock", offset="utc")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", spec.on_crash)
    devices = _sub(root, "devices")
    if spec.disk != "none":
        path = disk_path
        if path is None and spec.disk == "existing":
            path = spec.existing_disk_path
        if not path:
            raise ValueError("a disk was asked for but its image path is not known")
        disk = _sub(devices, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type=spec.disk_format)
        _sub(disk, "source", file=path)
        _sub(disk, "target", dev="vda", bus="virtio")
    if spec.boot == "iso":
        cdrom = _sub(devices, "disk", type="file", device="cdrom")
        _sub(cdrom, "driver", name="qemu", type="raw")
        _sub(cdrom, "source", file=spec.iso_path)
        _sub(cdrom, "target", dev="sda", bus="sata")
        _sub(cdrom, "readonly")
    if spec.network != "none":
        nic = _sub(devices, "interface", type=spec.network)
        if mac is not None:
            _sub(nic, "mac", address=mac)
        if spec.network == "bridge":
            _sub(nic, "source", bridge=spec.bridge)
        _sub(nic, "model", type="virtio")
    if spec.serial:
        serial = _sub(devices, "serial", type="pty")
        _sub(serial, "target", port="0")
        console = _sub(devices, "console", type="pty")
        _sub(console, "target", type="serial", port="0")
    if spec.vnc:
        # A tablet keeps the VNC pointer where the viewer's is.
        _sub(devices, "input", type="tablet", bus="usb")
        _sub(devices, "graphics", type="vnc", autoport="yes", listen="127.0.0.1")
        video = _sub(devices, "video")
        _sub(video, "model", type="virtio")
    _sub(devices, "memballoon", model="virtio")
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode") + "\n"
