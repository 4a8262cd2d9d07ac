"""USB ports and drive addresses: read, checked and assigned at define time as libvirt 9.0
does (the live comparison with libvirt's own assignment is test_libvirt_corpus.py)."""

from __future__ import annotations

import re

import pytest

from drivers.domxml import parse_domain
from drivers.errors import InvalidXML
from drivers.qemu.argv import LaunchContext, build_argv
from drivers.qemu.registry import prepare_definition
from tests.drivers.test_pci import domain

CTX = LaunchContext(monitor_fd=3, domain_dir="/run/vd/d")
USB_DISK = "<disk><source file='/a'/><target dev='sdb' bus='usb'/>{addr}</disk>"


def usb_port(port: str) -> str:
    return f"<address type='usb' bus='0' port='{port}'/>"


def prepared(xml: str) -> str:
    defn = parse_domain(xml)
    prepare_definition(defn)
    return defn.to_xml()


def ports(xml: str) -> list[tuple[str, str]]:
    """(element, port) in document order."""
    found = re.findall(r"<(disk|input|sound)[^>]*>(?:(?!</\1>).)*?port=\"(\d+)\"", xml, re.S)
    return [(tag, port) for tag, port in found]


def test_usb_ports_go_disks_first_then_inputs_then_sound() -> None:
    xml = prepared(
        domain(
            "q35",
            "<sound model='usb'/><input type='tablet' bus='usb'/>"
            + USB_DISK.format(addr="")
            + "<input type='keyboard' bus='usb'/>",
        )
    )
    # libvirt 9.0 (virsh dumpxml of the same XML): disk 1, tablet 2, keyboard 3, sound 4
    assert ports(xml) == [("sound", "4"), ("input", "2"), ("disk", "1"), ("input", "3")]


def test_a_given_usb_port_is_kept_and_skipped() -> None:
    xml = prepared(
        domain(
            "q35",
            f"<input type='tablet' bus='usb'>{usb_port('3')}</input>"
            "<input type='keyboard' bus='usb'/>",
        )
    )
    assert ports(xml) == [("input", "3"), ("input", "1")]
    argv = "\n".join(build_argv(parse_domain(xml), CTX))
    assert '{"driver":"usb-tablet","id":"input0","bus":"usb.0","port":"3"}' in argv
    assert '{"driver":"usb-kbd","id":"input1","bus":"usb.0","port":"1"}' in argv


def test_more_usb_devices_than_ports_are_refused() -> None:
    devices = "".join("<input type='tablet' bus='usb'/>" for _ in range(3))
    with pytest.raises(InvalidXML) as caught:
        prepared(domain("pc", devices))
    assert str(caught.value) == (
        "<input> #3: the USB controller's 2 ports are all taken (3 USB devices); libvirt "
        "would add a USB hub, which virtdeck does not build: remove USB devices, use virtio "
        "or PS/2 inputs, or give the controller more ports (<controller type='usb' "
        "model='qemu-xhci' ports='8'/>)."
    )
    # a qemu-xhci with ports= has as many
    xhci = "<controller type='usb' model='qemu-xhci' ports='6'/>"
    assert len(ports(prepared(domain("q35", xhci + devices * 2)))) == 6


def test_usb_devices_need_a_usb_controller() -> None:
    xml = domain("q35", "<controller type='usb' model='none'/><input type='tablet' bus='usb'/>")
    with pytest.raises(InvalidXML) as caught:
        prepared(xml)
    assert str(caught.value) == (
        "<controller type='usb'> has model='none', but <input> #1 needs a USB controller; "
        "write model='qemu-xhci' or remove the USB devices."
    )


@pytest.mark.parametrize(
    ("address", "message"),
    [
        (usb_port("1.2"), "port='1.2' is a port of a USB hub, and virtdeck builds no hubs"),
        (usb_port("5"), "port 5 does not exist; the USB controller has 4 ports (1-4)"),
        ("<address type='usb' bus='1' port='1'/>", "bus='1'; virtdeck gives a guest one USB"),
        (usb_port("x"), "port='x' is not a port number"),
    ],
)
def test_bad_usb_addresses_are_refused(address: str, message: str) -> None:
    with pytest.raises(InvalidXML) as caught:
        parse_domain(domain("q35", f"<input type='tablet' bus='usb'>{address}</input>"))
    assert message in str(caught.value)


def test_two_devices_on_one_usb_port_are_refused() -> None:
    xml = domain(
        "q35",
        f"<input type='tablet' bus='usb'>{usb_port('2')}</input>"
        + USB_DISK.format(addr=usb_port("2")),
    )
    with pytest.raises(InvalidXML, match="are both on USB port 2"):
        parse_domain(xml)


def test_drive_addresses_and_the_scsi_controllers_they_name() -> None:
    xml = prepared(
        domain(
            "q35",
            "<disk><source file='/a'/><target dev='sda' bus='scsi'/></disk>"
            "<disk device='cdrom'><target dev='sdh' bus='scsi'/></disk>"
            "<disk><source file='/b'/><target dev='sdc' bus='sata'/></disk>",
        )
    )
    # sdh is the eighth SCSI name: a narrow bus has 7 units, so libvirt puts it on a
    # second (lsilogic) controller
    assert '<address type="drive" controller="0" bus="0" target="0" unit="0"/>' in xml
    assert '<address type="drive" controller="1" bus="0" target="0" unit="0"/>' in xml
    assert '<address type="drive" controller="0" bus="0" target="0" unit="2"/>' in xml
    assert '<controller type="scsi" index="0" model="lsilogic">' in xml
    assert '<controller type="scsi" index="1" model="lsilogic">' in xml
    argv = "\n".join(build_argv(parse_domain(xml), CTX))
    assert '"driver":"scsi-cd","bus":"scsi1.0","scsi-id":0,"id":"scsi1-0-0"' in argv
    assert '"driver":"ide-hd","bus":"ide.2","drive":"libvirt-1-storage","id":"sata0-0-2"' in argv


def test_ide_drive_address_on_pc() -> None:
    xml = domain(
        "pc",
        "<disk><source file='/a'/><target dev='hda' bus='ide'/>"
        "<address type='drive' controller='0' bus='1' target='0' unit='1'/></disk>",
    )
    argv = "\n".join(build_argv(parse_domain(xml), CTX))
    assert '{"driver":"ide-hd","bus":"ide.1","unit":1,' in argv and '"id":"ide0-1-1"' in argv
    with pytest.raises(InvalidXML, match="four places"):
        build_argv(parse_domain(xml.replace("bus='1' target", "bus='2' target")), CTX)
