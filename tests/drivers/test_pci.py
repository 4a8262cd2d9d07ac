"""PCI addresses and controllers: argv (golden, in libvirt 9.0's words), validation, and
the addresses the QEMU driver assigns at define time (libvirt 9.0's q35 and i440fx schemes,
taken from ``virsh dumpxml`` of the same XMLs on libvirtd; the live comparison is in
tests/drivers/test_pci_libvirt.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

import drivers
from drivers.domxml import parse_domain
from drivers.domxml.pci import strip_runtime
from drivers.errors import InvalidXML
from drivers.qemu.argv import LaunchContext, build_argv
from drivers.qemu.registry import prepare_definition
from tests.conftest import require_qemu

CTX = LaunchContext(monitor_fd=3, domain_dir="/run/vd/d")

DISK = (
    "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
    "<source file='/tmp/a.img'/><target dev='vda' bus='virtio'/>{addr}</disk>"
)
NIC = (
    "<interface type='user'><mac address='52:54:00:11:22:33'/><model type='{model}'/>"
    "{addr}</interface>"
)


def domain(machine: str, devices: str, name: str = "vm") -> str:
    return (
        f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>256</memory>"
        f"<vcpu>1</vcpu><os><type arch='x86_64' machine='{machine}'>hvm</type></os>"
        f"<devices>{devices}</devices></domain>"
    )


def addr(bus: int, slot: int, function: int = 0, multi: bool = False) -> str:
    extra = " multifunction='on'" if multi else ""
    return (
        f"<address type='pci' domain='0x0000' bus='{bus:#04x}' slot='{slot:#04x}' "
        f"function='{function:#x}'{extra}/>"
    )


def root_port(index: int, slot: int, function: int, multi: bool = False) -> str:
    return (
        f"<controller type='pci' index='{index}' model='pcie-root-port'>"
        f"<model name='pcie-root-port'/><target chassis='{index}' "
        f"port='{slot * 8 + function:#x}'/>{addr(0, slot, function, multi)}</controller>"
    )


def devices_of(xml: str) -> list[str]:
    argv = build_argv(parse_domain(xml), CTX)
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-device"]


# --- argv -----------------------------------------------------------------------------

# libvirt 9.0's `virsh domxml-to-native qemu-argv` of its own dumpxml of the q35 domain
# (virtio disk + virtio NIC + balloon, no addresses given) — virtdeck gives the same.
Q35_LIBVIRT = domain(
    "q35",
    DISK.format(addr=addr(3, 0))
    + "<controller type='usb' index='0' model='qemu-xhci'>"
    + addr(2, 0)
    + "</controller><controller type='sata' index='0'>"
    + addr(0, 0x1F, 2)
    + "</controller><controller type='pci' index='0' model='pcie-root'/>"
    + root_port(1, 1, 0, True)
    + root_port(2, 1, 1)
    + root_port(3, 1, 2)
    + root_port(4, 1, 3)
    + root_port(5, 1, 4)
    + NIC.format(model="virtio", addr=addr(1, 0))
    + "<input type='mouse' bus='ps2'/><input type='keyboard' bus='ps2'/>"
    + "<audio id='1' type='none'/>"
    + "<memballoon model='virtio'>"
    + addr(4, 0)
    + "</memballoon>",
)


def test_q35_root_ports_and_addresses_as_libvirt_writes_them() -> None:
    assert devices_of(Q35_LIBVIRT) == [
        '{"driver":"pcie-root-port","port":8,"chassis":1,"id":"pci.1","bus":"pcie.0",'
        '"multifunction":true,"addr":"0x1"}',
        '{"driver":"pcie-root-port","port":9,"chassis":2,"id":"pci.2","bus":"pcie.0","addr":"0x1.0x1"}',
        '{"driver":"pcie-root-port","port":10,"chassis":3,"id":"pci.3","bus":"pcie.0","addr":"0x1.0x2"}',
        '{"driver":"pcie-root-port","port":11,"chassis":4,"id":"pci.4","bus":"pcie.0","addr":"0x1.0x3"}',
        '{"driver":"pcie-root-port","port":12,"chassis":5,"id":"pci.5","bus":"pcie.0","addr":"0x1.0x4"}',
        '{"driver":"qemu-xhci","id":"usb","bus":"pci.2","addr":"0x0"}',
        '{"driver":"virtio-blk-pci","bus":"pci.3","addr":"0x0","drive":"libvirt-1-storage",'
        '"id":"virtio-disk0"}',
        '{"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0","mac":"52:54:00:11:22:33",'
        '"bus":"pci.1","addr":"0x0"}',
        '{"driver":"virtio-balloon-pci","id":"balloon0","bus":"pci.4","addr":"0x0"}',
    ]


def test_pc_bridges_video_watchdog_multifunction() -> None:
    xml = domain(
        "pc",
        "<controller type='pci' index='0' model='pci-root'/>"
        "<controller type='pci' index='1' model='pci-bridge'><model name='pci-bridge'/>"
        f"<target chassisNr='1'/>{addr(0, 3)}</controller>"
        "<controller type='usb' index='0' model='piix3-uhci'>"
        f"{addr(0, 1, 2)}</controller>"
        + DISK.format(addr=addr(0, 4, 0, True))
        + NIC.format(model="e1000", addr=addr(1, 3))
        + "<video><model type='cirrus'/>"
        + addr(0, 2)
        + "</video><watchdog model='i6300esb'>"
        + addr(0, 4, 1)
        + "</watchdog><memballoon model='virtio'>"
        + addr(0, 5)
        + "</memballoon>",
    )
    assert devices_of(xml) == [
        '{"driver":"pci-bridge","chassis_nr":1,"id":"pci.1","bus":"pci.0","addr":"0x3"}',
        '{"driver":"piix3-usb-uhci","id":"usb","bus":"pci.0","addr":"0x1.0x2"}',
        '{"driver":"virtio-blk-pci","bus":"pci.0","multifunction":true,"addr":"0x4",'
        '"drive":"libvirt-1-storage","id":"virtio-disk0"}',
        '{"driver":"e1000","netdev":"hostnet0","id":"net0","mac":"52:54:00:11:22:33",'
        '"bus":"pci.1","addr":"0x3"}',
        '{"driver":"cirrus-vga","id":"video0","bus":"pci.0","addr":"0x2"}',
        '{"driver":"virtio-balloon-pci","id":"balloon0","bus":"pci.0","addr":"0x5"}',
        '{"driver":"i6300esb","id":"watchdog0","bus":"pci.0","addr":"0x4.0x1"}',
    ]


def test_q35_bridges() -> None:
    xml = domain(
        "q35",
        "<controller type='pci' index='1' model='dmi-to-pci-bridge'>"
        f"<model name='i82801b11-bridge'/>{addr(0, 0x1E)}</controller>"
        "<controller type='pci' index='2' model='pci-bridge'>"
        f"<target chassisNr='2'/>{addr(1, 0)}</controller>"
        + root_port(3, 2, 0, True)
        + "<controller type='pci' index='4' model='pcie-to-pci-bridge'>"
        + "<model name='pcie-pci-bridge'/>"
        + addr(3, 0)
        + "</controller>"
        + NIC.format(model="rtl8139", addr=addr(2, 1))
        + NIC.format(model="e1000", addr=addr(4, 1)).replace("33'", "34'")
        + "<memballoon model='none'/>",
    )
    assert devices_of(xml) == [
        '{"driver":"i82801b11-bridge","id":"pci.1","bus":"pcie.0","addr":"0x1e"}',
        '{"driver":"pci-bridge","chassis_nr":2,"id":"pci.2","bus":"pci.1","addr":"0x0"}',
        '{"driver":"pcie-root-port","port":16,"chassis":3,"id":"pci.3","bus":"pcie.0",'
        '"multifunction":true,"addr":"0x2"}',
        '{"driver":"pcie-pci-bridge","id":"pci.4","bus":"pci.3","addr":"0x0"}',
        '{"driver":"rtl8139","netdev":"hostnet0","id":"net0","mac":"52:54:00:11:22:33",'
        '"bus":"pci.2","addr":"0x1"}',
        '{"driver":"e1000","netdev":"hostnet1","id":"net1","mac":"52:54:00:11:22:34",'
        '"bus":"pci.4","addr":"0x1"}',
    ]


def test_device_without_address_is_left_to_qemu() -> None:
    devices = devices_of(domain("q35", DISK.format(addr="") + "<memballoon model='none'/>"))
    assert devices == [
        '{"driver":"virtio-blk-pci","drive":"libvirt-1-storage","id":"virtio-disk0"}'
    ]


def test_usb_controller_none_and_virtio_console_controller_address() -> None:
    xml = domain(
        "q35",
        "<controller type='usb' model='none'/>"
        f"<controller type='virtio-serial' index='0'>{addr(0, 5)}</controller>"
        "<console type='pty'><target type='virtio'/></console><memballoon model='none'/>",
    )
    assert devices_of(xml)[0] == (
        '{"driver":"virtio-serial-pci","id":"virtio-serial0","bus":"pcie.0","addr":"0x5"}'
    )
    usb_disk = "<disk type='file'><source file='/a'/><target dev='sda' bus='usb'/></disk>"
    with pytest.raises(InvalidXML, match=r"model='none', but a USB disk"):
        devices_of(domain("q35", "<controller type='usb' model='none'/>" + usb_disk))


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        (
            DISK.format(addr=addr(5, 0)),
            r"<disk> 'vda' <address> is on bus 0x05, but there is no "
            r"<controller type='pci' index='5'>",
        ),
        (
            DISK.format(addr=addr(0, 3)) + NIC.format(model="virtio", addr=addr(0, 3)),
            r"<interface> #1 and <disk> 'vda' both have the PCI address 00:03.0",
        ),
        (
            root_port(1, 2, 0, True) + DISK.format(addr=addr(1, 1)),
            r"a pcie-root-port \(bus 0x01\) has only slot 0",
        ),
        (
            DISK.format(addr="<address type='pci' domain='0x0001' bus='0' slot='3'/>"),
            r"QEMU has one PCI domain; write domain='0x0000'",
        ),
        (
            DISK.format(addr="<address type='pci' bus='0' slot='0x20'/>"),
            r"slot='0x20' is not a PCI slot number; write a number from 0 to 0x1f",
        ),
        (
            "<controller type='pci' index='1' model='pcie-root'/>",
            r"<controller type='pci' index='1'>: model='pcie-root' is not supported here",
        ),
        (
            "<controller type='pci' index='0' model='pci-root'/>",
            r"as the root bus on the q35 machine; write model='pcie-root'",
        ),
        (
            "<controller type='usb' model='nec-xhci'/>",
            r"<controller type='usb'>: model='nec-xhci' is not supported",
        ),
    ],
)
def test_invalid_pci_addresses_are_refused(devices: str, message: str) -> None:
    with pytest.raises(InvalidXML, match=message):
        parse_domain(domain("q35", devices))


def test_pcie_root_port_needs_q35() -> None:
    with pytest.raises(InvalidXML, match=r"a pcie-root-port needs the PCI Express machine"):
        parse_domain(domain("pc", root_port(1, 2, 0, True)))


def test_ide_disk_with_pci_address_is_refused() -> None:
    disk = f"<disk type='file'><source file='/a'/><target dev='hda' bus='ide'/>{addr(0, 3)}</disk>"
    with pytest.raises(InvalidXML, match=r"a bus='ide' disk sits on its controller"):
        devices_of(domain("pc", disk))


# --- define-time assignment -----------------------------------------------------------


def assigned(xml: str) -> dict[str, tuple[str, ...]]:
    """Each PCI device (as `tag[:kind] #n`) → its address attributes after define."""
    defn = parse_domain(xml)
    prepare_definition(defn)
    return pci_map(defn.to_xml())


def pci_map(xml: str) -> dict[str, tuple[str, ...]]:
    root = etree.fromstring(xml.encode())
    devices = root.find("devices")
    assert devices is not None
    found: dict[str, tuple[str, ...]] = {}
    seen: dict[str, int] = {}
    for node in devices:
        if not isinstance(node.tag, str):
            continue
        key = str(node.tag)
        if key == "controller":
            key = f"controller:{node.get('type')}:{node.get('index') or '0'}:{node.get('model')}"
        seen[key] = seen.get(key, 0) + 1
        key = f"{key} #{seen[key]}"
        address = node.find("address")
        if address is None or address.get("type") != "pci":
            if node.tag == "controller":
                found[key] = ()
            continue
        found[key] = tuple(
            f"{name}={int(address.get(name) or '0', 0)}" for name in ("bus", "slot", "function")
        ) + (("multi",) if address.get("multifunction") == "on" else ())
        target = node.find("target")
        if node.get("model") == "pcie-root-port" and target is not None:
            found[key] += (
                f"chassis={target.get('chassis')}",
                f"port={int(target.get('port') or '0', 0)}",
            )
    return found


def port(index: int, slot: int, function: int, multi: bool = False) -> tuple[str, tuple[str, ...]]:
    where: tuple[str, ...] = ("bus=0", f"slot={slot}", f"function={function}")
    if multi:
        where += ("multi",)
    return (
        f"controller:pci:{index}:pcie-root-port #1",
        (*where, f"chassis={index}", f"port={slot * 8 + function}"),
    )


Q35_BARE = domain(
    "q35",
    DISK.format(addr="") + NIC.format(model="virtio", addr="") + "<memballoon model='virtio'/>",
)
# what libvirt 9.0's `virsh define` + `virsh dumpxml` gave for Q35_BARE
Q35_BARE_LIBVIRT = {
    "disk #1": ("bus=3", "slot=0", "function=0"),
    "interface #1": ("bus=1", "slot=0", "function=0"),
    "memballoon #1": ("bus=4", "slot=0", "function=0"),
    "controller:pci:0:pcie-root #1": (),
    "controller:sata:0:None #1": ("bus=0", "slot=31", "function=2"),
    "controller:usb:0:qemu-xhci #1": ("bus=2", "slot=0", "function=0"),
    **dict(
        [
            port(1, 1, 0, True),
            port(2, 1, 1),
            port(3, 1, 2),
            port(4, 1, 3),
            port(5, 1, 4),
        ]
    ),
}
PC_BARE = domain(
    "pc",
    "<disk type='file'><source file='/tmp/a.img'/><target dev='hda' bus='ide'/></disk>"
    + NIC.format(model="e1000", addr="")
    + "<memballoon model='virtio'/>",
)
PC_BARE_LIBVIRT = {
    "interface #1": ("bus=0", "slot=2", "function=0"),
    "memballoon #1": ("bus=0", "slot=3", "function=0"),
    "controller:pci:0:pci-root #1": (),
    "controller:ide:0:None #1": ("bus=0", "slot=1", "function=1"),
    "controller:usb:0:piix3-uhci #1": ("bus=0", "slot=1", "function=2"),
}
# q35 with a VGA card, a conventional-PCI NIC (e1000) and watchdog: libvirt reserves
# pcie.0 slot 1 for the video, puts the root ports on slot 2 and the e1000/i6300esb on a
# pcie-to-pci-bridge behind the first root port.
Q35_MIXED = domain(
    "q35",
    DISK.format(addr="")
    + NIC.format(model="e1000", addr="")
    + "<graphics type='vnc' port='5901' autoport='no'/><video><model type='vga'/></video>"
    + "<watchdog model='i6300esb'/><memballoon model='virtio'/>",
)
Q35_MIXED_LIBVIRT = {
    "disk #1": ("bus=4", "slot=0", "function=0"),
    "interface #1": ("bus=2", "slot=1", "function=0"),
    "video #1": ("bus=0", "slot=1", "function=0"),
    "watchdog #1": ("bus=2", "slot=2", "function=0"),
    "memballoon #1": ("bus=5", "slot=0", "function=0"),
    "controller:pci:0:pcie-root #1": (),
    "controller:sata:0:None #1": ("bus=0", "slot=31", "function=2"),
    "controller:usb:0:qemu-xhci #1": ("bus=3", "slot=0", "function=0"),
    "controller:pci:2:pcie-to-pci-bridge #1": ("bus=1", "slot=0", "function=0"),
    **dict([port(1, 2, 0, True), port(3, 2, 1), port(4, 2, 2), port(5, 2, 3), port(6, 2, 4)]),
}


@pytest.mark.parametrize(
    ("xml", "expected"),
    [(Q35_BARE, Q35_BARE_LIBVIRT), (PC_BARE, PC_BARE_LIBVIRT), (Q35_MIXED, Q35_MIXED_LIBVIRT)],
    ids=["q35-virtio", "pc-ide-e1000", "q35-vga-e1000-watchdog"],
)
def test_assignment_matches_libvirt_9(xml: str, expected: dict[str, tuple[str, ...]]) -> None:
    assert assigned(xml) == expected


def test_assignment_keeps_given_addresses_and_adds_no_spare_port() -> None:
    defn = parse_domain(Q35_LIBVIRT)
    before = pci_map(defn.to_xml())
    prepare_definition(defn)
    assert pci_map(defn.to_xml()) == before


def test_assignment_uses_free_root_ports_first() -> None:
    xml = domain("q35", root_port(1, 3, 0, True) + root_port(2, 3, 1) + DISK.format(addr=""))
    result = assigned(xml)
    # libvirt's order: controllers (USB) before disks; no spare: the XML listed its ports
    assert result["controller:usb:0:qemu-xhci #1"] == ("bus=1", "slot=0", "function=0")
    assert result["disk #1"] == ("bus=2", "slot=0", "function=0")
    assert not any(key.startswith("controller:pci:3") for key in result)


def test_assignment_is_idempotent() -> None:
    defn = parse_domain(Q35_MIXED)
    prepare_definition(defn)
    once = defn.to_xml()
    again = parse_domain(once)
    prepare_definition(again)
    assert again.to_xml() == once


def test_assigned_argv_runs_in_qemu_order() -> None:
    """The assigned definition's argv puts each device on its root port."""
    defn = parse_domain(Q35_BARE)
    prepare_definition(defn)
    props = [
        json.loads(arg)
        for arg in build_argv(defn, CTX)
        if arg.startswith("{") and '"driver"' in arg and "node-name" not in arg
    ]
    where = {p["id"]: (p.get("bus"), p.get("addr")) for p in props if "id" in p}
    assert where["virtio-disk0"] == ("pci.3", "0x0")
    assert where["net0"] == ("pci.1", "0x0")
    assert where["balloon0"] == ("pci.4", "0x0")
    assert where["usb"] == ("pci.2", "0x0")
    assert where["pci.5"] == ("pcie.0", "0x1.0x4")


# --- runtime-only parts ---------------------------------------------------------------

LIVE = """<domain type='qemu' id='7'>
  <name>vm</name><memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <serial type='pty'><source path='/dev/pts/3'/><target port='0'/><alias name='serial0'/></serial>
    <console type='pty' tty='/dev/pts/3'><source path='/dev/pts/3'/><target type='serial' port='0'/>
      <alias name='serial0'/></console>
    <serial type='file'><source path='/tmp/s.log'/><target port='1'/></serial>
    <graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'/>
    <memballoon model='none'><alias name='balloon0'/></memballoon>
  </devices>
</domain>"""


def test_runtime_parts_are_dropped() -> None:
    defn = parse_domain(LIVE)
    strip_runtime(defn.root)
    text = defn.to_xml()
    assert "id=" not in text.split("\n")[0]
    assert "<alias" not in text and "tty=" not in text and "/dev/pts" not in text
    assert "/tmp/s.log" in text  # a file serial keeps its path
    assert 'port="-1" autoport="yes"' in text  # the display port is chosen per start


# --- through the QEMU driver: stored, and stable across a redefine ---------------------


async def test_define_stores_addresses_and_redefine_keeps_them(short_tmp: Path) -> None:
    require_qemu()
    root = short_tmp / "root"
    conn = await drivers.open(f"qemu:///embed?root={root}")
    try:
        dom = await conn.define_xml(LIVE.replace("<name>vm</name>", "<name>live</name>"))
        shown = await dom.xml(inactive=True)
        assert "id='7'" not in shown and 'id="7"' not in shown and "<alias" not in shown
        await conn.define_xml(Q35_BARE)
        stored = (root / "domains" / "vm.xml").read_text()
        assert pci_map(stored) == Q35_BARE_LIBVIRT
        # a redefine from the stored XML with one more disk: nothing already placed moves
        new_disk = DISK.format(addr="").replace("vda", "vdb").replace("a.img", "b.img")
        more = stored.replace("</devices>", new_disk + "</devices>")
        await conn.define_xml(more)
        again = pci_map((root / "domains" / "vm.xml").read_text())
        for key, value in Q35_BARE_LIBVIRT.items():
            assert again[key] == value
        # the new disk went on the spare root port libvirt also leaves for it
        assert again["disk #2"] == ("bus=5", "slot=0", "function=0")
    finally:
        await conn.close()


def test_a_bridge_needed_last_still_sits_behind_the_first_root_port() -> None:
    """libvirt 9.0 (checked live in test_pci_libvirt.py 'q35-many'): the root ports and the
    pcie-to-pci-bridge get their indexes in the order devices need them, but are placed
    in index order, so the bridge a secondary qxl needs takes the first root port; a root
    port alone on its slot is not multifunction."""
    xml = domain(
        "q35",
        DISK.format(addr="")
        + NIC.format(model="virtio", addr="")
        + "<console type='pty'><target type='virtio'/></console>"
        + "<input type='keyboard' bus='virtio'/><graphics type='vnc' port='5905' autoport='no'/>"
        + "<video><model type='virtio'/></video><video><model type='qxl'/></video>"
        + "<memballoon model='virtio'/>",
    )
    result = assigned(xml)
    bridges = [k for k in result if "pcie-to-pci-bridge" in k]
    assert len(bridges) == 1 and result[bridges[0]] == ("bus=1", "slot=0", "function=0")
    assert result["video #2"][:2] == (f"bus={bridges[0].split(':')[2]}", "slot=1")
    assert result["interface #1"] == ("bus=2", "slot=0", "function=0")
    ports = {k: v for k, v in result.items() if "pcie-root-port" in k}
    assert sum("multi" in v for v in ports.values()) == 1


def test_virtio_rng_as_libvirt_writes_it() -> None:
    """libvirt 9.0's domxml-to-native of the same <rng> elements."""
    xml = domain(
        "q35",
        "<rng model='virtio'><backend model='random'>/dev/urandom</backend>"
        f"{addr(5, 0)}</rng>"
        "<rng model='virtio'><rate bytes='1234' period='2000'/><backend model='builtin'/>"
        f"{addr(6, 0)}</rng>"
        + "".join(root_port(i, 1, i - 1, i == 1) for i in range(1, 7))
        + "<memballoon model='none'/>",
    )
    argv = build_argv(parse_domain(xml), CTX)
    objects = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-object"]
    assert objects == [
        '{"qom-type":"rng-random","id":"objrng0","filename":"/dev/urandom"}',
        '{"qom-type":"rng-builtin","id":"objrng1"}',
    ]
    assert devices_of(xml)[-2:] == [
        '{"driver":"virtio-rng-pci","rng":"objrng0","id":"rng0","bus":"pci.5","addr":"0x0"}',
        '{"driver":"virtio-rng-pci","rng":"objrng1","id":"rng1","max-bytes":1234,'
        '"period":2000,"bus":"pci.6","addr":"0x0"}',
    ]


def test_a_migration_destination_xml_is_placed_like_its_source() -> None:
    from drivers.migration import placed_like

    defn = parse_domain(Q35_BARE)
    prepare_definition(defn)
    source = defn.to_xml()
    # the user's destination XML without addresses gets the ones the source runs with
    assert pci_map(placed_like(Q35_BARE, source)) == pci_map(source)
    # a source running without addresses (defined before they were assigned): unchanged
    assert placed_like(Q35_BARE, Q35_BARE) == Q35_BARE


def test_an_empty_pci_address_is_assigned_like_a_missing_one() -> None:
    """libvirt reads <address type='pci'/> (or 0000:00:00.0) as "not assigned yet"."""
    xml = Q35_BARE.replace(
        "<target dev='vda' bus='virtio'/>", "<target dev='vda' bus='virtio'/><address type='pci'/>"
    )
    assert devices_of(xml)[0] == (
        '{"driver":"virtio-blk-pci","drive":"libvirt-1-storage","id":"virtio-disk0"}'
    )
    assert assigned(xml) == Q35_BARE_LIBVIRT


def test_pc_devices_go_on_the_pci_bridge_once_pci_0_is_full() -> None:
    disks = "".join(
        DISK.format(addr="").replace("vda", f"vda{c}") for c in "abcdefghijklmnopqrstuvwxyz"
    )
    xml = domain(
        "pc",
        "<controller type='pci' index='1' model='pci-bridge'/>"
        + disks
        + disks.replace("vda", "vdb"),
    )
    result = assigned(xml)
    on_root = [k for k, v in result.items() if k.startswith("disk") and v[0] == "bus=0"]
    on_bridge = [k for k, v in result.items() if k.startswith("disk") and v[0] == "bus=1"]
    # pci.0: slots 2-31 minus the bridge's (3 .. 31 after slot 1 PIIX3 and 2 the bridge)
    assert len(on_root) == 29 and len(on_bridge) == 52 - 29
    assert result["disk #30"] == ("bus=1", "slot=1", "function=0")
    with pytest.raises(InvalidXML, match=r"pci.0 and its bridges have no free slot left"):
        assigned(domain("pc", disks + disks.replace("vda", "vdb")))
