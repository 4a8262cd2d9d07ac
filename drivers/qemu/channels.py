"""The command-line part of virtio-serial: controllers, channels and their sockets.

libvirt 9.0's shape for the same XML: one ``virtio-serial-pci`` per ``<controller
type='virtio-serial'>`` (id ``virtio-serialN``, ``max_ports`` from ``ports=``), and per
channel a chardev ``charchannelN`` plus a ``virtserialport`` on ``virtio-serialC.0`` with
``nr`` = its port and the port's ``name``. A bind-mode unix channel without a path listens
on :func:`socket_path` under the domain's runtime directory (libvirt's
``channel/target/domain-N-NAME/NAME``; ours is per domain already).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxml import etree

from drivers.domxml import DomainDef
from drivers.domxml.channels import ChannelDef, channel_problems, generated_path
from drivers.errors import InvalidXML

if TYPE_CHECKING:
    from drivers.qemu.argv import _Builder

#: Unix socket paths longer than this cannot be bound by QEMU (sun_path).
SUN_PATH_MAX = 107


def socket_path(domain_dir: str | Path, name: str) -> str:
    """Where the socket of the unix channel ``name`` goes when the XML names none."""
    return str(Path(domain_dir) / "channel" / name)


def fill_socket_paths(defn: DomainDef, domain_dir: Path) -> list[ChannelDef]:
    """Name the socket of every bind-mode unix channel that has none (in the live
    definition, which then shows it, as libvirt's does); returns those channels."""
    filled: list[ChannelDef] = []
    for channel in defn.channels:
        if channel.type != "unix" or channel.source_mode != "bind":
            continue
        name = channel.target_name
        if not name:
            continue
        given = channel.source_path
        if given and not generated_path(given, defn.name, name):
            continue
        # (a path another start or host generated, e.g. in a migration's live XML, is
        # named again here)
        path = socket_path(domain_dir, name)
        if len(path.encode()) > SUN_PATH_MAX:
            raise InvalidXML(
                f"{channel.label}: its socket would be {path}, longer than the "
                f"{SUN_PATH_MAX} bytes a unix socket path may have; give the channel a "
                "shorter <source mode='bind' path='…'/>, or run the driver from a shorter "
                "state directory."
            )
        channel.set_source_path(path)
        filled.append(channel)
    if filled:
        (domain_dir / "channel").mkdir(parents=True, exist_ok=True, mode=0o700)
    return filled


def controllers(builder: _Builder) -> None:
    """The virtio-serial controllers: those the XML lists (and one when a virtio console
    or channel needs it but the XML has none)."""
    defn = builder.defn
    nodes = builder.controller_nodes("virtio-serial")
    needed = any(c.target_type == "virtio" for c in defn.consoles) or any(
        c.target_type == "virtio" for c in defn.channels
    )
    if not needed:
        return
    if not nodes:
        builder.device(
            {"driver": "virtio-serial-pci", "id": "virtio-serial0"},
            "the virtio-serial controller",
        )
        return
    for node in sorted(nodes, key=lambda n: int(n.get("index") or "0", 0)):
        index = int(node.get("index") or "0", 0)
        where = f"<controller type='virtio-serial' index='{index}'>"
        props: dict[str, Any] = {"driver": "virtio-serial-pci", "id": f"virtio-serial{index}"}
        for attr, prop in (("ports", "max_ports"), ("vectors", "vectors")):
            value = node.get(attr)
            if value is None:
                continue
            if not value.isdigit() or not 1 <= int(value) <= 1024:
                raise InvalidXML(
                    f"{where}: {attr}={value!r} is not a number from 1 to 1024; write e.g. "
                    f"{attr}='16' or leave it out."
                )
            props[prop] = int(value)
        props.update(builder.pci(node, where))
        builder.device(props, where)


def ports(builder: _Builder) -> None:
    """One chardev and one ``virtserialport`` per channel."""
    problems = channel_problems(builder.defn.root.find("devices"))
    if problems:
        raise InvalidXML(problems[0])
    for index, channel in enumerate(builder.defn.channels):
        chardev = f"charchannel{index}"
        if channel.type == "unix" and not channel.source_path:
            # The driver names the socket before it builds the command line; a pure
            # build (tests, comparisons) gets the same name from the context.
            channel = ChannelDef(_copy_with_path(channel, builder.ctx.domain_dir))
        builder.chardev(channel, chardev)
        props: dict[str, Any] = {"driver": "virtserialport"}
        addr = channel.port_address
        controller, port = (addr[0], addr[2]) if addr is not None else (0, None)
        props["bus"] = f"virtio-serial{controller}.0"
        if port is not None:
            props["nr"] = port
        props["chardev"] = chardev
        props["id"] = f"channel{index}"
        if channel.target_name:
            props["name"] = channel.target_name
        builder.device(props, channel.label)


def _copy_with_path(channel: ChannelDef, domain_dir: str) -> etree._Element:
    element = copy.deepcopy(channel.element)
    view = ChannelDef(element)
    view.set_source_path(socket_path(domain_dir, channel.target_name or "channel"))
    return element


def agent_channel(defn: DomainDef) -> tuple[int, ChannelDef] | None:
    """The guest agent's channel and its index (``channelN``), if ``defn`` has one the
    driver can reach (a unix socket QEMU listens on)."""
    for index, channel in enumerate(defn.channels):
        if channel.is_guest_agent and channel.type == "unix" and channel.source_mode == "bind":
            return index, channel
    return None
