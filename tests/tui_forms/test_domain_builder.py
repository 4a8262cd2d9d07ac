"""The new-domain spec: validation sentences, image names, and XML the drivers accept."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from drivers.domxml import parse_domain
from drivers.qemu.argv import LaunchContext, build_argv
from drivers.storage import check_volume
from tui.domain_builder import (
    BOOTS,
    CRASH_ACTIONS,
    DISK_CHOICES,
    DISK_FORMATS,
    NETWORKS,
    VIRT_TYPES,
    Boot,
    DiskChoice,
    DomainSpec,
    Network,
    build_domain_xml,
    new_disk_name,
    validate_spec,
)

ISO = "/var/lib/virtdeck/images/alpine.iso"
DISK = "/var/lib/virtdeck/images/old.qcow2"
NEW = "/var/lib/virtdeck/images/vm1.qcow2"


def spec_for(boot: Boot, disk: DiskChoice, network: Network, **more: object) -> DomainSpec:
    base = DomainSpec(
        name="vm1",
        memory_mib=768,
        vcpus=3,
        boot=boot,
        iso_path=ISO,
        kernel="/boot/vmlinuz",
        initrd="/boot/initrd.img",
        cmdline="console=ttyS0 root=/dev/vda",
        disk=disk,
        existing_disk_path=DISK,
        network=network,
        bridge="br0",
    )
    return replace(base, **more)  # type: ignore[arg-type]


def combinations() -> list[tuple[Boot, DiskChoice, Network]]:
    return [
        (boot, disk, network)
        for boot, disk, network in itertools.product(BOOTS, DISK_CHOICES, NETWORKS)
        if boot != "disk" or disk == "existing"
    ]


@pytest.mark.parametrize(("boot", "disk", "network"), combinations())
def test_every_combination_round_trips(boot: Boot, disk: DiskChoice, network: Network) -> None:
    for fmt, vnc, serial, crash, virt in itertools.product(
        DISK_FORMATS, (False, True), (False, True), CRASH_ACTIONS, VIRT_TYPES
    ):
        spec = spec_for(
            boot,
            disk,
            network,
            disk_format=fmt,
            vnc=vnc,
            serial=serial,
            on_crash=crash,
            virt_type=virt,
        )
        assert validate_spec(spec, (), allow_kvm=True) == {}
        xml = build_domain_xml(spec, NEW if disk == "new" else None)
        defn = parse_domain(xml)
        where = f"{spec}\n{xml}"
        assert defn.virt_type == virt, where
        assert defn.name == "vm1"
        assert defn.memory_kib == 768 * 1024
        assert defn.vcpus == 3
        assert defn.machine == "q35"
        assert defn.acpi
        assert defn.on_crash.value == crash
        assert defn.memballoon is not None and defn.memballoon.model == "virtio"
        assert defn.boot_devs == {"iso": ["cdrom", "hd"], "disk": ["hd"], "kernel": []}[boot]
        if boot == "kernel":
            assert (defn.kernel, defn.initrd, defn.cmdline) == (
                "/boot/vmlinuz",
                "/boot/initrd.img",
                "console=ttyS0 root=/dev/vda",
            )
        else:
            assert defn.kernel is None
        disks = [(d.device, d.source, d.target_bus, d.driver_type) for d in defn.disks]
        expected = []
        if disk != "none":
            expected.append(("disk", NEW if disk == "new" else DISK, "virtio", fmt))
        if boot == "iso":
            expected.append(("cdrom", ISO, "sata", "raw"))
        assert disks == expected, where
        nics = [(n.type, n.model, n.source_bridge) for n in defn.interfaces]
        assert nics == (
            []
            if network == "none"
            else [(network, "virtio", "br0" if network == "bridge" else None)]
        )
        assert [s.type for s in defn.serials] == (["pty"] if serial else [])
        assert [c.target_type for c in defn.consoles] == (["serial"] if serial else [])
        assert [(g.type, g.listen, g.autoport) for g in defn.graphics] == (
            [("vnc", "127.0.0.1", True)] if vnc else []
        )
        assert [v.model for v in defn.videos] == (["virtio"] if vnc else [])
        # QEMU's command line can be built from it too (once the driver picked a VNC port).
        for display in defn.graphics:
            display.port = 5900
        argv = build_argv(defn, LaunchContext(monitor_fd=3, domain_dir="/run/vd/vm1"))
        assert argv


def test_the_xml_is_deterministic_and_leaves_ids_to_the_driver() -> None:
    spec = spec_for("iso", "new", "user")
    xml = build_domain_xml(spec, NEW)
    assert xml == build_domain_xml(spec, NEW)
    assert "<uuid>" not in xml and "<mac" not in xml
    defn = parse_domain(xml)
    assert defn.uuid and defn.interfaces[0].mac.startswith("52:54:00:")


def test_uuid_and_mac_can_be_given() -> None:
    uuid, mac = "c7a5fdbd-edaf-9455-926a-d65c16db1809", "52:54:00:12:34:56"
    defn = parse_domain(build_domain_xml(spec_for("iso", "none", "user"), None, uuid=uuid, mac=mac))
    assert defn.uuid == uuid
    assert defn.interfaces[0].mac == mac


def test_the_xml_escapes_what_it_is_given() -> None:
    spec = spec_for("kernel", "none", "none", name="a<b>&'\"", cmdline="x='1' && <y>")
    defn = parse_domain(build_domain_xml(spec, None))
    assert defn.name == "a<b>&'\""
    assert defn.cmdline == "x='1' && <y>"


def test_a_disk_without_a_path_is_refused() -> None:
    with pytest.raises(ValueError, match="path"):
        build_domain_xml(spec_for("iso", "new", "user"), None)
    with pytest.raises(ValueError, match="path"):
        build_domain_xml(spec_for("iso", "existing", "user", existing_disk_path=""), None)


def test_the_existing_disk_path_is_used_when_none_is_given() -> None:
    defn = parse_domain(build_domain_xml(spec_for("disk", "existing", "user"), None))
    assert [d.source for d in defn.disks] == [DISK]


# --- validation --------------------------------------------------------------------------------


def errors(**changes: object) -> dict[str, str]:
    spec = replace(spec_for("iso", "new", "user"), **changes)  # type: ignore[arg-type]
    return validate_spec(spec, ("web1", "db1"), existing_volumes=("taken.qcow2",))


def test_a_complete_spec_is_valid() -> None:
    assert errors() == {}
    assert validate_spec(DomainSpec(name="x", iso_path=ISO), ()) == {}


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "Give the domain a name"),
        ("x" * 201, "201 characters long; the limit is 200"),
        ("a/b", "cannot contain '/'"),
        ("a\nb", "control character"),
        ("a\x9bb", "control character"),
        (".hidden", "starting with '.'"),
        (" web", "starts or ends with a space"),
        ("web ", "starts or ends with a space"),
        ("web1", "A domain called 'web1' already exists on this host"),
    ],
)
def test_name_rules(name: str, words: str) -> None:
    found = errors(name=name)
    assert list(found) == ["name"]
    assert words in found["name"]


def test_names_the_driver_accepts_are_accepted() -> None:
    for name in ("x" * 200, "web 1", "ünïcode-名前", "a.b_c+d"):
        assert errors(name=name) == {}, name


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"memory_mib": 0}, "memory_mib", "between 16 and 4194304 MiB"),
        ({"memory_mib": 5 << 20}, "memory_mib", "between 16"),
        ({"vcpus": 0}, "vcpus", "1 to 255 vCPUs"),
        ({"vcpus": 256}, "vcpus", "1 to 255 vCPUs"),
        ({"iso_path": ""}, "iso_path", "Choose an ISO image"),
        ({"iso_path": "alpine.iso"}, "iso_path", "absolute path"),
        ({"boot": "kernel", "kernel": ""}, "kernel", "Give the kernel"),
        ({"boot": "kernel", "kernel": "vmlinuz"}, "kernel", "absolute path"),
        ({"boot": "kernel", "initrd": "initrd"}, "initrd", "absolute path"),
        ({"boot": "kernel", "cmdline": "a\nb"}, "cmdline", "one line"),
        ({"boot": "disk", "disk": "new"}, "disk", "choose 'Existing image'"),
        ({"disk_size_gib": 0}, "disk_size_gib", "1 to 1048576 GiB"),
        ({"name": "taken"}, "disk", "The image taken.qcow2 already exists"),
        ({"disk": "existing", "existing_disk_path": ""}, "existing_disk_path", "Choose a disk"),
        ({"network": "bridge", "bridge": ""}, "bridge", "bridge's name"),
        ({"network": "bridge", "bridge": "br0;rm"}, "bridge", "bridge's name"),
        ({"network": "bridge", "bridge": "b" * 16}, "bridge", "bridge's name"),
        ({"virt_type": "kvm"}, "virt_type", "TCG only"),
        ({"on_crash": "explode"}, "on_crash", "destroyed, restarted or preserved"),
    ],
)
def test_field_errors(changes: dict[str, object], field: str, words: str) -> None:
    found = errors(**changes)
    assert list(found) == [field], found
    assert words in found[field]


def test_fields_of_unchosen_options_are_not_checked() -> None:
    assert errors(boot="kernel", iso_path="") == {}
    assert errors(disk="none", disk_size_gib=0) == {}
    assert errors(network="user", bridge="not a bridge!") == {}
    assert errors(boot="iso", kernel="relative") == {}


def test_kvm_when_the_host_allows_it() -> None:
    spec = replace(spec_for("iso", "new", "user"), virt_type="kvm")
    assert validate_spec(spec, (), allow_kvm=True) == {}


@pytest.mark.parametrize(
    ("name", "fmt", "image"),
    [
        ("web1", "qcow2", "web1.qcow2"),
        ("web1", "raw", "web1.img"),
        ("web 1", "qcow2", "web_1.qcow2"),
        ("-x", "qcow2", "x.qcow2"),
        ("ünï", "qcow2", "n_.qcow2"),
        ("日本", "raw", "disk.img"),
        ("a:b/c", "qcow2", "a_b_c.qcow2"),
    ],
)
def test_new_disk_names(name: str, fmt: str, image: str) -> None:
    spec = replace(DomainSpec(name=name), disk_format=fmt)  # type: ignore[arg-type]
    assert new_disk_name(spec) == image
    assert check_volume(image, 1 << 30, fmt) == fmt


def test_long_names_give_image_names_the_pool_accepts() -> None:
    for fmt in DISK_FORMATS:
        image = new_disk_name(DomainSpec(name="x" * 200, disk_format=fmt))
        assert len(image) == 200
        assert check_volume(image, 1 << 30, fmt) == fmt
