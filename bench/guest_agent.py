"""``domifaddr``: the guest agent's round trip and the CLI against virsh.

    python -m bench.guest_agent [--calls N] [--runs N]

* Agent round trip: ``interface_addresses("agent")`` (one ``guest-network-get-interfaces``
  on an open, synchronised connection) and the first call of a connection (handshake
  included) on the real tiny guest under the embed driver. The guest's agent is the
  busybox-sh stand-in of tests/guest/init.sh on the real virtio-serial port, under TCG: the
  figures bound what the driver adds, not what qemu-ga would take.
* CLI: ``virtdeck -c test:///FILE domifaddr`` against ``virsh -c test:///FILE domifaddr``
  on the same node document (a fresh process each, as a user runs them).

Prints medians (and p90) and the ratio to virsh. Everything started is ended by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import drivers
from bench.common import pct

REPO = Path(__file__).resolve().parents[1]
NODE = """<node>
<network><name>default</name><bridge name='virbr0'/>
<ip address='192.168.122.1' netmask='255.255.255.0'>
<dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>
<domain type='test'><name>a1</name><memory>8192</memory><os><type>hvm</type></os><devices>
<interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/></interface>
</devices></domain>
</node>
"""


async def agent_round_trips(calls: int) -> tuple[list[float], list[float], list[float]]:
    from tests.e2e.helpers import guest_xml
    from tests.guest import READY_RE, SerialConsole, require_guest

    guest = require_guest()
    base = Path(tempfile.mkdtemp(prefix="vdbench-ga-", dir="/tmp"))
    conn = await drivers.open(f"qemu:///embed?root={base / 'root'}")
    serial = base / "s.sock"
    devices = (
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
        "<interface type='user'><model type='virtio'/></interface>"
    )
    dom = await conn.define_xml(
        guest_xml("ga", guest, serial).replace("<panic", devices + "<panic")
    )
    warm: list[float] = []
    first: list[float] = []
    pings: list[float] = []
    try:
        await dom.start()
        async with await SerialConsole.connect(serial) as console:
            await console.wait_for(READY_RE, timeout=60)
            await console.send("sh ip link set lo up && ip addr add 10.0.2.15/24 dev eth0")
            await console.wait_for("VIRTDECK-DONE", timeout=10)
            await console.send("agent")
            await console.wait_for(re.compile("VIRTDECK-AGENT /dev/"), timeout=10)
            while 'state="connected"' not in await dom.xml():
                await asyncio.sleep(0.02)
            from drivers.qemu.driver import QemuConnection

            assert isinstance(conn, QemuConnection)
            agent = conn.registry.agents[dom.uuid]
            for _ in range(calls):
                started = time.perf_counter()
                await dom.interface_addresses("agent")
                warm.append((time.perf_counter() - started) * 1000)
            for _ in range(calls):
                started = time.perf_counter()
                await agent.ping()
                pings.append((time.perf_counter() - started) * 1000)
            for _ in range(max(3, calls // 10)):
                agent._drop()  # the next call connects and synchronises again
                agent.start()
                await asyncio.sleep(0.05)
                started = time.perf_counter()
                await dom.interface_addresses("agent")
                first.append((time.perf_counter() - started) * 1000)
    finally:
        await dom.destroy()
        await conn.close()
        shutil.rmtree(base, ignore_errors=True)
    return warm, first, pings


def cli_times(runs: int, verb: str = "domifaddr") -> tuple[list[float], list[float]]:
    virsh = shutil.which("virsh")
    base = Path(tempfile.mkdtemp(prefix="vdbench-ifaddr-", dir="/tmp"))
    node = base / "node.xml"
    node.write_text(NODE)
    uri = f"test://{node}"
    ours: list[float] = []
    theirs: list[float] = []
    try:
        for _ in range(runs):
            for argv, into in (
                ([sys.executable, "-m", "tui.cli", "-c", uri, verb, "a1"], ours),
                ([virsh or "virsh", "-c", uri, verb, "a1"], theirs),
            ):
                if argv[0] == "virsh" and virsh is None:
                    continue
                started = time.perf_counter()
                subprocess.run(argv, capture_output=True, check=True, cwd=REPO, timeout=60)
                into.append((time.perf_counter() - started) * 1000)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return ours, theirs


def _line(what: str, values: list[float]) -> str:
    median, p90 = statistics.median(values), pct(values, 90)
    return f"{what}: median {median:.2f} ms, p90 {p90:.2f} ms (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    warm, first, pings = asyncio.run(agent_round_trips(args.calls))
    print(_line("agent guest-ping, open connection", pings))
    print(_line("agent guest-network-get-interfaces, open connection", warm))
    print(_line("agent, new connection (handshake + interfaces)", first))
    for verb in ("domifaddr", "domstate"):
        ours, theirs = cli_times(args.runs, verb)
        print(_line(f"virtdeck {verb} (test:///FILE, fresh process)", ours))
        if theirs:
            print(_line(f"virsh {verb} (test:///FILE, fresh process)", theirs))
            ratio = statistics.median(ours) / statistics.median(theirs)
            print(f"ratio virtdeck/virsh ({verb}): {ratio:.2f}")


if __name__ == "__main__":
    main()
