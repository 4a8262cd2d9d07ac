"""The guest-agent client (drivers/qemu/agent.py) against a scripted qemu-ga.

The peer sits where QEMU's channel socket would be; each test shows one behaviour the
brief names: the delimited handshake (stale bytes before the 0xFF sentinel are skipped),
the commands virtdeck uses, and that a port the guest never opened, a hung agent and an
agent that goes away mid-command each give a clear error in bounded time with nothing
left open.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import AgentUnavailable, OperationFailed
from drivers.model import InterfaceAddresses, IPAddress
from drivers.qemu.agent import GuestAgent, parse_interfaces
from tests.drivers.qga_peer import CLOSE, HANG, QgaPeer, Reply, qga_like


def _agent(path: Path, **kw: Any) -> GuestAgent:
    agent = GuestAgent("vm1", path, timeout=kw.pop("timeout", 0.5), sync_timeout=0.5)
    agent.set_port_open(kw.pop("open", True))
    return agent


async def test_handshake_skips_stale_bytes_and_commands_answer(short_tmp: Path) -> None:
    path = short_tmp / "ga.sock"
    stale = b'{"return": 4711}\n{"retu'  # a reply nobody read and half of another
    async with QgaPeer(path, stale=stale) as peer:
        agent = _agent(path)
        await agent.ping()
        assert (await agent.info())["version"] == "7.2.0"
        interfaces = await agent.network_interfaces()
        assert interfaces[1] == InterfaceAddresses(
            name="enp1s0",
            hwaddr="52:54:00:11:22:33",
            addresses=(
                IPAddress(type="ipv4", address="192.168.122.50", prefix=24),
                IPAddress(type="ipv6", address="fe80::5054:ff:fe11:2233", prefix=64),
            ),
        )
        # one connection, one handshake, then the commands in order
        assert peer.connections == 1
        assert [name for name, _ in peer.received] == [
            "guest-sync-delimited",
            "guest-ping",
            "guest-info",
            "guest-network-get-interfaces",
        ]
        await agent.close()


async def test_port_never_opened_is_refused_at_once(short_tmp: Path) -> None:
    path = short_tmp / "ga.sock"
    async with QgaPeer(path) as peer:
        agent = _agent(path, open=False)
        started = time.monotonic()
        with pytest.raises(AgentUnavailable) as caught:
            await agent.ping()
        assert time.monotonic() - started < 0.1
        assert str(caught.value) == (
            "The guest agent is not connected in domain 'vm1'; install and start "
            "qemu-guest-agent in the guest."
        )
        await asyncio.sleep(0.1)
        # connected (so a guest opening the port finds the host side), but nothing was
        # written to a port nobody reads
        assert peer.received == []
        await agent.close()


def _script(overrides: dict[str, Reply]) -> Any:
    def script(command: str, args: dict[str, Any]) -> Reply:
        return overrides.get(command) or qga_like(command, args)

    return script


async def test_hung_agent_times_out_and_the_next_command_starts_clean(short_tmp: Path) -> None:
    path = short_tmp / "ga.sock"
    replies: dict[str, Reply] = {"guest-info": HANG}
    async with QgaPeer(path, _script(replies)) as peer:
        agent = _agent(path, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(AgentUnavailable, match=r"did not answer 'guest-info' within 0\.3 s"):
            await agent.info()
        assert time.monotonic() - started < 1.0
        assert not agent.connected
        replies.clear()
        await agent.ping()  # a new connection, synchronised again
        assert peer.connections == 2
        assert [n for n, _ in peer.received].count("guest-sync-delimited") == 2
        await agent.close()


async def test_agent_that_never_answers_the_handshake(short_tmp: Path) -> None:
    path = short_tmp / "ga.sock"

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_unix_server(silent, path=str(path))
    try:
        agent = _agent(path)
        with pytest.raises(AgentUnavailable, match=r"did not answer the handshake"):
            await agent.ping()
        assert not agent.connected
        await agent.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_agent_disconnecting_mid_command(short_tmp: Path) -> None:
    path = short_tmp / "ga.sock"
    async with QgaPeer(path, _script({"guest-network-get-interfaces": CLOSE})):
        agent = _agent(path)
        with pytest.raises(
            AgentUnavailable,
            match=r"disconnected during 'guest-network-get-interfaces'",
        ):
            await agent.network_interfaces()
        assert not agent.connected
        await agent.close()


async def test_guest_closing_the_port_mid_command_ends_the_wait(short_tmp: Path) -> None:
    path = short_tmp / "ga.sock"
    async with QgaPeer(path, _script({"guest-info": HANG})):
        agent = _agent(path, timeout=5.0)
        task = asyncio.create_task(agent.info())
        await asyncio.sleep(0.1)
        started = time.monotonic()
        agent.set_port_open(False)  # QEMU's VSERPORT_CHANGE open=false
        with pytest.raises(AgentUnavailable, match=r"closed its port during 'guest-info'"):
            await task
        assert time.monotonic() - started < 0.5
        await agent.close()


async def test_no_socket_at_all(short_tmp: Path) -> None:
    agent = _agent(short_tmp / "missing.sock")
    with pytest.raises(AgentUnavailable, match=r"Cannot reach the guest agent channel"):
        await agent.ping()
    await agent.close()


async def test_error_reply_is_shown_inert(short_tmp: Path) -> None:
    path = short_tmp / "ga.sock"
    evil: Reply = {"error": {"class": "GenericError", "desc": "no\x1b[2J way"}}
    async with QgaPeer(path, _script({"guest-info": evil})):
        agent = _agent(path)
        with pytest.raises(OperationFailed) as caught:
            await agent.info()
        assert (
            str(caught.value) == "The guest agent in domain 'vm1' refused 'guest-info': no?[2J way."
        )
        await agent.close()


async def test_shutdown_sends_guest_shutdown(short_tmp: Path) -> None:
    path = short_tmp / "ga.sock"
    async with QgaPeer(path) as peer:
        agent = _agent(path)
        await agent.shutdown()
        assert peer.received[-1] == ("guest-shutdown", {"mode": "powerdown"})
        await agent.close()
    refused: Reply = {"error": {"class": "GenericError", "desc": "shutdown blocked"}}
    async with QgaPeer(path, _script({"guest-shutdown": refused})):
        agent = _agent(path)
        with pytest.raises(OperationFailed, match="refused 'guest-shutdown': shutdown blocked"):
            await agent.shutdown()
        await agent.close()


def test_malformed_interfaces_are_left_out() -> None:
    value = [
        {"name": "eth0", "ip-addresses": [
            {"ip-address-type": "ipv4", "ip-address": "10.0.0.5", "prefix": 24},
            {"ip-address-type": "ipv4", "ip-address": "::1", "prefix": 24},
            {"ip-address-type": "ipv4", "ip-address": "10.0.0.6", "prefix": 99},
            {"ip-address-type": "ipv9", "ip-address": "10.0.0.7", "prefix": 8},
            "junk",
        ]},
        {"no-name": True},
        "junk",
    ]  # fmt: skip
    assert parse_interfaces(value) == [
        InterfaceAddresses(name="eth0", hwaddr=None, addresses=(IPAddress("ipv4", "10.0.0.5", 24),))
    ]
    assert parse_interfaces({"not": "a list"}) == []
