"""virtdeckd and the ``virtdeck`` CLI side by side with libvirtd and ``virsh``, in one run.

    python -m bench.daemon [--events N] [--runs N] [--counts 10,100,500] [--no-peer]

Both sides run on this machine in the same run, on the same kind of domain (QEMU TCG,
diskless q35, 64 MiB): virtdeck through a session daemon with private XDG directories under
/tmp (started on demand by the first client, as a user would), libvirt through a libvirtd
brought up by :mod:`bench.libvirt_peer` (qemu:///system). Measured:

1. QMP event → line printed by ``virtdeck event --loop --all`` / ``virsh event --loop --all``,
   as read from the pipe by this bench (``time.time()`` on arrival, taken by a small stamper
   process of the bench that does nothing else, for both sides alike) minus QEMU's own event
   timestamp. Ours: the timestamp is ``source_wall`` of the same event seen through the API
   by this bench (matched by order); libvirt's: the one ``virsh qemu-monitor-event --loop``
   prints. Events are STOP/RESUME triggered by suspend/resume through an API connection
   (ours) or one interactive ``virsh`` (libvirt's). Also printed, for reference: when our
   daemon's driver handled the event, and when libvirt relayed the raw QMP event.
2. ``virtdeck start`` / ``virsh start`` of a defined diskless domain, each a fresh process,
   call → returned with the domain running; and ``destroy`` likewise.
3. ``virtdeck list --all`` / ``virsh list --all`` with 10/100/500 defined domains.
4. Daemon RSS (VmRSS): idle, with 500 defined, and per running domain ((RSS4 - RSS0) / 4).

CLI processes run the checkout as the ``virtdeck`` console script does (``from tui.cli
import main``), with bytecode caching on (into a private PYTHONPYCACHEPREFIX, warmed before
measuring), as an installed package would.
At the end the session daemon and every QEMU it started are killed by pid, the peer's
domains are undefined and libvirtd is stopped, also on errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import queue
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, ClassVar

import drivers
from bench.common import DISKLESS, pct, pids_mentioning, terminate
from bench.libvirt_peer import LibvirtPeer, PeerUnavailable, rss_kib
from bench.results import Figure, Report, Row, main_table
from drivers.api import Connection, EventStream
from drivers.model import DomainState, LifecycleEvent

REPO = Path(__file__).resolve().parent.parent
SESSION = "qemu:///session"
EVENT_TIMEOUT = 10.0
QEMU_STAMP = re.compile(r"^event (\w+) at (\d+\.\d+) for domain")


# --- statistics and printing -------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def fmt_mib(kib: float | None) -> str:
    if kib is None:
        return "-"
    return f"{kib:.0f} KiB" if abs(kib) < 1024 else f"{kib / 1024:.1f} MiB"


def line(label: str, values: Sequence[float]) -> None:
    print(
        f"  {label:<40} p50 {median(values):8.2f}  p90 {pct(values, 0.9):8.2f}  "
        f"max {max(values):8.2f}  min {min(values):8.2f} ms  n={len(values)}"
    )


# --- child processes -----------------------------------------------------------------------


#: A helper process that stamps each line it reads with time.time() the moment the read
#: returns: nothing else runs in it, so the bench's own work (its API client, other pipes)
#: cannot delay the stamp. Used for the CLI lines of both sides alike.
STAMPER = """\
import os, time
pending = b""
while True:
    chunk = os.read(0, 65536)
    now = time.time()
    if not chunk:
        break
    pending += chunk
    *lines, pending = pending.split(b"\\n")
    os.write(1, b"".join(b"%.6f %s\\n" % (now, line) for line in lines))
"""


class LineReader:
    """A child process whose stdout lines are stamped with ``time.time()`` as they arrive.

    With ``stamp`` the lines go through :data:`STAMPER`, whose stamp is used; otherwise a
    thread of the bench blocks in ``os.read`` on the pipe and stamps them.
    """

    #: Readers not stopped yet, so an interrupted run can still end their processes.
    live: ClassVar[set[LineReader]] = set()

    def __init__(
        self,
        argv: Sequence[str],
        stderr: IO[bytes] | int,
        *,
        stdin: bool = False,
        stamp: bool = False,
    ) -> None:
        LineReader.live.add(self)
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
        )
        self.stamper: subprocess.Popen[bytes] | None = None
        source = self.proc.stdout
        if stamp:
            self.stamper = subprocess.Popen(
                [sys.executable, "-S", "-c", STAMPER],
                stdin=self.proc.stdout,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
            assert self.proc.stdout is not None
            self.proc.stdout.close()  # the stamper holds the read end now
            source = self.stamper.stdout
        assert source is not None
        self._source = source
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        fd = self._source.fileno()
        pending = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            now = time.time()
            if not chunk:
                return
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                text = raw.decode(errors="replace")
                if self.stamper is not None:
                    stamp, _, text = text.partition(" ")
                    now = float(stamp)
                self.lines.put((now, text))

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    async def next(self, timeout: float = EVENT_TIMEOUT) -> tuple[float, str]:
        """The next non-empty line and its arrival time (waits in a thread: no polling)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                stamp, text = self.lines.get_nowait()
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no line from {self.proc.args!r}") from None
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.proc.args!r} exited ({self.proc.returncode})"
                    ) from None
                with contextlib.suppress(queue.Empty):
                    stamp, text = await asyncio.to_thread(self.lines.get, True, min(left, 0.5))
                    if text.strip():
                        return stamp, text
                continue
            if text.strip():
                return stamp, text

    def drain(self) -> list[str]:
        out = []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self.lines.get_nowait()[1])
        return out

    @classmethod
    def kill_all(cls) -> None:
        for reader in list(cls.live):
            for proc in (reader.proc, reader.stamper):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
            reader.stop()

    def stop(self) -> None:
        LineReader.live.discard(self)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.stamper is not None:
            try:
                self.stamper.wait(5)  # ends at EOF of the child's stdout
            except subprocess.TimeoutExpired:
                self.stamper.kill()
                self.stamper.wait()
        for stream in (self.proc.stdin, self._source):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def timed(argv: Sequence[str], *, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run ``argv`` to completion; (elapsed ms, stdout). Fails loudly on a non-zero exit."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO, env=env)
    elapsed = (time.perf_counter() - t0) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed, done.stdout


def settle_rss(pid: int, delay: float = 0.5) -> int:
    time.sleep(delay)
    return rss_kib(pid)


# --- our side ------------------------------------------------------------------------------


class Ours:
    """A session daemon in private XDG directories, and the CLI that talks to it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vdbench-daemon-", dir="/tmp"))
        self.runtime = self.root / "run"
        self.runtime.mkdir(mode=0o700)
        (self.root / "data").mkdir(mode=0o700)
        # Inherited by every child: the CLI processes and the daemon the first client
        # spawns (a daemon spawned by this process gets this environment too).
        os.environ["XDG_RUNTIME_DIR"] = str(self.runtime)
        os.environ["XDG_DATA_HOME"] = str(self.root / "data")
        os.environ["PYTHONPYCACHEPREFIX"] = str(self.root / "pycache")
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ.pop("VIRTDECK_DEFAULT_URI", None)
        os.environ.pop("VIRTDECKD_COMMAND", None)
        path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = f"{REPO}{os.pathsep}{path}" if path else str(REPO)
        self.log = open(self.root / "cli-stderr.log", "ab")
        self.conn: Connection | None = None

    def cli(self, *words: str) -> list[str]:
        # what the `virtdeck` console script runs (not `-m tui.cli`, whose runpy costs ~8 ms)
        entry = "import sys; from tui.cli import main; sys.exit(main())"
        return [sys.executable, "-c", entry, "-c", SESSION, *words]

    @property
    def pidfile(self) -> Path:
        return self.runtime / "virtdeck" / "virtdeckd.pid"

    def daemon_pid(self) -> int:
        return int(self.pidfile.read_text().split()[0])

    async def connect(self) -> Connection:
        self.conn = await drivers.open(SESSION)
        return self.conn

    async def close(self) -> None:
        """Destroy and undefine what is left, kill the daemon and its QEMUs by pid."""
        try:
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(30):
                        for dom in await self.conn.list_domains():
                            if dom.name.startswith("vdbench-"):
                                with contextlib.suppress(Exception):
                                    if (await dom.state())[0] is not DomainState.SHUTOFF:
                                        await dom.destroy()
                                with contextlib.suppress(Exception):
                                    await dom.undefine()
                with contextlib.suppress(Exception):
                    await self.conn.close()
                self.conn = None
        finally:
            self.kill_everything()

    def kill_everything(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            terminate(self.daemon_pid(), "virtdeckd")  # its process title
        for pid in pids_mentioning(str(self.root)):
            terminate(pid, "")
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class EventTimes:
    """Per event, ms after QEMU's timestamp: the CLI line, and where the time went."""

    line: list[float] = field(default_factory=list)
    #: ours: the daemon's driver handled it (the event's ``wall``); libvirt's: the raw QMP
    #: event relayed to ``virsh qemu-monitor-event`` arrived.
    daemon: list[float] = field(default_factory=list)
    #: ours: this bench's own API subscriber (a client of the daemon) got it.
    api: list[float] = field(default_factory=list)


async def stamped_lifecycle(
    stream: EventStream, name: str, sink: asyncio.Queue[tuple[float, LifecycleEvent]]
) -> None:
    """Put ``(arrival time, event)`` for each lifecycle event of ``name`` into ``sink``."""
    async for event in stream:
        if isinstance(event, LifecycleEvent) and event.domain == name:
            sink.put_nowait((time.time(), event))


async def our_event_latency(ours: Ours, iterations: int) -> EventTimes:
    conn = ours.conn
    assert conn is not None
    name = "vdbench-events"
    dom = await conn.define_xml(DISKLESS.format(name=name))
    await dom.start()
    stream = conn.events()
    seen: asyncio.Queue[tuple[float, LifecycleEvent]] = asyncio.Queue()
    consumer = asyncio.create_task(stamped_lifecycle(stream, name, seen))
    cli = LineReader(ours.cli("event", "--loop", "--all"), ours.log, stamp=True)
    try:
        # The CLI prints nothing until it is subscribed: cycle until it shows a line.
        deadline = time.monotonic() + 30
        while cli.lines.empty():
            if time.monotonic() > deadline or cli.proc.poll() is not None:
                raise RuntimeError("virtdeck event --loop printed nothing")
            await dom.suspend()
            await dom.resume()
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        cli.drain()
        while not seen.empty():
            seen.get_nowait()
        times = EventTimes()
        for _ in range(iterations):
            for action in (dom.suspend, dom.resume):
                await action()
                got, event = await asyncio.wait_for(seen.get(), EVENT_TIMEOUT)
                arrived, text = await cli.next()
                qemu = event.source_wall
                if event.words not in text or qemu is None:
                    raise RuntimeError(f"event/line mismatch: {event.words!r} vs {text!r}")
                times.line.append((arrived - qemu) * 1000)
                times.daemon.append((event.wall - qemu) * 1000)
                times.api.append((got - qemu) * 1000)
                await asyncio.sleep(random.uniform(0.005, 0.010))
        return times
    finally:
        cli.stop()
        stream.close()
        consumer.cancel()
        with contextlib.suppress(Exception):
            await dom.destroy()
        with contextlib.suppress(Exception):
            await dom.undefine()


async def peer_event_latency(peer: LibvirtPeer, iterations: int, log: IO[bytes]) -> EventTimes:
    name = "vdbench-events"
    peer.define(name, DISKLESS.format(name=name))
    peer.virsh("start", name)
    events = LineReader(peer.virsh_argv("event", "--loop", "--all"), log, stamp=True)
    monitor = LineReader(peer.virsh_argv("qemu-monitor-event", "--loop", "--domain", name), log)
    shell = LineReader(peer.virsh_argv("-q"), log, stdin=True)
    try:
        deadline = time.monotonic() + 30
        while events.lines.empty() or monitor.lines.empty():
            if time.monotonic() > deadline:
                raise RuntimeError("virsh event / qemu-monitor-event printed nothing")
            shell.send(f"suspend {name}\nresume {name}\n")
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        events.drain()
        monitor.drain()
        times = EventTimes()
        steps = (("suspend", "STOP", "Suspended"), ("resume", "RESUME", "Resumed"))
        for _ in range(iterations):
            for command, qmp, words in steps:
                shell.send(f"{command} {name}\n")
                while True:
                    relayed, raw = await monitor.next()
                    match = QEMU_STAMP.match(raw)
                    if match and match.group(1) == qmp:
                        break
                qemu = float(match.group(2))
                arrived, text = await events.next()
                if words not in text:
                    raise RuntimeError(f"unexpected virsh event line {text!r}")
                times.line.append((arrived - qemu) * 1000)
                times.daemon.append((relayed - qemu) * 1000)
                await asyncio.sleep(random.uniform(0.005, 0.010))
        return times
    finally:
        for reader in (shell, events, monitor):
            reader.stop()
        peer.virsh("destroy", name, check=False)
        peer.virsh("undefine", name, check=False)


# --- the measurements ----------------------------------------------------------------------


@dataclass
class StartTimes:
    ours_start: list[float] = field(default_factory=list)
    ours_destroy: list[float] = field(default_factory=list)
    peer_start: list[float] = field(default_factory=list)
    peer_destroy: list[float] = field(default_factory=list)
    #: the same start/destroy through an API connection that is already open (no CLI).
    api_start: list[float] = field(default_factory=list)
    api_destroy: list[float] = field(default_factory=list)


async def start_destroy(ours: Ours, peer: LibvirtPeer | None, runs: int) -> StartTimes:
    """CLI start and destroy, a fresh process each, ours and virsh interleaved per run."""
    conn = ours.conn
    assert conn is not None
    name = "vdbench-start"
    dom = await conn.define_xml(DISKLESS.format(name=name))
    if peer is not None:
        peer.define(name, DISKLESS.format(name=name))
    times = StartTimes()
    try:
        for i in range(runs + 1):  # the first round warms caches and is not counted
            t_start, _ = await asyncio.to_thread(timed, ours.cli("start", name))
            state, _reason = await dom.state()
            if state is not DomainState.RUNNING:
                raise RuntimeError(f"virtdeck start returned with {name} {state.words}")
            t_destroy, _ = await asyncio.to_thread(timed, ours.cli("destroy", name))
            if i:
                times.ours_start.append(t_start)
                times.ours_destroy.append(t_destroy)
            if peer is None:
                continue
            t_start, _ = await asyncio.to_thread(timed, peer.virsh_argv("start", name))
            state_text = peer.virsh("domstate", name).stdout.strip()
            if state_text != "running":
                raise RuntimeError(f"virsh start returned with {name} {state_text}")
            t_destroy, _ = await asyncio.to_thread(timed, peer.virsh_argv("destroy", name))
            if i:
                times.peer_start.append(t_start)
                times.peer_destroy.append(t_destroy)
        for _ in range(runs):
            t0 = time.perf_counter()
            await dom.start()
            times.api_start.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            await dom.destroy()
            times.api_destroy.append((time.perf_counter() - t0) * 1000)
    finally:
        with contextlib.suppress(Exception):
            await dom.undefine()
        if peer is not None:
            peer.virsh("undefine", name, check=False)
    return times


async def gather_limited(jobs: Sequence[Callable[[], Awaitable[object]]], width: int = 32) -> None:
    for i in range(0, len(jobs), width):
        await asyncio.gather(*(job() for job in jobs[i : i + width]))


@dataclass
class ListResult:
    ours: dict[int, list[float]] = field(default_factory=dict)
    peer: dict[int, list[float]] = field(default_factory=dict)
    rss_ours: int | None = None
    rss_peer: int | None = None


async def list_scaling(
    ours: Ours, peer: LibvirtPeer | None, counts: Sequence[int], runs: int
) -> ListResult:
    conn = ours.conn
    assert conn is not None
    result = ListResult()
    defined: list[str] = []
    try:
        for count in sorted(counts):
            new = [f"vdbench-l{i:04d}" for i in range(len(defined), count)]
            await gather_limited(
                [lambda n=n: conn.define_xml(DISKLESS.format(name=n)) for n in new]  # type: ignore[misc]
            )
            if peer is not None:
                peer.define_many({n: DISKLESS.format(name=n) for n in new})
            defined += new
            o_times: list[float] = []
            p_times: list[float] = []
            for i in range(runs + 1):
                elapsed, out = await asyncio.to_thread(timed, ours.cli("list", "--all"))
                if out.count("vdbench-l") != count:
                    raise RuntimeError(f"virtdeck list --all showed {out.count('vdbench-l')}")
                if i:
                    o_times.append(elapsed)
                if peer is not None:
                    elapsed, out = await asyncio.to_thread(timed, peer.virsh_argv("list", "--all"))
                    if out.count("vdbench-l") != count:
                        raise RuntimeError(f"virsh list --all showed {out.count('vdbench-l')}")
                    if i:
                        p_times.append(elapsed)
            result.ours[count] = o_times
            if peer is not None:
                result.peer[count] = p_times
            if count == max(counts):
                result.rss_ours = settle_rss(ours.daemon_pid())
                if peer is not None:
                    result.rss_peer = peer.rss_kib()
    finally:
        doms = {d.name: d for d in await conn.list_domains()}
        await gather_limited([doms[n].undefine for n in defined if n in doms])
        if peer is not None:
            peer.undefine_many(defined)
    return result


async def rss_per_running(
    ours: Ours, peer: LibvirtPeer | None, n: int = 4
) -> tuple[float, float | None]:
    """(RSSn - RSS0) / n in KiB for virtdeckd and libvirtd."""
    conn = ours.conn
    assert conn is not None
    names = [f"vdbench-run{i}" for i in range(n)]
    doms = [await conn.define_xml(DISKLESS.format(name=name)) for name in names]
    try:
        pid = ours.daemon_pid()
        before = settle_rss(pid)
        for dom in doms:
            await dom.start()
        ours_kib = (settle_rss(pid, 1.0) - before) / n
    finally:
        for dom in doms:
            with contextlib.suppress(Exception):
                await dom.destroy()
            with contextlib.suppress(Exception):
                await dom.undefine()
    if peer is None:
        return ours_kib, None
    peer.define_many({name: DISKLESS.format(name=name) for name in names})
    try:
        before = settle_rss(peer.pid or 0)
        peer.batch(f"start {name}" for name in names)
        peer_kib = (settle_rss(peer.pid or 0, 1.0) - before) / n
    finally:
        peer.batch(f"destroy {name}" for name in names)
        peer.undefine_many(names)
    return ours_kib, peer_kib


def floors(ours: Ours, peer: LibvirtPeer | None, runs: int) -> dict[str, float]:
    """What a command costs before it does anything: interpreter, imports, connecting."""
    probes = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import asyncio'": [sys.executable, "-c", "import asyncio"],
        "python: import the CLI's modules": [
            sys.executable,
            "-c",
            "import tui.cli, tui.virsh.commands, drivers.remote.local",
        ],
        "virtdeck list --all (0 defined)": ours.cli("list", "--all"),
    }
    if peer is not None:
        probes["virsh list --all (0 defined)"] = peer.virsh_argv("list", "--all")
    out = {}
    for label, argv in probes.items():
        timed(argv)
        out[label] = median([timed(argv)[0] for _ in range(runs)])
    return out


# --- main ------------------------------------------------------------------------------------


def _versions(peer: LibvirtPeer) -> str:
    text = peer.virsh("version").stdout
    found = re.findall(r"Using library: (.*)|Running hypervisor: (.*)", text)
    return ", ".join(a or b for a, b in found)


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


async def run(args: argparse.Namespace) -> Report:
    results = Report("daemon")
    ours = Ours()
    try:
        with contextlib.ExitStack() as stack:
            peer: LibvirtPeer | None = None
            if args.no_peer:
                print("libvirt peer: SKIPPED (--no-peer); the libvirt columns stay empty")
            else:
                t0 = time.monotonic()
                try:
                    peer = stack.enter_context(LibvirtPeer())
                    print(
                        f"libvirtd: pid {peer.pid}, up in {time.monotonic() - t0:.2f} s "
                        f"({_versions(peer)})"
                    )
                except PeerUnavailable as err:
                    print(f"libvirt peer: SKIPPED, libvirtd could not be brought up here: {err}")
                    print("              (the libvirt columns below stay empty)")
                    results.notes.append(f"daemon: libvirtd could not be brought up: {err}")
            try:
                await _measure(ours, peer, args, results)
            finally:
                LineReader.kill_all()
    finally:
        # After the peer's domains are gone and libvirtd is stopped (the with block).
        await ours.close()
    return results


async def _measure(
    ours: Ours, peer: LibvirtPeer | None, args: argparse.Namespace, results: Report
) -> None:
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; python {sys.version.split()[0]}; QEMU TCG, diskless q35, 64 MiB"
    )
    # The first client starts the session daemon (and warms the bytecode cache).
    t0 = time.perf_counter()
    timed(ours.cli("list", "--all"))
    print(
        f"virtdeck: first 'list --all' incl. session daemon start: "
        f"{(time.perf_counter() - t0) * 1000:.0f} ms; virtdeckd pid {ours.daemon_pid()}"
    )
    await ours.connect()

    print("\n[0] floors: fresh processes that do (almost) nothing, median")
    floor = floors(ours, peer, args.runs)
    for label, value in floor.items():
        print(f"  {label:<40} {value:8.1f} ms")

    print("\n[4a] daemon RSS, idle (no domains defined)")
    rss_idle = settle_rss(ours.daemon_pid())
    peer_idle = peer.rss_kib() if peer is not None else None
    print(f"  virtdeckd {fmt_mib(rss_idle)}   libvirtd {fmt_mib(peer_idle)}")

    print("\n[4b] daemon RSS per running domain: start 4 diskless, (RSS4 - RSS0) / 4")
    per_ours, per_peer = await rss_per_running(ours, peer)
    per_peer_text = "-" if per_peer is None else f"{per_peer:+.0f} KiB"
    print(f"  virtdeckd {per_ours:+.0f} KiB   libvirtd {per_peer_text}")
    print(
        f"\n[1] QMP event (QEMU's timestamp) → 'event --loop --all' line read by the bench, "
        f"{2 * args.events} STOP/RESUME events, ms"
    )
    mine = await our_event_latency(ours, args.events)
    line("virtdeck event --loop --all", mine.line)
    line("  of which: → virtdeckd driver handled it", mine.daemon)
    theirs: EventTimes | None = None
    if peer is not None:
        theirs = await peer_event_latency(peer, args.events, ours.log)
        line("virsh event --loop --all", theirs.line)
        line("  for reference: → qemu-monitor-event line", theirs.daemon)
    p50 = median(mine.line)
    peer_p50 = median(theirs.line) if theirs else None
    met = p50 < 3 and (peer_p50 is None or p50 <= peer_p50 / 2)
    results.add(
        Row(
            "QMP event → 'event --loop' CLI line",
            "ms",
            Figure.of(mine.line),
            Figure.of(theirs.line) if theirs else None,
            "virsh event",
            "< 3 ms, ≤ ½ virsh",
            met,
        )
    )

    print("\n[2] CLI start / destroy of a diskless domain, a fresh process each, ms")
    st = await start_destroy(ours, peer, args.runs)
    line("virtdeck start", st.ours_start)
    if st.peer_start:
        line("virsh start", st.peer_start)
    line("virtdeck destroy", st.ours_destroy)
    if st.peer_destroy:
        line("virsh destroy", st.peer_destroy)
    line("for reference: API start() (open conn)", st.api_start)
    line("for reference: API destroy() (open conn)", st.api_destroy)
    ours_start = Figure.of(st.ours_start)
    peer_start = Figure.of(st.peer_start)
    results.add(
        Row(
            "virtdeck start (CLI, diskless domain)",
            "ms",
            ours_start,
            peer_start,
            "virsh start",
            "≤ ½ virsh",
            None
            if ours_start is None or peer_start is None
            else ours_start.median <= peer_start.median / 2,
        )
    )
    results.add(
        Row(
            "virtdeck destroy (CLI)",
            "ms",
            Figure.of(st.ours_destroy),
            Figure.of(st.peer_destroy),
            "virsh destroy",
        )
    )

    print("\n[3] 'list --all' with N defined domains, a fresh process each, ms")
    listing = await list_scaling(ours, peer, args.counts, args.runs)
    for count in sorted(args.counts):
        line(f"virtdeck list --all, {count} defined", listing.ours[count])
        if count in listing.peer:
            line(f"virsh list --all, {count} defined", listing.peer[count])
    top = max(args.counts)
    for count in sorted(args.counts):
        mine_c = Figure.of(listing.ours[count])
        theirs_c = Figure.of(listing.peer.get(count, []))
        met_c = None
        if theirs_c is not None and mine_c is not None and count == top:
            met_c = mine_c.median <= theirs_c.median
        results.add(
            Row(
                f"list --all, {count} defined",
                "ms",
                mine_c,
                theirs_c,
                "virsh list",
                "≤ virsh" if count == top else "",
                met_c,
            )
        )
    for metric, mine_kib, theirs_kib in (
        ("daemon RSS idle", rss_idle, peer_idle),
        (f"daemon RSS, {top} defined", listing.rss_ours, listing.rss_peer),
        ("daemon RSS per running domain", per_ours, per_peer),
    ):
        results.add(
            Row(
                metric,
                "KiB",
                Figure.single(mine_kib),
                Figure.single(theirs_kib),
                "libvirtd",
                "report",
            )
        )
    notes = [f"{label} {value:.0f} ms" for label, value in floor.items()]
    results.notes.append("daemon: floors: " + "; ".join(notes))
    results.notes.append(
        f"daemon: {args.runs} CLI runs per figure, {2 * args.events} events"
        + (" (quick: fewer than a full run)" if args.runs < 10 else "")
    )


def collect(quick: bool = False) -> Report:
    """The figures for ``python -m bench`` (quick: fewer events and runs, 10/100 domains)."""
    args = argparse.Namespace(
        events=20 if quick else 100,
        runs=5 if quick else 10,
        counts=[10, 100] if quick else [10, 100, 500],
        no_peer=False,
    )
    saved = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    try:
        return asyncio.run(run(args))
    finally:
        sys.setswitchinterval(saved)
        LineReader.kill_all()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100, help="suspend/resume pairs")
    parser.add_argument("--runs", type=int, default=10, help="runs per CLI measurement")
    parser.add_argument(
        "--counts",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[10, 100, 500],
        help="defined-domain counts for list --all",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip libvirtd")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    # Let the pipe-reading threads take the GIL back quickly when a line arrives.
    sys.setswitchinterval(0.0002)
    try:
        report = asyncio.run(run(args))
    except KeyboardInterrupt:
        print(
            "\ninterrupted; the daemon, its QEMUs, the peer's domains and libvirtd were cleaned up"
        )
        sys.exit(130)
    print()
    for text in main_table([report]):
        print(text)
    for note in report.notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
