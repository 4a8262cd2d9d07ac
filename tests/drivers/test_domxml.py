"""Domain XML: golden round trips, typed properties, setters and every kind of bad input.

Golden files live in ``data/domxml/``: ``NAME.xml`` is parsed and its ``to_xml()`` must
equal ``NAME.out.xml``. Run with ``VIRTDECK_REGENERATE=1`` to (re)write expected files
after an intended change, and review the diff.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from drivers.domxml import (
    MAX_XML_BYTES,
    DomainDef,
    LifecycleAction,
    new_uuid,
    parse_domain,
)
from drivers.domxml import ids as domxml_ids
from drivers.errors import InvalidXML

DATA = Path(__file__).parent / "data" / "domxml"
CASES = sorted(p.name.removesuffix(".xml") for p in DATA.glob("*.xml") if ".out." not in p.name)
REGENERATE = os.environ.get("VIRTDECK_REGENERATE") == "1"


def assert_golden(expected: Path, actual: str) -> None:
    """Compare ``actual`` with the file ``expected``; VIRTDECK_REGENERATE=1 (re)writes it."""
    if REGENERATE and (not expected.exists() or expected.read_text("utf-8") != actual):
        expected.write_text(actual, "utf-8")
        return
    if not expected.exists():
        pytest.fail(f"{expected} is missing; run with VIRTDECK_REGENERATE=1 to write it")
    assert actual == expected.read_text("utf-8")


@pytest.fixture
def fixed_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make generated UUIDs and MACs predictable so golden files can hold them."""
    uuids = itertools.count(1)
    macs = itertools.count(1)
    monkeypatch.setattr(
        domxml_ids, "new_uuid", lambda: f"00000000-0000-4000-8000-{next(uuids):012x}"
    )
    monkeypatch.setattr(domxml_ids, "new_mac", lambda: f"52:54:00:00:00:{next(macs):02x}")


def load(name: str) -> DomainDef:
    return parse_domain((DATA / f"{name}.xml").read_bytes())


# --- golden round trips -------------------------------------------------------------------


def test_there_are_golden_cases() -> None:
    assert {
        "minimal",
        "full-subset",
        "unknown-elements",
        "units",
        "no-uuid",
        "test-guest",
    } <= set(CASES)


@pytest.mark.usefixtures("fixed_ids")
@pytest.mark.parametrize("name", CASES)
def test_golden_round_trip(name: str) -> None:
    out = load(name).to_xml()
    assert_golden(DATA / f"{name}.out.xml", out)


@pytest.mark.parametrize("name", CASES)
def test_output_parses_to_itself(name: str) -> None:
    first = load(name).to_xml()
    second = parse_domain(first).to_xml()
    assert second == first
    assert parse_domain(second.encode()).to_xml() == first


@pytest.mark.parametrize("name", CASES)
def test_copy_is_deep(name: str) -> None:
    defn = load(name)
    twin = defn.copy()
    assert twin.to_xml() == defn.to_xml()
    twin.id = 42
    twin.on_crash = LifecycleAction.PRESERVE
    assert defn.id != 42
    assert defn.to_xml() != twin.to_xml()
    assert twin.root is not defn.root


# --- what the typed view reads ------------------------------------------------------------


def test_minimal_defaults() -> None:
    defn = load("minimal")
    assert defn.virt_type == "qemu"
    assert defn.id is None
    assert defn.name == "minimal"
    assert defn.uuid == "c7a5fdbd-edaf-9455-926a-d65c16db1809"
    assert defn.title is None and defn.description is None and defn.metadata is None
    assert defn.memory_kib == defn.current_memory_kib == 128 * 1024
    assert defn.vcpus == 1
    assert (defn.os_type, defn.arch, defn.machine) == ("hvm", "x86_64", "q35")
    assert defn.boot_devs == []
    assert defn.kernel is None and defn.initrd is None and defn.cmdline is None
    assert defn.acpi is False
    assert defn.cpu_mode is None and defn.cpu_model is None
    assert defn.clock_offset == "utc"
    assert defn.on_poweroff is LifecycleAction.DESTROY
    assert defn.on_reboot is LifecycleAction.RESTART
    assert defn.on_crash is LifecycleAction.DESTROY
    assert defn.emulator is None
    assert defn.disks == [] and defn.interfaces == [] and defn.serials == []
    assert defn.consoles == [] and defn.graphics == [] and defn.videos == []
    assert defn.inputs == [] and defn.panics == [] and defn.watchdogs == []
    assert defn.memballoon is None
    # Absent lifecycle elements are not invented: the defaults come from the properties.
    assert defn.root.find("on_poweroff") is None


def test_full_subset_properties() -> None:
    defn = load("full-subset")
    assert defn.virt_type == "kvm"
    assert defn.id == 7
    assert defn.title == "Everything virtdeck understands"
    assert defn.description is not None and "spans lines" in defn.description
    assert defn.metadata is not None and defn.metadata.tag == "metadata"
    assert defn.memory_kib == 2 * 1024 * 1024
    assert defn.current_memory_kib == 1536 * 1024
    assert defn.vcpus == 4
    assert defn.machine == "pc-q35-7.2"
    assert defn.boot_devs == ["cdrom", "hd", "network"]
    assert defn.acpi is True
    assert (defn.cpu_mode, defn.cpu_model) == ("custom", "Skylake-Client")
    assert defn.clock_offset == "localtime"
    assert defn.on_crash is LifecycleAction.COREDUMP_RESTART
    assert defn.emulator == "/usr/bin/qemu-system-x86_64"

    vda, vdb, sda, sdb = defn.disks
    assert (vda.type, vda.device, vda.driver_type, vda.cache) == ("file", "disk", "qcow2", "none")
    assert vda.source == "/var/lib/virtdeck/images/full.qcow2"
    assert (vda.target_dev, vda.target_bus, vda.readonly) == ("vda", "virtio", False)
    assert (vdb.type, vdb.source, vdb.readonly) == ("block", "/dev/vg0/data", True)
    assert (sda.device, sda.target_bus, sda.readonly) == ("cdrom", "sata", True)
    assert sdb.source is None and sdb.driver_type == "raw" and sdb.target_index == 1
    assert all(disk.boot_order is None for disk in defn.disks)

    user, network, bridge = defn.interfaces
    assert (user.type, user.mac, user.model) == ("user", "52:54:00:ab:cd:ef", "virtio")
    assert (network.source_network, network.model) == ("default", "e1000e")
    assert (bridge.source_bridge, bridge.model, bridge.source_network) == ("br0", "rtl8139", None)

    pty, log = defn.serials
    assert (pty.kind, pty.type, pty.target_type, pty.target_port) == (
        "serial",
        "pty",
        "isa-serial",
        0,
    )
    assert pty.source_path is None and pty.source_mode is None and pty.log_file is None
    assert (log.type, log.source_path, log.target_port) == (
        "file",
        "/var/log/virtdeck/full-serial1.log",
        1,
    )
    serial_console, virtio_console = defn.consoles
    assert (serial_console.kind, serial_console.target_type) == ("console", "serial")
    assert (virtio_console.target_type, virtio_console.target_port) == ("virtio", 1)

    (vnc,) = defn.graphics
    assert (vnc.type, vnc.port, vnc.autoport, vnc.listen) == ("vnc", 5907, False, "127.0.0.1")
    assert (vnc.listen_type, vnc.socket, vnc.passwd) == ("address", None, "s3cret")
    (video,) = defn.videos
    assert (video.model, video.vram_kib, video.heads) == ("qxl", 65536, 1)
    assert [(i.type, i.bus) for i in defn.inputs] == [
        ("tablet", "usb"),
        ("mouse", "ps2"),
        ("keyboard", "virtio"),
    ]
    assert [p.model for p in defn.panics] == ["pvpanic"]
    assert defn.memballoon is not None and defn.memballoon.model == "virtio"
    assert [(w.model, w.action) for w in defn.watchdogs] == [("i6300esb", "poweroff")]


def test_test_guest_properties() -> None:
    defn = load("test-guest")
    assert defn.kernel == "/var/lib/virtdeck/guest/vmlinuz"
    assert defn.initrd == "/var/lib/virtdeck/guest/initramfs.gz"
    assert defn.cmdline == "console=ttyS0 panic=-1 quiet"
    assert defn.acpi is True
    assert defn.on_crash is LifecycleAction.RESTART
    (serial,) = defn.serials
    assert (serial.type, serial.source_mode) == ("unix", "bind")
    assert serial.source_path == "/run/virtdeck/test-guest/serial.sock"
    assert serial.log_file == "/var/log/virtdeck/test-guest-serial.log"
    assert serial.log_append is True
    assert [p.model for p in defn.panics] == ["isa"]
    assert defn.memballoon is not None and defn.memballoon.model == "none"


def test_units_are_normalised_to_kib() -> None:
    defn = load("units")
    assert defn.memory_kib == 976563  # 10**9 bytes, rounded up to whole KiB
    assert defn.current_memory_kib == 488282
    memory = defn.root.find("memory")
    assert memory is not None and (memory.get("unit"), memory.text) == ("KiB", "976563")


@pytest.mark.parametrize(
    ("unit", "value", "kib"),
    [
        (None, "512", 512),
        ("b", "1024", 1),
        ("bytes", "1025", 2),
        ("KB", "1", 1),
        ("KB", "2048", 2000),
        ("k", "3", 3),
        ("KiB", "4", 4),
        ("kib", "4", 4),
        ("MB", "1", 977),
        ("M", "1", 1024),
        ("MiB", "2", 2048),
        ("mb", "1", 977),
        ("GB", "1", 976563),
        ("G", "1", 1 << 20),
        ("GiB", "3", 3 << 20),
        ("TB", "1", 976562500),
        ("T", "1", 1 << 30),
        ("TiB", "2", 2 << 30),
    ],
)
def test_memory_units(unit: str | None, value: str, kib: int) -> None:
    unit_attr = "" if unit is None else f" unit='{unit}'"
    defn = parse_domain(
        f"<domain type='qemu'><name>u</name><memory{unit_attr}>{value}</memory></domain>"
    )
    assert defn.memory_kib == kib
    assert defn.current_memory_kib == kib


def test_generated_uuid_and_macs_are_random_and_stable() -> None:
    first = load("no-uuid")
    second = load("no-uuid")
    assert first.uuid != second.uuid
    assert domxml_ids.canonical_uuid(first.uuid) == first.uuid
    macs = [nic.mac for nic in first.interfaces]
    assert all(mac.startswith("52:54:00:") for mac in macs)
    assert macs != [nic.mac for nic in second.interfaces]
    again = parse_domain(first.to_xml())
    assert again.uuid == first.uuid
    assert [nic.mac for nic in again.interfaces] == macs
    assert again.to_xml() == first.to_xml()


def test_new_uuid_is_canonical() -> None:
    values = {new_uuid() for _ in range(20)}
    assert len(values) == 20
    assert all(domxml_ids.canonical_uuid(value) == value for value in values)


def test_uuid_and_mac_are_written_canonically() -> None:
    defn = parse_domain(
        "<domain type='qemu'><name>c</name><uuid> C7A5FDBDEDAF9455926AD65C16DB1809 </uuid>"
        "<memory>1024</memory><devices><interface type='user'>"
        "<mac address='52:54:00:AB:CD:EF'/></interface></devices></domain>"
    )
    assert defn.uuid == "c7a5fdbd-edaf-9455-926a-d65c16db1809"
    assert defn.interfaces[0].mac == "52:54:00:ab:cd:ef"
    assert "<uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>" in defn.to_xml()


def test_unknown_content_survives() -> None:
    defn = load("unknown-elements")
    out = defn.to_xml()
    for kept in (
        'xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0"',
        'vd:origin="import"',
        "<genid>43dc0cf8-809b-4adb-9bea-a9abb5f3d90e</genid>",
        'dumpCore="off"',
        "<memoryBacking>",
        'cpuset="0-1" current="1"',
        "<!-- the OS section -->",
        'firmware-hint="none"',
        '<bootmenu enable="no"/>',
        '<vmport state="off"/>',
        '<timer name="pit" tickpolicy="delay"/>',
        '<suspend-to-mem enabled="no"/>',
        'snapshot="external"',
        'discard="unmap" error_policy="stop"',
        'startupPolicy="optional"',
        '<seclabel model="dac" relabel="no"/>',
        'rotation_rate="1"',
        "<serial>DISK-0001</serial>",
        '<address type="drive" controller="0" bus="0" target="0" unit="0"/>',
        '<controller type="usb" index="0" model="piix3-uhci"/>',
        '<ip family="ipv4" address="10.0.2.15" prefix="24"/>',
        '<channel type="unix">',
        '<sound model="ich9">',
        '<backend model="random">/dev/urandom</backend>',
        'autodeflate="on"',
        '<seclabel type="none" model="none"/>',
        '<qemu:arg value="enable=qmp_*"/>',
        '<qemu:env name="LANG" value="C"/>',
        # metadata is kept byte for byte, odd spacing included
        '<vd:notes xmlns:vd="urn:virtdeck:notes">   spacing   is   kept   </vd:notes>',
        '<libosinfo:os id="http://debian.org/debian/12"/>',
    ):
        assert kept in out, kept
    # Known elements keep their place: the generated <currentMemory> goes right after
    # <memory>, and <devices> still precedes <seclabel> and <qemu:commandline>.
    tags = [child.tag for child in parse_domain(out).root if isinstance(child.tag, str)]
    assert tags.index("currentMemory") == tags.index("memory") + 1
    assert tags.index("devices") < tags.index("seclabel")
    # A processing instruction or comment outside <domain> is dropped.
    assert "virtdeck-hint" not in out and "before the root" not in out
    assert not out.startswith("<?xml")


def test_metadata_is_verbatim() -> None:
    raw = (
        "<metadata>\n<a:x xmlns:a='urn:a'>\n      <a:y>1</a:y></a:x>"
        "<b:z xmlns:b='urn:b'><![CDATA[<not-xml>]]></b:z>\n</metadata>"
    )
    defn = parse_domain(f"<domain type='qemu'><name>m</name>{raw}<memory>1024</memory></domain>")
    out = defn.to_xml()
    assert (
        '<metadata>\n<a:x xmlns:a="urn:a">\n      <a:y>1</a:y></a:x>'
        '<b:z xmlns:b="urn:b"><![CDATA[<not-xml>]]></b:z>\n</metadata>'
    ) in out
    assert parse_domain(out).to_xml() == out


def test_text_and_bytes_inputs() -> None:
    body = "<domain type='qemu'><name>caf\u00e9</name><memory>1024</memory></domain>"
    assert parse_domain(body).name == "caf\u00e9"
    declared = '<?xml version="1.0" encoding="ISO-8859-1"?>\n' + body
    assert parse_domain(declared).name == "caf\u00e9"
    assert parse_domain(declared.encode("iso-8859-1")).name == "caf\u00e9"
    assert parse_domain(body.encode("utf-16")).name == "caf\u00e9"


# --- setters --------------------------------------------------------------------------------


def test_id_setter() -> None:
    defn = load("minimal")
    defn.id = 3
    assert defn.id == 3 and '<domain type="qemu" id="3">' in defn.to_xml()
    defn.id = None
    assert defn.id is None and "id=" not in defn.to_xml().splitlines()[0]
    defn.id = None
    with pytest.raises(ValueError):
        defn.id = -1


def test_lifecycle_setters_insert_in_libvirt_order() -> None:
    defn = load("unknown-elements")
    defn.on_reboot = LifecycleAction.DESTROY
    defn.on_poweroff = LifecycleAction.RESTART
    defn.on_crash = LifecycleAction.COREDUMP_DESTROY
    assert defn.on_reboot is LifecycleAction.DESTROY
    assert defn.on_poweroff is LifecycleAction.RESTART
    assert defn.on_crash is LifecycleAction.COREDUMP_DESTROY
    tags = [child.tag for child in defn.root if isinstance(child.tag, str)]
    clock = tags.index("clock")
    assert tags[clock + 1 : clock + 5] == ["on_poweroff", "on_reboot", "on_crash", "pm"]
    out = defn.to_xml()
    assert "  <on_reboot>destroy</on_reboot>\n" in out
    assert parse_domain(out).to_xml() == out
    defn.on_crash = LifecycleAction.DESTROY
    assert out.count("<on_crash>") == defn.to_xml().count("<on_crash>") == 1
    with pytest.raises(ValueError):
        defn.on_reboot = LifecycleAction.COREDUMP_RESTART


def test_serial_source_path_setter() -> None:
    defn = load("full-subset")
    serial = defn.serials[0]
    serial.source_path = "/dev/pts/7"
    assert defn.serials[0].source_path == "/dev/pts/7"
    out = defn.to_xml()
    assert '<serial type="pty">\n      <source path="/dev/pts/7"/>\n' in out
    assert parse_domain(out).serials[0].source_path == "/dev/pts/7"
    serial.source_path = None
    assert defn.serials[0].source_path is None
    assert defn.serials[0].element.find("source") is None


def test_graphics_port_setter() -> None:
    defn = parse_domain(
        "<domain type='qemu'><name>g</name><memory>1024</memory>"
        "<devices><graphics type='vnc' autoport='yes'/></devices></domain>"
    )
    vnc = defn.graphics[0]
    assert (vnc.port, vnc.autoport, vnc.listen) == (-1, True, "127.0.0.1")
    vnc.port = 5901
    assert defn.graphics[0].port == 5901 and defn.graphics[0].autoport is True
    assert 'port="5901"' in defn.to_xml()
    for bad in (80, 70000):
        with pytest.raises(ValueError):
            vnc.port = bad


def test_disk_source_setter() -> None:
    defn = load("full-subset")
    cdrom = defn.disks[3]
    cdrom.source = "/srv/iso/new.iso"
    assert defn.disks[3].source == "/srv/iso/new.iso"
    assert parse_domain(defn.to_xml()).disks[3].source == "/srv/iso/new.iso"
    cdrom.source = None
    assert defn.disks[3].source is None
    with pytest.raises(ValueError):
        defn.disks[0].source = None
    block = defn.disks[1]
    block.source = "/dev/vg0/other"
    assert block.element.find("source") is not None
    assert 'dev="/dev/vg0/other"' in defn.to_xml()


# --- bad documents ------------------------------------------------------------------------


def doc(
    devices: str = "",
    *,
    head: str = "<domain type='qemu'>",
    name: str = "<name>bad</name>",
    memory: str = "<memory unit='MiB'>64</memory>",
    extra: str = "",
) -> str:
    dev = f"<devices>{devices}</devices>" if devices else ""
    return f"{head}{name}{memory}{extra}{dev}</domain>"


def disk(body: str, attrs: str = "type='file' device='disk'") -> str:
    return f"<disk {attrs}>{body}</disk>"


_SRC = "<source file='/srv/a.img'/>"

BAD: list[tuple[str, str, str]] = [
    ("empty", "", "not well-formed"),
    ("garbage", "lots of text", "not well-formed"),
    ("unclosed", "<domain type='qemu'><name>x</name>", "not well-formed"),
    ("deep", doc(extra="<a>" * 300 + "</a>" * 300), "256 levels"),
    ("root", "<vm type='qemu'/>", "<vm>"),
    ("root-namespace", "<domain xmlns='urn:x' type='qemu'/>", "<domain>"),
    ("type-missing", doc(head="<domain>"), "<domain>"),
    ("type-xen", doc(head="<domain type='xen'>"), "<domain>"),
    ("id", doc(head="<domain type='qemu' id='one'>"), "<domain id>"),
    ("name-missing", doc(name=""), "<name>"),
    ("name-empty", doc(name="<name></name>"), "<name>"),
    ("name-slash", doc(name="<name>a/b</name>"), "<name>"),
    ("name-dot", doc(name="<name>.hidden</name>"), "<name>"),
    ("name-long", doc(name=f"<name>{'n' * 201}</name>"), "<name>"),
    ("name-control", doc(name="<name>a&#9;b</name>"), "<name>"),
    ("name-newline", doc(name="<name>\n  web\n</name>"), "<name>"),
    ("name-space", doc(name="<name>web </name>"), "<name>"),
    ("name-child", doc(name="<name>a<b/></name>"), "<name>"),
    ("name-twice", doc(name="<name>a</name><name>b</name>"), "<name>"),
    ("uuid", doc(extra="<uuid>not-a-uuid</uuid>"), "<uuid>"),
    ("uuid-short", doc(extra="<uuid>c7a5fdbd-edaf-9455-926a</uuid>"), "<uuid>"),
    ("title-lines", doc(extra="<title>a\nb</title>"), "<title>"),
    ("memory-missing", doc(memory=""), "<memory>"),
    ("memory-word", doc(memory="<memory>lots</memory>"), "<memory>"),
    ("memory-negative", doc(memory="<memory>-1</memory>"), "<memory>"),
    ("memory-float", doc(memory="<memory>1e9999</memory>"), "<memory>"),
    ("memory-underscore", doc(memory="<memory>1_000</memory>"), "<memory>"),
    ("memory-arabic", doc(memory="<memory>\u0663</memory>"), "<memory>"),
    ("memory-zero", doc(memory="<memory>0</memory>"), "<memory>"),
    ("memory-huge", doc(memory=f"<memory>{'9' * 25}</memory>"), "<memory>"),
    ("memory-digits", doc(memory=f"<memory>{'9' * 5000}</memory>"), "<memory>"),
    ("memory-unit", doc(memory="<memory unit='parsec'>1</memory>"), "<memory>"),
    ("memory-unit-empty", doc(memory="<memory unit=''>1</memory>"), "<memory>"),
    (
        "current-over",
        doc(extra="<currentMemory unit='MiB'>65</currentMemory>"),
        "<currentMemory>",
    ),
    ("current-word", doc(extra="<currentMemory>x</currentMemory>"), "<currentMemory>"),
    ("vcpu-zero", doc(extra="<vcpu>0</vcpu>"), "<vcpu>"),
    ("vcpu-many", doc(extra="<vcpu>256</vcpu>"), "<vcpu>"),
    ("vcpu-word", doc(extra="<vcpu>two</vcpu>"), "<vcpu>"),
    ("os-type", doc(extra="<os><type>linux</type></os>"), "<os><type>"),
    ("os-arch", doc(extra="<os><type arch='aarch64'>hvm</type></os>"), "arch"),
    ("os-machine", doc(extra="<os><type machine='pc,accel=kvm'>hvm</type></os>"), "machine"),
    ("os-twice", doc(extra="<os/><os/>"), "<os>"),
    ("boot-dev", doc(extra="<os><boot dev='floppy'/></os>"), "<os><boot>"),
    ("boot-dev-missing", doc(extra="<os><boot/></os>"), "<os><boot>"),
    ("kernel-relative", doc(extra="<os><kernel>vmlinuz</kernel></os>"), "<os><kernel>"),
    ("initrd-empty", doc(extra="<os><initrd/></os>"), "<os><initrd>"),
    ("cpu-mode", doc(extra="<cpu mode='fastest'/>"), "<cpu>"),
    ("cpu-model", doc(extra="<cpu><model>qemu64,+vmx</model></cpu>"), "<cpu><model>"),
    ("clock", doc(extra="<clock offset='variable'/>"), "<clock>"),
    ("on-poweroff", doc(extra="<on_poweroff>explode</on_poweroff>"), "<on_poweroff>"),
    ("on-reboot", doc(extra="<on_reboot>coredump-restart</on_reboot>"), "<on_reboot>"),
    ("on-crash-twice", doc(extra="<on_crash/><on_crash/>"), "<on_crash>"),
    ("emulator", doc("<emulator>qemu</emulator>"), "<emulator>"),
    ("disk-type", doc(disk(_SRC + "<target dev='vda'/>", "type='network'")), "<disk>"),
    ("disk-device", doc(disk(_SRC + "<target dev='vda'/>", "device='floppy'")), "<disk>"),
    ("disk-format", doc(disk("<driver type='vmdk'/>" + _SRC + "<target dev='vda'/>")), "<disk>"),
    ("disk-driver", doc(disk("<driver name='xen'/>" + _SRC + "<target dev='vda'/>")), "<disk>"),
    ("disk-cache", doc(disk("<driver cache='fast'/>" + _SRC + "<target dev='vda'/>")), "<disk>"),
    ("disk-target", doc(disk(_SRC)), "<disk>"),
    ("disk-target-dev", doc(disk(_SRC + "<target dev='disk0'/>")), "<disk>"),
    ("disk-bus", doc(disk(_SRC + "<target dev='vda' bus='xen'/>")), "<disk>"),
    ("disk-no-source", doc(disk("<target dev='vda'/>")), "<disk>"),
    ("disk-relative", doc(disk("<source file='a.img'/><target dev='vda'/>")), "<disk>"),
    ("disk-dev-for-file", doc(disk("<source dev='/dev/sda'/><target dev='vda'/>")), "<disk>"),
    (
        "disk-duplicate",
        doc(disk(_SRC + "<target dev='vda'/>") + disk(_SRC + "<target dev='vda'/>")),
        "<disk>",
    ),
    ("disk-boot-order", doc(disk(_SRC + "<target dev='vda'/><boot order='0'/>")), "<boot order>"),
    (
        "boot-mixed",
        doc(
            disk(_SRC + "<target dev='vda'/><boot order='1'/>"),
            extra="<os><boot dev='hd'/></os>",
        ),
        "<boot",
    ),
    (
        "boot-order-twice",
        doc(
            disk(_SRC + "<target dev='vda'/><boot order='1'/>")
            + "<interface type='user'><boot order='1'/></interface>"
        ),
        "boot order",
    ),
    ("nic-type", doc("<interface type='direct'/>"), "<interface>"),
    ("nic-no-type", doc("<interface/>"), "<interface>"),
    (
        "nic-mac",
        doc("<interface type='user'><mac address='52:54:00:zz:00:00'/></interface>"),
        "<mac>",
    ),
    (
        "nic-multicast",
        doc("<interface type='user'><mac address='01:00:5e:00:00:01'/></interface>"),
        "<mac>",
    ),
    ("nic-network", doc("<interface type='network'/>"), "<source network"),
    (
        "nic-bridge",
        doc("<interface type='bridge'><source bridge='br 0'/></interface>"),
        "<source bridge",
    ),
    ("nic-model", doc("<interface type='user'><model type='ne2k_pci'/></interface>"), "<model>"),
    ("serial-stdio", doc("<serial type='stdio'/>"), "stdio"),
    ("serial-tcp", doc("<serial type='tcp'/>"), "<serial>"),
    ("serial-file-path", doc("<serial type='file'/>"), "<serial>"),
    (
        "serial-unix-mode",
        doc("<serial type='unix'><source mode='listen' path='/a'/></serial>"),
        "<serial>",
    ),
    ("serial-port", doc("<serial><target port='4'/></serial>"), "<serial>"),
    ("serial-five", doc("<serial/>" * 5), "<serial>"),
    ("serial-same-port", doc("<serial><target port='1'/></serial>" * 2), "<serial>"),
    ("serial-target", doc("<serial><target type='usb-serial'/></serial>"), "<serial>"),
    ("serial-log", doc("<serial><log append='on'/></serial>"), "<log file>"),
    (
        "console-second-serial",
        doc("<console><target type='virtio'/></console><console/>"),
        "<console>",
    ),
    ("console-target", doc("<console><target type='xen'/></console>"), "<console>"),
    ("graphics-spice", doc("<graphics type='spice'/>"), "<graphics>"),
    ("graphics-port", doc("<graphics type='vnc' port='80'/>"), "<graphics>"),
    ("graphics-port-word", doc("<graphics type='vnc' port='auto'/>"), "<graphics>"),
    ("graphics-listen", doc("<graphics type='vnc' listen='a,b'/>"), "<graphics>"),
    ("graphics-two", doc("<graphics type='vnc'/><graphics type='vnc'/>"), "<graphics>"),
    (
        "graphics-listen-mismatch",
        doc("<graphics type='vnc' listen='127.0.0.1'><listen address='::1'/></graphics>"),
        "<graphics>",
    ),
    (
        "graphics-listen-type",
        doc("<graphics type='vnc'><listen type='network'/></graphics>"),
        "<listen>",
    ),
    ("video-model", doc("<video><model type='voodoo'/></video>"), "<video>"),
    ("video-vram", doc("<video><model type='vga' vram='lots'/></video>"), "<video>"),
    ("video-heads", doc("<video><model type='vga' heads='0'/></video>"), "<video>"),
    ("input-type", doc("<input type='joystick'/>"), "<input>"),
    ("input-tablet-ps2", doc("<input type='tablet' bus='ps2'/>"), "<input>"),
    ("panic-model", doc("<panic model='hyperv'/>"), "<panic>"),
    ("panic-twice", doc("<panic/><panic model='isa'/>"), "<panic>"),
    ("balloon-model-missing", doc("<memballoon/>"), "<memballoon>"),
    ("balloon-model", doc("<memballoon model='xen'/>"), "<memballoon>"),
    ("balloon-two", doc("<memballoon model='none'/><memballoon model='none'/>"), "<memballoon>"),
    ("watchdog-model", doc("<watchdog model='diag288'/>"), "<watchdog>"),
    ("watchdog-action", doc("<watchdog model='ib700' action='explode'/>"), "<watchdog>"),
    (
        "watchdog-actions-differ",
        doc("<watchdog model='ib700'/><watchdog model='i6300esb' action='pause'/>"),
        "<watchdog>",
    ),
]


@pytest.mark.parametrize(("xml", "needle"), [case[1:] for case in BAD], ids=[c[0] for c in BAD])
def test_bad_documents(xml: str, needle: str) -> None:
    with pytest.raises(InvalidXML) as caught:
        parse_domain(xml)
    message = str(caught.value)
    assert needle in message
    # A full sentence a user can act on, not a Python repr or a traceback fragment.
    assert message.endswith(".") and message[0] in "<T"
    assert "Traceback" not in message and len(message) < 600


@pytest.mark.parametrize("value", [None, 42, ["<domain/>"]])
def test_non_text_input(value: object) -> None:
    with pytest.raises(InvalidXML):
        parse_domain(value)  # type: ignore[arg-type]


def test_lone_surrogate() -> None:
    with pytest.raises(InvalidXML, match="Unicode"):
        parse_domain("<domain type='qemu'><name>\ud800</name></domain>")


# --- hostile documents --------------------------------------------------------------------


def test_billion_laughs_is_rejected_quickly() -> None:
    entities = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE domain [<!ENTITY lol0 "lol">{entities}]>'
        "<domain type='qemu'><name>&lol9;</name><memory>1024</memory></domain>"
    )
    started = time.monotonic()
    with pytest.raises(InvalidXML, match="DOCTYPE"):
        parse_domain(xml)
    assert time.monotonic() - started < 1.0


def test_external_entity_is_not_expanded() -> None:
    xml = (
        '<!DOCTYPE domain [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        "<domain type='qemu'><name>&xxe;</name><memory>1024</memory></domain>"
    )
    with pytest.raises(InvalidXML, match="DOCTYPE") as caught:
        parse_domain(xml)
    assert "root:" not in str(caught.value)


def test_plain_doctype_is_rejected() -> None:
    with pytest.raises(InvalidXML, match="DOCTYPE"):
        parse_domain("<!DOCTYPE domain><domain type='qemu'><name>a</name></domain>")


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A named pipe: opening it for reading blocks until a writer comes, so any attempt
    to read it shows up as a hang."""
    path = tmp_path / "trap"
    os.mkfifo(path)
    yield path
    # Release a reader stuck in open() (only if the test failed) so no thread lingers.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(fd)


@pytest.mark.parametrize(
    "template",
    [
        '<!DOCTYPE domain [<!ENTITY x SYSTEM "file://{path}">]>'
        "<domain type='qemu'><name>&x;</name><memory>1</memory></domain>",
        '<!DOCTYPE domain SYSTEM "file://{path}">'
        "<domain type='qemu'><name>a</name><memory>1</memory></domain>",
        '<!DOCTYPE domain [<!ENTITY % p SYSTEM "file://{path}"> %p;]>'
        "<domain type='qemu'><name>a</name><memory>1</memory></domain>",
    ],
    ids=["entity", "external-dtd", "parameter-entity"],
)
def test_external_files_are_never_opened(fifo: Path, template: str) -> None:
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            parse_domain(template.format(path=fifo))
        except BaseException as err:
            outcome.append(err)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(5.0)
    assert not thread.is_alive(), "the parser opened the external file"
    assert len(outcome) == 1 and isinstance(outcome[0], InvalidXML)


def _padded(size: int) -> str:
    head = "<domain type='qemu'><name>big</name><memory>1024</memory><description>"
    tail = "</description></domain>"
    return head + "x" * (size - len(head) - len(tail)) + tail


def test_documents_over_four_mib_are_rejected_before_parsing() -> None:
    assert MAX_XML_BYTES == 4 << 20  # libvirt accepts about 3 MB
    too_big = _padded(MAX_XML_BYTES + 1)
    message = (
        f"The domain XML is {MAX_XML_BYTES + 1} bytes; the limit is 4 MiB. Real definitions "
        "are a few kilobytes, so remove what makes it this large (often a pasted log or "
        "image in <description> or <metadata>)."
    )
    with pytest.raises(InvalidXML) as caught:
        parse_domain(too_big)
    assert str(caught.value) == message
    with pytest.raises(InvalidXML) as caught:
        parse_domain(too_big.encode())
    assert str(caught.value) == message
    # Non-ASCII text is measured in UTF-8 bytes, not characters.
    wide = _padded(MAX_XML_BYTES - 10).replace("xxxxxxxxxx", "\u00e9" * 10, 1)
    with pytest.raises(InvalidXML, match="bytes; the limit is 4 MiB"):
        parse_domain(wide + " " * 10)


def test_a_document_of_exactly_four_mib_is_accepted() -> None:
    defn = parse_domain(_padded(MAX_XML_BYTES))
    assert defn.description is not None and len(defn.description) > 4_000_000
    # a 3 MB definition, the size libvirt still takes
    assert parse_domain(_padded(3_000_000)).name == "big"


def test_etree_is_lxml() -> None:
    # DomainDef.root is part of the public API: callers may rely on lxml's element type.
    assert isinstance(load("minimal").root, etree._Element)
