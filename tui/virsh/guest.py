"""``domifaddr`` and ``shutdown [--mode]``: what the host and the guest agent know of a guest.

``domifaddr`` prints virsh's table byte for byte (its fixed-width printf columns, not the
vshTable of ``list``); names and MAC addresses may come from the guest, so every cell is
made inert first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from drivers.errors import AgentUnavailable, InvalidArgument, NotSupported
from drivers.model import ADDRESS_SOURCES
from tui.virsh.formats import field
from tui.virsh.options import Args, Command, Opt
from tui.virsh.shell import Shell

if TYPE_CHECKING:
    from drivers.model import InterfaceAddresses

_DOMAIN = Opt("domain", "string", "domain name, id or uuid", positional=True, required=True)
_RULE = "-" * 79
# what virsh's --mode knows; the QEMU driver builds acpi and agent
_VIRSH_MODES = ("acpi", "agent", "initctl", "signal", "paravirt")


def addresses_table(
    found: Sequence[InterfaceAddresses], *, interface: str | None, full: bool
) -> str:
    """virsh's domifaddr table: its printf columns, ``-`` for a repeated name (unless
    ``full``), ``N/A`` for an interface without addresses."""
    lines = [f" {'Name':<10} {'MAC address':<20} {'Protocol':<12} Address\n{_RULE}\n"]
    for iface in found:
        name = field(iface.name)
        if interface is not None and iface.name != interface:
            continue
        if not iface.addresses:
            hwaddr = field(iface.hwaddr) if iface.hwaddr else "N/A"
            lines.append(f" {name:<10} {hwaddr:<17}    {'N/A':<12} N/A\n")
            continue
        for index, addr in enumerate(iface.addresses):
            cell = f"{addr.type:<12} {field(addr.address)}/{addr.prefix}"
            if full or index == 0:
                lines.append(f" {name:<10} {field(iface.hwaddr or ''):<17}    {cell}\n")
            else:
                lines.append(f" {'-':<10} {'-':<17}    {cell}\n")
    return "".join(lines)


async def cmd_domifaddr(shell: Shell, args: Args) -> bool:
    source = args.text("source") or "lease"
    if source not in ADDRESS_SOURCES:
        raise InvalidArgument(f"Unknown data source '{source}'")
    dom = await shell.domain(args.required("domain"))
    found = await dom.interface_addresses(source)
    shell.print(addresses_table(found, interface=args.text("interface"), full=args.flag("full")))
    return True


async def cmd_shutdown(shell: Shell, args: Args) -> bool:
    ref = args.required("domain")
    modes: list[str] = []
    for word in (args.text("mode") or "").split(","):
        if not word:
            continue
        if word not in _VIRSH_MODES:
            raise InvalidArgument(
                f"Unknown mode {word} value, expecting 'acpi', 'agent', 'initctl', 'signal', "
                "or 'paravirt'"
            )
        if word not in ("acpi", "agent"):
            raise NotSupported(
                f"Shutdown mode '{word}' is not available for QEMU guests; use --mode acpi "
                "(the power button) or --mode agent (the guest agent)."
            )
        modes.append(word)
    dom = await shell.domain(ref)
    if "agent" in modes:
        try:
            await dom.shutdown("agent")
        except AgentUnavailable:
            # as libvirt: with both modes, the power button when the agent cannot do it
            if "acpi" not in modes:
                raise
            await dom.shutdown("acpi")
    else:
        await dom.shutdown()
    shell.extra(f"Domain '{field(ref)}' is being shutdown\n")
    return True


DOMIFADDR = Command(
    "domifaddr",
    "Get network interfaces' addresses for a running domain",
    "Get network interfaces' addresses for a running domain",
    (
        _DOMAIN,
        Opt("interface", "string", "network interface name"),
        Opt("full", "bool", "always display names and MACs of interfaces"),
        Opt("source", "string", "address source: 'lease', 'agent', or 'arp'"),
    ),
    cmd_domifaddr,
)

SHUTDOWN = Command(
    "shutdown",
    "gracefully shutdown a domain",
    "Run shutdown in the target domain.",
    (_DOMAIN, Opt("mode", "string", "shutdown mode: acpi|agent|initctl|signal|paravirt")),
    cmd_shutdown,
)
