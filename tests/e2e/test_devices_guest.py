"""The real guest boots with the devices and settings of issue 10 and sees each of them.

The tiny guest is started by the QEMU driver (embed root, TCG) with an ich9 sound card on
a silent audio backend, an i6300esb watchdog with action='poweroff', an lsilogic SCSI
controller (with a disk carrying a <serial>), a USB tablet at a given port, a virtio
tablet, a disk with discard='unmap' in an I/O thread, SMBIOS tables from <sysinfo>, a
CPU model with a disabled feature and a topology, clock timers (no HPET), <pm> without
S3, and <qemu:commandline>/<qemu:env>. Over its serial console the guest reports
/sys/bus/pci/devices, /sys/class/dmi/id, /proc/cpuinfo, its clock sources and
/sys/power/state; QEMU's environment and threads are read from /proc on the host.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drivers.api import Connection
from tests.e2e.helpers import guest_xml
from tests.guest import READY_RE, GuestImage, SerialConsole

pytestmark = [pytest.mark.guest, pytest.mark.qemu]

ID_RE = re.compile(r"^PCI (0000:[0-9a-f:.]+) (0x[0-9a-f]{4}) (0x[0-9a-f]{4})$")
KV_RE = re.compile(r"^KV (\w+)=(.*)$")
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"

SETTINGS = """
  <vcpu>2</vcpu>
  <iothreads>1</iothreads>
  <sysinfo type='smbios'>
    <bios><entry name='vendor'>Virtdeck BIOS</entry></bios>
    <system>
      <entry name='manufacturer'>Acme, Inc</entry>
      <entry name='product'>Deckbox</entry>
      <entry name='serial'>SN-0042</entry>
    </system>
    <chassis><entry name='serial'>CH-9</entry></chassis>
  </sysinfo>
"""
CPU = """
  <cpu mode='custom' match='exact' check='none'>
    <model fallback='forbid'>qemu64</model>
    <topology sockets='1' dies='1' cores='2' threads='1'/>
    <feature policy='disable' name='lahf_lm'/>
  </cpu>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/>
  </clock>
  <pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='no'/></pm>
"""


def _devices(disk: Path, scsi: Path) -> str:
    return f"""
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' discard='unmap' iothread='1'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
      <serial>VD-DISK-1</serial>
    </disk>
    <disk type='file' device='disk'>
      <source file='{scsi}'/>
      <target dev='sda' bus='scsi'/>
      <serial>LSI-DISK-1</serial>
    </disk>
    <controller type='scsi' index='0' model='lsilogic'/>
    <input type='tablet' bus='usb'><address type='usb' bus='0' port='3'/></input>
    <input type='tablet' bus='virtio'/>
    <sound model='ich9'/>
    <audio id='1' type='none'/>
    <watchdog model='i6300esb' action='poweroff'/>
    <memballoon model='none'/>
"""


SCRIPT = (
    "sh for d in /sys/bus/pci/devices/*; do "
    'echo "PCI ${d##*/} $(cat $d/vendor) $(cat $d/device)"; done; '
    "for k in sys_vendor product_name product_serial bios_vendor chassis_serial; do "
    'echo "KV $k=$(cat /sys/class/dmi/id/$k)"; done; '
    'echo "KV cores=$(grep -m1 "cpu cores" /proc/cpuinfo | cut -d: -f2)"; '
    'echo "KV flags=$(grep -m1 ^flags /proc/cpuinfo | cut -d: -f2)"; '
    'echo "KV cpus=$(grep -c ^processor /proc/cpuinfo)"; '
    'echo "KV clocks=$(cat /sys/devices/system/clocksource/clocksource0/available_clocksource)"; '
    'echo "KV mem_sleep=$(cat /sys/power/mem_sleep)"; '
    'echo "KV disk=$(cat /sys/power/disk)"'
)


def _qemu_pid(serial: Path) -> int:
    """The QEMU whose command line names ``serial`` (this test's own socket)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline and str(serial).encode() in cmdline:
            return int(proc.name)
    raise AssertionError(f"no QEMU runs with {serial}")


async def test_guest_boots_with_the_remaining_devices(
    conn: Connection, guest: GuestImage, short_tmp: Path
) -> None:
    serial = short_tmp / "dev.sock"
    disk, scsi = short_tmp / "disk.img", short_tmp / "scsi.img"
    for image in (disk, scsi):
        image.write_bytes(b"\0" * (1 << 20))
    xml = (
        guest_xml("devs1", guest, serial)
        .replace("<domain type='qemu'>", f"<domain type='qemu' xmlns:qemu='{QEMU_NS}'>")
        .replace("<vcpu>1</vcpu>", SETTINGS)
        .replace("</os>", "<smbios mode='sysinfo'/></os>")
        .replace("<features><acpi/></features>", "<features><acpi/></features>" + CPU)
        .replace("<memballoon model='none'/>", _devices(disk, scsi))
        .replace(
            "</domain>",
            "<qemu:commandline><qemu:arg value='-device'/>"
            "<qemu:arg value='pci-testdev,bus=pcie.0,addr=0x10'/>"
            "<qemu:env name='VD_MARK' value='from qemu:env'/></qemu:commandline></domain>",
        )
    )
    dom = await conn.define_xml(xml)
    stored = await dom.xml(inactive=True)
    # define-time assignment as libvirt: the ich9 card on q35's 00:1b.0, the tablet's port
    assert re.search(
        r"<sound model=.ich9.>\s*<address type=.pci. domain=.0x0000. bus=.0x00. "
        r"slot=.0x1b.",
        stored,
    ), stored
    assert re.search(r"<address type=.usb. bus=.0. port=.3./>", stored), stored
    assert re.search(r"<address type=.drive. controller=.0. bus=.0. target=.0. unit=.0./>", stored)
    await dom.start()
    pid = _qemu_pid(serial)
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"VD_MARK=from qemu:env" in environ
    threads = {p.read_text().strip() for p in Path(f"/proc/{pid}/task").glob("*/comm")}
    assert "IO iothread1" in threads, threads
    console = await SerialConsole.connect(serial)
    seen: dict[str, tuple[str, str]] = {}
    facts: dict[str, str] = {}
    try:
        await console.wait_for(READY_RE, timeout=60)
        console.mark()
        await console.send(SCRIPT)
        await console.wait_for("VIRTDECK-DONE rc=0", timeout=20)
        for line in console.lines:
            if match := ID_RE.match(line.strip()):
                seen[match[1]] = (match[2], match[3])
            elif match := KV_RE.match(line.strip()):
                facts[match[1]] = match[2].strip()
    finally:
        await console.close()
        await dom.destroy()
    ids = set(seen.values())
    # ich9 HD audio where libvirt puts it; the watchdog, the LSI controller, QEMU's
    # xhci (for the USB tablet), the virtio tablet, and <qemu:commandline>'s pci-testdev
    assert seen.get("0000:00:1b.0") == ("0x8086", "0x293e"), seen
    assert ("0x8086", "0x25ab") in ids, seen  # i6300esb
    assert ("0x1000", "0x0012") in ids, seen  # LSI 53C895A
    assert ("0x1b36", "0x000d") in ids, seen  # qemu-xhci
    assert ("0x1af4", "0x1052") in ids, seen  # virtio 1.0 input
    assert seen.get("0000:00:10.0") == ("0x1b36", "0x0005"), seen
    # SMBIOS from <sysinfo>
    assert facts["sys_vendor"] == "Acme, Inc", facts
    assert facts["product_name"] == "Deckbox"
    assert facts["product_serial"] == "SN-0042"
    assert facts["bios_vendor"] == "Virtdeck BIOS"
    assert facts["chassis_serial"] == "CH-9"
    # the CPU: two cores in one socket, lahf_lm taken out of qemu64
    assert facts["cpus"] == "2" and facts["cores"] == "2", facts
    assert "lahf_lm" not in facts["flags"].split(), facts["flags"]
    # no HPET to choose a clock source from
    assert "hpet" not in facts["clocks"].split(), facts["clocks"]
    assert "tsc" in facts["clocks"].split() or "acpi_pm" in facts["clocks"].split()
    # without ACPI S3 the kernel can only idle-suspend ('deep' is S3), and without S4
    # hibernation has no 'platform' mode
    assert "deep" not in facts["mem_sleep"].replace("[", " ").replace("]", " ").split(), facts
    assert "platform" not in facts["disk"].replace("[", " ").replace("]", " ").split(), facts
