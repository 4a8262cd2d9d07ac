"""``<channel>``: define-time ports, the command line, live-only state, refusals.

The comparison with libvirt's own output is tests/drivers/test_channels_libvirt.py; these
tests pin the pieces that do not need libvirtd.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import drivers
from drivers.domxml import parse_domain
from drivers.domxml.channels import ChannelDef
from drivers.errors import InvalidXML, NotSupported
from drivers.qemu.argv import LaunchContext, build_argv
from drivers.qemu.channels import fill_socket_paths
from drivers.qemu.registry import prepare_definition
from tests.conftest import require_qemu
from tests.drivers.test_pci import domain

CTX = LaunchContext(monitor_fd=3, domain_dir="/run/vd/d")
GA = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"


def _prepared(devices: str, machine: str = "q35") -> str:
    defn = parse_domain(domain(machine, devices))
    prepare_definition(defn)
    return defn.to_xml()


def test_define_assigns_ports_once_and_keeps_them() -> None:
    first = _prepared(GA + "<channel type='pty'><target type='virtio' name='b.0'/></channel>")
    assert '<address type="virtio-serial" controller="0" bus="0" port="1"/>' in first
    assert '<address type="virtio-serial" controller="0" bus="0" port="2"/>' in first
    again = parse_domain(first)
    prepare_definition(again)
    assert again.to_xml() == first


def test_live_state_is_dropped_on_define() -> None:
    live = GA.replace(
        "name='org.qemu.guest_agent.0'", "name='org.qemu.guest_agent.0' state='connected'"
    )
    assert "state=" not in _prepared(live)


def test_argv_of_unix_connect_and_pty_channels() -> None:
    xml = domain(
        "q35",
        "<channel type='unix'><source mode='connect' path='/srv/peer.sock'/>"
        "<target type='virtio' name='com.example.peer'/></channel>"
        "<channel type='pty'><target type='virtio' name='com.example.tty'/></channel>",
    )
    defn = parse_domain(xml)
    prepare_definition(defn)
    argv = build_argv(defn, CTX)
    assert "socket,id=charchannel0,path=/srv/peer.sock" in argv
    assert "pty,id=charchannel1" in argv
    assert (
        '{"driver":"virtserialport","bus":"virtio-serial0.0","nr":2,"chardev":"charchannel1",'
        '"id":"channel1","name":"com.example.tty"}' in argv
    )


def test_driver_names_the_socket_and_refuses_a_too_long_one(tmp_path: Path) -> None:
    defn = parse_domain(domain("q35", GA))
    filled = fill_socket_paths(defn, tmp_path)
    assert [c.source_path for c in filled] == [str(tmp_path / "channel/org.qemu.guest_agent.0")]
    assert (tmp_path / "channel").is_dir()
    deep = Path("/tmp/" + "d" * 120)
    with pytest.raises(InvalidXML, match="longer than the 107 bytes a unix socket path"):
        fill_socket_paths(parse_domain(domain("q35", GA)), deep)


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        (
            "<channel type='unix'><target type='virtio' name='a/b'/></channel>",
            "is not a port name",
        ),
        (
            "<channel type='unix'><target type='virtio' name='a.0' state='open'/></channel>",
            "state='open' is not supported",
        ),
        (
            "<channel type='unix'><target type='virtio' name='a.0'/>"
            "<address type='virtio-serial' controller='0' bus='0' port='x'/></channel>",
            "port='x' is not a virtio-serial port number",
        ),
    ],
)
def test_malformed_channels_are_invalid_xml(channel: str, message: str) -> None:
    with pytest.raises(InvalidXML, match=message):
        parse_domain(domain("q35", channel))


def test_agent_channel_view() -> None:
    defn = parse_domain(domain("q35", GA))
    (channel,) = defn.channels
    assert isinstance(channel, ChannelDef)
    assert channel.is_guest_agent and channel.source_mode == "bind" and channel.state is None


async def test_refused_channel_stores_nothing_and_the_test_driver_keeps_it(
    short_tmp: Path,
) -> None:
    require_qemu()
    xml = domain(
        "q35",
        "<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>"
        "<memballoon model='none'/>",
    )
    root = short_tmp / "root"
    conn = await drivers.open(f"qemu:///embed?root={root}")
    try:
        with pytest.raises(NotSupported, match=r"<channel type='spicevmc'> is not supported"):
            await conn.define_xml(xml)
        assert not (root / "domains" / "vm.xml").exists()
    finally:
        await conn.close()
    test = await drivers.open("test:///default")
    try:
        dom = await test.define_xml(xml)
        assert "spicevmc" in await dom.xml()
        await dom.undefine()
    finally:
        await test.close()


def test_generated_socket_paths_are_named_again(tmp_path: Path) -> None:
    """A live XML's socket path (libvirt's or ours) is the host's that made it: dropped on
    define, named again at start (a migration's destination gets its own)."""
    libvirts = GA.replace(
        "<target",
        "<source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-3-vm/"
        "org.qemu.guest_agent.0'/><target",
    )
    assert "<source" not in _prepared(libvirts)
    ours = GA.replace(
        "<target",
        "<source mode='bind' path='/elsewhere/run/vm/channel/org.qemu.guest_agent.0'/><target",
    )
    live = parse_domain(domain("q35", ours))
    filled = fill_socket_paths(live, tmp_path / "vm")
    assert [c.source_path for c in filled] == [str(tmp_path / "vm/channel/org.qemu.guest_agent.0")]
    own = GA.replace("<target", "<source mode='bind' path='/srv/agent.sock'/><target")
    assert "/srv/agent.sock" in _prepared(own)
    assert fill_socket_paths(parse_domain(domain("q35", own)), tmp_path) == []
