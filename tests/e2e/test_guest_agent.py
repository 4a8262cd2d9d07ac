"""The guest-agent channel on the real tiny guest, under the embed QEMU driver.

The tiny guest has no qemu-ga; its ``agent`` console command starts a stand-in written in
busybox sh (tests/guest/init.sh) on the real ``org.qemu.guest_agent.0`` virtio port. So
everything between the driver and the guest is real: QEMU's virtio-serial port and
chardev socket, the guest kernel's virtio_console, VSERPORT_CHANGE; only the agent's few
answers are scripted (the interfaces it lists are read from the guest kernel).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from lxml import etree

import drivers
from drivers.api import Connection, Domain
from drivers.errors import AgentUnavailable, NotSupported
from tests.e2e.helpers import guest_xml, state_of
from tests.guest import READY_RE, GuestImage, SerialConsole

pytestmark = [pytest.mark.guest, pytest.mark.qemu]

MAC = "52:54:00:ab:cd:01"
# virt-manager's default guest agent channel, and a virtio NIC on user-mode networking
DEVICES = (
    "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
    f"<interface type='user'><mac address='{MAC}'/><model type='virtio'/></interface>"
)


def agent_channel(xml: str) -> etree._Element:
    root = etree.fromstring(xml.encode())
    for channel in root.iter("channel"):
        target = channel.find("target")
        if target is not None and target.get("name") == "org.qemu.guest_agent.0":
            return channel
    raise AssertionError("no guest agent channel in the XML")


async def wait_state(dom: Domain, wanted: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        target = agent_channel(await dom.xml()).find("target")
        assert target is not None
        if target.get("state") == wanted:
            return
        assert loop.time() < deadline, f"the channel never became {wanted}"
        await asyncio.sleep(0.05)


async def start_agent(console: SerialConsole) -> str:
    await console.send("agent")
    match = await console.wait_for(re.compile(r"VIRTDECK-AGENT (\S+)"), timeout=10)
    assert match[1].startswith("/dev/vport"), match[1]
    return match[1]


async def test_guest_agent_channel_end_to_end(
    conn: Connection, guest: GuestImage, short_tmp: Path, embed_root: Path
) -> None:
    serial = short_tmp / "ga.sock"
    xml = guest_xml("ga1", guest, serial).replace("<panic", DEVICES + "<panic")
    dom = await conn.define_xml(xml)
    stored = agent_channel(await dom.xml(inactive=True))
    # libvirt's address, written at define time; no host path, no state in the definition
    address = stored.find("address")
    assert address is not None
    assert {str(k): str(v) for k, v in address.attrib.items()} == {
        "type": "virtio-serial", "controller": "0", "bus": "0", "port": "1",
    }  # fmt: skip
    assert stored.find("source") is None
    await dom.start()
    async with await SerialConsole.connect(serial) as console:
        await console.wait_for(READY_RE, timeout=60)
        live = agent_channel(await dom.xml())
        source, target = live.find("source"), live.find("target")
        assert source is not None and target is not None
        assert source.get("mode") == "bind"
        assert source.get("path", "").endswith("/ga1/channel/org.qemu.guest_agent.0")
        assert target.get("state") == "disconnected"
        # the guest has not opened the port: a clear error, at once
        with pytest.raises(AgentUnavailable, match="not connected in domain 'ga1'"):
            await dom.interface_addresses("agent")
        # user-mode NAT: the host cannot see this guest's address
        with pytest.raises(NotSupported, match="only user-mode network interfaces"):
            await dom.interface_addresses("arp")
        await console.send(
            "sh ip link set lo up && ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up"
        )
        await console.wait_for("VIRTDECK-DONE rc=0", timeout=10)
        await start_agent(console)
        await wait_state(dom, "connected")
        found = {i.name: i for i in await dom.interface_addresses("agent")}
        assert found["eth0"].hwaddr == MAC
        assert next((a.type, a.address, a.prefix) for a in found["eth0"].addresses) == (
            "ipv4", "10.0.2.15", 24,
        )  # fmt: skip
        assert ("ipv4", "127.0.0.1", 8) in [
            (a.type, a.address, a.prefix) for a in found["lo"].addresses
        ]
        # the inactive definition still has no state
        assert agent_channel(await dom.xml(inactive=True)).find("target").get("state") is None  # type: ignore[union-attr]
        # a driver that lets go and a new one that reconnects (a daemon restart): the
        # port's state comes back from QEMU and the agent answers again
        await conn.close()
        again = await drivers.open(f"qemu:///embed?root={embed_root}")
        try:
            dom = await again.lookup("ga1")
            await wait_state(dom, "connected")
            names = {i.name for i in await dom.interface_addresses("agent")}
            assert {"lo", "eth0"} <= names
            # shutdown through the agent: the guest powers itself off
            await dom.shutdown(mode="agent")
            for _ in range(200):
                if await state_of(again, "ga1") == "shut off (shutdown)":
                    break
                await asyncio.sleep(0.05)
            assert await state_of(again, "ga1") == "shut off (shutdown)"
            await dom.undefine()
        finally:
            await again.close()


async def test_agent_that_stops_answering_mid_way(
    conn: Connection, guest: GuestImage, short_tmp: Path
) -> None:
    """The guest opens the port but nothing answers (a hung agent): a clear error in
    bounded time; then the guest closes the port: 'not connected' again."""
    serial = short_tmp / "ga2.sock"
    xml = guest_xml("ga2", guest, serial).replace("<panic", DEVICES + "<panic")
    dom = await conn.define_xml(xml)
    await dom.start()
    async with await SerialConsole.connect(serial) as console:
        await console.wait_for(READY_RE, timeout=60)
        # hold the port open with a reader that never answers
        await console.send(
            "sh (cat $(for p in /sys/class/virtio-ports/*; do echo /dev/${p##*/}; done)"
            " >/dev/null &) ; sleep 0.2"
        )
        await console.wait_for("VIRTDECK-DONE rc=0", timeout=10)
        await wait_state(dom, "connected")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AgentUnavailable, match="did not answer the handshake"):
            await dom.interface_addresses("agent")
        assert loop.time() - started < 6
        await console.send("sh killall cat")
        await console.wait_for("VIRTDECK-DONE", timeout=10)
        await wait_state(dom, "disconnected")
        with pytest.raises(AgentUnavailable, match="not connected in domain 'ga2'"):
            await dom.interface_addresses("agent")
    await dom.destroy()
    await dom.undefine()
