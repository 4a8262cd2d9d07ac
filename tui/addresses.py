"""Each running domain's IP address for the table: which source to ask, which address to show.

One worker per host asks its running domains in turn, every ADDRESS_INTERVAL seconds and
soon after one starts: the guest agent first (it knows every interface), then the host's
DHCP leases, then its ARP table; the first source with an answer wins. A source that
cannot answer (no agent, user-mode NAT) just leaves the cell blank. The address shown is
the first IPv4 address that is not loopback or link-local, else the first such IPv6 one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from drivers.api import Connection, Domain
from drivers.errors import NotSupported, VirtError
from drivers.model import InterfaceAddresses

#: Seconds between two rounds of a host's running domains.
ADDRESS_INTERVAL = 5.0
#: The sources tried, in order.
SOURCES = ("agent", "lease", "arp")


def pick_address(found: Sequence[InterfaceAddresses]) -> str:
    """The address the table shows for these interfaces ('' when none is worth showing)."""
    best6 = ""
    for iface in found:
        for addr in iface.addresses:
            try:
                parsed = ipaddress.ip_address(addr.address.split("%", 1)[0])
            except ValueError:
                continue
            if parsed.is_loopback or parsed.is_link_local or parsed.is_unspecified:
                continue
            if parsed.version == 4:
                return str(parsed)
            if not best6:
                best6 = str(parsed)
    return best6


async def domain_address(dom: Domain, never: set[str] | None = None) -> str:
    """Ask the sources in order; '' when none knows an address. A source that says it can
    never answer for this domain (NotSupported: only user-mode NICs, a driver without
    addresses) is added to ``never`` and skipped while the set is kept."""
    for source in SOURCES:
        if never is not None and source in never:
            continue
        try:
            found = await dom.interface_addresses(source)
        except NotSupported:
            if never is not None:
                never.add(source)
            continue
        except VirtError:
            continue
        address = pick_address(found)
        if address:
            return address
    return ""


class AddressRounds:
    """What one host's rounds keep between them: each running domain's handle and the
    sources that cannot answer for it, so that a round costs one call per domain and
    source that can answer, not a lookup and three calls. A domain that stops is
    forgotten: it may come back with other NICs or another agent."""

    def __init__(self) -> None:
        self._handles: dict[str, Domain] = {}
        self._never: dict[str, set[str]] = {}

    async def address(self, conn: Connection, uuid: str) -> str:
        dom = self._handles.get(uuid)
        if dom is None:
            dom = self._handles[uuid] = await conn.lookup_by_uuid(uuid)
        return await domain_address(dom, self._never.setdefault(uuid, set()))

    def keep_only(self, running: set[str]) -> None:
        for table in (self._handles, self._never):
            for uuid in [u for u in table if u not in running]:
                del table[uuid]
