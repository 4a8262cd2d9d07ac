"""Every XML ``virtdeck dumpxml`` prints passes libvirt's own schema (``virt-xml-validate``).

A set of domains covering the devices the QEMU driver builds (docs/devices.md) is defined
on a real QEMU driver, its inactive XML validated, then started under TCG and its live XML
(ids, aliases, pty paths, the port a VNC display got) validated too. The test driver's
domains, in every state it seeds, are validated likewise, and so is virtdeck's dumpxml of
each realistic ``virsh dumpxml`` file in tests/drivers/data/corpus/ (whatever is there).

``virt-xml-validate`` comes with Debian's libvirt-clients and needs ``xmllint``
(libxml2-utils).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import drivers
from drivers.api import Connection
from drivers.errors import VirtError
from tests.conftest import require, require_qemu
from tests.e2e.conftest import kill_root_processes
from tests.e2e.helpers import diskless_xml, guest_xml
from tests.guest import GuestImage

pytestmark = [pytest.mark.differential]

CORPUS = Path(__file__).resolve().parents[1] / "drivers" / "data" / "corpus"


def validate(xml: str, where: Path) -> None:
    """Fail with libvirt's words unless ``xml`` is a valid libvirt domain."""
    validator = shutil.which("virt-xml-validate")
    require(validator is not None, "virt-xml-validate is missing (apt-get install libvirt-clients)")
    xmllint = shutil.which("xmllint")
    require(xmllint is not None, "xmllint is missing (apt-get install libxml2-utils)")
    assert validator is not None
    where.write_text(xml)
    done = subprocess.run(
        [validator, str(where), "domain"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{done.stderr.strip()}\n{xml}"


def q35_everything(images: Path) -> str:
    """q35 with one of most things the QEMU driver builds."""
    return f"""<domain type='qemu'>
  <name>ix-q35</name>
  <title>Every device on q35</title>
  <description>virtdeck's QEMU driver, device by device.</description>
  <metadata><app:tag xmlns:app='urn:example:app'>interop</app:tag></metadata>
  <memory unit='MiB'>128</memory>
  <currentMemory unit='MiB'>96</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <boot dev='hd'/>
    <boot dev='cdrom'/>
  </os>
  <features><acpi/><apic/></features>
  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>coredump-restart</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='{images}/a.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{images}/b.img'/>
      <target dev='sdb' bus='scsi'/>
      <readonly/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='{images}/c.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='sdc' bus='sata'/>
    </disk>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <interface type='user'>
      <mac address='52:54:00:aa:00:01'/>
      <model type='virtio'/>
    </interface>
    <interface type='user'>
      <mac address='52:54:00:aa:00:02'/>
      <model type='e1000e'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>
    <serial type='file'>
      <source path='{images}/serial1.log'/>
      <target port='1'/>
    </serial>
    <console type='pty'><target type='virtio' port='0'/></console>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <video><model type='virtio' heads='1'/></video>
    <input type='tablet' bus='usb'/>
    <input type='keyboard' bus='virtio'/>
    <panic model='isa'/>
    <watchdog model='i6300esb' action='reset'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <rng model='virtio'><rate bytes='1234' period='2000'/><backend model='builtin'/></rng>
    <memballoon model='virtio'/>
  </devices>
</domain>"""


def pc_ide(images: Path) -> str:
    """i440fx with IDE, a bridge, cirrus + VNC, an ib700 watchdog, a unix serial."""
    return f"""<domain type='qemu'>
  <name>ix-pc</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <clock offset='localtime'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>preserve</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{images}/b.img'/>
      <target dev='hda' bus='ide'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <controller type='pci' index='1' model='pci-bridge'/>
    <interface type='user'>
      <mac address='52:54:00:bb:00:01'/>
      <model type='rtl8139'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:bb:00:02'/>
      <source network='default'/>
      <model type='e1000'/>
    </interface>
    <serial type='unix'>
      <source mode='bind' path='{images}/pc-serial.sock'/>
      <target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <graphics type='vnc' port='-1' autoport='yes'/>
    <video><model type='cirrus'/></video>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <watchdog model='ib700' action='poweroff'/>
    <memballoon model='none'/>
  </devices>
</domain>"""


@pytest.fixture
async def embed(short_tmp: Path) -> AsyncIterator[Connection]:
    require_qemu()
    root = short_tmp / "root"
    conn = await drivers.open(f"qemu:///embed?root={root}")
    try:
        yield conn
    finally:
        await conn.close()
        kill_root_processes(root)


def _images(short_tmp: Path) -> Path:
    images = short_tmp / "img"
    images.mkdir()
    qemu_img = shutil.which("qemu-img")
    require(qemu_img is not None, "qemu-img is not installed (apt-get install qemu-utils)")
    assert qemu_img is not None
    subprocess.run(
        [qemu_img, "create", "-q", "-f", "qcow2", str(images / "a.qcow2"), "16M"], check=True
    )
    for name in ("b.img", "c.iso"):
        (images / name).write_bytes(b"\0" * 1024 * 1024)
    return images


def _domains(short_tmp: Path, guest: GuestImage | None) -> dict[str, str]:
    images = _images(short_tmp)
    found = {
        "q35-everything": q35_everything(images),
        "pc-ide-bridge": pc_ide(images),
        "diskless": diskless_xml("ix-diskless"),
    }
    if guest is not None:
        found["kernel-boot"] = guest_xml("ix-kernel", guest, images / "k.sock")
    return found


async def test_qemu_driver_dumpxml_validates_inactive_and_live(
    embed: Connection, short_tmp: Path
) -> None:
    from tests.guest import require_guest

    guest = require_guest()
    out = short_tmp / "out"
    out.mkdir()
    for case, xml in _domains(short_tmp, guest).items():
        dom = await embed.define_xml(xml)
        validate(await dom.xml(inactive=True), out / f"{case}.inactive.xml")
        await dom.start()
        try:
            live = await dom.xml()
            assert ' id="' in live.split(">", 1)[0], live  # the live XML, with its id
            validate(live, out / f"{case}.live.xml")
            validate(await dom.xml(inactive=True), out / f"{case}.inactive-while-running.xml")
        finally:
            await dom.destroy()
        await dom.undefine()


async def test_test_driver_dumpxml_validates(short_tmp: Path) -> None:
    conn = await drivers.open("test:///default")
    try:
        domains = await conn.list_domains()
        assert domains
        for dom in domains:
            for inactive in (False, True):
                validate(await dom.xml(inactive=inactive), short_tmp / f"{dom.name}.xml")
    finally:
        await conn.close()


def _corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.xml")) if CORPUS.is_dir() else []


async def test_corpus_dumpxml_validates(embed: Connection, short_tmp: Path) -> None:
    """virtdeck's dumpxml of each ``virsh dumpxml`` file of the corpus (as it is defined
    here) is still libvirt-valid. A file virtdeck refuses (a device it does not build, with
    its sentence) is the corpus tests' business; none may be refused for being invalid."""
    checked = []
    for path in _corpus():
        try:
            dom = await embed.define_xml(path.read_text())
        except VirtError as err:
            assert "not implemented" in str(err) or "not supported" in str(err), (path, err)
            continue
        validate(await dom.xml(inactive=True), short_tmp / path.name)
        await dom.undefine()
        checked.append(path.name)
    print(f"corpus: {len(checked)} of {len(_corpus())} files validated: {checked}")


DATA = Path(__file__).resolve().parents[1] / "drivers" / "data" / "domxml"

#: What virtdeck keeps as the user wrote it although libvirt 9.0's schema lacks it:
#: (pattern, replacement for validating against 9.0, why).
NEWER_THAN_9_0 = (
    (
        re.compile(r"<panic model=\"pvpanic\""),
        '<panic model="isa"',
        "the PCI pvpanic is spelled model='pvpanic' by libvirt versions after 9.0, whose "
        "schema (the one installed here) knows only isa, pseries, hyperv and s390",
    ),
)


async def test_domxml_data_files_validate(embed: Connection, short_tmp: Path) -> None:
    """The XML test data (tests/drivers/data/domxml) that the QEMU driver defines: its
    dumpxml validates, with only the NEWER_THAN_9_0 spellings adapted."""
    checked = []
    for path in sorted(DATA.glob("*.xml")):
        try:
            dom = await embed.define_xml(path.read_text())
        except VirtError:
            continue  # type='test' domains and refused devices: other tests' business
        xml = await dom.xml(inactive=True)
        for pattern, replacement, _why in NEWER_THAN_9_0:
            xml = pattern.sub(replacement, xml)
        validate(xml, short_tmp / path.name)
        await dom.undefine()
        checked.append(path.name)
    assert "full-subset.xml" in checked and "test-guest.xml" in checked, checked
