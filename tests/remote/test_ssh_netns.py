"""qemu+ssh:// between two network namespaces: a link cut is noticed within 5 s.

Two "hosts" joined by a veth pair: sshd (and through it virtdeckd and QEMU) in h1, the
client (tests/remote/ssh_probe.py) in h2. Unix sockets are shared across network
namespaces, but nothing here uses that: the client only reaches h1 over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require, require_qemu
from tests.remote.conftest import Session
from tests.remote.sshd import daemon_command, require_sshd, start_sshd

pytestmark = pytest.mark.qemu

PROBE = Path(__file__).with_name("ssh_probe.py")
H1_ADDR = "10.99.0.1"
H2_ADDR = "10.99.0.2"
DETECT_LIMIT = 5.0


@dataclass
class Hosts:
    h1: str
    h2: str
    veth1: str  # in h1
    veth2: str  # in h2


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    require_sshd()
    require(shutil.which("ip") is not None, "iproute2 is not installed (apt-get install iproute2)")
    pid = os.getpid()
    h = Hosts(f"vdh1-{pid}", f"vdh2-{pid}", f"vdv1-{pid}", f"vdv2-{pid}")
    try:
        ip("netns", "add", h.h1)
        ip("netns", "add", h.h2)
        ip("link", "add", h.veth1, "type", "veth", "peer", "name", h.veth2)
        ip("link", "set", h.veth1, "netns", h.h1)
        ip("link", "set", h.veth2, "netns", h.h2)
        ip("-n", h.h1, "addr", "add", f"{H1_ADDR}/24", "dev", h.veth1)
        ip("-n", h.h2, "addr", "add", f"{H2_ADDR}/24", "dev", h.veth2)
        for ns, dev in ((h.h1, h.veth1), (h.h2, h.veth2)):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", dev, "up")
        yield h
    finally:
        # The veth pair goes with its namespaces.
        for ns in (h.h1, h.h2):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        with contextlib.suppress(subprocess.CalledProcessError):
            ip("link", "del", h.veth1)  # only if moving it into h1 failed


async def next_line(proc: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    assert line, "the probe exited early"
    data: dict[str, Any] = json.loads(line)
    print("probe:", data)
    return data


async def test_link_cut_is_noticed_within_5_s(
    session: Session, hosts: Hosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_qemu()
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    sshd = start_sshd(session.base / "ssh", address=H1_ADDR, port=2222, netns=hosts.h1)
    probe: asyncio.subprocess.Process | None = None
    try:
        uri = sshd.uri(daemon_command(session))  # default keepalive: 1 s
        probe = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", hosts.h2, sys.executable, str(PROBE), uri, "cut1",
            stdout=asyncio.subprocess.PIPE,
            env=session.env(),
        )  # fmt: skip
        lines: list[dict[str, Any]] = []
        while not lines or lines[-1]["kind"] not in ("ready", "error"):
            lines.append(await next_line(probe, 30))
        kinds = [line["kind"] for line in lines]
        assert kinds[:3] == ["open", "list", "lifecycle"], lines
        print(
            f"asyncssh connect across namespaces {1000 * lines[0]['connect_seconds']:.1f} ms; "
            f"open incl. daemon autostart {1000 * lines[0]['seconds']:.0f} ms"
        )
        assert lines[1]["names"] == []
        # The start's events may still be on their way when "ready" is printed.
        while [x["words"] for x in lines if x["kind"] == "lifecycle"] != [
            "Defined Added", "Resumed Unpaused", "Started Booted",
        ]:  # fmt: skip
            lines.append(await next_line(probe, 10))

        await asyncio.sleep(0.3)  # a keepalive or two go by on a healthy link
        cut = time.monotonic()
        ip("-n", hosts.h1, "link", "set", hosts.veth1, "down")
        after: dict[str, dict[str, Any]] = {}
        while set(after) != {"closed", "call_lost"}:
            line = await next_line(probe, DETECT_LIMIT + 3)
            after[line["kind"]] = line
        detected = after["closed"]["t"] - cut
        print(f"link cut noticed after {detected:.2f} s (limit {DETECT_LIMIT:g} s)")
        assert after["closed"]["lost"] is True
        assert "keepalive" in after["closed"]["reason"]
        assert after["call_lost"]["error"] == "ConnectionLost"
        assert after["call_lost"]["t"] - cut < DETECT_LIMIT
        assert detected < DETECT_LIMIT
        assert (await next_line(probe, 5))["kind"] == "done"
        assert await asyncio.wait_for(probe.wait(), 5) == 0
    finally:
        if probe is not None and probe.returncode is None:
            probe.kill()
            await probe.wait()
        sshd.stop()
