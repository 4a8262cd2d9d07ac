"""Live migration between two hosts in network namespaces, each reached over a real sshd.

The test is the client, in the root namespace. Each host is a namespace joined to the
root namespace by its own veth pair, running sshd and (through it) its own virtdeckd and
QEMU, with its own state directories. The root namespace does not forward, so the two
hosts cannot reach each other, only the client reaches both — a laptop with SSH to two
hosts behind different firewalls. With ``routed`` the hosts also get a link of their own,
so the migration stream can go directly from QEMU to QEMU.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import drivers
from drivers.api import Connection
from drivers.errors import OperationFailed
from drivers.model import JobInfo
from tests.conftest import require, require_qemu
from tests.e2e.conftest import kill_root_processes
from tests.e2e.helpers import (
    EventRecorder,
    boot_guest,
    guest_answers,
    guest_uptime,
    guest_xml,
    state_of,
)
from tests.guest import require_guest
from tests.remote.conftest import Session
from tests.remote.sshd import Sshd, daemon_command, require_sshd, start_sshd
from tests.remote.test_ssh_netns import ip

pytestmark = [pytest.mark.qemu, pytest.mark.guest]


@dataclass
class NetnsHost:
    netns: str
    address: str
    session: Session
    sshd: Sshd

    @property
    def uri(self) -> str:
        return self.sshd.uri(daemon_command(self.session))


@dataclass
class Topology:
    routed: bool
    names: list[str]
    links: list[str]


def _topology(tag: str, routed: bool) -> Topology:
    """h1 (10.99.1.1) and h2 (10.99.2.1), each on a veth to the root namespace (.254);
    with ``routed`` also a veth h1 (10.99.3.1) ↔ h2 (10.99.3.2) and routes over it."""
    pid = os.getpid()
    topo = Topology(routed, [f"vdm{i}-{tag}{pid}" for i in (1, 2)], [])
    for index, ns in enumerate(topo.names, start=1):
        ip("netns", "add", ns)
        outside, inside = f"vdmr{index}-{pid}", f"vdmh{index}-{pid}"
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        topo.links.append(outside)
        ip("link", "set", inside, "netns", ns)
        ip("addr", "add", f"10.99.{index}.254/24", "dev", outside)
        ip("link", "set", outside, "up")
        ip("-n", ns, "addr", "add", f"10.99.{index}.1/24", "dev", inside)
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "link", "set", inside, "up")
    if routed:
        h1, h2 = topo.names
        ip("link", "add", f"vdmx1-{pid}", "type", "veth", "peer", "name", f"vdmx2-{pid}")
        ip("link", "set", f"vdmx1-{pid}", "netns", h1)
        ip("link", "set", f"vdmx2-{pid}", "netns", h2)
        ip("-n", h1, "addr", "add", "10.99.3.1/24", "dev", f"vdmx1-{pid}")
        ip("-n", h2, "addr", "add", "10.99.3.2/24", "dev", f"vdmx2-{pid}")
        ip("-n", h1, "link", "set", f"vdmx1-{pid}", "up")
        ip("-n", h2, "link", "set", f"vdmx2-{pid}", "up")
        ip("-n", h1, "route", "add", "10.99.2.0/24", "via", "10.99.3.2")
        ip("-n", h2, "route", "add", "10.99.1.0/24", "via", "10.99.3.1")
    return topo


def _teardown(topo: Topology) -> None:
    for ns in topo.names:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    for link in topo.links:
        subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)


@contextlib.contextmanager
def netns_hosts(base: Path, routed: bool) -> Iterator[tuple[NetnsHost, NetnsHost]]:
    require_sshd()
    require_qemu()
    require(shutil.which("ip") is not None, "iproute2 is not installed (apt-get install iproute2)")
    require(
        Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0",
        "the root namespace forwards IPv4, so the two test hosts could reach each other",
    )
    topo = _topology("r" if routed else "i", routed)
    hosts: list[NetnsHost] = []
    try:
        for index, ns in enumerate(topo.names, start=1):
            session = Session(base / f"host{index}")
            (session.base / "rt").mkdir(parents=True, mode=0o700)
            address = f"10.99.{index}.1"
            sshd = start_sshd(session.base / "ssh", address=address, port=2222, netns=ns)
            hosts.append(NetnsHost(ns, address, session, sshd))
        yield hosts[0], hosts[1]
    finally:
        for host in hosts:
            host.sshd.stop()
            host.session.kill_daemons(signal.SIGKILL)
            kill_root_processes(host.session.runtime, run_subdir="run")
        _teardown(topo)


@pytest.fixture
async def netns_conns(
    request: pytest.FixtureRequest, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Connection, Connection]]:
    """Connections to the two hosts; ``request.param`` is "routed" or "isolated"."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with netns_hosts(short_tmp, routed=request.param == "routed") as (h1, h2):
        async with await drivers.open(h1.uri) as a, await drivers.open(h2.uri) as b:
            yield a, b


def _rate(info: JobInfo) -> float:
    return info.ram_transferred / max(info.elapsed_ms, 1) * 1000 / 2**20


async def _migrate_and_check(
    src: Connection, dst: Connection, name: str, short_tmp: Path, *, tunnelled: bool
) -> JobInfo:
    guest = require_guest()
    serial_a, serial_b = short_tmp / f"{name}-a.sock", short_tmp / f"{name}-b.sock"
    dom = await src.lookup(name)
    before = await guest_uptime(serial_a)
    rec_src, rec_dst = EventRecorder(src), EventRecorder(dst)
    mark_src, mark_dst = rec_src.mark(), rec_dst.mark()
    seen: list[JobInfo] = []
    await dom.migrate(
        dst,
        xml=guest_xml(name, guest, serial_b, uuid=dom.uuid),
        tunnelled=tunnelled,
        progress=seen.append,
    )
    assert await state_of(dst, name) == "running (migrated)"
    await rec_src.wait_lifecycle(["Suspended Migrated", "Stopped Migrated"], mark_src)
    await rec_dst.wait_lifecycle(
        ["Started Migrated", "Defined Added", "Resumed Migrated"], mark_dst
    )
    assert await state_of(src, name) == "shut off (migrated)"  # persistent: kept, shut off
    await guest_answers(serial_b)
    assert await guest_uptime(serial_b) > before
    await rec_src.close()
    await rec_dst.close()
    return seen[-1]


@pytest.mark.parametrize("netns_conns", ["routed"], indirect=True)
async def test_live_migration_between_namespaces_over_ssh(
    netns_conns: tuple[Connection, Connection], short_tmp: Path
) -> None:
    src, dst = netns_conns
    await boot_guest(src, "ns1", require_guest(), short_tmp / "ns1-a.sock")
    final = await _migrate_and_check(src, dst, "ns1", short_tmp, tunnelled=False)
    print(f"direct over veth: {final.elapsed_ms} ms, {_rate(final):.0f} MiB/s, "
          f"downtime {final.downtime_ms} ms")  # fmt: skip


@pytest.mark.parametrize("netns_conns", ["isolated"], indirect=True)
async def test_hosts_that_cannot_reach_each_other_migrate_tunnelled(
    netns_conns: tuple[Connection, Connection], short_tmp: Path
) -> None:
    src, dst = netns_conns
    await boot_guest(src, "ns2", require_guest(), short_tmp / "ns2-a.sock")
    dom = await src.lookup("ns2")
    xml = guest_xml("ns2", require_guest(), short_tmp / "ns2-b.sock", uuid=dom.uuid)
    with pytest.raises(
        OperationFailed, match=r"cannot reach the destination at 10\.99\.2\.1.*--tunnelled"
    ):
        await dom.migrate(dst, xml=xml)
    assert await state_of(src, "ns2") in ("running (booted)", "running (migration canceled)")
    assert [d.name for d in await dst.list_domains()] == []
    final = await _migrate_and_check(src, dst, "ns2", short_tmp, tunnelled=True)
    print(f"tunnelled over two SSH connections: {final.elapsed_ms} ms, {_rate(final):.0f} MiB/s, "
          f"downtime {final.downtime_ms} ms")  # fmt: skip
