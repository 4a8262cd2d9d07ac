"""``domifaddr --source arp`` (and the agent, and ``shutdown --mode agent``) on the real
tiny guest, on a host network inside a namespace the test creates.

The "host" is a network namespace with a tap device (10.98.0.1/24) and an sshd on a veth
to the root namespace; host networking outside it is untouched. The guest's virtio NIC
is ``<interface type='ethernet'>`` on that tap; over its serial console the guest sets
10.98.0.N/24 and pings the host, so the namespace's neighbour table learns its MAC. Then:

- embed: the CLI runs *inside* the namespace (``ip netns exec``) on a ``qemu:///embed``
  root, as a user on that host would, and ``domifaddr --source arp`` prints the address;
- daemon: the test, in the root namespace, reaches the namespace's virtdeckd over
  ``qemu+ssh://`` (real sshd), and both the API and the CLI show the address; the
  guest-agent stand-in answers through the daemon, a read-only connection may read the
  ARP table but not ask the agent, and ``shutdown --mode agent`` powers the guest off.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import drivers
from drivers.errors import AccessDenied
from tests.cli.helpers import REPO, cli
from tests.conftest import require, require_qemu
from tests.e2e.conftest import kill_root_processes
from tests.e2e.helpers import guest_xml, state_of
from tests.guest import READY_RE, GuestImage, SerialConsole, require_guest
from tests.remote.conftest import Session
from tests.remote.sshd import Sshd, daemon_command, require_sshd, start_sshd
from tests.remote.test_ssh_netns import ip

pytestmark = [pytest.mark.qemu, pytest.mark.guest]

HOST_ADDR = "10.99.5.1"
TAP_ADDR = "10.98.0.1"


@dataclass
class NetHost:
    netns: str
    tap: str
    session: Session
    sshd: Sshd

    @property
    def uri(self) -> str:
        return self.sshd.uri(daemon_command(self.session))


@contextlib.contextmanager
def net_host(base: Path) -> Iterator[NetHost]:
    require_sshd()
    require_qemu()
    require(shutil.which("ip") is not None, "iproute2 is not installed (apt-get install iproute2)")
    require(Path("/dev/net/tun").exists(), "this host has no /dev/net/tun for tap devices")
    pid = os.getpid()
    ns, outside, inside, tap = f"vdarp-{pid}", f"vdar-{pid}", f"vdah-{pid}", f"vdtap{pid}"[:15]
    session = Session(base / "host")
    sshd: Sshd | None = None
    try:
        ip("netns", "add", ns)
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", ns)
        ip("addr", "add", "10.99.5.254/24", "dev", outside)
        ip("link", "set", outside, "up")
        ip("-n", ns, "addr", "add", f"{HOST_ADDR}/24", "dev", inside)
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "link", "set", inside, "up")
        ip("-n", ns, "tuntap", "add", "dev", tap, "mode", "tap")
        ip("-n", ns, "addr", "add", f"{TAP_ADDR}/24", "dev", tap)
        ip("-n", ns, "link", "set", tap, "up")
        (session.base / "rt").mkdir(parents=True, mode=0o700)
        sshd = start_sshd(session.base / "ssh", address=HOST_ADDR, port=2222, netns=ns)
        yield NetHost(ns, tap, session, sshd)
    finally:
        if sshd is not None:
            sshd.stop()
        session.kill_daemons(signal.SIGKILL)
        kill_root_processes(session.runtime, run_subdir="run")
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", outside], capture_output=True, check=False)


def tap_guest_xml(name: str, image: GuestImage, serial: Path, tap: str, mac: str) -> str:
    nic = (
        f"<interface type='ethernet'><mac address='{mac}'/><target dev='{tap}' managed='no'/>"
        "<model type='virtio'/></interface>"
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
    )
    return guest_xml(name, image, serial).replace("<panic", nic + "<panic")


async def guest_on_network(serial: Path, address: str) -> SerialConsole:
    """Boot wait, then the guest takes ``address`` and pings the host once."""
    console = await SerialConsole.connect(serial)
    await console.wait_for(READY_RE, timeout=60)
    await console.send(
        f"sh ip link set lo up && ip addr add {address}/24 dev eth0 && ip link set eth0 up"
        f" && ping -c 1 -W 5 {TAP_ADDR}"
    )
    await console.wait_for("VIRTDECK-DONE rc=0", timeout=30)
    return console


def in_netns(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``virtdeck ARGS`` run inside the namespace, as a user of that host would."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, "env", f"PYTHONPATH={REPO}", sys.executable, "-m", "tui.cli",
         *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip


def arp_line(tap: str, mac: str, address: str) -> str:
    return f" {tap:<10} {mac:<17}    {'ipv4':<12} {address}/0"


async def test_arp_source_embed_inside_the_namespace(short_tmp: Path) -> None:
    guest = require_guest()
    with net_host(short_tmp) as host:
        root = short_tmp / "embed"
        uri = f"qemu:///embed?root={root}"
        serial = short_tmp / "arp1.sock"
        mac = "52:54:00:98:00:02"
        xml_file = short_tmp / "arp1.xml"
        xml_file.write_text(tap_guest_xml("arp1", guest, serial, host.tap, mac))
        try:
            for step in (["define", str(xml_file)], ["start", "arp1"]):
                done = in_netns(host.netns, "-c", uri, *step)
                assert done.returncode == 0, done.stderr
            console = await guest_on_network(serial, "10.98.0.2")
            await console.close()
            shown = in_netns(host.netns, "-c", uri, "domifaddr", "arp1", "--source", "arp")
            assert shown.returncode == 0, shown.stderr
            assert shown.stdout == (
                " Name       MAC address          Protocol     Address\n"
                + "-" * 79
                + "\n"
                + arp_line(host.tap, mac, "10.98.0.2")
                + "\n\n"
            )
            # the same command from the root namespace sees nothing: another host's table
            outside = cli("-c", uri, "domifaddr", "arp1", "--source", "arp")
            assert "10.98.0.2" not in outside.stdout
        finally:
            in_netns(host.netns, "-c", uri, "destroy", "arp1")
            kill_root_processes(root)


async def test_arp_agent_and_agent_shutdown_through_the_daemon_over_ssh(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guest = require_guest()
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with net_host(short_tmp) as host:
        serial = short_tmp / "arp2.sock"
        mac = "52:54:00:98:00:03"
        async with await drivers.open(host.uri) as conn:
            dom = await conn.define_xml(tap_guest_xml("arp2", guest, serial, host.tap, mac))
            await dom.start()
            console = await guest_on_network(serial, "10.98.0.3")
            try:
                found = await dom.interface_addresses("arp")
                seen = [(i.name, i.hwaddr, [(a.type, a.address, a.prefix) for a in i.addresses])
                        for i in found]  # fmt: skip
                assert seen == [(host.tap, mac, [("ipv4", "10.98.0.3", 0)])]
                shown = cli("-c", host.uri, "domifaddr", "arp2", "--source", "arp")
                assert shown.returncode == 0, shown.stderr
                assert arp_line(host.tap, mac, "10.98.0.3") in shown.stdout.splitlines()
                # the stand-in agent, through the daemon
                await console.send("agent")
                await console.wait_for(re.compile(r"VIRTDECK-AGENT /dev/vport"), timeout=10)
                for _ in range(100):
                    if 'state="connected"' in await dom.xml():
                        break
                    await asyncio.sleep(0.05)
                agent = cli("-c", host.uri, "domifaddr", "arp2", "--source", "agent")
                assert agent.returncode == 0, agent.stderr
                lines = agent.stdout.splitlines()
                assert f" eth0       {mac}    ipv4         10.98.0.3/24" in lines, lines
                assert " lo         00:00:00:00:00:00    ipv4         127.0.0.1/8" in lines, lines
                # read-only: the host's table yes, the guest agent no (libvirt's rule)
                async with await drivers.open(host.uri + "&ro=1") as ro:
                    ro_dom = await ro.lookup("arp2")
                    assert await ro_dom.interface_addresses("arp") == found
                    with pytest.raises(AccessDenied, match="asking the guest agent"):
                        await ro_dom.interface_addresses("agent")
                    with pytest.raises(AccessDenied):
                        await ro_dom.shutdown(mode="agent")
                # shutdown through the agent, from the CLI over ssh
                down = cli("-c", host.uri, "shutdown", "--mode", "agent", "arp2")
                assert (down.returncode, down.stdout) == (0, "Domain 'arp2' is being shutdown\n\n")
                for _ in range(200):
                    if await state_of(conn, "arp2") == "shut off (shutdown)":
                        break
                    await asyncio.sleep(0.05)
                assert await state_of(conn, "arp2") == "shut off (shutdown)"
            finally:
                await console.close()
                with contextlib.suppress(Exception):
                    await dom.destroy()
