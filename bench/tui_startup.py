"""TUI benchmarks against virtdeckd serving the test driver, next to virtui-manager's figures.

    python -m bench.tui_startup [--quick]

1. 300 domains (8 running) on one host: launch → complete table (target ≤ 0.5 s), RSS after
   10 s (≤ 60 MiB), idle CPU over 10 s (≤ 1 %). virtui-manager: 1.45 s, 102.8 MiB, 5.8 %.
2. 10 hosts x 100 domains: launch → complete table (≤ 1 s).
3. 1000 lifecycle events/s for 10 s across those 10 hosts (suspend/resume from a separate
   client process): no event lost (the table equals each daemon's listing at the end) and
   key press → repaint p99 < 50 ms.

The TUI runs as a real process on a pseudo-terminal (120x36), so the figures include the
interpreter, the imports and the terminal output. "Launch" is the moment before the process
is spawned; "complete" is the first screen update after every row shows its state, vCPUs
and memory. Times are CLOCK_MONOTONIC, shared by all processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import pct

if TYPE_CHECKING:
    import argparse

    from bench.results import Report

# The child (the TUI under test) imports nothing here that virtdeck itself would not: the
# modules only the parent needs (argparse, json, pty, termios) load where they are used.


ROOT = Path(__file__).resolve().parents[1]
PEER = {"startup": 1.45, "rss_mib": 102.8, "idle_cpu": 5.8}


# --- the parent: daemons, the TUI on a pty, measurements -----------------------------------


def node_file(directory: Path, host: str, count: int, running: int) -> Path:
    from tui.demo import node_xml

    domains = tuple(
        (f"{host}-vm{i:03d}", 512 + 256 * (i % 8), 1 + i % 4, 1 if i < running else 5)
        for i in range(count)
    )
    path = directory / f"{host}.xml"
    path.write_text(node_xml(host, domains))
    return path


class Daemons:
    """virtdeckd processes serving test:///NODE files on private sockets."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, nodes: list[Path]) -> list[str]:
        uris: list[str] = []
        sockets: list[Path] = []
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_RUNTIME_DIR": str(self.directory)}
        for node in nodes:
            socket = self.directory / f"{node.stem}.sock"
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "drivers.daemon",
                    "--driver",
                    f"test://{node}",
                    "--socket",
                    str(socket),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.procs.append(proc)
            sockets.append(socket)
            uris.append(f"qemu:///system?socket={socket}")
        deadline = time.monotonic() + 30
        while not all(s.exists() for s in sockets):
            if time.monotonic() > deadline:
                raise RuntimeError("the daemons did not start")
            time.sleep(0.02)
        return uris

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()
        self.procs.clear()


class Tui:
    """``python -m bench.tui_child`` (the TUI) on a 120x36 pseudo-terminal."""

    def __init__(
        self, uris: list[str], expect: int, workdir: Path, module: str = "bench.tui_child"
    ) -> None:
        import pty
        import termios

        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
        read_fd, self._write_fd = os.pipe()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TERM": "xterm-256color",
            "COLORTERM": "truecolor",  # a modern terminal: no colour down-conversion
            "XDG_CONFIG_HOME": str(workdir / "config"),
            "XDG_CACHE_HOME": str(workdir / "cache"),
        }
        env.pop("NO_COLOR", None)
        env.update(_bytecode_env(workdir))
        env.pop("PYTHONDONTWRITEBYTECODE")
        args = [
            sys.executable,
            "-m",
            module,
            "--expect",
            str(expect),
            "--report-fd",
            str(self._write_fd),
        ]
        for uri in uris:
            args += ["-c", uri]
        self.launched = time.monotonic()
        self.proc = subprocess.Popen(
            args,
            stdin=slave,
            stdout=slave,
            stderr=subprocess.DEVNULL,
            env=env,
            pass_fds=(self._write_fd,),
            start_new_session=True,
        )
        os.close(slave)
        os.close(self._write_fd)
        self._reports = os.fdopen(read_fd, "r")
        self._drain = threading.Thread(target=self._drain_output, daemon=True)
        self._drain.start()

    def _drain_output(self) -> None:
        """Read (and drop) what the TUI draws, so that it never blocks on a full pty."""
        import select

        while self.proc.poll() is None:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.2)
                if ready:
                    os.read(self.master, 65536)
            except OSError:
                time.sleep(0.01)  # EIO while no process has the terminal open yet

    def report(self, timeout: float = 60) -> dict[str, Any]:
        import select

        ready, _, _ = select.select([self._reports], [], [], timeout)
        if not ready:
            raise RuntimeError(f"the TUI reported nothing within {timeout:g} s")
        import json

        line = self._reports.readline()
        if not line:
            raise RuntimeError("the TUI exited without reporting")
        data: dict[str, Any] = json.loads(line)
        if "error" in data:
            raise RuntimeError(f"the TUI failed: {data['error']}")
        return data

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        from bench.libvirt_peer import rss_kib

        return rss_kib(self.proc.pid) / 1024

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def quit(self) -> None:
        """End the TUI the way a user does (the app exits and the interpreter winds down,
        writing virtdeck's load cache if the run added to it), then close."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGUSR1)  # the child's dump(): app.exit()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        with contextlib.suppress(OSError):
            os.close(self.master)
        self._reports.close()


def storm(uris: list[str], rate: int, seconds: float) -> dict[str, Any]:
    """Run the event storm in a separate client process; its report."""
    import json

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.tui_startup",
            "--storm",
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            *[a for u in uris for a in ("-c", u)],
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


async def listing(uris: list[str]) -> dict[str, dict[str, str]]:
    """Each host's domains' state words, straight from the daemons."""
    import drivers
    from drivers.model import state_words

    found: dict[str, dict[str, str]] = {}
    for uri in uris:
        conn = await drivers.open(uri)
        try:
            found[uri] = {
                s.uuid: state_words(s.state, s.reason) for s in await conn.list_summaries()
            }
        finally:
            await conn.close()
    return found


def _bytecode_env(workdir: Path) -> dict[str, str]:
    """Compiled modules, as an installed virtdeck has (pip writes .pyc files at install)."""
    return {"PYTHONPYCACHEPREFIX": str(workdir / "pycache"), "PYTHONDONTWRITEBYTECODE": ""}


def warm_bytecode(workdir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **_bytecode_env(workdir)}
    env.pop("PYTHONDONTWRITEBYTECODE")
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import tui.app, tui.screens.main, tui.adapter, tui.commands, "
            "drivers.remote.local, bench.tui_startup, textual.pilot, bench.tui_floor",
        ],
        env=env,
        check=True,
    )


def warm_up(uris: list[str], expect: int, workdir: Path) -> None:
    """One unmeasured run of the TUI: it compiles whatever else a run loads (the terminal
    driver, the remote client, rich's cell-width tables…), which warm_bytecode's imports
    do not reach; without it the measured run would compile them, ~40 ms that an installed
    virtdeck never spends. Like a user's first run, it ends with the app quitting, which
    writes virtdeck's load cache (tui.load_cache) for the runs after it."""
    tui = Tui(uris, expect, workdir)
    try:
        tui.report()
        tui.quit()
    finally:
        tui.close()


def cold_launch(uris: list[str], expect: int, workdir: Path) -> float:
    """Launch → complete table with no load cache (tui.load_cache): a first run after an
    install or an upgrade. The run writes the cache again, as virtdeck's first run does."""
    for stale in (workdir / "cache" / "virtdeck").glob("load-*"):
        stale.unlink()
    tui = Tui(uris, expect, workdir)
    try:
        launch = float(tui.report()["ready"]) - tui.launched
        tui.quit()
        return launch
    finally:
        tui.close()


def floor(workdir: Path) -> float:
    """Launch → first paint of a bare Textual app (bench.tui_floor), seconds."""
    tui = Tui([], 0, workdir, module="bench.tui_floor")
    try:
        return float(tui.report()["ready"]) - tui.launched
    finally:
        tui.close()


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vd-bench-", dir="/tmp") as name:
        warm_bytecode(Path(name))
        yield Path(name)


def line(label: str, value: str, target: str, peer: str = "") -> None:
    print(f"  {label:<44} {value:>12}   target {target:<10} {peer}")


LAUNCHES = 7
"""Launches measured for the one-host start-up figure (the median is printed)."""
COLD_LAUNCHES = 3
"""The same, with the load cache emptied before each."""
MANY_LAUNCHES = 3
"""The same for 10 hosts x 100 domains."""


def bench_one_host(idle_seconds: float) -> dict[str, Any]:
    with workspace() as work:
        daemons = Daemons(work)
        try:
            uris = daemons.start([node_file(work, "big", 300, 8)])
            floors = sorted(floor(work) for _ in range(LAUNCHES))
            warm_up(uris, 300, work)
            cold = sorted(cold_launch(uris, 300, work) for _ in range(COLD_LAUNCHES))
            # Launches vary by ±0.1 s on a shared 2-vCPU machine: the figure is the median
            # of LAUNCHES; the last launch stays up for RSS and idle CPU.
            launches: list[tuple[float, dict[str, Any]]] = []
            for attempt in range(LAUNCHES):
                tui = Tui(uris, 300, work)
                try:
                    report = tui.report()
                except BaseException:
                    tui.close()
                    raise
                launches.append((report["ready"] - tui.launched, {**report, "t0": tui.launched}))
                if attempt < LAUNCHES - 1:
                    tui.close()
            try:
                time.sleep(0.5)
                cpu0, t0 = tui.cpu_seconds(), time.monotonic()
                time.sleep(idle_seconds)
                cpu1, t1 = tui.cpu_seconds(), time.monotonic()
                idle = 100 * (cpu1 - cpu0) / (t1 - t0)
                rss = tui.rss_mib()
            finally:
                tui.close()
        finally:
            daemons.stop()
    launches.sort(key=lambda item: item[0])
    startup, ready = launches[len(launches) // 2]
    launched = ready["t0"]
    print("300 domains (8 running) on one host, served by virtdeckd --driver test:///…")
    line(
        f"launch → complete table (median of {LAUNCHES})",
        f"{startup:.3f} s",
        "≤ 0.5 s",
        f"virtui-manager {PEER['startup']} s",
    )
    line("  fastest / slowest", f"{launches[0][0]:.3f} / {launches[-1][0]:.3f} s", "")
    line("  of which interpreter + imports", f"{ready['imported'] - launched:.3f} s", "")
    line("  of which app start → complete table", f"{ready['ready'] - ready['imported']:.3f} s", "")
    for mark in ("first paint", "first snapshot", "last infos"):
        if mark in ready:
            line(f"    {mark} at", f"{ready[mark] - launched:.3f} s", "")
    line(
        f"  first run, empty load cache (median of {COLD_LAUNCHES})",
        f"{cold[len(cold) // 2]:.3f} s",
        "",
    )
    line(
        "a bare Textual app, launch → first paint",
        f"{floors[len(floors) // 2]:.3f} s",
        "(median)",
    )
    line(
        f"RSS after {idle_seconds + 0.5:.0f} s",
        f"{rss:.1f} MiB",
        "≤ 60 MiB",
        f"virtui-manager {PEER['rss_mib']} MiB",
    )
    line(
        f"idle CPU over {idle_seconds:.0f} s",
        f"{idle:.2f} %",
        "≤ 1 %",
        f"virtui-manager {PEER['idle_cpu']} %",
    )
    return {
        "startup": startup,
        "rss": rss,
        "idle": idle,
        "launches": [item[0] for item in launches],
        "cold": cold,
        "floors": floors,
    }


def bench_many_hosts(rate: int, seconds: float) -> dict[str, Any]:
    with workspace() as work:
        daemons = Daemons(work)
        try:
            nodes = [node_file(work, f"h{i:02d}", 100, 10) for i in range(10)]
            uris = daemons.start(nodes)
            warm_up(uris, 1000, work)
            startups: list[float] = []
            for _ in range(MANY_LAUNCHES - 1):
                tui = Tui(uris, 1000, work)
                try:
                    startups.append(tui.report()["ready"] - tui.launched)
                finally:
                    tui.close()
            tui = Tui(uris, 1000, work)  # this one stays up for the storm
            try:
                ready = tui.report()
                startups.append(ready["ready"] - tui.launched)
                startup = sorted(startups)[len(startups) // 2]
                time.sleep(1.0)
                tui.signal(signal.SIGUSR2)  # start timing key presses
                time.sleep(0.2)
                cpu0, t0 = tui.cpu_seconds(), time.monotonic()
                stormed = storm(uris, rate, seconds)
                storm_cpu = 100 * (tui.cpu_seconds() - cpu0) / (time.monotonic() - t0)
                time.sleep(1.5)  # let the last events arrive
                tui.signal(signal.SIGUSR1)  # dump the table and the latencies
                dump = tui.report()
                truth = asyncio.run(listing(uris))
            finally:
                tui.close()
        finally:
            daemons.stop()
    table: dict[str, dict[str, str]] = dump["table"]
    mismatched = [
        (uri, uuid, table.get(uri, {}).get(uuid), words)
        for uri, rows in truth.items()
        for uuid, words in rows.items()
        if table.get(uri, {}).get(uuid) != words
    ]
    latencies: list[float] = dump["latencies"]
    p50, p99 = pct(latencies, 0.5) * 1000, pct(latencies, 0.99) * 1000
    print("10 hosts x 100 domains")
    line(f"launch → complete table (median of {MANY_LAUNCHES})", f"{startup:.3f} s", "≤ 1 s")
    print(f"{rate} lifecycle events/s for {seconds:g} s across the 10 hosts")
    line("events sent (calls that succeeded)", f"{stormed['ok']}", f"{int(rate * seconds)}")
    line("  achieved rate", f"{stormed['ok'] / stormed['elapsed']:.0f}/s", f"{rate}/s")
    line("events the TUI received", f"{dump['events']}", f"{stormed['ok']}")
    line("TUI CPU during the storm (of one core)", f"{storm_cpu:.0f} %", "")
    line("rows differing from the daemons at the end", f"{len(mismatched)}", "0")
    line(
        f"key press → repaint p50 / p99 (n={len(latencies)})",
        f"{p50:.1f}/{p99:.1f} ms",
        "p99 < 50 ms",
    )
    for item in mismatched[:5]:
        print("    mismatch:", item)
    return {
        "startup": startup,
        "mismatched": len(mismatched),
        "p99_ms": p99,
        "events": dump["events"],
        "sent": stormed["ok"],
        "launches": startups,
        "latencies_ms": [1000 * x for x in latencies],
    }


def report_of(one: dict[str, Any], many: dict[str, Any], quick: bool) -> Report:
    """The figures as rows for ``python -m bench``; virtui-manager's are its published ones
    (machine-facts.md §10), not measured in this run."""
    from bench.results import Figure, Report, Row

    report = Report("TUI")
    published = "virtui-manager (published)"
    launch = Figure.of(one["launches"])
    report.add(
        Row(
            f"300 domains: launch → complete table ({LAUNCHES} launches)",
            "s",
            launch,
            Figure.single(PEER["startup"]),
            published,
            "≤ 0.5 s",
            one["startup"] <= 0.5,
        )
    )
    report.add(Row("  first run, empty load cache", "s", Figure.of(one["cold"])))
    report.add(Row("  a bare Textual app: launch → first paint", "s", Figure.of(one["floors"])))
    report.add(
        Row(
            "TUI RSS, 300 domains",
            "MiB",
            Figure.single(one["rss"]),
            Figure.single(PEER["rss_mib"]),
            published,
            "≤ 60 MiB",
            one["rss"] <= 60,
        )
    )
    report.add(
        Row(
            "TUI idle CPU",
            "%",
            Figure.single(one["idle"]),
            Figure.single(PEER["idle_cpu"]),
            published,
            "≤ 1 %",
            one["idle"] <= 1,
        )
    )
    report.add(
        Row(
            "10 hosts x 100: launch → complete table",
            "s",
            Figure.of(many["launches"]),
            target="≤ 1 s",
            passed=many["startup"] <= 1,
        )
    )
    report.add(
        Row(
            "event storm: key press → repaint",
            "ms",
            Figure.of(many["latencies_ms"]),
            target="p99 < 50 ms",
            passed=many["p99_ms"] < 50,
        )
    )
    report.add(
        Row(
            "event storm: rows differing from the daemons",
            "",
            Figure.single(many["mismatched"]),
            target="0",
            passed=many["mismatched"] == 0,
        )
    )
    report.notes.append(
        f"TUI: storm {many['sent']} events sent, {many['events']} received"
        + (" (quick: 3 s phases instead of 10 s)" if quick else "")
    )
    return report


def collect(quick: bool = False, rate: int = 1000) -> Report:
    seconds = 3.0 if quick else 10.0
    one = bench_one_host(seconds)
    many = bench_many_hosts(rate, seconds)
    return report_of(one, many, quick)


def parent(args: argparse.Namespace) -> int:
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so no daemon or TUI is left behind
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    idle = 3.0 if args.quick else 10.0
    seconds = 3.0 if args.quick else 10.0
    one = bench_one_host(idle)
    many = bench_many_hosts(args.rate, seconds)
    ok = (
        one["startup"] <= 0.5
        and one["rss"] <= 60
        and one["idle"] <= 1
        and many["startup"] <= 1
        and many["mismatched"] == 0
        and many["p99_ms"] < 50
    )
    print("all targets met" if ok else "some targets missed (see above)")
    return 0


# --- the child: the real app, reporting when the table is complete ---------------------------


SPANS: list[tuple[str, float, float]] = []
"""BENCH_TRACE: what ran when (label, start, end), for the trace file."""


def _trace(marks: dict[str, float]) -> None:
    """BENCH_TRACE=FILE: time the start-up's steps (first and last call of each, their sum)
    and keep every call's span; the storm's spans and key presses go to FILE."""
    import functools
    import gc
    import importlib
    import inspect

    gc_start: list[float] = []

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start.append(time.monotonic())
            return
        t0 = gc_start.pop()
        t1 = time.monotonic()
        label = f"gc{info['generation']}"
        marks[f"{label} sum"] = marks.get(f"{label} sum", 1e9) + t1 - t0
        marks[f"{label} n"] = marks.get(f"{label} n", 1e9) + 1
        SPANS.append((label, t0, t1))

    gc.callbacks.append(gc_timer)
    targets = [
        "tui.screens.main:MainScreen._flush",
        "tui.screens.main:MainScreen._on_tick",
        "tui.screens.main:MainScreen.update_bindings",
        "tui.screens.main:MainScreen.on_mount",
        "tui.screens.main:MainScreen.compose",
        "tui.app:VirtdeckApp.on_mount",
        "tui.app:VirtdeckApp.on_host_updates",
        "tui.app:VirtdeckApp.on_domain_infos",
        "tui.app:VirtdeckApp._collect",
        "tui.widgets.domain_table:DomainTable.move_cursor",
        "textual.widgets._footer:Footer.recompose",
        "textual.widgets._footer:Footer.compose",
        "textual.app:App._display",
        "textual.app:App.refresh_css",
        "textual.app:App._on_key",
        "textual.screen:Screen._refresh_layout",
        "textual.screen:Screen._compositor_refresh",
        "textual.screen:Screen._on_timer_update",
        "textual.app:App._process_messages",
        "drivers.reconnect:ReconnectingConnection._session",
    ]

    def wrap(original: Any, label: str) -> Any:
        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed_async(*a: Any, **k: Any) -> Any:
                t0 = time.monotonic()
                marks.setdefault(f"{label} first", t0)
                try:
                    return await original(*a, **k)
                finally:
                    t1 = time.monotonic()
                    marks[f"{label} last end"] = t1
                    SPANS.append((label + " (async)", t0, t1))

            return timed_async

        @functools.wraps(original)
        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.monotonic()
            marks.setdefault(f"{label} first", t0)
            try:
                return original(*a, **k)
            finally:
                t1 = time.monotonic()
                marks[f"{label} last end"] = t1
                marks[f"{label} sum"] = marks.get(f"{label} sum", 1e9) + t1 - t0
                marks[f"{label} n"] = marks.get(f"{label} n", 1e9) + 1
                SPANS.append((label, t0, t1))

        return timed

    import asyncio.events

    handle_run = asyncio.events.Handle._run

    def timed_handle(self: asyncio.events.Handle) -> None:
        t0 = time.monotonic()
        try:
            handle_run(self)
        finally:
            t1 = time.monotonic()
            if t1 - t0 > 0.0003:
                callback = getattr(self, "_callback", None)
                name = getattr(callback, "__qualname__", None) or repr(callback)[:60]
                owner = getattr(callback, "__self__", None)
                if owner is not None and hasattr(owner, "get_coro"):
                    name = owner.get_coro().__qualname__  # a task's step: its coroutine
                SPANS.append((f"loop: {name}", t0, t1))

    asyncio.events.Handle._run = timed_handle  # type: ignore[method-assign]

    from textual.timer import Timer

    timer_resume = Timer.resume

    def traced_resume(self: Timer) -> None:
        if not self._active.is_set():
            now = time.monotonic()
            SPANS.append((f"resume {self.name}", now, now + 0.0005))
        timer_resume(self)

    Timer.resume = traced_resume  # type: ignore[method-assign]

    from textual.widget import Widget

    render_lines = Widget.render_lines

    def timed_render_lines(self: Widget, crop: Any) -> Any:
        t0 = time.monotonic()
        try:
            return render_lines(self, crop)
        finally:
            SPANS.append((f"render {type(self).__name__} h={crop.height}", t0, time.monotonic()))

    Widget.render_lines = timed_render_lines  # type: ignore[method-assign]

    for target in targets:
        module_name, _, qual = target.partition(":")
        owner_name, _, attr = qual.partition(".")
        owner = getattr(importlib.import_module(module_name), owner_name)
        setattr(owner, attr, wrap(getattr(owner, attr), qual))


def child(args: argparse.Namespace, t_process: float, t_imported: float) -> int:
    """The TUI, run by :mod:`bench.tui_child` (which imported the app's modules at
    ``t_imported``; the interpreter was up at ``t_process``)."""
    import json

    report = os.fdopen(args.report_fd, "w", buffering=1)
    # in the order virtdeck (tui.cli) imports them: the app first
    from tui.app import make_app
    from tui.screens.main import MainScreen

    # isort: split
    from textual import events
    from textual.pilot import Pilot

    from drivers.model import Event

    imported = t_imported
    start_profile = None
    if os.environ.get("CHILD_PROFILE"):  # CHILD_PROFILE=FILE: cProfile, imported → complete
        import cProfile

        start_profile = cProfile.Profile()
        start_profile.enable()
    app = make_app(args.connect)
    expect = args.expect
    state: dict[str, Any] = {"ready": False, "complete": False, "events": 0, "measuring": False}
    latencies: list[float] = []
    presses: list[tuple[float, float]] = []
    pending: dict[str, Any] = {}
    original_display = app._display
    original_apply = app.store.apply_updates

    from drivers.reconnect import Snapshot

    marks: dict[str, float] = {}
    original_infos = app.store.apply_infos

    def counting_apply(name: str, updates: Any) -> Any:
        state["events"] += sum(1 for u in updates if isinstance(u, Event))
        if any(isinstance(u, Snapshot) for u in updates):
            marks.setdefault("first snapshot", time.monotonic())
            marks["last snapshot"] = time.monotonic()
        return original_apply(name, updates)

    def timed_infos(name: str, infos: Any) -> Any:
        marks.setdefault("first infos", time.monotonic())
        marks["last infos"] = time.monotonic()
        return original_infos(name, infos)

    app.store.apply_updates = counting_apply  # type: ignore[method-assign]
    app.store.apply_infos = timed_infos  # type: ignore[method-assign]

    def main_screen() -> MainScreen | None:
        screen = app.screen_stack[0] if app.screen_stack else None
        return screen if isinstance(screen, MainScreen) else None

    def complete() -> bool:
        screen = main_screen()
        rows = app.store.rows
        if screen is None or len(rows) != expect or screen.table.row_count != expect:
            return False
        if screen._pending or screen._flush_timer is not None:
            return False  # the table has not caught up with the store yet
        table = screen.table
        return all(table.cell_text(key, "vcpus") for key in rows)

    def display(screen: Any, renderable: Any) -> None:
        original_display(screen, renderable)
        try:
            observe(renderable)
        except Exception:
            import traceback

            report.write(json.dumps({"error": traceback.format_exc()}) + "\n")
            raise

    def observe(renderable: Any, force: bool = False) -> None:
        now = time.monotonic()
        marks.setdefault("first paint", now)
        if not state["ready"] and (renderable is not None or force) and complete():
            state["ready"] = True
            if start_profile is not None:
                start_profile.disable()
                start_profile.dump_stats(
                    os.environ["CHILD_PROFILE"].replace("{expect}", str(expect))
                )
            report.write(
                json.dumps({"ready": now, "imported": imported, "process": t_process, **marks})
                + "\n"
            )
        target = pending.get("row")
        main = main_screen()
        if target is not None and main is not None and main.table.cursor_row == target:
            presses.append((pending["t0"], now))
            latencies.append(now - pending.pop("t0"))
            pending.pop("row")
            pending["done"].set()

    app._display = display  # type: ignore[method-assign]
    if os.environ.get("BENCH_TRACE"):
        _trace(marks)

    async def press_keys() -> None:
        step = 1
        while state["measuring"]:
            await asyncio.sleep(0.05)
            main = main_screen()
            if main is None or app.screen is not main:
                continue
            table = main.table
            if table.cursor_row >= table.row_count - 1:
                step = -1
            elif table.cursor_row <= 0:
                step = 1
            done = asyncio.Event()
            pending.update(row=table.cursor_row + step, t0=time.monotonic(), done=done)
            app.post_message(events.Key("down" if step > 0 else "up", None))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 2)
            pending.clear()

    def dump() -> None:
        state["measuring"] = False
        if os.environ.get("BENCH_TRACE", "1") != "1":
            import gc
            from collections import Counter

            kinds = Counter(type(o).__name__ for o in gc.get_objects())
            t0 = time.monotonic()
            gc.collect()
            facts = {
                "full collection ms": round(1000 * (time.monotonic() - t0), 1),
                "tracked": len(gc.get_objects()),
                "frozen": gc.get_freeze_count(),
                "thresholds": gc.get_threshold(),
            }
            with open(os.environ["BENCH_TRACE"], "w") as out:
                json.dump(
                    {
                        "spans": SPANS,
                        "presses": presses,
                        "objects": kinds.most_common(25),
                        "gc": facts,
                    },
                    out,
                )
        if "profile" in state:
            state["profile"].disable()
            state["profile"].dump_stats(os.environ["BENCH_PROFILE"])
        table: dict[str, dict[str, str]] = {}
        main = main_screen()
        assert main is not None
        for host, uuid in app.store.rows:
            uri = app.store.hosts[host].config.uri
            shown = (
                main.table.cell_text((host, uuid), "state") if main.table.has((host, uuid)) else ""
            )
            table.setdefault(uri, {})[uuid] = shown
        report.write(
            json.dumps({"table": table, "latencies": latencies, "events": state["events"]}) + "\n"
        )
        app.exit()

    async def autopilot(pilot: Pilot[object]) -> None:
        loop = asyncio.get_running_loop()

        async def watch() -> None:
            # the last rows to complete may be off screen: then no repaint follows, and
            # the table is complete when the screen caught up with the store
            while not state["ready"]:
                await asyncio.sleep(0.005)
                if "first paint" in marks and complete():
                    await asyncio.sleep(0)
                    if not state["ready"]:
                        observe(None, force=True)

        state["watcher"] = loop.create_task(watch())

        def start_measuring() -> None:
            if os.environ.get("BENCH_PROFILE"):
                import cProfile

                state["profile"] = cProfile.Profile()
                state["profile"].enable()
            state["measuring"] = True
            state["presser"] = loop.create_task(press_keys())

        loop.add_signal_handler(signal.SIGUSR2, start_measuring)
        loop.add_signal_handler(signal.SIGUSR1, dump)

    app.run(auto_pilot=autopilot)
    return 0


# --- the storm: a separate client driving the daemons' simulated guests -------------------------


async def run_storm(uris: list[str], rate: int, seconds: float) -> dict[str, Any]:
    import drivers
    from drivers.errors import VirtError
    from drivers.model import DomainState

    conns = [await drivers.open(uri) for uri in uris]
    lanes = []
    for conn in conns:
        summaries = await conn.list_summaries()
        running = [s for s in summaries if s.state is DomainState.RUNNING]
        handles = [await conn.lookup_by_uuid(s.uuid) for s in running]
        lanes.append([[dom, True] for dom in handles])  # [domain, is running]
    per_tick = max(1, rate // 100)  # 100 ticks a second
    ok = failed = 0
    index = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    tick = 0

    async def toggle(entry: list[Any]) -> bool:
        dom, running = entry
        try:
            if running:
                await dom.suspend()
            else:
                await dom.resume()
        except VirtError:
            return False
        entry[1] = not running
        return True

    while loop.time() - start < seconds:
        calls = []
        for _ in range(per_tick):
            lane = lanes[index % len(lanes)]
            calls.append(toggle(lane[(index // len(lanes)) % len(lane)]))
            index += 1
        results = await asyncio.gather(*calls)
        ok += sum(results)
        failed += len(results) - sum(results)
        tick += 1
        delay = start + tick * 0.01 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    elapsed = loop.time() - start
    for conn in conns:
        await conn.close()
    return {"ok": ok, "failed": failed, "elapsed": elapsed}


def child_args(argv: list[str]) -> argparse.Namespace:
    """The child's options, read without argparse (which virtdeck itself never loads)."""
    from types import SimpleNamespace

    args = SimpleNamespace(connect=[], expect=0, report_fd=1)
    words = iter(argv)
    for word in words:
        if word in ("-c", "--connect"):
            args.connect.append(next(words))
        elif word == "--expect":
            args.expect = int(next(words))
        elif word == "--report-fd":
            args.report_fd = int(next(words))
    return args  # type: ignore[return-value]


def main() -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.tui_startup", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s instead of 10 s phases")
    parser.add_argument("--rate", type=int, default=1000, help="events per second in the storm")
    parser.add_argument("--storm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--report-fd", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("-c", "--connect", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.storm:
        print(json.dumps(asyncio.run(run_storm(args.connect, args.rate, args.seconds))))
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
