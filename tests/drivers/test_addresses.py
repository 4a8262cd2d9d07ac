"""The host-side address sources: the ARP table and DHCP lease files (drivers/qemu/addresses.py)."""

from __future__ import annotations

import json
from pathlib import Path

from drivers.domxml import parse_domain
from drivers.model import InterfaceAddresses, IPAddress
from drivers.qemu.addresses import arp_table, host_view, lease_paths, leases
from tests.drivers.test_pci import domain

ARP = """\
IP address       HW type     Flags       HW address            Mask     Device
10.98.0.2        0x1         0x2         52:54:00:98:00:02     *        vdtap1
10.98.0.9        0x1         0x0         52:54:00:98:00:09     *        vdtap1
10.98.0.3        0x1         0x2         52:54:00:98:00:02     *        vdtap1
garbage
"""


def test_arp_table_keeps_complete_entries(tmp_path: Path) -> None:
    path = tmp_path / "arp"
    path.write_text(ARP)
    assert arp_table(path) == {"52:54:00:98:00:02": ["10.98.0.2", "10.98.0.3"]}
    assert arp_table(tmp_path / "missing") == {}


def test_leases_from_dnsmasq_and_libvirt_status_files(tmp_path: Path) -> None:
    dnsmasq = tmp_path / "dnsmasq.leases"
    dnsmasq.write_text("1767225600 52:54:00:aa:00:01 192.168.50.7 guest1 *\nbad line\n")
    status_dir = tmp_path / "dnsmasq"
    status_dir.mkdir()
    (status_dir / "virbr0.status").write_text(
        json.dumps([{"ip-address": "192.168.122.9", "mac-address": "52:54:00:AA:00:02"}])
    )
    paths = lease_paths([str(dnsmasq), str(status_dir / "*.status")])
    assert leases(paths) == {
        "52:54:00:aa:00:01": ["192.168.50.7"],
        "52:54:00:aa:00:02": ["192.168.122.9"],
    }


def test_host_view_names_nics_and_skips_user_mode() -> None:
    defn = parse_domain(
        domain(
            "q35",
            "<interface type='user'><mac address='52:54:00:aa:00:01'/></interface>"
            "<interface type='bridge'><mac address='52:54:00:aa:00:02'/>"
            "<source bridge='br0'/></interface>"
            "<interface type='ethernet'><mac address='52:54:00:aa:00:03'/>"
            "<target dev='tap7' managed='no'/></interface>",
        )
    )
    table = {
        "52:54:00:aa:00:01": ["10.0.2.15"],
        "52:54:00:aa:00:02": ["192.168.1.5", "fd00::5"],
        "52:54:00:aa:00:03": ["10.98.0.2"],
    }
    found, visible = host_view(defn, table)
    assert visible == 2
    assert found == [
        InterfaceAddresses(
            "net1",
            "52:54:00:aa:00:02",
            (IPAddress("ipv4", "192.168.1.5", 0), IPAddress("ipv6", "fd00::5", 0)),
        ),
        InterfaceAddresses("tap7", "52:54:00:aa:00:03", (IPAddress("ipv4", "10.98.0.2", 0),)),
    ]


def test_ethernet_nic_uses_an_existing_tap() -> None:
    import pytest

    from drivers.errors import InvalidXML
    from drivers.qemu.argv import LaunchContext, build_argv

    nic = (
        "<interface type='ethernet'><mac address='52:54:00:aa:00:03'/>"
        "<target dev='tap7' managed='no'/><model type='virtio'/></interface>"
    )
    argv = build_argv(parse_domain(domain("q35", nic)), LaunchContext(3, "/run/vd/d"))
    assert '{"type":"tap","ifname":"tap7","script":"no","downscript":"no","id":"hostnet0"}' in argv
    with pytest.raises(InvalidXML, match="virtdeck does not create tap devices"):
        parse_domain(domain("q35", nic.replace(" managed='no'", "")))
    with pytest.raises(InvalidXML, match="needs the name of an existing tap device"):
        parse_domain(domain("q35", nic.replace("<target dev='tap7' managed='no'/>", "")))


async def test_read_only_may_read_host_tables_not_ask_the_agent() -> None:
    import pytest

    import drivers
    from drivers.errors import AccessDenied

    conn = await drivers.open("test:///default?ro=1")
    try:
        dom = await conn.lookup("web1")
        assert (await dom.interface_addresses("lease"))[0].addresses[0].address == (
            "192.168.122.23"
        )
        assert await dom.interface_addresses("arp")
        with pytest.raises(AccessDenied, match="asking the guest agent was refused"):
            await dom.interface_addresses("agent")
        with pytest.raises(AccessDenied, match="shutting a domain down was refused"):
            await dom.shutdown(mode="agent")
    finally:
        await conn.close()
