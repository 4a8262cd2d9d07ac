"""Device elements the QEMU driver does not build are refused at define time, each with a
sentence naming the element (docs/devices.md), instead of leaving them out of the guest."""

from __future__ import annotations

from pathlib import Path

import pytest

import drivers
from drivers.domxml import parse_domain
from drivers.errors import NotSupported
from drivers.qemu.argv import refused_devices
from tests.conftest import require_qemu
from tests.drivers.test_pci import Q35_LIBVIRT, domain

REFUSED = {
    "<sound model='ich9'/>": "<sound>: sound cards are not implemented; remove <sound>",
    "<rng model='virtio'><backend model='egd' type='tcp'/></rng>": (
        "<rng> <backend model='egd'>: only 'random' (a host device) and 'builtin'"
    ),
    "<rng model='hwrng'><backend model='random'/></rng>": (
        "<rng model='hwrng'>: only model='virtio' is implemented"
    ),
    "<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>": (
        "<channel type='spicevmc'> is not supported: it needs a SPICE display"
    ),
    "<channel type='spiceport'><target type='virtio' name='org.qemu.console.0'/></channel>": (
        "<channel type='spiceport'> is not supported: it needs a SPICE display"
    ),
    "<channel type='unix'><target type='guestfwd' address='10.0.2.1' port='4600'/></channel>": (
        "<channel> #1 <target type='guestfwd'> is not supported: virtdeck builds virtio-serial"
    ),
    "<channel type='pty'><target type='xen' name='org.qemu.guest_agent.0'/></channel>": (
        "<channel> 'org.qemu.guest_agent.0' <target type='xen'> is not supported"
    ),
    "<channel type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/>"
    "<target type='virtio' name='a.0'/></channel>": (
        "<channel type='tcp'> is not supported: only unix and pty channels are implemented"
    ),
    "<filesystem type='mount'><source dir='/srv'/><target dir='srv'/></filesystem>": (
        "<filesystem>: shared folders (virtiofs, 9p) are not implemented"
    ),
    "<hostdev mode='subsystem' type='pci'/>": "<hostdev>: device passthrough",
    "<tpm model='tpm-crb'/>": "<tpm>: TPM devices are not implemented",
    "<controller type='ccid' index='0'/>": "<controller type='ccid'>: this controller is not",
    "<audio id='1' type='pulseaudio'/>": "<audio type='pulseaudio'>: only type='none'",
}


@pytest.mark.parametrize("element", list(REFUSED))
def test_refused_device_names_the_element(element: str) -> None:
    problems = refused_devices(parse_domain(domain("q35", element)))
    assert len(problems) == 1 and problems[0].startswith(REFUSED[element]), problems


def test_what_libvirt_writes_by_default_is_accepted() -> None:
    # libvirt's dumpxml: <audio type='none'>, ps2 inputs, usb/sata/pci controllers
    assert refused_devices(parse_domain(Q35_LIBVIRT)) == []


def test_guest_agent_and_pty_channels_are_accepted() -> None:
    # virt-manager's default guest agent channel, and a pty channel
    channels = (
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
        "<channel type='pty'><target type='virtio' name='com.example.0'/></channel>"
    )
    assert refused_devices(parse_domain(domain("q35", channels))) == []


async def test_define_refuses_and_stores_nothing(short_tmp: Path) -> None:
    require_qemu()
    root = short_tmp / "root"
    conn = await drivers.open(f"qemu:///embed?root={root}")
    try:
        xml = domain("q35", "<sound model='ich9'/><memballoon model='none'/>")
        with pytest.raises(NotSupported) as caught:
            await conn.define_xml(xml)
        assert str(caught.value) == (
            "Domain 'vm' cannot be defined: <sound>: sound cards are not implemented; remove "
            "<sound> (the guest has no audio device)."
        )
        assert not (root / "domains" / "vm.xml").exists()
        # the test driver, like libvirt's, keeps what it does not run
        test = await drivers.open("test:///default")
        await test.define_xml(xml)
        await test.close()
    finally:
        await conn.close()
