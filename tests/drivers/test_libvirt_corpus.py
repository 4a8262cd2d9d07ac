"""The differential corpus: virtdeck's command line against libvirt 9.0's for the same XML.

Each corpus case (``data/corpus/NAME.xml``, libvirt's own ``virsh dumpxml`` of
``data/corpus/src/NAME.xml``, and every argv golden input ``data/argv/NAME.xml``) is
defined on a libvirtd brought up by bench/libvirt_peer.py, with its host paths moved to
real files; ``virsh domxml-to-native qemu-argv --domain NAME`` gives libvirt's command
line. virtdeck defines the same XML (``refused_devices``, ``prepare_definition``) and
builds its own (``build_argv``). tests/drivers/libvirt_diff.py takes both apart and
compares machine, CPU, SMP, memory, RTC, globals, SMBIOS, every -device (driver, id,
bus, address and every other property), the block chain of each disk, netdevs,
chardevs, objects, audiodevs, the environment and appended arguments. Differences are
accepted only when listed: :data:`libvirt_diff.ACCEPTED` (every case) and
:data:`CASE_ACCEPTED` (one case), each with its reason; docs/devices.md lists them too.
Any other difference fails and prints both sides.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from drivers.domxml import parse_domain
from drivers.errors import InvalidXML
from drivers.qemu.argv import LaunchContext, build_argv, qemu_environment, refused_devices
from drivers.qemu.registry import prepare_definition
from tests.conftest import require
from tests.drivers import libvirt_diff as diff

PREFIX = "vdcorp-"
CTX = LaunchContext(monitor_fd=3, domain_dir="/run/vd/d")
CASES = [f"corpus/{p.stem}" for p in sorted(diff.CORPUS.glob("*.xml"))] + [
    f"argv/{p.stem}" for p in sorted((diff.DATA / "argv").glob("*.xml"))
]

#: Cases virtdeck refuses at define time (the sentence's start).
REFUSED = {
    # virt-manager's SPICE desktop: every element virtdeck refuses in it is checked one
    # by one in test_refused_devices.py
    "corpus/spice-desktop": "<graphics> type='spice' is not supported",
}

#: Cases libvirt 9.0 itself cannot run as written, and what is compared instead.
LIBVIRT_CANNOT: dict[str, tuple[str, str]] = {
    "argv/watchdog": (
        r"<watchdog model='itco'[^>]*/>",
        "libvirt 9.0 has no itco watchdog model (9.1 added it); compared without it "
        "(test_argv.py checks its argv)",
    ),
    "argv/watchdog-ib700": (
        r"<panic model='pvpanic'/>",
        "libvirt 9.0 has no PCI pvpanic (model='pvpanic' came with 9.1); compared without "
        "it (test_argv.py checks its argv)",
    ),
}

_NIC_BOOT_ORDER = (
    "domxml-to-native rebuilds every NIC as a plain tap and drops its <boot order='1'/> "
    "(bootindex); dumpxml and a real start keep it"
)
#: Differences accepted in one case only: case → {(section, key): reason}.
CASE_ACCEPTED: dict[str, dict[tuple[str, str], str]] = {
    "argv/kvm-type": {
        ("options", "-cpu"): "host-model under KVM: libvirt expands the host CPU model it "
        "probed (here kvm64 plus features) into -cpu; virtdeck passes -cpu host, which KVM "
        "resolves to the same host model at start",
    },
    "argv/vnc-default-video": {
        ("options", "-vnc"): "domxml-to-native --domain reads the XML without secure "
        "information, so it never sees passwd= and leaves out password=on (a real start "
        "writes it); virtdeck sets the password over QMP as libvirt does",
    },
    "argv/disk-block": {
        ("disks", "sata0-0-0"): "a type='block' cdrom: libvirt picks host_cdrom only when "
        "it can probe the path as a CD-ROM drive; this machine has no /dev/sr0, so libvirt "
        "prints host_device, virtdeck host_cdrom",
    },
    "argv/net-network": {("devices", "net0"): _NIC_BOOT_ORDER},
    "corpus/nics-rng-balloon": {("devices", "net0"): _NIC_BOOT_ORDER},
}


def test_the_corpus_is_big_enough() -> None:
    realistic = {
        "kernel-boot",
        "qcow2-iso-user-nic",
        "desktop-agent",
        "i440fx-ide",
        "custom-cpu-timers",
        "metadata",
    }
    assert realistic <= {p.stem for p in diff.CORPUS.glob("*.xml")}
    assert len(CASES) >= 20
    # every corpus file is libvirt's dumpxml of its source: the machine resolved to
    # QEMU 7.2's versioned type, the emulator and lifecycle actions filled in
    for path in diff.CORPUS.glob("*.xml"):
        assert (diff.SOURCES / path.name).exists(), path.name
        text = path.read_text()
        assert re.search(r"machine='pc-(q35|i440fx)-7\.2'", text), path.name
        assert "<emulator>/usr/bin/qemu-system-x86_64</emulator>" in text, path.name
        assert "<on_crash>" in text, path.name


@pytest.fixture(scope="module")
def peer() -> Iterator[object]:
    from bench.libvirt_peer import LibvirtPeer, PeerUnavailable

    require(os.geteuid() == 0, "libvirtd as a peer needs root (qemu:///system)")
    lv = LibvirtPeer(prefix=PREFIX)
    try:
        lv.start()
    except PeerUnavailable as err:
        lv.stop()
        require(False, f"libvirtd cannot come up here: {err}")
    try:
        yield lv
    finally:
        lv.stop()


def _case_xml(case: str, root: Path) -> str:
    text = (diff.DATA / f"{case}.xml").read_text()
    if case in LIBVIRT_CANNOT:
        text = re.sub(LIBVIRT_CANNOT[case][0], "", text)
    text = text.replace(diff.PATH_PREFIX, f"{root}/")
    name = PREFIX + case.split("/")[1]
    return re.sub(r"<name>[^<]*</name>", f"<name>{name}</name>", text, count=1)


def _make_files(xml: str, root: Path) -> None:
    """Real files wherever the XML names one under ``root`` (images made by qemu-img)."""
    tree = etree.fromstring(xml.encode())
    for disk in tree.iter("disk"):
        source = disk.find("source")
        path = source.get("file") if source is not None else None
        if path is None or not path.startswith(str(root)):
            continue
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        driver = disk.find("driver")
        fmt = (driver.get("type") if driver is not None else None) or "raw"
        subprocess.run(["qemu-img", "create", "-q", "-f", fmt, path, "1M"], check=True, timeout=30)
    for path in re.findall(rf"{re.escape(str(root))}/[^'\"<]+", xml):
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        if not file.exists() and not path.endswith((".sock", ".log", ".agent", ".wav")):
            file.write_bytes(b"\0" * 4096)


def _libvirt(peer: object, name: str, xml: str) -> diff.Native:
    from bench.libvirt_peer import LibvirtPeer

    assert isinstance(peer, LibvirtPeer)
    peer.define(name, xml)
    try:
        done = peer.virsh("domxml-to-native", "qemu-argv", "--domain", name)
    finally:
        peer.virsh("undefine", name, check=False)
    argv, env = diff.split_native(done.stdout)
    return diff.parse_argv(argv, env)


def _virtdeck(xml: str) -> tuple[list[str], diff.Native]:
    try:
        defn = parse_domain(xml)
    except InvalidXML as err:
        return [str(err)], diff.Native()
    problems = refused_devices(defn)
    if problems:
        return problems, diff.Native()
    prepare_definition(defn)
    for graphics in defn.graphics:
        if graphics.listen_type == "address" and graphics.port == -1:
            graphics.port = 5900  # what the driver picks first, and libvirt prints
    return [], diff.parse_argv(build_argv(defn, CTX), qemu_environment(defn))


# The first case brings libvirtd up, which waits (up to LibvirtPeer's 900 s) while another
# run holds this machine's libvirtd: that wait must not count as a hung test.
PEER_TIMEOUT = 960


@pytest.mark.timeout(PEER_TIMEOUT)
@pytest.mark.parametrize("case", CASES)
def test_command_line_matches_libvirt(peer: object, case: str, short_tmp: Path) -> None:
    root = short_tmp / "srv"
    xml = _case_xml(case, root)
    _make_files(xml, root)
    problems, ours = _virtdeck(xml)
    if case in REFUSED:
        assert problems and problems[0].startswith(REFUSED[case]), problems
        return
    assert not problems, problems
    theirs = _libvirt(peer, PREFIX + case.split("/")[1], xml)
    found = diff.differences(
        diff.normalise(ours, "virtdeck"),
        diff.normalise(theirs, "libvirt"),
        CASE_ACCEPTED.get(case, {}),
    )
    assert not found, f"{case}: virtdeck's command line differs from libvirt's:\n" + "\n".join(
        found
    )


def test_a_difference_fails_and_shows_both_sides() -> None:
    """The comparison itself, without libvirtd: equal command lines give no difference;
    a moved device, a changed block node, a lost option or an extra variable each give
    one line with both sides."""
    defn = parse_domain((diff.CORPUS / "sound-q35.xml").read_text())
    prepare_definition(defn)
    argv = build_argv(defn, CTX)
    same = diff.differences(
        diff.normalise(diff.parse_argv(argv), "virtdeck"),
        diff.normalise(diff.parse_argv(list(argv)), "libvirt"),
    )
    assert same == []
    other = [
        arg.replace('"addr":"0x1b"', '"addr":"0x1c"').replace('"driver":"qcow2"', '"driver":"raw"')
        for arg in argv
        if arg != "-no-shutdown"
    ]
    found = diff.differences(
        diff.normalise(diff.parse_argv(argv), "virtdeck"),
        diff.normalise(diff.parse_argv(other, {"EXTRA": "1"}), "libvirt"),
    )
    assert len(found) == 4, found
    assert any(
        line.startswith("devices[sound0]:") and '"0x1b"' in line and '"0x1c"' in line
        for line in found
    ), found
    assert any(line.startswith("disks[virtio-disk0]:") for line in found), found
    assert any(line.startswith("options[flags]:") and "-no-shutdown" in line for line in found)
    assert 'env[EXTRA]: virtdeck (none) / libvirt "1"' in found


def test_every_accepted_difference_has_a_reason() -> None:
    for rule in diff.ACCEPTED:
        assert rule.reason.strip() and rule.side in ("libvirt", "virtdeck", "both"), rule
    for case, accepted in CASE_ACCEPTED.items():
        assert case in CASES and all(reason.strip() for reason in accepted.values()), case
    for case, (pattern, reason) in LIBVIRT_CANNOT.items():
        assert case in CASES and pattern and reason.strip(), case
    assert set(REFUSED) <= set(CASES)
