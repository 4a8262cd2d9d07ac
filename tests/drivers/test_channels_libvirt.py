"""virtdeck's virtio-serial channels against libvirt 9.0 itself (machine-facts §11).

Each XML is defined on a libvirtd brought up by bench/libvirt_peer.py. virtdeck's define
of the same XML must write the same ``<address type='virtio-serial'>`` and controllers as
libvirt's dumpxml, and its command line must have the same ``virtio-serial-pci``,
``virtserialport`` devices and chardevs as ``virsh domxml-to-native qemu-argv``.

Accepted difference: the host-side path of a socket libvirt names itself
(``/var/lib/libvirt/qemu/channel/target/domain-N-NAME/PORT``; virtdeck's is under the
domain's runtime directory, ``…/NAME/channel/PORT``) — compared by the port name only.
"""

from __future__ import annotations

import re
import shlex

import pytest
from lxml import etree

from tests.drivers.test_pci import domain
from tests.drivers.test_pci_libvirt import (  # noqa: F401 - the module-scoped peer fixture
    _devices,
    _virtdeck,
    peer,
)

PREFIX = "vdpci-ch"
GA = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
BALLOON = "<memballoon model='virtio'/>"
CASES = {
    # virt-manager's default guest agent channel
    "ga": domain("q35", GA + BALLOON),
    # a virtio console next to channels; one channel has its own port, one a path
    "mixed": domain(
        "q35",
        "<console type='pty'><target type='virtio'/></console>"
        "<channel type='unix'><source mode='bind' path='/tmp/vd-ga.sock'/>"
        "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
        "<channel type='pty'><target type='virtio' name='com.example.a'/></channel>"
        "<channel type='unix'><target type='virtio' name='com.example.b'/>"
        "<address type='virtio-serial' controller='0' bus='0' port='5'/></channel>" + BALLOON,
    ),
    # i440fx: the controller goes straight on pci.0; a nameless pty port
    "pc": domain("pc", GA + "<channel type='pty'><target type='virtio'/></channel>" + BALLOON),
    # a full controller (ports='2'): libvirt adds a second one for the later channels
    "full": domain(
        "q35",
        "<controller type='virtio-serial' index='0' ports='2'/>"
        + "".join(
            f"<channel type='unix'><target type='virtio' name='{n}.0'/></channel>" for n in "abc"
        )
        + BALLOON,
    ),
}


def _serial_view(xml: str) -> list[tuple[str, ...]]:
    """The virtio-serial controllers (with PCI address) and each channel's address."""
    root = etree.fromstring(xml.encode())
    found: list[tuple[str, ...]] = []
    for node in root.iter("controller"):
        if node.get("type") == "virtio-serial":
            addr = node.find("address")
            where = tuple(addr.get(k) or "" for k in ("bus", "slot")) if addr is not None else ()
            found.append(("controller", node.get("index") or "0", node.get("ports") or "", *where))
    for node in root.iter("channel"):
        addr = node.find("address")
        target = node.find("target")
        assert addr is not None and target is not None
        where = tuple(addr.get(k) or "" for k in ("controller", "bus", "port"))
        found.append(("channel", target.get("name") or "", *where))
    return sorted(found)


def _chardevs(argv: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for index, arg in enumerate(argv[:-1]):
        if arg == "-chardev" and "charchannel" in argv[index + 1]:
            spec = argv[index + 1]
            # host-side socket paths: compared by the port name (see the module docstring)
            spec = re.sub(r"path=[^,]*/([^,/]+)", r"path=\1", spec)
            found[spec.split(",")[1]] = spec
    return found


def _serial_devices(devices: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    return {k: v for k, v in devices.items() if k.startswith(("virtio-serial", "channel"))}


@pytest.mark.parametrize("case", list(CASES))
def test_channels_match_libvirt(peer: object, case: str) -> None:  # noqa: F811
    from bench.libvirt_peer import LibvirtPeer

    assert isinstance(peer, LibvirtPeer)
    name = PREFIX + case
    xml = CASES[case].replace("<name>vm</name>", f"<name>{name}</name>")
    peer.define(name, xml)
    dumped = peer.virsh("dumpxml", name).stdout
    native = shlex.split(peer.virsh("domxml-to-native", "qemu-argv", "--domain", name).stdout)
    from drivers.domxml import parse_domain
    from drivers.qemu.argv import build_argv
    from drivers.qemu.registry import prepare_definition
    from tests.drivers.test_pci_libvirt import CTX

    for source in (xml, dumped):
        ours_xml, _ = _virtdeck(source)
        assert _serial_view(ours_xml) == _serial_view(dumped), source
        defn = parse_domain(source)
        prepare_definition(defn)
        ours_argv = build_argv(defn, CTX)
        theirs_full = _devices_full(native)
        ours_full = _devices_full(ours_argv)
        assert _serial_devices(theirs_full)
        assert _serial_devices(ours_full) == _serial_devices(theirs_full)
        assert _chardevs(ours_argv) == _chardevs(native)
        # and every other PCI device sits where libvirt puts it
        placed = _devices(ours_argv)
        for dev_id, props in _devices(native).items():
            if not str(props.get("bus", "")).startswith("usb"):
                assert placed.get(dev_id) == props, dev_id


def _devices_full(argv: list[str]) -> dict[str, dict[str, object]]:
    import json

    found: dict[str, dict[str, object]] = {}
    for index, arg in enumerate(argv[:-1]):
        if arg == "-device" and argv[index + 1].startswith("{"):
            props = json.loads(argv[index + 1])
            found[str(props.get("id", props["driver"]))] = props
    return found
