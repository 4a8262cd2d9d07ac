"""The machine around the devices: machine properties, CPU model and features, SMP
topology, clock timers, power management, SMBIOS tables and I/O threads, written the way
libvirt 9.0 writes them for QEMU 7.2 (``virsh domxml-to-native`` is the reference; see
tests/drivers/test_libvirt_corpus.py).

:func:`refused_settings` names every setting of these elements that virtdeck does not
build, so that the QEMU driver refuses it at define time instead of leaving it out of the
guest. The builders assume the definition passed it.
"""

from __future__ import annotations

import re

from lxml import etree

from drivers.domxml import DomainDef
from drivers.domxml.tree import children, show

# <features> children with no effect on an x86 QEMU command line (libvirt writes nothing
# for them either), and those virtdeck builds.
_NO_EFFECT_FEATURES = ("acpi", "apic", "pae")
_BUILT_FEATURES = ("vmport",)
_TIMERS = ("rtc", "pit", "hpet")
_RTC_POLICIES = {"catchup": "slew", "delay": None}
_PIT_POLICIES = ("delay", "discard")
_FEATURE_ON = ("require", "force", "optional")
_FEATURE_OFF = ("disable", "forbid")
_FEATURE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)
# libvirt's names for the CPU features QEMU spells differently
_FEATURE_NAMES = {"pclmuldq": "pclmulqdq"}
# SMBIOS: the <sysinfo> block, the QEMU table type, and the entries in libvirt's order
_SMBIOS_TABLES = (
    ("bios", 0, ("vendor", "version", "date", "release")),
    ("system", 1, ("manufacturer", "product", "version", "serial", "uuid", "sku", "family")),
    ("baseBoard", 2, ("manufacturer", "product", "version", "serial", "asset", "location")),
    ("chassis", 3, ("manufacturer", "version", "serial", "asset", "sku")),
)
_SYSINFO_BLOCKS = (*(block for block, _, _ in _SMBIOS_TABLES), "oemStrings")
_MAX_IOTHREADS = 64


def _opt(value: str) -> str:
    return value.replace(",", ",,")


def _tag(node: etree._Element) -> str:
    return str(node.tag) if isinstance(node.tag, str) else ""


# Domain-level elements the QEMU driver does not apply, each with what to do instead.
# (<metadata>, <title>, <description>, <seclabel> and <resource> have no effect on the
# guest and are kept; docs/devices.md lists them.)
_REFUSED_ELEMENTS = {
    "maxMemory": "memory hotplug is not implemented; remove <maxMemory>",
    "vcpus": "per-vCPU settings (hotplug, order) are not implemented; remove <vcpus>",
    "genid": "the VM generation ID device is not implemented; remove <genid>",
    "memoryBacking": "memory backing options (huge pages, sharing, locking) are not "
    "implemented; remove <memoryBacking>",
    "numatune": "NUMA memory placement is not implemented; remove <numatune>",
    "cputune": "CPU tuning (shares, pinning, quotas) is not implemented; remove <cputune>",
    "memtune": "memory limits are not implemented; remove <memtune>",
    "blkiotune": "block I/O tuning is not implemented; remove <blkiotune>",
    "perf": "perf events are not implemented; remove <perf>",
    "bootloader": "host-side boot loaders are not implemented; remove <bootloader>",
    "keywrap": "key wrapping is not implemented; remove <keywrap>",
    "launchSecurity": "confidential guests (SEV, …) are not implemented; remove "
    "<launchSecurity>",
    "iothreadids": "",  # built (ids of <iothreads>)
}
_OS_CHILDREN = ("type", "boot", "kernel", "initrd", "cmdline", "smbios")


def _domain_problems(root: etree._Element) -> list[str]:
    problems: list[str] = []
    for node in root:
        why = _REFUSED_ELEMENTS.get(_tag(node))
        if why:
            problems.append(f"<{_tag(node)}>: {why}.")
    vcpu = root.find("vcpu")
    if vcpu is not None:
        current = vcpu.get("current")
        if current is not None and current.strip() != (vcpu.text or "").strip():
            problems.append(
                f"<vcpu current='{current}'>: starting with fewer vCPUs than the maximum is "
                "not implemented; remove current= (the guest gets all of <vcpu>)."
            )
        if vcpu.get("cpuset") is not None:
            problems.append(
                "<vcpu cpuset>: pinning vCPUs to host CPUs is not implemented; remove cpuset=."
            )
    os_node = root.find("os")
    if os_node is not None:
        if os_node.get("firmware") is not None:
            problems.append(
                f"<os firmware='{os_node.get('firmware')}'>: only the default BIOS "
                "(SeaBIOS) is implemented; remove firmware= (UEFI guests do not boot here)."
            )
        for node in os_node:
            tag = _tag(node)
            if tag and tag not in _OS_CHILDREN:
                problems.append(
                    f"<os><{tag}>: not implemented; remove it (virtdeck boots with QEMU's "
                    "SeaBIOS, from <boot> devices or a <kernel>)."
                )
    return problems


def refused_settings(defn: DomainDef) -> list[str]:
    """One sentence per domain-level setting the QEMU driver would otherwise ignore."""
    root = defn.root
    problems: list[str] = _domain_problems(root)
    features = root.find("features")
    if features is not None:
        for node in features:
            tag = _tag(node)
            if tag and tag not in _NO_EFFECT_FEATURES and tag not in _BUILT_FEATURES:
                problems.append(
                    f"<features><{tag}>: this feature is not implemented; remove it (virtdeck "
                    "builds acpi and vmport; apic and pae have no effect on QEMU)."
                )
        vmport = features.find("vmport")
        if vmport is not None and vmport.get("state") not in ("on", "off"):
            problems.append("<features><vmport>: write state='on' or state='off'.")
    problems += _cpu_problems(root)
    problems += _clock_problems(root)
    problems += _pm_problems(root)
    problems += _sysinfo_problems(root)
    problems += _iothread_problems(defn)
    return problems


def _cpu_problems(root: etree._Element) -> list[str]:
    cpu = root.find("cpu")
    if cpu is None:
        return []
    problems: list[str] = []
    for node in cpu:
        tag = _tag(node)
        if tag and tag not in ("model", "topology", "feature", "vendor"):
            problems.append(
                f"<cpu><{tag}>: this is not implemented; remove it (virtdeck builds the "
                "CPU model, its <feature>s and <topology>)."
            )
    for node in children(cpu, "feature"):
        name, policy = node.get("name") or "", node.get("policy") or "require"
        if not _FEATURE_RE.fullmatch(name):
            problems.append(
                f"<cpu><feature name={show(name)}>: not a CPU feature name; write e.g. "
                "<feature policy='require' name='x2apic'/>."
            )
        elif policy not in (*_FEATURE_ON, *_FEATURE_OFF):
            problems.append(
                f"<cpu><feature name='{name}'>: policy={show(policy)} is not a policy; write "
                "require, force, optional, disable or forbid."
            )
    if children(cpu, "feature") and cpu.get("mode") not in (None, "custom"):
        problems.append(
            f"<cpu mode='{cpu.get('mode')}'> with <feature>s: features apply to a named "
            "model; write <cpu mode='custom'><model>…</model>, or remove the features."
        )
    topology = cpu.find("topology")
    if topology is not None:
        counts = []
        for attr in ("sockets", "dies", "cores", "threads"):
            value = topology.get(attr) or "1"
            if not value.isdigit() or int(value) < 1:
                return [
                    f"<cpu><topology {attr}={show(value)}>: write a whole number from 1, e.g. "
                    "<topology sockets='1' dies='1' cores='2' threads='1'/>."
                ]
            counts.append(int(value))
        total = counts[0] * counts[1] * counts[2] * counts[3]
        vcpus = int((root.findtext("vcpu") or "1").strip())
        if total != vcpus:
            problems.append(
                f"<cpu><topology>: sockets * dies * cores * threads is {total}, but <vcpu> is "
                f"{vcpus}; make them equal."
            )
    return problems


def _clock_problems(root: etree._Element) -> list[str]:
    clock = root.find("clock")
    if clock is None:
        return []
    problems: list[str] = []
    for node in clock:
        tag = _tag(node)
        if not tag:
            continue
        name = node.get("name") or ""
        where = f"<clock><timer name={show(name)}>"
        if tag != "timer" or name not in _TIMERS:
            problems.append(
                f"{where if tag == 'timer' else f'<clock><{tag}>'}: this timer is not "
                "implemented; remove it (virtdeck builds the rtc, pit and hpet timers)."
            )
            continue
        extra = {str(key) for key in node.attrib} - {"name", "tickpolicy", "present", "track"}
        if extra:
            problems.append(f"{where}: {', '.join(sorted(extra))} is not implemented; remove it.")
        policy, present = node.get("tickpolicy"), node.get("present")
        if name == "hpet":
            if policy is not None or node.get("track") is not None:
                problems.append(f"{where}: the hpet takes only present='yes' or 'no'.")
        elif present not in (None, "yes"):
            problems.append(
                f"{where} present={show(present)}: a PC always has its {name}; remove present=."
            )
        if name == "hpet" and present not in (None, "yes", "no"):
            problems.append(f"{where}: write present='yes' or present='no'.")
        if name == "rtc" and policy is not None and policy not in _RTC_POLICIES:
            problems.append(
                f"{where} tickpolicy={show(policy)}: QEMU's RTC can catch up or delay; write "
                "tickpolicy='catchup' or 'delay'."
            )
        if name == "rtc" and node.get("track") not in (None, "guest"):
            problems.append(
                f"{where} track={show(node.get('track') or '')}: only track='guest' is "
                "implemented; remove track= or write track='guest'."
            )
        if name == "pit":
            if policy is not None and policy not in _PIT_POLICIES:
                problems.append(
                    f"{where} tickpolicy={show(policy)}: the PIT can delay or discard lost "
                    "ticks; write tickpolicy='delay' or 'discard'."
                )
            if node.get("track") is not None:
                problems.append(f"{where}: track= applies to the rtc only; remove it.")
    return problems


def _pm_problems(root: etree._Element) -> list[str]:
    pm = root.find("pm")
    if pm is None:
        return []
    problems: list[str] = []
    for node in pm:
        tag = _tag(node)
        if not tag:
            continue
        if tag not in ("suspend-to-mem", "suspend-to-disk"):
            problems.append(
                f"<pm><{tag}>: not implemented; remove it (virtdeck builds suspend-to-mem "
                "and suspend-to-disk)."
            )
        elif node.get("enabled") not in ("yes", "no"):
            problems.append(f"<pm><{tag}>: write enabled='yes' or enabled='no'.")
    return problems


def _sysinfo_problems(root: etree._Element) -> list[str]:
    mode = _smbios_mode(root)
    sysinfos = children(root, "sysinfo")
    problems: list[str] = []
    if mode not in (None, "sysinfo", "emulate"):
        problems.append(
            f"<os><smbios mode={show(mode)}>: only mode='sysinfo' (the <sysinfo> tables) and "
            "'emulate' are implemented; write mode='sysinfo'."
        )
    for sysinfo in sysinfos:
        kind = sysinfo.get("type")
        if kind != "smbios":
            problems.append(
                f"<sysinfo type={show(kind or '')}>: only type='smbios' is implemented; remove it."
            )
            continue
        if mode != "sysinfo":
            problems.append(
                "<sysinfo type='smbios'> has no effect without <os><smbios mode='sysinfo'/>"
                "</os> (libvirt ignores it too); add that element or remove <sysinfo>."
            )
        for block in sysinfo:
            tag = _tag(block)
            if tag and tag not in _SYSINFO_BLOCKS:
                problems.append(
                    f"<sysinfo><{tag}>: this SMBIOS table is not implemented; remove it "
                    "(virtdeck builds bios, system, baseBoard, chassis and oemStrings)."
                )
                continue
            allowed = next((names for b, _, names in _SMBIOS_TABLES if b == tag), None)
            for entry in children(block, "entry"):
                name = entry.get("name")
                if allowed is not None and name not in allowed:
                    problems.append(
                        f"<sysinfo><{tag}><entry name={show(name or '')}>: not an entry of "
                        f"this table; write one of {', '.join(allowed)}."
                    )
    if len([s for s in sysinfos if s.get("type") == "smbios"]) > 1:
        problems.append("<sysinfo type='smbios'> appears twice; keep one.")
    return problems


def _iothread_problems(defn: DomainDef) -> list[str]:
    root = defn.root
    count = iothread_ids(defn)
    problems: list[str] = []
    text = root.findtext("iothreads")
    if text is not None and not (text.strip().isdigit() and int(text) <= _MAX_IOTHREADS):
        problems.append(
            f"<iothreads>: {show(text)} is not a number of I/O threads; write e.g. "
            "<iothreads>2</iothreads>."
        )
        return problems
    for disk in defn.disks:
        driver = disk.element.find("driver")
        wanted = driver.get("iothread") if driver is not None else None
        if wanted is None:
            continue
        if disk.target_bus != "virtio":
            problems.append(
                f"{disk.label} <driver iothread>: only virtio disks run in an I/O thread; "
                "remove iothread=."
            )
        elif not wanted.isdigit() or int(wanted) not in count:
            problems.append(
                f"{disk.label} <driver iothread={show(wanted)}>: the domain has no such I/O "
                "thread; raise <iothreads> (or list it in <iothreadids>)."
            )
    for node in root.iter("cputune", "numatune"):
        if node.find("iothreadpin") is not None:
            problems.append("<cputune><iothreadpin>: pinning is not implemented; remove it.")
    return problems


def iothread_ids(defn: DomainDef) -> list[int]:
    """The domain's I/O thread ids: ``<iothreadids>`` or 1..``<iothreads>``."""
    root = defn.root
    ids = root.find("iothreadids")
    if ids is not None:
        found = [node.get("id") or "" for node in children(ids, "iothread")]
        return [int(value) for value in found if value.isdigit()]
    text = (root.findtext("iothreads") or "0").strip()
    return list(range(1, int(text) + 1)) if text.isdigit() else []


def _smbios_mode(root: etree._Element) -> str | None:
    node = root.find("os/smbios")
    return None if node is None else node.get("mode")


# --- builders ------------------------------------------------------------------------


def machine_properties(defn: DomainDef) -> str:
    """What follows ``usb=off`` in -machine: ``vmport=`` (libvirt's place), ``hpet=off``."""
    out = ""
    vmport = defn.root.find("features/vmport")
    if vmport is not None:
        out += f",vmport={vmport.get('state')}"
    return out


def machine_tail(defn: DomainDef) -> str:
    """Machine properties libvirt writes after dump-guest-core."""
    for timer in defn.root.findall("clock/timer"):
        if timer.get("name") == "hpet" and timer.get("present") == "no":
            return ",hpet=off"
    return ""


def cpu_features(defn: DomainDef) -> str:
    """``,name=on,other=off`` for the ``<cpu><feature>`` list, in document order."""
    cpu = defn.root.find("cpu")
    if cpu is None:
        return ""
    out = ""
    for node in children(cpu, "feature"):
        name = node.get("name") or ""
        name = _FEATURE_NAMES.get(name, name.replace("_", "-"))
        state = "off" if (node.get("policy") or "require") in _FEATURE_OFF else "on"
        out += f",{name}={state}"
    return out


def smp(defn: DomainDef) -> str:
    """``-smp``: libvirt's topology words (dies only when the XML has a topology)."""
    vcpus = defn.vcpus
    topology = defn.root.find("cpu/topology")
    if topology is None:
        return f"{vcpus},sockets={vcpus},cores=1,threads=1"
    words = [topology.get(attr) or "1" for attr in ("sockets", "dies", "cores", "threads")]
    return f"{vcpus},sockets={words[0]},dies={words[1]},cores={words[2]},threads={words[3]}"


def rtc(defn: DomainDef) -> str:
    """``-rtc``: the clock offset, the RTC's clock and its lost-tick policy."""
    spec = f"base={defn.clock_offset}"
    for timer in defn.root.findall("clock/timer"):
        if timer.get("name") != "rtc":
            continue
        if timer.get("track") == "guest":
            spec += ",clock=vm"
        driftfix = _RTC_POLICIES.get(timer.get("tickpolicy") or "delay")
        if driftfix is not None:
            spec += f",driftfix={driftfix}"
    return spec


def timer_globals(defn: DomainDef) -> list[str]:
    """``-global`` values of the PIT's lost-tick policy (libvirt writes them before
    -no-shutdown)."""
    out = []
    for timer in defn.root.findall("clock/timer"):
        if timer.get("name") == "pit" and timer.get("tickpolicy") in _PIT_POLICIES:
            out.append(f"kvm-pit.lost_tick_policy={timer.get('tickpolicy')}")
    return out


def pm_globals(defn: DomainDef, family: str) -> list[str]:
    """``-global`` values of ``<pm>``: the chipset's S3/S4 switches."""
    pm = defn.root.find("pm")
    if pm is None:
        return []
    chipset = "ICH9-LPC" if family == "q35" else "PIIX4_PM"
    out = []
    for tag, state in (("suspend-to-mem", "s3"), ("suspend-to-disk", "s4")):
        node = pm.find(tag)
        if node is not None:
            out.append(f"{chipset}.disable_{state}={1 if node.get('enabled') == 'no' else 0}")
    return out


def iothread_objects(defn: DomainDef) -> list[str]:
    """``-object`` JSON of each I/O thread."""
    return [f'{{"qom-type":"iothread","id":"iothread{n}"}}' for n in iothread_ids(defn)]


def smbios(defn: DomainDef) -> list[str]:
    """``-smbios`` values for the ``<sysinfo type='smbios'>`` tables (mode='sysinfo')."""
    if _smbios_mode(defn.root) != "sysinfo":
        return []
    sysinfo = next((s for s in children(defn.root, "sysinfo") if s.get("type") == "smbios"), None)
    if sysinfo is None:
        return []
    out = []
    for block, table, names in _SMBIOS_TABLES:
        node = sysinfo.find(block)
        if node is None:
            continue
        entries = {e.get("name"): (e.text or "") for e in children(node, "entry")}
        words = [f"{name}={_opt(entries[name])}" for name in names if name in entries]
        if words:
            out.append(f"type={table}," + ",".join(words))
    oem = sysinfo.find("oemStrings")
    if oem is not None:
        values = [f"value={_opt(e.text or '')}" for e in children(oem, "entry")]
        if values:
            out.append("type=11," + ",".join(values))
    return out
