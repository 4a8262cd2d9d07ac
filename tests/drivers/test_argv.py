"""DomainDef → QEMU command line: golden files, refusals, and QEMU itself as the judge.

For each ``data/argv/NAME.xml`` the expected command line is ``NAME.args``, one argument
per line, built with monitor_fd=3 and domain_dir=/run/vd/NAME. ``VIRTDECK_REGENERATE=1``
(re)writes the expected files.

The ``qemu`` smoke test starts the real qemu-system-x86_64 with several of those command
lines (TCG forced, file paths moved into a temporary directory, images made with
qemu-img) and checks over QMP that QEMU accepted them and sits in ``prelaunch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from qemu.qmp import QMPClient

from drivers.domxml import DomainDef, LifecycleAction, parse_domain
from drivers.errors import InvalidXML
from drivers.qemu.argv import LaunchContext, build_argv, chardev_aliases, disk_alias
from tests.drivers.test_domxml import assert_golden

DATA = Path(__file__).parent / "data" / "argv"
CASES = sorted(path.stem for path in DATA.glob("*.xml"))
# Every file path in the argv test data starts with this, so the smoke test can move
# them all into a temporary directory.
PATH_PREFIX = "/srv/vd/"


def load(name: str) -> DomainDef:
    return parse_domain((DATA / f"{name}.xml").read_bytes())


def argv_of(defn: DomainDef, name: str = "guest") -> list[str]:
    return build_argv(defn, LaunchContext(monitor_fd=3, domain_dir=f"/run/vd/{name}"))


def minimal(extra: str = "", devices: str = "", head: str = "<domain type='qemu'>") -> DomainDef:
    return parse_domain(
        f"{head}<name>t</name><memory unit='MiB'>64</memory>{extra}"
        f"<devices>{devices}</devices></domain>"
    )


# --- golden files -------------------------------------------------------------------------


def test_enough_cases() -> None:
    assert len(CASES) >= 19
    assert {
        "minimal",
        "test-guest",
        "disk-virtio-qcow2",
        "disk-sata-q35",
        "disk-ide-pc",
        "cdrom-empty-boot",
        "disk-scsi",
        "net-user-virtio",
        "net-network",
        "net-default-model",
        "serial-pty-console",
        "console-virtio",
        "vnc-video-tablet",
        "vnc-socket",
        "on-reboot-destroy",
        "watchdog",
        "no-acpi",
        "kvm-type",
        "memory-units",
        "sound-models",
        "audio-file",
        "inputs-usb-ports",
        "scsi-lsilogic",
        "qemu-commandline",
        "platform-settings",
    } <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_golden_argv(name: str) -> None:
    argv = argv_of(load(name), name)
    assert_golden(DATA / f"{name}.args", "\n".join(argv) + "\n")


@pytest.mark.parametrize("name", CASES)
def test_shape(name: str) -> None:
    defn = load(name)
    argv = argv_of(defn, name)
    assert argv[0] == (defn.emulator or "qemu-system-x86_64")
    assert argv[1:4] == ["-name", f"guest={name},debug-threads=on", "-S"]
    assert argv[-2:] == ["-msg", "timestamp=on"]
    assert argv.count("-no-shutdown") == 1
    assert "-uuid" in argv and argv[argv.index("-uuid") + 1] == defn.uuid
    assert ("-display" in argv) == (not defn.graphics)
    assert "socket,id=charmonitor,fd=3,server=on,wait=off" in argv
    # Options QEMU reads as key=value lists alternate with their values.
    for flag in ("-machine", "-accel", "-cpu", "-m", "-smp", "-rtc", "-boot"):
        assert argv.count(flag) == 1, flag


def test_memory_is_rounded_up_to_whole_mib() -> None:
    argv = argv_of(load("memory-units"))
    assert argv[argv.index("-m") + 1] == "size=219136k"


def test_accel_and_cpu() -> None:
    assert _after(argv_of(load("kvm-type")), "-accel") == "kvm"
    assert _after(argv_of(load("kvm-type")), "-cpu") == "host"
    assert _after(argv_of(load("minimal")), "-accel") == "tcg"
    assert _after(argv_of(load("minimal")), "-cpu") == "qemu64"
    for mode, cpu in (("maximum", "max"), ("host-model", "max")):
        assert _after(argv_of(minimal(f"<cpu mode='{mode}'/>")), "-cpu") == cpu
    custom = minimal("<cpu mode='custom'><model>Haswell</model></cpu>")
    assert _after(argv_of(custom), "-cpu") == "Haswell"
    assert _after(argv_of(minimal("<cpu mode='custom'/>")), "-cpu") == "qemu64"


def _after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_lifecycle_actions() -> None:
    defn = load("minimal")
    assert "-action" not in argv_of(defn)
    defn.on_reboot = LifecycleAction.DESTROY
    argv = argv_of(defn)
    assert _after(argv, "-action") == "reboot=shutdown"
    # on_poweroff and on_crash are the driver's business at run time.
    defn.on_reboot = LifecycleAction.RESTART
    defn.on_poweroff = LifecycleAction.RESTART
    defn.on_crash = LifecycleAction.PRESERVE
    assert "-action" not in argv_of(defn)


def test_names_with_commas_are_escaped() -> None:
    defn = parse_domain(
        "<domain type='qemu'><name>a,b</name><memory>1024</memory><devices>"
        "<serial type='file'><source path='/var/log/x,y.log'/></serial></devices></domain>"
    )
    argv = argv_of(defn)
    assert _after(argv, "-name") == "guest=a,,b,debug-threads=on"
    assert "file,id=charserial0,path=/var/log/x,,y.log" in argv


def test_vnc_autoport_must_be_resolved_by_the_driver() -> None:
    defn = minimal(devices="<graphics type='vnc' autoport='yes'/>")
    with pytest.raises(ValueError, match="VNC port"):
        argv_of(defn)
    defn.graphics[0].port = 5905
    assert "127.0.0.1:5,audiodev=audio1" in argv_of(defn)


def test_vnc_auto_socket_goes_to_the_domain_dir() -> None:
    argv = argv_of(load("vnc-auto-socket"), "vnc-auto-socket")
    assert _after(argv, "-vnc") == "unix:/run/vd/vnc-auto-socket/vnc.sock,audiodev=audio1"


def test_chardev_aliases() -> None:
    defn = load("serial-pty-console")
    aliases = chardev_aliases(defn)
    assert [dev.kind for dev in aliases["charserial0"]] == ["serial", "console"]
    assert set(aliases) == {"charserial0", "charserial1", "charserial2"}
    console_only = chardev_aliases(load("console-only"))
    assert [dev.kind for dev in console_only["charserial0"]] == ["console"]
    virtio = chardev_aliases(load("console-virtio"))
    assert set(virtio) == {"charserial0", "charconsole1", "charconsole2"}


def test_disk_aliases_match_the_command_line() -> None:
    for name in ("disk-ide-pc", "disk-sata-q35", "disk-scsi", "disk-virtio-qcow2", "disk-usb"):
        argv = "\n".join(argv_of(load(name)))
        for disk in load(name).disks:
            assert f'"id":"{disk_alias(disk)}"' in argv


BAD_ARGV: list[tuple[str, DomainDef, str]] = [
    (
        "ide-on-q35",
        minimal(devices="<disk><source file='/a'/><target dev='hda' bus='ide'/></disk>"),
        "bus='sata'",
    ),
    (
        "hd-prefix-on-q35",
        minimal(devices="<disk><source file='/a'/><target dev='hda'/></disk>"),
        "bus='sata'",
    ),
    ("passthrough-tcg", minimal("<cpu mode='host-passthrough'/>"), "needs type='kvm'"),
    ("test-type", minimal(head="<domain type='test'>"), "type='qemu'"),
    ("machine", minimal("<os><type machine='microvm'>hvm</type></os>"), "machine='q35'"),
    (
        "virtio-cdrom",
        minimal(devices="<disk device='cdrom'><target dev='vdb'/></disk>"),
        "<disk> 'vdb'",
    ),
    (
        "usb-cdrom",
        minimal(devices="<disk device='cdrom'><target dev='sda' bus='usb'/></disk>"),
        "<disk> 'sda'",
    ),
    (
        "readonly-sata",
        minimal(
            devices="<disk><source file='/a'/><target dev='sda' bus='sata'/><readonly/></disk>"
        ),
        "read-only",
    ),
    (
        "sata-ports",
        minimal(devices="<disk><source file='/a'/><target dev='sdg' bus='sata'/></disk>"),
        "six ports",
    ),
    (
        "ide-units",
        minimal(
            "<os><type machine='pc'>hvm</type></os>",
            "<disk><source file='/a'/><target dev='hde'/></disk>",
        ),
        "hda-hdd",
    ),
    (
        "alias-clash",
        minimal(
            devices="<disk><source file='/a'/><target dev='vda'/></disk>"
            "<disk><source file='/b'/><target dev='sda' bus='virtio'/></disk>"
        ),
        "virtio-disk0",
    ),
    ("initrd-alone", minimal("<os><initrd>/boot/initrd</initrd></os>"), "<kernel>"),
    ("cmdline-alone", minimal("<os><cmdline>quiet</cmdline></os>"), "<kernel>"),
    (
        "itco-on-pc",
        minimal("<os><type machine='pc'>hvm</type></os>", "<watchdog model='itco'/>"),
        "q35",
    ),
    (
        "two-ib700",
        minimal(devices="<watchdog model='ib700'/><watchdog model='ib700'/>"),
        "ib700",
    ),
    (
        "second-video",
        minimal(devices="<video><model type='vga'/></video><video><model type='cirrus'/></video>"),
        "<video>",
    ),
]


@pytest.mark.parametrize(
    ("defn", "needle"), [case[1:] for case in BAD_ARGV], ids=[case[0] for case in BAD_ARGV]
)
def test_combinations_qemu_cannot_do(defn: DomainDef, needle: str) -> None:
    with pytest.raises(InvalidXML) as caught:
        argv_of(defn)
    assert needle in str(caught.value)
    assert str(caught.value).endswith(".")


# --- QEMU smoke test ----------------------------------------------------------------------

# Cases QEMU can start here: no kernel to load, no host bridge or block device, no
# socket to connect to; their files are created in a temporary directory.
SMOKE = [
    "minimal",
    "disk-virtio-qcow2",
    "disk-sata-q35",
    "disk-ide-pc",
    "disk-scsi",
    "disk-usb",
    "cdrom-empty-boot",
    "net-user-virtio",
    "net-network",
    "net-default-model",
    "serial-pty-console",
    "console-only",
    "console-virtio",
    "vnc-default-video",
    "vnc-socket",
    "vnc-auto-socket",
    "on-reboot-destroy",
    "watchdog",
    "watchdog-ib700",
    "no-acpi",
    "kvm-type",
    "cpu-models",
    "memory-units",
    "sound-models",
    "audio-file",
    "inputs-usb-ports",
    "scsi-lsilogic",
    "qemu-commandline",
    "platform-settings",
    "vnc-keymap-share",
]


def _tools() -> tuple[str, str]:
    qemu = shutil.which("qemu-system-x86_64")
    qemu_img = shutil.which("qemu-img")
    if qemu is None or qemu_img is None:
        message = "qemu-system-x86_64 and qemu-img are needed for the QEMU smoke test"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return qemu, qemu_img


def _prepare(name: str, tmp: Path, qemu_img: str) -> DomainDef:
    """The case with its paths moved under ``tmp`` and its disk images created."""
    text = (DATA / f"{name}.xml").read_text("utf-8").replace(PATH_PREFIX, f"{tmp}/")
    if not _direct_io_works(tmp):
        # cache='none' and 'directsync' open images with O_DIRECT, which tmpfs refuses.
        text = text.replace("cache='none'", "cache='writeback'")
        text = text.replace("cache='directsync'", "cache='writethrough'")
    defn = parse_domain(text)
    for disk in defn.disks:
        if disk.source is None:
            continue
        image = Path(disk.source)
        image.parent.mkdir(parents=True, exist_ok=True)
        if disk.device == "cdrom":
            image.write_bytes(bytes(64 * 1024))
        else:
            subprocess.run(
                [qemu_img, "create", "-q", "-f", disk.driver_type, str(image), "1M"],
                check=True,
                timeout=30,
            )
    for graphics in defn.graphics:
        if graphics.listen_type == "address":
            graphics.port = _free_port()
    return defn


def _direct_io_works(folder: Path) -> bool:
    probe = folder / "direct-io-probe"
    probe.write_bytes(bytes(4096))
    try:
        fd = os.open(probe, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
    except OSError:
        return False
    finally:
        probe.unlink()
    os.close(fd)
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _force_tcg(argv: list[str]) -> list[str]:
    """This machine's KVM cannot run guests (see machine-facts): run 'kvm' under TCG."""
    out = list(argv)
    for index in range(len(out) - 1):
        if out[index] == "-accel" and out[index + 1] == "kvm":
            out[index + 1] = "tcg"
        if out[index] == "-cpu" and out[index + 1] == "host":
            out[index + 1] = "max"
    return out


@pytest.mark.qemu
@pytest.mark.parametrize("name", SMOKE)
async def test_qemu_accepts_argv(name: str, tmp_path: Path) -> None:
    qemu, qemu_img = _tools()
    defn = _prepare(name, tmp_path, qemu_img)
    domain_dir = tmp_path / "run"
    domain_dir.mkdir()
    monitor_path = tmp_path / "monitor.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(monitor_path))
    listener.listen(1)
    argv = build_argv(
        defn,
        LaunchContext(
            monitor_fd=listener.fileno(), domain_dir=str(domain_dir), default_emulator=qemu
        ),
    )
    log_path = tmp_path / "qemu.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _force_tcg(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(listener.fileno(),),
        )
    # QEMU holds the listening socket now; without our copy a QEMU that died refuses
    # the connection at once instead of leaving it unanswered.
    listener.close()
    qmp = QMPClient(f"smoke-{name}")
    try:
        try:
            await asyncio.wait_for(qmp.connect(str(monitor_path)), timeout=15)
            status = await asyncio.wait_for(qmp.execute("query-status"), timeout=15)
        except Exception as err:
            process.kill()
            process.wait(timeout=10)
            log_text = log_path.read_text("utf-8", "replace")
            pytest.fail(f"QEMU refused the {name} command line ({err!r}):\n{log_text}")
        assert isinstance(status, dict) and status.get("status") == "prelaunch", status
        with contextlib.suppress(Exception):
            await asyncio.wait_for(qmp.execute("quit"), timeout=10)
    finally:
        with contextlib.suppress(Exception):
            await qmp.disconnect()
        if process.poll() is None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait(timeout=10)
