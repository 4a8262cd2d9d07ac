"""What the details screen's overview shows, read from a domain's XML (lxml, off the UI path).

Every string here came from the guest's definition, so the screen renders it inert.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import VirtError


@dataclass(frozen=True)
class Disk:
    target: str
    bus: str
    device: str
    source: str
    format: str


@dataclass(frozen=True)
class Nic:
    kind: str
    source: str
    mac: str
    model: str


@dataclass(frozen=True)
class Overview:
    vcpus: int = 0
    memory_kib: int = 0
    title: str = ""
    description: str = ""
    machine: str = ""
    arch: str = ""
    on_poweroff: str = ""
    on_reboot: str = ""
    on_crash: str = ""
    disks: tuple[Disk, ...] = ()
    nics: tuple[Nic, ...] = ()
    vnc: str = ""
    #: It has a screen to show (a <graphics> or a <video> card).
    display: bool = False
    error: str = ""


def describe(xml: str) -> Overview:
    """The overview of a domain XML; ``error`` says why when it cannot be read."""
    from drivers.domxml import parse_domain

    try:
        d = parse_domain(xml)
    except VirtError as err:
        return Overview(error=err.message)
    disks = tuple(
        Disk(
            disk.target_dev,
            disk.target_bus,
            disk.device,
            disk.source or "(empty)",
            disk.driver_type,
        )
        for disk in d.disks
    )
    nics = tuple(
        Nic(nic.type, nic.source_network or nic.source_bridge or "", nic.mac, nic.model)
        for nic in d.interfaces
    )
    vnc = ""
    for graphics in d.graphics:
        if graphics.listen_type == "socket":
            vnc = f"unix:{graphics.socket}" if graphics.socket else "unix socket (chosen at start)"
        elif graphics.port == -1:
            vnc = f"{graphics.listen}, port chosen at start"
        else:
            vnc = f"{graphics.listen}:{graphics.port} (display :{graphics.port - 5900})"
        break
    return Overview(
        vcpus=d.vcpus,
        memory_kib=d.memory_kib,
        title=d.title or "",
        description=d.description or "",
        machine=d.machine,
        arch=d.arch,
        on_poweroff=d.on_poweroff.value,
        on_reboot=d.on_reboot.value,
        on_crash=d.on_crash.value,
        disks=disks,
        nics=nics,
        vnc=vnc,
        display=bool(d.graphics) or any(v.model != "none" for v in d.videos),
    )
