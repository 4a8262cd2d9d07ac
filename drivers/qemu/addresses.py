"""Guest IP addresses the host can see: its ARP table and DHCP lease files.

What each source can honestly answer, by NIC type (docs/devices.md, "Guest addresses"):

- ``type='user'`` / ``'network'`` (QEMU's user-mode NAT, slirp): the guest talks to a
  network stack inside QEMU. Its DHCP server keeps its leases to itself (QMP shows none)
  and no host interface carries the guest's packets, so neither the ARP table nor a lease
  file knows the address: only the guest agent does.
- ``type='bridge'`` / ``'ethernet'`` (a tap device): the guest is on a host network. The
  host's neighbour table (``/proc/net/arp``, per network namespace) has its IPv4 address
  once the guest has exchanged packets with the host; a DHCP server on that network
  (dnsmasq, libvirt's networks) has a lease file if it handed the address out.

Like libvirt, ARP and lease addresses carry no prefix (0): neither source records one.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from pathlib import Path

from drivers.domxml import DomainDef, InterfaceDef
from drivers.model import InterfaceAddresses, IPAddress

ARP_TABLE = Path("/proc/net/arp")
#: Where dnsmasq and libvirt's networks keep their leases (dnsmasq's default file, and
#: libvirt's per-network status files).
LEASE_FILES = ("/var/lib/misc/dnsmasq.leases", "/var/lib/libvirt/dnsmasq/*.status")
#: NIC types whose guest is on a host network (a tap device).
HOST_NETWORKED = ("bridge", "ethernet")
_ATF_COM = 0x2  # a complete ARP entry


def arp_table(path: Path = ARP_TABLE) -> dict[str, list[str]]:
    """MAC (lowercase) → IPv4 addresses in the host's neighbour table (complete entries)."""
    found: dict[str, list[str]] = {}
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 6:
            continue
        address, flags, mac = fields[0], fields[2], fields[3].lower()
        try:
            if not int(flags, 16) & _ATF_COM:
                continue
            ipaddress.IPv4Address(address)
        except ValueError:
            continue
        found.setdefault(mac, []).append(address)
    return found


def lease_paths(patterns: Iterable[str] = LEASE_FILES) -> list[Path]:
    paths: list[Path] = []
    for pattern in patterns:
        if "*" in pattern:
            parent = Path(pattern).parent
            paths.extend(sorted(parent.glob(Path(pattern).name)) if parent.is_dir() else [])
        else:
            paths.append(Path(pattern))
    return paths


def leases(paths: Iterable[Path]) -> dict[str, list[str]]:
    """MAC → leased addresses, from dnsmasq lease files (``expiry mac ip name id``) and
    libvirt's status files (a JSON list of ``{"mac-address", "ip-address"}``)."""
    found: dict[str, list[str]] = {}

    def add(mac: object, address: object) -> None:
        if not isinstance(mac, str) or not isinstance(address, str):
            return
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return
        found.setdefault(mac.lower(), []).append(address)

    for path in paths:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if path.suffix == ".status":
            try:
                entries = json.loads(text or "[]")
            except ValueError:
                continue
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    add(entry.get("mac-address"), entry.get("ip-address"))
            continue
        for line in text.splitlines():
            fields = line.split()
            if len(fields) >= 3:
                add(fields[1], fields[2])
    return found


def nic_name(nic: InterfaceDef, index: int) -> str:
    """How a NIC is named in host-side answers: its host device (``<target dev>``) when
    the XML names one, else its QEMU id (``netN``)."""
    node = nic.element.find("target")
    dev = node.get("dev") if node is not None else None
    return dev or f"net{index}"


def host_view(defn: DomainDef, table: dict[str, list[str]]) -> tuple[list[InterfaceAddresses], int]:
    """The domain's host-networked NICs found in ``table`` (MAC → addresses), and how
    many of its NICs the host can see at all."""
    found: list[InterfaceAddresses] = []
    visible = 0
    for index, nic in enumerate(defn.interfaces):
        if nic.type not in HOST_NETWORKED:
            continue
        visible += 1
        addresses = table.get(nic.mac.lower())
        if not addresses:
            continue
        found.append(
            InterfaceAddresses(
                name=nic_name(nic, index),
                hwaddr=nic.mac,
                addresses=tuple(
                    IPAddress(
                        type="ipv4" if ipaddress.ip_address(a).version == 4 else "ipv6",
                        address=a,
                        prefix=0,
                    )
                    for a in addresses
                ),
            )
        )
    return found, visible
