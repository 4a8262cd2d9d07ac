"""virtdeck's QEMU command line against libvirt 9.0's, option by option and device by device.

:func:`parse_argv` turns a command line into a :class:`Native`: machine, CPU, SMP, memory,
RTC, globals, SMBIOS tables and every other plain option, plus devices by id, block nodes
resolved into one chain per disk device, netdevs, chardevs, objects and audiodevs by id,
the environment and the arguments ``<qemu:commandline>`` appended. :func:`normalise` then
removes what differs for reasons we accept — each rule is a row of :data:`ACCEPTED`, with
its reason — and :func:`differences` lists every remaining difference, printing both
sides. tests/drivers/test_libvirt_corpus.py drives it over the corpus; ``python -m
tests.drivers.libvirt_diff`` regenerates the corpus files from their sources on libvirtd.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "corpus"
SOURCES = CORPUS / "src"
#: Every host path in the corpus starts with this; the test moves them to real files.
PATH_PREFIX = "/srv/vd/"

# Options that take a value (every other -option stands alone).
_VALUED = {
    "-name", "-machine", "-accel", "-cpu", "-m", "-smp", "-uuid", "-display", "-chardev",
    "-mon", "-rtc", "-boot", "-device", "-blockdev", "-netdev", "-object", "-audiodev",
    "-vnc", "-kernel", "-initrd", "-append", "-global", "-smbios", "-action",
    "-watchdog-action", "-sandbox", "-msg", "-overcommit", "-incoming", "-serial", "-fw_cfg",
    "-k",
}  # fmt: skip
# The environment every libvirt-run QEMU gets (its own directories, a C locale).
_LIBVIRT_ENV = ("LC_ALL", "PATH", "HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")


def _kv(text: str) -> dict[str, str]:
    """QEMU's ``a=b,c=d`` option syntax (',,' is a literal comma); a leading bare word is
    ``"": word``."""
    out: dict[str, str] = {}
    for index, part in enumerate(re.split(r"(?<!,),(?!,)", text)):
        part = part.replace(",,", ",")
        key, sep, value = part.partition("=")
        if not sep and index == 0:
            out[""] = key
        else:
            out[key] = value
    return out


def _props(value: str) -> dict[str, Any]:
    if value.startswith("{"):
        parsed: dict[str, Any] = json.loads(value)
        return parsed
    return {key or "driver": val for key, val in _kv(value).items()}


@dataclass
class Native:
    """One command line, taken apart."""

    emulator: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    disks: dict[str, dict[str, Any]] = field(default_factory=dict)
    netdevs: dict[str, dict[str, Any]] = field(default_factory=dict)
    chardevs: dict[str, dict[str, str]] = field(default_factory=dict)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    audiodevs: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    """Arguments appended after the last option of the builder (``<qemu:commandline>``)."""

    def sections(self) -> dict[str, Any]:
        return {
            "options": self.options,
            "devices": self.devices,
            "disks": self.disks,
            "netdevs": self.netdevs,
            "chardevs": self.chardevs,
            "objects": self.objects,
            "audiodevs": self.audiodevs,
            "env": self.env,
            "extra": self.extra,
        }


def parse_argv(argv: list[str], env: dict[str, str] | None = None) -> Native:
    """``argv`` (``env`` its extra environment) taken apart into a :class:`Native`."""
    native = Native(emulator=argv[0], env=dict(env or {}))
    blockdevs: dict[str, dict[str, Any]] = {}
    opts = native.options
    index = 1
    while index < len(argv):
        flag = argv[index]
        value = argv[index + 1] if flag in _VALUED and index + 1 < len(argv) else None
        index += 2 if value is not None else 1
        if value is None:
            opts.setdefault("flags", []).append(flag)
        elif flag == "-device":
            props = _props(value)
            if not value.startswith("{"):
                # a legacy -device string only comes from <qemu:commandline>
                native.extra += [flag, value]
                continue
            native.devices[str(props.get("id", props["driver"]))] = props
        elif flag == "-blockdev":
            props = _props(value)
            blockdevs[props["node-name"]] = props
        elif flag == "-netdev":
            props = _props(value)
            native.netdevs[props["id"]] = props
        elif flag == "-object":
            props = _props(value)
            native.objects[props["id"]] = props
        elif flag == "-audiodev":
            props = _props(value)
            native.audiodevs[props["id"]] = props
        elif flag == "-chardev":
            spec = _kv(value)
            native.chardevs[spec["id"]] = spec
        elif flag in ("-machine", "-rtc", "-smp", "-boot", "-overcommit", "-msg", "-sandbox"):
            opts[flag] = _kv(value)
        elif flag == "-cpu":
            spec = _kv(value)
            model = spec.pop("", "")
            opts[flag] = {"model": model, **spec}
        elif flag == "-m":
            opts[flag] = _memory_kib(value)
        elif flag in ("-global", "-smbios", "-action", "-watchdog-action", "-fw_cfg"):
            opts.setdefault(flag, []).append(value)
        else:
            opts[flag] = value
    for key in ("-global", "-smbios", "-action", "-watchdog-action", "-fw_cfg"):
        if key in opts:
            opts[key] = sorted(opts[key])
    for dev_id, props in native.devices.items():
        if "drive" in props:
            native.disks[dev_id] = _chain(props["drive"], blockdevs)
    return native


def _memory_kib(value: str) -> int:
    spec = _kv(value)
    size = spec.get("size", spec.get("", "0"))
    units = {"k": 1, "K": 1, "M": 1024, "G": 1024 * 1024}
    if size[-1:] in units:
        return int(size[:-1]) * units[size[-1]]
    return int(size) * 1024  # plain -m N is MiB


def _chain(node: str, blockdevs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A disk's block graph from its top node down, flattened into one description: the
    format and protocol drivers and the properties that reach the guest's data."""
    layers = []
    name: str | None = node
    while name is not None:
        props = blockdevs[name]
        layers.append(props)
        child = props.get("file")
        name = child if isinstance(child, str) else None
    top, bottom = layers[0], layers[-1]
    chain: dict[str, Any] = {
        "nodes": [props["node-name"] for props in layers],
        "format": top["driver"] if len(layers) > 1 else "raw",
        "protocol": bottom["driver"],
        "filename": bottom.get("filename"),
        "read-only": bool(top.get("read-only", False)),
        "cache": top.get("cache", bottom.get("cache")),
        "discard": top.get("discard"),
    }
    for layer in layers:
        for key, value in layer.items():
            if key not in ("node-name", "driver", "file", "filename", "read-only", "cache"):
                if key not in ("discard", "auto-read-only"):
                    chain.setdefault(f"{layer['driver']}.{key}", value)
    return chain


def split_native(text: str) -> tuple[list[str], dict[str, str]]:
    """``virsh domxml-to-native qemu-argv`` output → (argv, the environment it sets)."""
    words = shlex.split(text)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    return words, env


# --- accepted differences --------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """One kind of difference the comparison accepts, and why."""

    name: str
    reason: str
    side: str  # "libvirt", "virtdeck" or "both": whose command line the rule edits
    apply: Callable[[Native], None]


def _drop_option(*flags: str) -> Callable[[Native], None]:
    def run(native: Native) -> None:
        for flag in flags:
            native.options.pop(flag, None)
            if flag in native.options.get("flags", []):
                native.options["flags"] = [f for f in native.options["flags"] if f != flag]

    return run


def _drop_libvirt_objects(native: Native) -> None:
    for obj_id in [k for k, v in native.objects.items() if v["qom-type"] == "secret"]:
        del native.objects[obj_id]
    for obj_id in [k for k, v in native.objects.items() if "memory-backend" in v["qom-type"]]:
        del native.objects[obj_id]
    native.options.get("-machine", {}).pop("memory-backend", None)


def _monitor(native: Native) -> None:
    native.chardevs.pop("charmonitor", None)
    native.options.pop("-mon", None)


def _env(native: Native) -> None:
    for key in _LIBVIRT_ENV:
        native.env.pop(key, None)


def _machine_alias(native: Native) -> None:
    machine = native.options.get("-machine", {})
    aliases = {"q35": "pc-q35-7.2", "pc": "pc-i440fx-7.2"}
    if "" in machine:
        machine[""] = aliases.get(machine[""], machine[""])


def _no_acpi(native: Native) -> None:
    flags = native.options.get("flags", [])
    if "-no-acpi" in flags:
        native.options["flags"] = [f for f in flags if f != "-no-acpi"]
        native.options.setdefault("-machine", {})["acpi"] = "off"


def _no_hpet(native: Native) -> None:
    flags = native.options.get("flags", [])
    if "-no-hpet" in flags:
        native.options["flags"] = [f for f in flags if f != "-no-hpet"]
        native.options.setdefault("-machine", {})["hpet"] = "off"


def _host_paths(native: Native) -> None:
    """Chardev/socket paths libvirt puts under its own directories (a pty has none)."""
    for spec in native.chardevs.values():
        for key in ("path", "logfile"):
            if spec.get(key, "").startswith("/var/lib/libvirt/") or spec.get(key, "").startswith(
                "/run/"
            ):
                spec[key] = "<host path>"


def _raw_format_layer(native: Native) -> None:
    # the chains (built by _chain) already say format/protocol/read-only/cache/discard;
    # only the node names differ
    for chain in native.disks.values():
        chain.pop("nodes", None)


def _unused_audiodev(native: Native) -> None:
    used = {str(p.get("audiodev")) for p in native.devices.values() if "audiodev" in p}
    vnc = native.options.get("-vnc", "")
    used |= set(re.findall(r"audiodev=([^,]+)", vnc))
    for dev_id in [k for k, v in native.audiodevs.items() if v["driver"] == "none"]:
        if dev_id not in used:
            del native.audiodevs[dev_id]


def _pretend_netdevs(native: Native) -> None:
    for netdev in native.netdevs.values():
        for key in [k for k in netdev if k != "id"]:
            del netdev[key]


def _vnc_syntax(native: Native) -> None:
    vnc = native.options.get("-vnc")
    if isinstance(vnc, str):
        vnc = vnc.removeprefix("vnc=")
        vnc = re.sub(r"^unix:(/var/lib/libvirt/|/run/vd/)[^,]*", "unix:<host path>", vnc)
        native.options["-vnc"] = vnc


def _reboot_action(native: Native) -> None:
    actions = native.options.get("-action", [])
    if "reboot=shutdown" in actions:
        actions.remove("reboot=shutdown")
        if not actions:
            del native.options["-action"]


def _usb_storage_removable(native: Native) -> None:
    for props in native.devices.values():
        if props.get("driver") == "usb-storage" and props.get("removable") is False:
            del props["removable"]


ACCEPTED: tuple[Accepted, ...] = (
    Accepted(
        "libvirt's sandbox",
        "-sandbox is libvirt's seccomp policy for the QEMU it runs; it changes nothing the "
        "guest sees",
        "libvirt",
        _drop_option("-sandbox"),
    ),
    Accepted(
        "secrets and memory backends",
        "libvirt passes a master-key secret object and puts guest RAM in a memory-backend "
        "object (machine memory-backend=pc.ram); the guest sees the same RAM size, compared "
        "as -m",
        "libvirt",
        _drop_libvirt_objects,
    ),
    Accepted(
        "the monitor",
        "libvirt's QMP monitor is a socket path in its own directory, virtdeck's an "
        "inherited listening fd; neither is guest-visible",
        "both",
        _monitor,
    ),
    Accepted(
        "libvirt's process environment",
        "libvirt runs QEMU with LC_ALL=C, its PATH and HOME/XDG dirs under "
        "/var/lib/libvirt; only <qemu:env> variables are compared",
        "libvirt",
        _env,
    ),
    Accepted(
        "machine type aliases",
        "an XML machine='q35' / 'pc' reaches virtdeck's command line as written; libvirt "
        "resolves it at define time to QEMU 7.2's pc-q35-7.2 / pc-i440fx-7.2, which the "
        "aliases name on this QEMU",
        "both",
        _machine_alias,
    ),
    Accepted(
        "-no-acpi",
        "libvirt 9.0 writes -no-acpi, virtdeck the machine property acpi=off (-no-acpi is "
        "deprecated from QEMU 8.0); same machine",
        "libvirt",
        _no_acpi,
    ),
    Accepted(
        "-no-hpet",
        "libvirt 9.0 may write -no-hpet, virtdeck the machine property hpet=off; same machine",
        "libvirt",
        _no_hpet,
    ),
    Accepted(
        "host-side chardev paths",
        "sockets libvirt creates itself live under /var/lib/libvirt or /run; the guest "
        "sees the same chardev type",
        "both",
        _host_paths,
    ),
    Accepted(
        "raw format node",
        "libvirt stacks a 'raw' format node (libvirt-N-format) on every raw disk's storage "
        "node and gives the storage node auto-read-only and discard=unmap; virtdeck's raw "
        "disk reads the storage node directly. Disks are compared as chains: format and "
        "protocol driver, file, read-only, cache and the format layer's discard",
        "both",
        _raw_format_layer,
    ),
    Accepted(
        "an unused -audiodev none",
        "libvirt 9.0 adds <audio type='none'> and its -audiodev to every domain; virtdeck "
        "only creates audio backends a display or sound card uses. A backend no device "
        "uses is inaudible",
        "both",
        _unused_audiodev,
    ),
    Accepted(
        "NIC host side",
        "virsh domxml-to-native prints every NIC's host side as '-netdev tap,fd=N' (a "
        "pretend fd) whatever the XML's type; a started domain gets user/bridge/tap as the "
        "XML says. The netdev ids are compared, the guest side (-device) in full",
        "both",
        _pretend_netdevs,
    ),
    Accepted(
        "-vnc on a unix socket",
        "libvirt writes 'vnc=unix:PATH', virtdeck 'unix:PATH' (the same option to QEMU); an "
        "automatic socket lives in each one's own runtime directory",
        "both",
        _vnc_syntax,
    ),
    Accepted(
        "on_reboot=destroy",
        "virtdeck asks QEMU to turn a guest reboot into a shutdown (-action "
        "reboot=shutdown); libvirt 9.0 catches the reset event and destroys the domain "
        "itself. Either way the guest does not come back up",
        "virtdeck",
        _reboot_action,
    ),
    Accepted(
        "usb-storage removable=false",
        "libvirt writes QEMU's default removable=false on every USB disk",
        "libvirt",
        _usb_storage_removable,
    ),
)


def normalise(native: Native, side: str) -> Native:
    for rule in ACCEPTED:
        if rule.side in (side, "both"):
            rule.apply(native)
    return native


def _fix_drive_names(ours: Native, theirs: Native) -> None:
    """Devices name their block node (libvirt-N-format / -storage): compared as chains."""
    for native in (ours, theirs):
        for props in native.devices.values():
            if "drive" in props:
                props["drive"] = "<chain>"


def differences(ours: Native, theirs: Native, skip: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Every difference between the two normalised command lines, one line each, both
    sides shown; ``skip`` lists (section, key) pairs a case accepts."""
    _fix_drive_names(ours, theirs)
    skipped = set(skip)
    found: list[str] = []
    for (section, mine), (_, other) in zip(
        ours.sections().items(), theirs.sections().items(), strict=True
    ):
        if isinstance(mine, list):
            if (section, "*") not in skipped and mine != other:
                found.append(f"{section}: virtdeck {mine} / libvirt {other}")
            continue
        for key in sorted(set(mine) | set(other)):
            if (section, key) in skipped:
                continue
            a, b = mine.get(key), other.get(key)
            if a != b:
                found.append(f"{section}[{key}]: virtdeck {_show(a)} / libvirt {_show(b)}")
    return found


def _show(value: object) -> str:
    return "(none)" if value is None else json.dumps(value, sort_keys=True)


# --- regenerating the corpus -------------------------------------------------------------


def regenerate(names: list[str]) -> None:
    """Define each ``src/NAME.xml`` on libvirtd and write its ``virsh dumpxml`` as
    ``NAME.xml`` (paths stay under /srv/vd/; libvirt does not open them at define)."""
    from bench.libvirt_peer import LibvirtPeer

    sources = sorted(SOURCES.glob("*.xml"))
    with LibvirtPeer(prefix="vdcorpus-") as peer:
        for source in sources:
            if names and source.stem not in names:
                continue
            name = f"vdcorpus-{source.stem}"
            xml = re.sub(r"<name>[^<]*</name>", f"<name>{name}</name>", source.read_text(), count=1)
            peer.define(name, xml)
            dumped = peer.virsh("dumpxml", "--inactive", name).stdout
            dumped = dumped.replace(f"<name>{name}</name>", f"<name>{source.stem}</name>")
            (CORPUS / source.name).write_text(dumped)
            peer.virsh("undefine", name)
            print(f"wrote {CORPUS / source.name}")


if __name__ == "__main__":
    regenerate(sys.argv[1:])
