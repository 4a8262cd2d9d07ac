"""What the QEMU driver does not build is refused at define time, each with a sentence
naming the element (docs/devices.md), instead of being left out of the guest; nothing is
stored then.

Every unsupported element of the differential corpus (tests/drivers/data/corpus, libvirt's
own dumpxml) is defined through the QEMU driver's embed root on its own — the corpus file
with every other unsupported part taken out — and must fail with its sentence, leaving no
definition in the state directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

import drivers
from drivers.domxml import parse_domain
from drivers.errors import InvalidXML, NotSupported
from drivers.qemu.argv import refused_devices
from tests.conftest import require_qemu
from tests.drivers import libvirt_diff as diff
from tests.drivers.test_pci import Q35_LIBVIRT, domain

REFUSED = {
    "<sound model='pcspk'/>": "<sound model='pcspk'>: this sound card is not implemented",
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
    "<audio id='1' type='pulseaudio'/>": "<audio type='pulseaudio'>: this backend needs a sound",
    "<audio id='1' type='file'/>": "<audio id='1' type='file'>: a file backend needs an absolute",
    "<input type='passthrough' bus='virtio'><source evdev='/dev/input/event1'/></input>": (
        "<input type='passthrough'>: passing a host input device to the guest is not"
    ),
    "<input type='evdev'><source dev='/dev/input/event1'/></input>": (
        "<input type='evdev'>: passing a host input device"
    ),
    "<controller type='scsi' model='megasas'/>": (
        "<controller type='scsi' model='megasas'>: this SCSI controller is not implemented"
    ),
    "<disk><driver name='qemu' io='native'/><source file='/a'/><target dev='vda'/></disk>": (
        "<disk> 'vda' <driver>: io is not implemented"
    ),
    "<sound model='ich6'><codec type='speaker'/></sound>": (
        "<sound model='ich6'> <codec type='speaker'>: write type='duplex'"
    ),
    # parts of built elements that are not built
    "<disk><source file='/a'/><target dev='vda'/><shareable/></disk>": (
        "<disk> 'vda' <shareable>: not implemented"
    ),
    "<disk><source file='/a'/><target dev='sda' bus='sata'/><blockio logical_block_size='4096'/>"
    "</disk>": "<disk> 'sda' <blockio>: not implemented",
    "<disk><source file='/a'/><target dev='vda'/><iotune><total_bytes_sec>1</total_bytes_sec>"
    "</iotune></disk>": "<disk> 'vda' <iotune>: not implemented",
    "<disk><source file='/a'/><target dev='sda' bus='usb' removable='on'/></disk>": (
        "<disk> 'sda' <target>: removable= is not implemented"
    ),
    "<interface type='user'><link state='down'/></interface>": (
        "<interface> <link state='down'>: starting with the link down is not implemented"
    ),
    "<interface type='user'><model type='virtio'/><driver name='vhost' queues='4'/></interface>": (
        "<interface> <driver>: not implemented"
    ),
    "<interface type='user'><bandwidth><inbound average='1000'/></bandwidth></interface>": (
        "<interface> <bandwidth>: not implemented"
    ),
    "<graphics type='vnc' websocket='5700'/>": "<graphics>: websocket= is not implemented",
    "<video><model type='virtio'><acceleration accel3d='yes'/></model></video>": (
        "<video> <model><acceleration>: not implemented"
    ),
    "<watchdog model='i6300esb'><driver iommu='on'/></watchdog>": "<watchdog> <driver>: not",
    "<controller type='scsi' model='virtio-scsi'><driver queues='4'/></controller>": (
        "<controller> <driver>: not implemented"
    ),
    "<controller type='pci' index='1' model='pcie-root-port'><target hotplug='off'/>"
    "</controller>": "<controller type='pci' index='1'> <target>: hotplug= is not implemented",
    "<controller type='usb' model='qemu-xhci'><master startport='0'/></controller>": (
        "<controller> <master>: not implemented"
    ),
}
# Settings outside <devices> that the QEMU driver does not build.
REFUSED_SETTINGS = {
    "<features><acpi/><smm state='on'/></features>": "<features><smm>: this feature is not",
    "<features><acpi/><hyperv mode='custom'/></features>": "<features><hyperv>: this feature",
    "<cpu mode='custom'><model>qemu64</model><numa/></cpu>": "<cpu><numa>: this is not",
    "<cpu mode='custom'><model>qemu64</model><topology sockets='2' cores='1' threads='1'/></cpu>": (
        "<cpu><topology>: sockets * dies * cores * threads is 2, but <vcpu> is 1"
    ),
    "<cpu mode='maximum'><feature policy='require' name='x2apic'/></cpu>": (
        "<cpu mode='maximum'> with <feature>s"
    ),
    "<clock offset='utc'><timer name='kvmclock' present='no'/></clock>": (
        "<clock><timer name='kvmclock'>: this timer is not implemented"
    ),
    "<clock offset='utc'><timer name='rtc' tickpolicy='merge'/></clock>": (
        "<clock><timer name='rtc'> tickpolicy='merge'"
    ),
    "<clock offset='utc'><timer name='pit' tickpolicy='catchup'/></clock>": (
        "<clock><timer name='pit'> tickpolicy='catchup'"
    ),
    "<clock offset='utc'><timer name='rtc' track='wall'/></clock>": (
        "<clock><timer name='rtc'> track='wall': only track='guest'"
    ),
    "<pm><suspend-to-mem enabled='maybe'/></pm>": "<pm><suspend-to-mem>: write enabled='yes'",
    "<sysinfo type='smbios'><bios><entry name='vendor'>x</entry></bios></sysinfo>": (
        "<sysinfo type='smbios'> has no effect without <os><smbios mode='sysinfo'/>"
    ),
    "<sysinfo type='fwcfg'><entry name='opt/x'>y</entry></sysinfo>": (
        "<sysinfo type='fwcfg'>: only type='smbios' is implemented"
    ),
    "<iothreads>two</iothreads>": "<iothreads>: 'two' is not a number of I/O threads",
    "<memoryBacking><hugepages/></memoryBacking>": "<memoryBacking>: memory backing options",
    "<cputune><shares>2048</shares></cputune>": "<cputune>: CPU tuning",
    "<numatune><memory mode='strict' nodeset='0'/></numatune>": "<numatune>: NUMA memory",
    "<maxMemory slots='4' unit='GiB'>4</maxMemory>": "<maxMemory>: memory hotplug",
    "<genid>43dc0cf8-809b-4adb-9bea-a9abb5f3d90e</genid>": "<genid>: the VM generation ID",
}
# <os> and <vcpu> settings (the <os> and <vcpu> of the test domain are replaced)
REFUSED_OS = {
    "<os firmware='efi'><type machine='q35'>hvm</type></os>": "<os firmware='efi'>: only",
    "<os><type machine='q35'>hvm</type><loader readonly='yes' type='pflash'>/x.fd</loader>"
    "</os>": "<os><loader>: not implemented",
    "<os><type machine='q35'>hvm</type><bootmenu enable='yes'/></os>": "<os><bootmenu>: not",
    "<vcpu current='1'>2</vcpu><os><type machine='q35'>hvm</type></os>": (
        "<vcpu current='1'>: starting with fewer vCPUs"
    ),
    "<vcpu cpuset='0-1'>1</vcpu><os><type machine='q35'>hvm</type></os>": "<vcpu cpuset>:",
}


@pytest.mark.parametrize("element", list(REFUSED))
def test_refused_device_names_the_element(element: str) -> None:
    problems = refused_devices(parse_domain(domain("q35", element)))
    assert len(problems) == 1 and problems[0].startswith(REFUSED[element]), problems


@pytest.mark.parametrize("setting", list(REFUSED_SETTINGS))
def test_refused_setting_names_the_element(setting: str) -> None:
    xml = domain("q35", "").replace("<os>", setting + "<os>", 1)
    problems = refused_devices(parse_domain(xml))
    assert len(problems) == 1 and problems[0].startswith(REFUSED_SETTINGS[setting]), problems


@pytest.mark.parametrize("setting", list(REFUSED_OS))
def test_refused_os_and_vcpu_settings(setting: str) -> None:
    xml = re.sub(r"<vcpu>1</vcpu><os>.*</os>", setting, domain("q35", ""))
    problems = refused_devices(parse_domain(xml))
    assert len(problems) == 1 and problems[0].startswith(REFUSED_OS[setting]), problems


def test_iothread_of_a_disk_must_exist() -> None:
    xml = domain(
        "q35",
        "<disk><driver name='qemu' iothread='3'/><source file='/a'/><target dev='vda'/></disk>",
    ).replace("<os>", "<iothreads>2</iothreads><os>", 1)
    assert refused_devices(parse_domain(xml)) == [
        "<disk> 'vda' <driver iothread='3'>: the domain has no such I/O thread; raise "
        "<iothreads> (or list it in <iothreadids>)."
    ]


def test_the_qemu_namespace_beyond_commandline_is_refused() -> None:
    ns = "http://libvirt.org/schemas/domain/qemu/1.0"
    xml = domain("q35", "").replace(
        "</devices>",
        f"</devices><qemu:capabilities xmlns:qemu='{ns}'><qemu:add capability='x'/>"
        "</qemu:capabilities>",
    )
    assert refused_devices(parse_domain(xml)) == [
        "<qemu:capabilities>: this part of libvirt's QEMU namespace is not implemented; "
        "remove it (virtdeck applies <qemu:commandline> only)."
    ]


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


# --- the corpus's unsupported elements, through the QEMU driver --------------------------

# (corpus case, XPath of the unsupported part, its attributes (None: the element), the
# sentence the define must fail with)
CORPUS_REFUSALS: list[tuple[str, str, tuple[str, ...] | None, str]] = [
    (
        "spice-desktop",
        "devices/graphics",
        None,
        "<graphics> type='spice' is not supported; virtdeck shows consoles over VNC",
    ),
    ("spice-desktop", "devices/channel", None, "<channel type='spicevmc'> is not supported"),
    ("spice-desktop", "devices/redirdev", None, "<redirdev>: USB redirection is not"),
    ("spice-desktop", "devices/filesystem", None, "<filesystem>: shared folders (virtiofs, 9p)"),
    ("spice-desktop", "devices/audio", None, "<audio type='spice'>: this backend needs a sound"),
    ("spice-desktop", "devices/sound[2]", None, "<sound model='pcspk'>: this sound card is not"),
    ("spice-desktop", "features/smm", None, "<features><smm>: this feature is not implemented"),
    ("spice-desktop", "clock/timer[2]", None, "<clock><timer name='kvmclock'>: this timer is"),
    (
        "spice-desktop",
        "devices/disk/driver",
        ("io", "detect_zeroes"),
        "<disk> 'vda' <driver>: detect_zeroes, io is not implemented",
    ),
]


def _without(tree: etree._Element, parts: list[tuple[str, tuple[str, ...] | None]]) -> None:
    # resolve every XPath first: removing one element renumbers its siblings
    found: list[tuple[etree._Element, tuple[str, ...] | None]] = []
    for path, attrs in parts:
        hits = tree.xpath(path)
        assert isinstance(hits, list) and isinstance(hits[0], etree._Element), path
        found.append((hits[0], attrs))
    for node, attrs in found:
        parent = node.getparent()
        if attrs is None and parent is not None:
            parent.remove(node)
        for attr in attrs or ():
            del node.attrib[attr]


def _case_tree(case: str, root: Path) -> etree._Element:
    text = (diff.CORPUS / f"{case}.xml").read_text().replace(diff.PATH_PREFIX, f"{root}/")
    return etree.fromstring(text.encode())


@pytest.mark.parametrize(
    ("case", "path", "attrs", "sentence"),
    CORPUS_REFUSALS,
    ids=[f"{c[0]}:{c[1]}" for c in CORPUS_REFUSALS],
)
async def test_each_unsupported_corpus_element_is_refused_and_nothing_stored(
    short_tmp: Path, case: str, path: str, attrs: tuple[str, ...] | None, sentence: str
) -> None:
    require_qemu()
    root = short_tmp / "root"
    tree = _case_tree(case, short_tmp)
    others = [(p, a) for c, p, a, _ in CORPUS_REFUSALS if c == case and (p, a) != (path, attrs)]
    _without(tree, others)
    conn = await drivers.open(f"qemu:///embed?root={root}")
    try:
        with pytest.raises((NotSupported, InvalidXML)) as caught:
            await conn.define_xml(etree.tostring(tree, encoding="unicode"))
        assert sentence in str(caught.value)
        assert not any((root / "domains").glob("*")), list((root / "domains").glob("*"))
        assert await conn.list_domains() == []
        # and with that part taken out too, the corpus file defines
        _without(tree, [(path, attrs)])
        dom = await conn.define_xml(etree.tostring(tree, encoding="unicode"))
        assert (root / "domains" / f"{case}.xml").exists()
        await dom.undefine()
    finally:
        await conn.close()


async def test_a_whole_refused_corpus_file_stores_nothing(short_tmp: Path) -> None:
    require_qemu()
    root = short_tmp / "root"
    conn = await drivers.open(f"qemu:///embed?root={root}")
    try:
        for case in sorted({c for c, _, _, _ in CORPUS_REFUSALS}):
            xml = etree.tostring(_case_tree(case, short_tmp), encoding="unicode")
            with pytest.raises((NotSupported, InvalidXML)):
                await conn.define_xml(xml)
        assert not any((root / "domains").glob("*"))
    finally:
        await conn.close()


async def test_define_refuses_and_stores_nothing(short_tmp: Path) -> None:
    require_qemu()
    root = short_tmp / "root"
    conn = await drivers.open(f"qemu:///embed?root={root}")
    try:
        xml = domain("q35", "<sound model='pcspk'/><memballoon model='none'/>")
        with pytest.raises(NotSupported) as caught:
            await conn.define_xml(xml)
        assert str(caught.value) == (
            "Domain 'vm' cannot be defined: <sound model='pcspk'>: this sound card is not "
            "implemented; write model='ich9', 'ich6', 'ac97', 'es1370', 'usb' or 'sb16'."
        )
        assert not (root / "domains" / "vm.xml").exists()
        # the test driver, like libvirt's, keeps what it does not run
        test = await drivers.open("test:///default")
        await test.define_xml(xml)
        await test.close()
    finally:
        await conn.close()
