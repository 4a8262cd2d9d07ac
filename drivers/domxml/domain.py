"""``<domain>``: parsing, validating and reading a libvirt domain definition.

:func:`parse_domain` checks a document against the subset virtdeck understands, writes
libvirt's defaults into the tree (a UUID, ``<currentMemory>``, the OS arch and machine,
MAC addresses) and returns a :class:`DomainDef`, a typed view over that tree. Everything
else in the document (unknown elements and attributes, comments, ``<metadata>``) is kept
where it was, so a definition survives parse → to_xml → parse unchanged.
"""

from __future__ import annotations

import copy
import enum
import re
from typing import Literal, TypeVar

from lxml import etree

from drivers.domxml import ids, pci, usb
from drivers.domxml.channels import ChannelDef
from drivers.domxml.devices import (
    CharDevDef,
    DeviceView,
    DiskDef,
    GraphicsDef,
    InputDef,
    InterfaceDef,
    MemballoonDef,
    PanicDef,
    VideoDef,
    WatchdogDef,
    choice,
)
from drivers.domxml.tree import (
    XML_SPACE,
    check_path,
    children,
    insert_ordered,
    leaf_text,
    parse_tree,
    show,
    single,
    to_text,
)
from drivers.domxml.units import parse_int, scaled_kib
from drivers.errors import InvalidXML


class LifecycleAction(enum.StrEnum):
    """What ``<on_poweroff>``, ``<on_reboot>`` and ``<on_crash>`` ask for."""

    DESTROY = "destroy"
    RESTART = "restart"
    PRESERVE = "preserve"
    RENAME_RESTART = "rename-restart"
    COREDUMP_DESTROY = "coredump-destroy"
    COREDUMP_RESTART = "coredump-restart"


VIRT_TYPES = ("qemu", "kvm", "test")
BOOT_DEVS = ("hd", "cdrom", "network", "fd")
CPU_MODES = ("host-passthrough", "host-model", "custom", "maximum")
CLOCK_OFFSETS = ("utc", "localtime")
MAX_VCPUS = 255
NAME_MAX = 200
DEFAULT_ARCH = "x86_64"
DEFAULT_MACHINE = "q35"

# The order libvirt writes <domain>'s children in; defaults filled in at parse time and
# elements created by setters go where libvirt would put them.
DOMAIN_ORDER = (
    "name",
    "uuid",
    "genid",
    "title",
    "description",
    "metadata",
    "maxMemory",
    "memory",
    "currentMemory",
    "blkiotune",
    "memtune",
    "memoryBacking",
    "vcpu",
    "vcpus",
    "iothreads",
    "iothreadids",
    "cputune",
    "numatune",
    "resource",
    "sysinfo",
    "bootloader",
    "bootloader_args",
    "os",
    "idmap",
    "features",
    "cpu",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_lockfailure",
    "pm",
    "perf",
    "devices",
    "seclabel",
)

_LIFECYCLE = {
    "on_poweroff": (
        LifecycleAction.DESTROY,
        (
            LifecycleAction.DESTROY,
            LifecycleAction.RESTART,
            LifecycleAction.PRESERVE,
            LifecycleAction.RENAME_RESTART,
        ),
    ),
    "on_reboot": (
        LifecycleAction.RESTART,
        (
            LifecycleAction.DESTROY,
            LifecycleAction.RESTART,
            LifecycleAction.PRESERVE,
            LifecycleAction.RENAME_RESTART,
        ),
    ),
    "on_crash": (LifecycleAction.DESTROY, tuple(LifecycleAction)),
}

# Values that end up inside QEMU's comma-separated option syntax are kept to characters
# that cannot split or extend an option.
_MACHINE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_CPU_MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)

# Elements of which a domain has at most one; a second copy would be silently ignored
# by any reader, so it is refused instead.
_SINGLETONS = (
    "name",
    "uuid",
    "title",
    "description",
    "metadata",
    "memory",
    "currentMemory",
    "vcpu",
    "os",
    "features",
    "cpu",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "devices",
)

_V = TypeVar("_V", bound=DeviceView)


def new_uuid() -> str:
    """A fresh random UUID in canonical form (lowercase 8-4-4-4-12)."""
    return ids.new_uuid()


def parse_domain(xml: str | bytes) -> DomainDef:
    """Parse, validate and complete a domain definition.

    Raises:
        InvalidXML: for every problem with the document, and nothing else.
    """
    root = parse_tree(xml)
    _validate_and_fill(root)
    return DomainDef(root)


class DomainDef:
    """A domain definition: typed properties over a preserved lxml tree.

    ``root`` is the source of truth. Properties read it on every access and setters
    write it, so whatever a caller changes shows up in :meth:`to_xml`. Build one with
    :func:`parse_domain`; the constructor wraps a tree that has already been validated.
    Device lists are fresh lists of views on every access: change a device through its
    view, not by editing the list.
    """

    def __init__(self, root: etree._Element) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"<DomainDef {self.name!r} {self.uuid}>"

    # --- helpers --------------------------------------------------------------------------

    def _find(self, path: str) -> etree._Element | None:
        return self.root.find(path)

    def _text(self, path: str) -> str | None:
        node = self.root.find(path)
        return None if node is None else node.text or ""

    def _value(self, path: str) -> str | None:
        text = self._text(path)
        return None if text is None else text.strip(XML_SPACE)

    def _devices(self, tag: str) -> list[etree._Element]:
        devices = self.root.find("devices")
        return [] if devices is None else children(devices, tag)

    def _views(self, cls: type[_V], tag: str | None = None) -> list[_V]:
        return [cls(element) for element in self._devices(tag or cls.tag)]

    # --- identity -----------------------------------------------------------------------

    @property
    def virt_type(self) -> str:
        """``<domain type=…>``: 'qemu', 'kvm' or 'test'."""
        return self.root.get("type") or ""

    @property
    def id(self) -> int | None:
        """The runtime id (live XML only); None for an inactive definition."""
        value = self.root.get("id")
        return None if value is None else int(value)

    @id.setter  # noqa: A003 - libvirt calls it id
    def id(self, value: int | None) -> None:
        if value is None:
            if "id" in self.root.attrib:
                del self.root.attrib["id"]
            return
        if value < 0:
            raise ValueError(f"a domain id is never negative, got {value}")
        self.root.set("id", str(value))

    @property
    def name(self) -> str:
        """The domain's name, unique per host and usable as a file name."""
        return self._text("name") or ""

    @property
    def uuid(self) -> str:
        """The UUID, lowercase 8-4-4-4-12."""
        return self._value("uuid") or ""

    @property
    def title(self) -> str | None:
        """A short one-line title, None if the domain has none."""
        return self._text("title")

    @property
    def description(self) -> str | None:
        """A free-form description, None if the domain has none."""
        return self._text("description")

    @property
    def metadata(self) -> etree._Element | None:
        """``<metadata>``, kept verbatim for the applications that own its children."""
        return self._find("metadata")

    # --- resources ----------------------------------------------------------------------

    @property
    def memory_kib(self) -> int:
        """The maximum memory in KiB."""
        return self._memory("memory")

    @property
    def current_memory_kib(self) -> int:
        """The memory the guest gets at boot (the balloon target) in KiB."""
        if self._find("currentMemory") is None:
            return self.memory_kib
        return self._memory("currentMemory")

    def _memory(self, tag: str) -> int:
        node = self._find(tag)
        if node is None:
            return 0
        return scaled_kib(node.text, node.get("unit"), f"<{tag}>", f"<{tag}>524288</{tag}>")

    @property
    def vcpus(self) -> int:
        """The number of virtual CPUs."""
        value = self._value("vcpu")
        return 1 if value is None else int(value)

    # --- os -----------------------------------------------------------------------------

    @property
    def os_type(self) -> str:
        """Always 'hvm' (full virtualisation)."""
        return self._value("os/type") or "hvm"

    @property
    def arch(self) -> str:
        """The guest architecture, 'x86_64'."""
        node = self._find("os/type")
        return (None if node is None else node.get("arch")) or DEFAULT_ARCH

    @property
    def machine(self) -> str:
        """The QEMU machine type, e.g. 'q35', 'pc' or 'pc-q35-7.2'."""
        node = self._find("os/type")
        return (None if node is None else node.get("machine")) or DEFAULT_MACHINE

    @property
    def boot_devs(self) -> list[str]:
        """``<os><boot dev=…>`` in order: 'hd', 'cdrom', 'network' or 'fd'."""
        os_node = self._find("os")
        if os_node is None:
            return []
        return [boot.get("dev") or "" for boot in children(os_node, "boot")]

    @property
    def kernel(self) -> str | None:
        """The kernel for a direct kernel boot, None to boot from a device."""
        return self._value("os/kernel")

    @property
    def initrd(self) -> str | None:
        """The initial ramdisk of a direct kernel boot."""
        return self._value("os/initrd")

    @property
    def cmdline(self) -> str | None:
        """The kernel command line of a direct kernel boot."""
        return self._text("os/cmdline")

    # --- features, cpu, clock -----------------------------------------------------------

    @property
    def acpi(self) -> bool:
        """True when ``<features><acpi/></features>`` is present."""
        return self._find("features/acpi") is not None

    @property
    def cpu_mode(self) -> str | None:
        """``<cpu mode=…>``; 'custom' for a ``<cpu>`` that only names a model; else None."""
        cpu = self._find("cpu")
        if cpu is None:
            return None
        mode = cpu.get("mode")
        if mode is not None:
            return mode
        return "custom" if cpu.find("model") is not None else None

    @property
    def cpu_model(self) -> str | None:
        """``<cpu><model>``: the CPU model of mode 'custom', e.g. 'Skylake-Client'."""
        value = self._value("cpu/model")
        return value or None

    @property
    def clock_offset(self) -> str:
        """'utc' (the default) or 'localtime'."""
        node = self._find("clock")
        return (None if node is None else node.get("offset")) or "utc"

    # --- lifecycle actions --------------------------------------------------------------

    def _lifecycle(self, tag: str) -> LifecycleAction:
        value = self._value(tag)
        return _LIFECYCLE[tag][0] if value is None else LifecycleAction(value)

    def _set_lifecycle(self, tag: str, action: LifecycleAction) -> None:
        action = LifecycleAction(action)
        if action not in _LIFECYCLE[tag][1]:
            raise ValueError(f"<{tag}> cannot be {action.value}")
        node = self._find(tag)
        if node is None:
            node = etree.Element(tag)
            insert_ordered(self.root, node, DOMAIN_ORDER)
        node.text = action.value

    @property
    def on_poweroff(self) -> LifecycleAction:
        """What a guest power-off does; DESTROY by default."""
        return self._lifecycle("on_poweroff")

    @on_poweroff.setter
    def on_poweroff(self, action: LifecycleAction) -> None:
        self._set_lifecycle("on_poweroff", action)

    @property
    def on_reboot(self) -> LifecycleAction:
        """What a guest reboot does; RESTART by default."""
        return self._lifecycle("on_reboot")

    @on_reboot.setter
    def on_reboot(self, action: LifecycleAction) -> None:
        self._set_lifecycle("on_reboot", action)

    @property
    def on_crash(self) -> LifecycleAction:
        """What a guest panic does; DESTROY by default."""
        return self._lifecycle("on_crash")

    @on_crash.setter
    def on_crash(self, action: LifecycleAction) -> None:
        self._set_lifecycle("on_crash", action)

    # --- devices ------------------------------------------------------------------------

    @property
    def emulator(self) -> str | None:
        """``<devices><emulator>``: the QEMU binary, None for the driver's default."""
        return self._value("devices/emulator")

    @property
    def disks(self) -> list[DiskDef]:
        """``<disk>`` elements, in document order."""
        return self._views(DiskDef)

    @property
    def interfaces(self) -> list[InterfaceDef]:
        """``<interface>`` elements (NICs), in document order."""
        return self._views(InterfaceDef)

    @property
    def serials(self) -> list[CharDevDef]:
        """``<serial>`` ports, in document order."""
        return self._views(CharDevDef, "serial")

    @property
    def consoles(self) -> list[CharDevDef]:
        """``<console>`` elements; the first may be the serial console (serial0)."""
        return self._views(CharDevDef, "console")

    @property
    def channels(self) -> list[ChannelDef]:
        """``<channel>`` elements (virtio-serial ports such as the guest agent's)."""
        return self._views(ChannelDef)

    @property
    def graphics(self) -> list[GraphicsDef]:
        """``<graphics>``: at most one VNC display."""
        return self._views(GraphicsDef)

    @property
    def videos(self) -> list[VideoDef]:
        """``<video>`` cards; the first is the primary display."""
        return self._views(VideoDef)

    @property
    def inputs(self) -> list[InputDef]:
        """``<input>`` devices, PS/2 ones included."""
        return self._views(InputDef)

    @property
    def panics(self) -> list[PanicDef]:
        """``<panic>`` devices (at most one per model)."""
        return self._views(PanicDef)

    @property
    def memballoon(self) -> MemballoonDef | None:
        """``<memballoon>``; None when the XML has none (then there is no balloon)."""
        found = self._views(MemballoonDef)
        return found[0] if found else None

    @property
    def watchdogs(self) -> list[WatchdogDef]:
        """``<watchdog>`` devices; they share one action."""
        return self._views(WatchdogDef)

    # --- whole document -----------------------------------------------------------------

    def to_xml(self) -> str:
        """The definition as pretty-printed XML text (no XML declaration)."""
        metadata = self.metadata
        return to_text(self.root, () if metadata is None else (metadata,))

    def copy(self) -> DomainDef:
        """An independent deep copy."""
        return DomainDef(copy.deepcopy(self.root))


# --- validation -----------------------------------------------------------------------------


def _validate_and_fill(root: etree._Element) -> None:
    if (
        isinstance(root.tag, str)
        and etree.QName(root).localname == "domain"
        and root.tag != "domain"
    ):
        raise InvalidXML(
            f"<domain> is in the namespace {show(etree.QName(root).namespace or '')}; libvirt's "
            "domain XML has none, so remove the xmlns=… attribute from <domain>."
        )
    if root.tag != "domain":
        raise InvalidXML(
            f"The document's root element is <{_tag_name(root)}>; a domain definition "
            "starts with <domain type='qemu'>."
        )
    kind = root.get("type")
    if kind not in VIRT_TYPES:
        found = "has no type" if kind is None else f"has type={show(kind)}"
        raise InvalidXML(
            f"<domain> {found}; virtdeck runs qemu, kvm and test domains, so write "
            "<domain type='qemu'> (or 'kvm', or 'test' for the test driver)."
        )
    if root.get("id") is not None:
        parse_int(
            root.get("id"), "<domain id>", "<domain type='qemu' id='1'>", low=0, high=2**31 - 1
        )
    for tag in _SINGLETONS:
        single(root, tag, "<domain>")
    _check_name(root)
    _fill_uuid(root)
    title = root.find("title")
    if title is not None and "\n" in leaf_text(title, "<title>"):
        raise InvalidXML(
            "<title> spans several lines; a title is one line, so put longer text in <description>."
        )
    _fill_memory(root)
    vcpu = root.find("vcpu")
    if vcpu is not None:
        parse_int(
            leaf_text(vcpu, "<vcpu>"),
            "<vcpu>",
            "<vcpu>2</vcpu>",
            low=1,
            high=MAX_VCPUS,
        )
    _fill_os(root)
    _check_cpu(root)
    clock = root.find("clock")
    if clock is not None:
        choice(clock.get("offset"), CLOCK_OFFSETS, "<clock>", "offset", "utc")
    for tag, (_default, allowed) in _LIFECYCLE.items():
        node = root.find(tag)
        if node is not None:
            value = leaf_text(node, f"<{tag}>").strip(XML_SPACE)
            if value not in allowed:
                words = ", ".join(action.value for action in allowed)
                raise InvalidXML(
                    f"<{tag}>: {show(value)} is not an action; write one of {words}, "
                    f"e.g. <{tag}>destroy</{tag}>."
                )
    devices = root.find("devices")
    if devices is not None:
        _check_devices(root, devices)


def _tag_name(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else "?"


NameFault = Literal["empty", "long", "control", "slash", "dot", "space"]


def name_fault(name: str) -> NameFault | None:
    """Which of the rules for domain names ``name`` breaks, or None.

    Names become file names (definitions, logs, images), so the rules are those of a
    portable file name. The XML check and the new-domain form word the fault themselves.
    """
    if not name:
        return "empty"
    if len(name) > NAME_MAX:
        return "long"
    if any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in name):
        return "control"
    if "/" in name:
        return "slash"
    if name.startswith("."):
        return "dot"
    if name != name.strip():
        return "space"
    return None


def _check_name(root: etree._Element) -> None:
    node = root.find("name")
    example = "<name>web1</name>"
    if node is None:
        raise InvalidXML(f"The domain has no <name>; write e.g. {example}.")
    name = leaf_text(node, "<name>")
    fault = name_fault(name)
    if fault == "empty":
        raise InvalidXML(f"<name> is empty; write e.g. {example}.")
    if fault == "long":
        raise InvalidXML(
            f"<name> is {len(name)} characters long; the limit is {NAME_MAX}, so write a "
            "shorter name."
        )
    if fault == "control":
        raise InvalidXML(
            f"<name>: {show(name)} contains a control character (a line break or tab, "
            f"say); write the name on one line, e.g. {example}."
        )
    if fault == "slash":
        raise InvalidXML(
            f"<name>: {show(name)} contains '/'; names are used as file names, so write "
            f"it without slashes, e.g. {example}."
        )
    if fault == "dot":
        raise InvalidXML(
            f"<name>: {show(name)} starts with '.'; names are used as file names and "
            f"these would be hidden, so start with a letter or digit, e.g. {example}."
        )
    if fault == "space":
        raise InvalidXML(
            f"<name>: {show(name)} starts or ends with a space; write <name>{name.strip()}</name>."
        )


def _fill_uuid(root: etree._Element) -> None:
    node = root.find("uuid")
    if node is None:
        node = etree.Element("uuid")
        node.text = ids.new_uuid()
        insert_ordered(root, node, DOMAIN_ORDER)
        return
    text = leaf_text(node, "<uuid>").strip(XML_SPACE)
    canonical = ids.canonical_uuid(text)
    if canonical is None:
        raise InvalidXML(
            f"<uuid>: {show(text)} is not a UUID; write 32 hex digits, e.g. "
            "<uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>, or leave <uuid> out to "
            "get a new one."
        )
    node.text = canonical


def _fill_memory(root: etree._Element) -> None:
    memory = root.find("memory")
    example = "<memory unit='MiB'>512</memory>"
    if memory is None:
        raise InvalidXML(f"The domain has no <memory>; write e.g. {example}.")
    kib = scaled_kib(leaf_text(memory, "<memory>"), memory.get("unit"), "<memory>", example)
    if kib == 0:
        raise InvalidXML(f"<memory> is 0; a guest needs memory, so write e.g. {example}.")
    # libvirt stores sizes in KiB and dumpxml shows them that way.
    memory.text = str(kib)
    memory.set("unit", "KiB")
    current = root.find("currentMemory")
    if current is None:
        current = etree.Element("currentMemory")
        current.text = str(kib)
        current.set("unit", "KiB")
        insert_ordered(root, current, DOMAIN_ORDER)
        return
    example = "<currentMemory unit='MiB'>512</currentMemory>"
    current_kib = scaled_kib(
        leaf_text(current, "<currentMemory>"), current.get("unit"), "<currentMemory>", example
    )
    if current_kib == 0:
        raise InvalidXML(
            f"<currentMemory> is 0; write the memory the guest starts with, e.g. {example}, "
            "or leave it out to start with all of <memory>."
        )
    if current_kib > kib:
        raise InvalidXML(
            f"<currentMemory> ({current_kib} KiB) is more than <memory> ({kib} KiB); "
            "currentMemory is what the guest starts with out of memory, so make it "
            "smaller or raise <memory>."
        )
    current.text = str(current_kib)
    current.set("unit", "KiB")


def _fill_os(root: etree._Element) -> None:
    os_node = root.find("os")
    if os_node is None:
        os_node = etree.Element("os")
        insert_ordered(root, os_node, DOMAIN_ORDER)
    for tag in ("type", "kernel", "initrd", "cmdline"):
        single(os_node, tag, "<os>")
    type_node = os_node.find("type")
    if type_node is None:
        type_node = etree.Element("type")
        type_node.text = "hvm"
        os_node.insert(0, type_node)
    os_type = leaf_text(type_node, "<os><type>").strip(XML_SPACE)
    if os_type != "hvm":
        raise InvalidXML(
            f"<os><type>: {show(os_type)} is not supported; virtdeck runs fully "
            "virtualised guests, so write <type arch='x86_64' machine='q35'>hvm</type>."
        )
    arch = type_node.get("arch")
    if arch is None:
        type_node.set("arch", DEFAULT_ARCH)
    elif arch != DEFAULT_ARCH:
        raise InvalidXML(
            f"<os><type>: arch={show(arch)} is not supported; virtdeck runs x86_64 "
            "guests, so write arch='x86_64'."
        )
    machine = type_node.get("machine")
    if machine is None:
        type_node.set("machine", DEFAULT_MACHINE)
    elif not _MACHINE_RE.fullmatch(machine):
        raise InvalidXML(
            f"<os><type>: machine={show(machine)} is not a machine type; write e.g. "
            "machine='q35' or machine='pc'."
        )
    for index, boot in enumerate(children(os_node, "boot")):
        choice(boot.get("dev"), BOOT_DEVS, f"<os><boot> #{index + 1}", "dev")
    for tag in ("kernel", "initrd"):
        node = os_node.find(tag)
        if node is not None:
            check_path(
                leaf_text(node, f"<{tag}>").strip(XML_SPACE),
                f"<os><{tag}>",
                f"<{tag}>/var/lib/virtdeck/boot/{'vmlinuz' if tag == 'kernel' else 'initrd.img'}"
                f"</{tag}>",
            )
    cmdline = os_node.find("cmdline")
    if cmdline is not None:
        leaf_text(cmdline, "<os><cmdline>")


def _check_cpu(root: etree._Element) -> None:
    cpu = root.find("cpu")
    if cpu is None:
        return
    mode = cpu.get("mode")
    if mode is not None:
        choice(mode, CPU_MODES, "<cpu>", "mode")
    model = single(cpu, "model", "<cpu>")
    if model is not None:
        name = leaf_text(model, "<cpu><model>").strip(XML_SPACE)
        if name and not _CPU_MODEL_RE.fullmatch(name):
            raise InvalidXML(
                f"<cpu><model>: {show(name)} is not a CPU model name; write e.g. "
                "<model>Skylake-Client</model> (see qemu-system-x86_64 -cpu help)."
            )


def assign_pci_addresses(defn: DomainDef) -> None:
    """Give every device of ``defn`` that has no ``<address>`` one, as libvirt does when
    it parses a definition: libvirt's default video card for a display without one, drive
    addresses (and the SCSI controllers they name), PCI addresses
    (:func:`drivers.domxml.pci.assign_addresses`), then USB ports. Machines other than
    q35/pc are left alone."""
    family = machine_family(defn.machine)
    if family is None:
        return
    devices = defn.root.find("devices")
    if devices is None:
        devices = etree.Element("devices")
        insert_ordered(defn.root, devices, DOMAIN_ORDER)
    if devices.find("graphics") is not None and devices.find("video") is None:
        video = etree.Element("video")
        etree.SubElement(video, "model", type="cirrus", vram="16384", heads="1", primary="yes")
        _insert_device(devices, video)
    pci.assign_addresses(devices, family)
    usb.assign_usb_ports(devices, family)


def fill_boot_default(defn: DomainDef) -> None:
    """libvirt's default boot order, written at define time: ``<boot dev='hd'/>`` when
    neither ``<os>`` nor any device says where to boot from (the first disk then gets
    boot index 1)."""
    os_node = defn.root.find("os")
    if os_node is None or os_node.find("boot") is not None:
        return
    devices = defn.root.find("devices")
    if devices is not None and any(node.find("boot") is not None for node in devices):
        return
    boot = etree.Element("boot", dev="hd")
    after = [tag for tag in ("type", "loader", "nvram", "kernel", "initrd", "cmdline")]
    last = [node for node in os_node if isinstance(node.tag, str) and node.tag in after]
    if last:
        last[-1].addnext(boot)
    else:
        os_node.insert(0, boot)


def _insert_device(devices: etree._Element, node: etree._Element) -> None:
    """Put ``node`` after the last device of its kind, else at the end of <devices>."""
    same = children(devices, str(node.tag))
    if same:
        same[-1].addnext(node)
    else:
        devices.append(node)


def machine_family(machine: str) -> str | None:
    """'q35' or 'pc' for the PC machine types, None for any other."""
    if machine == "q35" or machine.startswith("pc-q35-"):
        return "q35"
    if machine == "pc" or machine.startswith("pc-i440fx-"):
        return "pc"
    return None


def _check_devices(root: etree._Element, devices: etree._Element) -> None:
    emulator = single(devices, "emulator", "<devices>")
    if emulator is not None:
        check_path(
            leaf_text(emulator, "<emulator>").strip(XML_SPACE),
            "<emulator>",
            "<emulator>/usr/bin/qemu-system-x86_64</emulator>",
        )
    defn = DomainDef(root)
    family = machine_family(defn.machine)
    if family is not None:
        pci.check_controllers(devices, family)
        usb.check_usb_ports(devices, family)
    disks = defn.disks
    for disk in disks:
        disk.validate()
    seen_targets: dict[str, DiskDef] = {}
    for disk in disks:
        if disk.target_dev in seen_targets:
            raise InvalidXML(
                f"<disk>: two disks use <target dev='{disk.target_dev}'/>; give each disk "
                "its own target name (vda, vdb, …)."
            )
        seen_targets[disk.target_dev] = disk
    interfaces = defn.interfaces
    for interface in interfaces:
        interface.validate()
        interface.fill_mac(ids.new_mac())
    _check_boot_orders(defn, disks, interfaces)
    serials = defn.serials
    ports: set[int] = set()
    for serial in serials:
        serial.validate()
        if serial.target_port in ports:
            raise InvalidXML(
                f"{serial.label}: port {serial.target_port} is used twice; give each "
                "<serial> its own <target port='N'/>."
            )
        ports.add(serial.target_port)
    for index, console in enumerate(defn.consoles):
        console.validate()
        if index > 0 and console.target_type == "serial":
            raise InvalidXML(
                f"{console.label}: only the first <console> can be the serial console; "
                "write <target type='virtio'/> for the others."
            )
    for channel in defn.channels:
        channel.validate()
    graphics = defn.graphics
    for item in graphics:
        item.validate()
    if len(graphics) > 1:
        raise InvalidXML(
            "<graphics>: QEMU runs one VNC server per guest; keep a single "
            "<graphics type='vnc'> element."
        )
    for video in defn.videos:
        video.validate()
    for input_dev in defn.inputs:
        input_dev.validate()
    panic_models: set[str] = set()
    for panic in defn.panics:
        panic.validate()
        if panic.model in panic_models:
            raise InvalidXML(
                f"{panic.label}: model='{panic.model}' appears twice; keep one <panic> per model."
            )
        panic_models.add(panic.model)
    balloons = children(devices, "memballoon")
    if len(balloons) > 1:
        raise InvalidXML("<devices> has several <memballoon> elements; keep one.")
    for balloon in balloons:
        MemballoonDef(balloon).validate()
    watchdogs = defn.watchdogs
    for watchdog in watchdogs:
        watchdog.validate()
    if len({watchdog.action for watchdog in watchdogs}) > 1:
        raise InvalidXML(
            "<watchdog>: the watchdogs ask for different actions; QEMU applies one action "
            "to all of them, so give every <watchdog> the same action=."
        )


def _check_boot_orders(
    defn: DomainDef, disks: list[DiskDef], interfaces: list[InterfaceDef]
) -> None:
    used: dict[int, str] = {}
    devices: list[DiskDef | InterfaceDef] = [*disks, *interfaces]
    for device in devices:
        order = device.boot_order
        if order is None:
            continue
        if defn.boot_devs:
            raise InvalidXML(
                f"{device.label} has <boot order='{order}'/> while <os> has <boot dev=…>; "
                "use one or the other: remove the <boot dev> elements from <os>, or the "
                "per-device <boot order> elements."
            )
        if order in used:
            raise InvalidXML(
                f"{device.label}: boot order {order} is already used by {used[order]}; "
                "give each device its own order."
            )
        used[order] = device.label
