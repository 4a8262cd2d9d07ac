"""``virtdeck --demo``: three simulated hosts, so a newcomer sees a populated screen.

``demo`` is ``test:///default`` (shared by every connection in this process); ``lab`` (12
domains, protected) and ``edge`` (4 domains, read-only) are ``test:///PATH.xml`` node
files written to the cache directory. Nothing here needs QEMU.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from drivers.fsutil import atomic_write
from tui.config import HostConfig, HostMode, cache_dir

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"

# (name, MiB, vCPUs, virDomainState number: 1 running, 3 paused, 5 shut off, 6 crashed)
LAB: tuple[tuple[str, int, int, int], ...] = (
    ("web-01", 2048, 2, 1),
    ("web-02", 2048, 2, 1),
    ("web-03", 2048, 2, 5),
    ("api-01", 4096, 4, 1),
    ("db-primary", 16384, 8, 1),
    ("db-replica", 16384, 8, 3),
    ("cache", 1024, 1, 1),
    ("ci-runner-1", 8192, 4, 1),
    ("ci-runner-2", 8192, 4, 5),
    ("mail", 1024, 1, 5),
    ("backup", 2048, 2, 6),
    ("win-test", 6144, 4, 5),
)
EDGE: tuple[tuple[str, int, int, int], ...] = (
    ("gw-north", 512, 1, 1),
    ("gw-south", 512, 1, 1),
    ("sensor-hub", 1024, 2, 3),
    ("edge-cache", 2048, 2, 5),
)


def _uuid(host: str, name: str) -> str:
    digest = hashlib.sha256(f"virtdeck-demo/{host}/{name}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"


def _mac(host: str, name: str) -> str:
    digest = hashlib.sha256(f"virtdeck-demo-mac/{host}/{name}".encode()).hexdigest()
    return "52:54:00:" + ":".join(digest[i : i + 2] for i in (0, 2, 4))


def node_xml(host: str, domains: tuple[tuple[str, int, int, int], ...]) -> str:
    """A libvirt test-driver ``<node>`` document with ``domains``."""
    parts = [f"<node xmlns:test='{TEST_NS}'>"]
    for name, mib, vcpus, state in domains:
        extra = "\n      <panic model='isa'/>" if state == 6 else ""
        graphics = (
            "\n      <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>"
            if vcpus >= 2
            else ""
        )
        parts.append(
            f"""  <domain type='test'>
    <name>{name}</name>
    <uuid>{_uuid(host, name)}</uuid>
    <memory unit='MiB'>{mib}</memory>
    <vcpu>{vcpus}</vcpu>
    <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>
    <features><acpi/></features>
    <devices>
      <disk type='file' device='disk'>
        <driver name='qemu' type='qcow2'/>
        <source file='/var/lib/virtdeck/images/{name}.qcow2'/>
        <target dev='vda' bus='virtio'/>
      </disk>
      <interface type='network'>
        <mac address='{_mac(host, name)}'/>
        <source network='default'/>
        <model type='virtio'/>
      </interface>
      <serial type='pty'><target port='0'/></serial>{graphics}{extra}
    </devices>
    <test:runstate>{state}</test:runstate>
  </domain>"""
        )
    parts.append("</node>\n")
    return "\n".join(parts)


def _write(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    atomic_write(path, text)


def demo_hosts(directory: Path | None = None) -> tuple[HostConfig, ...]:
    """The demo's hosts, writing their node files under ``directory`` (default: the cache)."""
    directory = (directory or cache_dir() / "demo").resolve()
    lab = directory / "lab.xml"
    edge = directory / "edge.xml"
    _write(lab, node_xml("lab", LAB))
    _write(edge, node_xml("edge", EDGE))
    return (
        HostConfig("test:///default", "demo", saved=False),
        HostConfig(f"test://{lab}", "lab", mode=HostMode.PROTECTED, saved=False),
        HostConfig(f"test://{edge}", "edge", mode=HostMode.READ_ONLY, saved=False),
    )
