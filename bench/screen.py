"""The guest's screen in the TUI (issue 12's targets).

    python -m bench.screen [--seconds S] [--keys N] [--quick]

The real tiny guest with a VGA card runs under a private session daemon; a loop in the
guest writes a line to its VGA console every 30 ms, so the screen changes all the time.
For each size (80x24 and 200x50) and each way to the daemon (its unix socket, and a real
OpenSSH sshd on loopback), the real TUI runs as a child process on a pseudo-terminal of
that size (half-blocks, truecolor: what a terminal without kitty or sixel graphics gets),
opens the domain's screen, and after 3 s (its first frames, and the TUI settling on the
frame rate its CPU budget allows) reports for S seconds:

- frames painted per second (target ≥ 5 locally);
- frame latency: QEMU's screendump issued (the daemon's clock) → the frame painted (the
  TUI's clock; one machine, one CLOCK_MONOTONIC), median and p90;
- CPU used by the TUI process (target < 25 % of one core) and by the daemon (for SSH also
  the ``virtdeckd --stdio`` relay and sshd's session processes) meanwhile.

Then key → guest: with "ping" typed on the guest's keyboard beforehand, the Enter key's
``send_input`` → the guest's answer on its serial line (target < 20 ms), and the call's
own round trip (the keys are in QEMU), locally and over SSH.

Everything started is ended by pid; the state lives in a temporary directory.
``VIRTDECK_BENCH_PROFILE=/tmp/prof`` writes a cProfile of each TUI child to
``/tmp/prof-PID``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
SIZES = ((80, 24), (200, 50))
CHURN = "sh (while [ ! -e /tmp/stop ]; do date; usleep 30000; done) >/dev/tty1 2>&1 &"


# --- the child: the TUI on a pty -------------------------------------------------------------


def child(uri: str, domain: str, seconds: float, out: Path) -> int:
    """Run the TUI on this terminal, open ``domain``'s screen, measure, write ``out``."""
    from tui.app import make_app

    app = make_app([uri], config_file=out.parent / "no-config.toml")
    result: dict[str, Any] = {}

    async def measure() -> None:
        from tui.screens.screen import ScreenView

        deadline = time.monotonic() + 60
        row = None
        while row is None:
            row = next((r for r in app.store.rows.values() if r.name == domain), None)
            if time.monotonic() > deadline:
                result["error"] = "the domain did not show up"
                app.exit()
                return
            await asyncio.sleep(0.05)
        view = ScreenView(row.host, row.uuid, row.name)
        await app.push_screen(view)
        while len(view.painted) < 3:
            await asyncio.sleep(0.05)
        # past the first frames, the first layout and the TUI's choice of its frame rate
        await asyncio.sleep(3.0)
        (out.parent / f"{out.name}.started").write_text("")
        frames0, cpu0, t0 = len(view.painted), time.process_time(), time.monotonic()
        first = frames0
        await asyncio.sleep(seconds)
        frames1, cpu1, t1 = len(view.painted), time.process_time(), time.monotonic()
        result.update(
            fps=(frames1 - frames0) / (t1 - t0),
            cpu=(cpu1 - cpu0) / (t1 - t0) * 100,
            latency_ms=[(p - c) * 1000 for c, p in view.painted[first:]],
            protocol=type(view.query_one("#screen-image")).__name__,
            image_cells=list(view.query_one("#screen-image").size),
        )
        app.exit()

    async def auto_pilot(pilot: Any) -> None:
        await measure()

    profile = os.environ.get("VIRTDECK_BENCH_PROFILE")
    if profile:
        import cProfile

        cProfile.runctx(
            "app.run(auto_pilot=auto_pilot)", globals(), locals(), f"{profile}-{os.getpid()}"
        )
    else:
        app.run(auto_pilot=auto_pilot)
    out.write_text(json.dumps(result))
    return 0


def run_child(
    uri: str, domain: str, size: tuple[int, int], seconds: float, workdir: Path,
    watch: Callable[[], list[psutil.Process]],
) -> dict[str, Any]:  # fmt: skip
    """The child on a pty of ``size``; its result, with the CPU of the processes ``watch``
    names once the child measures (an SSH session's processes exist only by then)."""
    import fcntl
    import pty
    import struct
    import termios

    out = workdir / f"result-{size[0]}x{size[1]}-{abs(hash(uri)) % 1000}.json"
    started = workdir / f"{out.name}.started"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
    env.pop("TMUX", None)
    env.pop("VIRTDECK_GRAPHICS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.screen", "--child", uri, domain, str(seconds), str(out)],
        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO,
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    drained = 0
    cpu_before: list[float] = []
    cpu_after: list[float] = []
    watched: list[psutil.Process] = []
    window = [0.0, 0.0]
    try:
        deadline = time.monotonic() + seconds + 90
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import select

                ready, _, _ = select.select([master], [], [], 0.05)
                if ready:
                    drained += len(os.read(master, 1 << 20))
            if started.exists() and not cpu_before:
                window[0] = time.monotonic()
                watched = watch()
                cpu_before = [_cpu(p) for p in watched]
        window[1] = time.monotonic()
        cpu_after = [_cpu(p) for p in watched]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"error": "none"}
    span = window[1] - window[0]
    if cpu_before and span > 0:
        result["watched_cpu"] = [(a - b) / span * 100 for a, b in zip(cpu_after, cpu_before,
                                                                       strict=True)]  # fmt: skip
    result["output_mib_s"] = drained / max(span, 1e-9) / (1 << 20)
    return result


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return 0.0


# --- the parent --------------------------------------------------------------------------------


async def key_latency(uri: str, serial: Path, keys: int) -> tuple[list[float], list[float]]:
    """(Enter → the guest's answer on its serial line, the call's round trip), in ms."""
    import drivers
    from drivers.keys import key_combo, text_events
    from tests.guest import SerialConsole

    answers: list[float] = []
    calls: list[float] = []
    async with await drivers.open(uri) as conn:
        dom = await conn.lookup("vdbench-screen")
        enter = key_combo(["ret"])
        async with await SerialConsole.connect(serial) as console:
            for index in range(keys + 3):
                await dom.send_input(text_events("ping"))
                await asyncio.sleep(0.05)
                console.mark()
                t0 = time.perf_counter()
                await dom.send_input(enter)
                t1 = time.perf_counter()
                await console.wait_for("VIRTDECK-PONG", timeout=10)
                t2 = time.perf_counter()
                if index >= 3:  # warm-up
                    calls.append((t1 - t0) * 1000)
                    answers.append((t2 - t0) * 1000)
    return answers, calls


def describe(label: str, result: dict[str, Any], watched: list[str]) -> list[str]:
    if "error" in result:
        return [f"| {label} | not measured: {result['error']} | | |"]
    lat = result["latency_ms"]
    from bench.common import pct

    cpu = ", ".join(f"{name} {v:.1f} %" for name, v in zip(watched, result.get("watched_cpu", []),
                                                           strict=False))  # fmt: skip
    return [
        f"| {label}: frames painted per second | {result['fps']:.1f} | ≥ 5 locally | "
        f"{'pass' if result['fps'] >= 5 else 'FAIL'} |",
        f"| {label}: frame latency, median / p90 | {statistics.median(lat):.0f} / "
        f"{pct(lat, 0.9):.0f} ms ({len(lat)} frames) | report | |",
        f"| {label}: TUI CPU | {result['cpu']:.1f} % of one core ({result['protocol']}, "
        f"image {result['image_cells'][0]}x{result['image_cells'][1]} cells, "
        f"{result['output_mib_s']:.2f} MiB/s to the terminal) | < 25 % | "
        f"{'pass' if result['cpu'] < 25 else 'FAIL'} |",
        f"| {label}: other processes' CPU | {cpu} | report | |",
    ]


async def run(args: argparse.Namespace) -> None:
    import drivers
    from bench.console_stats import Daemon
    from tests.e2e.helpers import boot_guest
    from tests.guest import SerialConsole, guest_image

    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load {load:.2f}; python {sys.version.split()[0]}")
    daemon = Daemon()
    rows: list[str] = []
    sshd = None
    try:
        serial = daemon.root / "screen.sock"
        async with await drivers.open("qemu:///session") as conn:
            await boot_guest(conn, "vdbench-screen", guest_image(), serial, display=True)
            async with await SerialConsole.connect(serial) as console:
                await console.send(CHURN)
                await console.wait_for("VIRTDECK-DONE", timeout=10)
            daemon_proc = psutil.Process(daemon.pid())
            qemu = [psutil.Process(p) for p in _qemu_pids(daemon.root)]
            uris = [("local daemon", "qemu:///session")]
            if os.geteuid() == 0 and Path("/usr/sbin/sshd").exists():
                from tests.remote.conftest import Session
                from tests.remote.sshd import daemon_command, start_sshd

                sshd = start_sshd(daemon.root / "ssh")
                uris.append(("SSH (loopback)", sshd.uri(daemon_command(Session(daemon.root)))))
            else:
                rows.append("| over SSH | not measured: needs root and openssh-server | | |")
            for label, uri in uris:
                for size in SIZES:
                    over_ssh = sshd is not None and label.startswith("SSH")
                    ssh_pid = sshd.pid if sshd is not None else 0

                    def watch(over_ssh: bool = over_ssh, ssh_pid: int = ssh_pid) -> list[Any]:
                        extra = psutil.Process(ssh_pid).children(recursive=True) if over_ssh else []
                        return [daemon_proc, *qemu, *extra]

                    names = ["daemon", "QEMU"]
                    result = await asyncio.to_thread(
                        run_child, uri, "vdbench-screen", size, args.seconds, daemon.root, watch
                    )
                    if over_ssh and "watched_cpu" in result:
                        # the relay and sshd's session processes, as one figure
                        parts = result["watched_cpu"]
                        result["watched_cpu"] = [parts[0], sum(parts[1 : 1 + len(qemu)]),
                                                 sum(parts[1 + len(qemu) :])]  # fmt: skip
                        names = ["daemon", "QEMU", "sshd + virtdeckd --stdio relay"]
                    rows += describe(f"{label}, {size[0]}x{size[1]}", result, names)
            async with await SerialConsole.connect(serial) as console:
                await console.send("sh touch /tmp/stop")
                await console.wait_for("VIRTDECK-DONE", timeout=10)
            await asyncio.sleep(0.5)
            for label, uri in uris:
                answers, calls = await key_latency(uri, serial, args.keys)
                from bench.common import pct

                p50 = statistics.median(answers)
                rows.append(
                    f"| {label}: key → guest (Enter → its answer on the serial line), p50 / "
                    f"p90 | {p50:.1f} / {pct(answers, 0.9):.1f} ms ({len(answers)} keys) | "
                    f"< 20 ms | {'pass' if p50 < 20 else 'FAIL'} |"
                )
                rows.append(
                    f"| {label}: send_input round trip (keys in QEMU), p50 | "
                    f"{statistics.median(calls):.2f} ms | report | |"
                )
            await (await conn.lookup("vdbench-screen")).destroy()
    finally:
        if sshd is not None:
            sshd.stop()
        daemon.close()
    print("\n| metric | value | target | met? |")
    print("|---|---|---|---|")
    for row in rows:
        print(row)


def _qemu_pids(root: Path) -> list[int]:
    from bench.common import pids_mentioning

    return [p for p in pids_mentioning(str(root)) if "qemu" in Path(f"/proc/{p}/comm").read_text()]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        uri, domain, seconds, out = sys.argv[2:6]
        sys.exit(child(uri, domain, float(seconds), Path(out)))
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keys", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="4 s per run, 10 keys")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.keys = 4.0, 10
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
