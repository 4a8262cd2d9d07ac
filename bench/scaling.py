"""How the daemon's costs grow with the number of domains: 10 → 1000, test driver, real daemon.

    python -m bench.scaling [--counts 10,100,250,500,1000] [--runs N] [--events N]

For each count a fresh ``virtdeckd --driver test://NODE`` (a node file with that many
domains, a tenth of them running) is spawned on a private socket, and measured:

* daemon start → full list: the process spawned → the first ``list_summaries()`` through it
  (the blocking client, retried every 2 ms until the socket answers) returned every domain
  (median of 5 daemon starts; 1 with ``--quick``);
* ``virtdeck list --all``: a fresh CLI process each run (the checkout run the way the
  console script runs it, bytecode cached), median / p99;
* the CPU time of both (the daemon's until its first list, the CLI processes'), which a
  loaded machine disturbs far less than wall time;
* the daemon's VmRSS once it has served those lists;
* event latency: ``suspend()``/``resume()`` of one running domain through an API client →
  the lifecycle event delivered to that client's event stream, median / p99.

The "+ per 100 more" columns are each step's marginal cost in CPU time (the difference to
the line above, per 100 added domains): flat from step to step is linear, growing with the
count is a super-linear cost. One uncounted daemon start first compiles the daemon's modules. Each
daemon is killed by pid after its count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import drivers
from bench.libvirt_peer import rss_kib
from bench.oneshot import run_timed
from bench.results import Figure, Report, ScalePoint, scaling_table
from bench.tui_startup import node_file
from drivers.errors import VirtError
from drivers.model import DomainState, LifecycleEvent
from drivers.remote.syncclient import SyncRemoteConnection, run_to_completion

REPO = Path(__file__).resolve().parent.parent
COUNTS = (10, 100, 250, 500, 1000)
QUICK_COUNTS = (10, 100)
ENTRY = "import sys; from tui.cli import main; sys.exit(main())"


class TestDaemon:
    """``virtdeckd --driver test://NODE`` where a session client looks for its socket."""

    def __init__(self, work: Path, count: int, pycache: Path) -> None:
        self.runtime = work / f"rt{count}"
        (self.runtime / "virtdeck").mkdir(parents=True, mode=0o700)
        self.socket = self.runtime / "virtdeck" / "virtdeckd.sock"
        self.node = node_file(work, f"scale{count}", count, max(1, count // 10))
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_DATA_HOME": str(work / "data"),
            "PYTHONPYCACHEPREFIX": str(pycache),
        }
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env.pop("VIRTDECK_DEFAULT_URI", None)
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> float:
        """Start the daemon; the ``time.perf_counter()`` just before the spawn."""
        argv = [sys.executable, "-m", "drivers.daemon", "--driver", f"test://{self.node}"]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [*argv, "--socket", str(self.socket)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return t0

    def first_list(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"virtdeckd exited ({self.proc.returncode}) before listing")
            try:
                conn = SyncRemoteConnection(self.socket, "qemu:///session")
            except VirtError:
                if time.monotonic() > deadline:
                    raise RuntimeError("virtdeckd did not answer within 60 s") from None
                time.sleep(0.002)
                continue
            try:
                found = run_to_completion(conn.list_summaries())
            finally:
                conn.close_now()
            if len(found) != count:
                raise RuntimeError(f"the daemon listed {len(found)} domains, not {count}")
            return

    def cli(self, *words: str) -> tuple[float, float, str]:
        """(wall ms, CPU ms, stdout) of one ``virtdeck`` process."""
        return run_timed([sys.executable, "-c", ENTRY, "-c", "qemu:///session", *words], self.env)

    def cpu_ms(self) -> float:
        """The CPU time (user + system) the daemon has used so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


async def event_latency(socket: Path, pairs: int) -> list[float]:
    """ms from ``suspend()``/``resume()`` issued to its lifecycle event at the same client."""
    conn = await drivers.open(f"qemu:///system?socket={socket}")
    try:
        running = [s for s in await conn.list_summaries() if s.state is DomainState.RUNNING]
        dom = await conn.lookup_by_uuid(running[0].uuid)
        stream = conn.events()
        times: list[float] = []
        try:
            for _ in range(pairs):
                for action in (dom.suspend, dom.resume):
                    t0 = time.perf_counter()
                    call = asyncio.create_task(action())
                    while True:
                        event = await stream.get(timeout=10)
                        if isinstance(event, LifecycleEvent) and event.uuid == dom.uuid:
                            break
                    times.append((time.perf_counter() - t0) * 1000)
                    await call
        finally:
            stream.close()
        return times
    finally:
        await conn.close()


def measure(
    work: Path, count: int, runs: int, pairs: int, pycache: Path, starts: int = 1
) -> ScalePoint:
    work.mkdir(exist_ok=True)
    daemon = TestDaemon(work, count, pycache)
    try:
        spawned = []
        start_cpu = []
        for _ in range(starts):  # the last daemon stays up for the other figures
            daemon.stop()
            t0 = daemon.spawn()
            daemon.first_list(count)
            spawned.append((time.perf_counter() - t0) * 1000)
            start_cpu.append(daemon.cpu_ms())
        daemon.cli("list", "--all")  # compiles what the CLI loads, uncounted
        lists = []
        list_cpu = []
        for _ in range(runs):
            elapsed, cpu, out = daemon.cli("list", "--all")
            shown = out.count(f"scale{count}-vm")
            if shown != count:
                raise RuntimeError(f"virtdeck list --all showed {shown} of {count} domains")
            lists.append(elapsed)
            list_cpu.append(cpu)
        assert daemon.proc is not None
        rss = rss_kib(daemon.proc.pid)
        events = asyncio.run(event_latency(daemon.socket, pairs))
    finally:
        daemon.stop()
    list_fig, cpu_fig, event_fig = Figure.of(lists), Figure.of(list_cpu), Figure.of(events)
    assert list_fig is not None and cpu_fig is not None and event_fig is not None
    return ScalePoint(
        count,
        statistics.median(spawned),
        statistics.median(start_cpu),
        list_fig,
        cpu_fig,
        rss,
        event_fig,
    )


def collect(
    quick: bool = False,
    counts: Sequence[int] | None = None,
    runs: int | None = None,
    pairs: int | None = None,
) -> Report:
    counts = sorted(counts or (QUICK_COUNTS if quick else COUNTS))
    runs = runs or (3 if quick else 9)
    pairs = pairs or (10 if quick else 100)
    starts = 1 if quick else 5
    report = Report("scaling")
    with tempfile.TemporaryDirectory(prefix="vdbench-scale-", dir="/tmp") as name:
        pycache = Path(name) / "pycache"
        measure(Path(name) / "warm", counts[0], 1, 1, pycache)  # compiles what they load
        for count in counts:
            point = measure(Path(name), count, runs, pairs, pycache, starts)
            report.scaling.append(point)
            print(
                f"  {count:5d} domains: start → list {point.start_to_list:7.1f} ms, "
                f"list --all {point.list_cli.median:6.1f} ms, RSS {point.rss_kib / 1024:5.1f} "
                f"MiB, event {point.event.median:5.2f} ms",
                flush=True,
            )
    report.notes.append(
        f"scaling: {starts} daemon starts, {runs} CLI runs and {2 * pairs} events per count"
        + (" (quick: fewer than a full run)" if quick else "")
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--counts", type=lambda text: [int(x) for x in text.split(",")], default=None
    )
    parser.add_argument("--runs", type=int, default=None, help="CLI runs per count (9)")
    parser.add_argument("--events", type=int, default=None, help="suspend/resume pairs (100)")
    parser.add_argument("--quick", action="store_true", help="10 and 100 domains, fewer runs")
    args = parser.parse_args()
    report = collect(args.quick, args.counts, args.runs, args.events)
    print()
    for line in scaling_table(report.scaling):
        print(line)
    for note in report.notes:
        print(f"note: {note}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
