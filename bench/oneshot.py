"""One-shot CLI commands where most users are: a handful of domains, one command at a time.

    python -m bench.oneshot [--runs N] [--counts 1,10] [--no-peer] [--venv DIR]

virtdeck is measured the way users install it: ``pip install .`` (not editable) into a
fresh virtual environment that this bench creates from the dev interpreter, and the
``virtdeck`` console script pip wrote there. The environment is kept under /tmp, named
after the checkout and a hash of its sources, and rebuilt (the old one removed) when they
change; ``--venv DIR`` uses another.
A session daemon in private XDG directories is started by the first command, as a user's
first command does; libvirtd comes up through bench/libvirt_peer.py.

With 1 and then 10 diskless domains defined on both sides, each run times, a fresh process
each, alternating ours and virsh: ``list --all``, ``domstate NAME`` and ``start NAME`` of
the same shut-off domain (destroyed again, untimed, after each start). Whole-process wall
time, spawn → exit; the CPU time (user + system) of the same processes is reported too, as
it suffers less from a shared machine.
Floors printed for reference: the venv's ``python -I -S -c pass``, ``python -c pass``,
and what the console script itself imports before virtdeck (``import re``); and where the
imports' time goes (``python -X importtime``, the minimum of the runs per module).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import DISKLESS, pids_mentioning, terminate
from bench.libvirt_peer import LibvirtPeer, PeerUnavailable
from bench.results import Figure, Report, Row

REPO = Path(__file__).resolve().parent.parent
SESSION = "qemu:///session"
TARGET = 1.5
SOURCES = ("drivers", "tui", "themes")


# --- the installed virtdeck -------------------------------------------------------------------


def source_hash() -> str:
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    for top in SOURCES:
        for path in sorted((REPO / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def installed_venv(directory: Path | None = None) -> Path:
    """A venv with ``pip install .`` of this checkout; built if it is not there yet."""
    if directory is None:
        # one name per checkout and sources: a run of another checkout keeps its own venv
        checkout = hashlib.sha256(str(REPO).encode()).hexdigest()[:6]
        directory = Path(tempfile.gettempdir()) / f"vdbench-venv-{checkout}-{source_hash()}"
        for stale in directory.parent.glob(f"vdbench-venv-{checkout}-*"):
            if stale != directory:
                shutil.rmtree(stale, ignore_errors=True)
    if (directory / "bin" / "virtdeck").exists():
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    t0 = time.monotonic()
    build = Path(tempfile.mkdtemp(prefix="vdbench-build-", dir="/tmp"))
    try:
        # pip builds from a copy: the checkout's own build/ and egg-info stay untouched
        shutil.copytree(
            REPO, build / "src", ignore=shutil.ignore_patterns(".git", "__pycache__", ".venv")
        )
        subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
        subprocess.run(
            [
                str(directory / "bin" / "pip"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                str(build / "src"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    print(f"  built {directory} (pip install ., not editable) in {time.monotonic() - t0:.1f} s")
    return directory


# --- timing one process ------------------------------------------------------------------------


def run_timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall ms, CPU ms, stdout) of one process; raises if it fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = (time.perf_counter() - t0) * 1000
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {err.read().decode().strip()}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000, text


class Samples:
    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def add(self, measured: tuple[float, float, str]) -> str:
        self.wall.append(measured[0])
        self.cpu.append(measured[1])
        return measured[2]


# --- the two sides ---------------------------------------------------------------------------


class Session:
    """The installed ``virtdeck`` against a session daemon in private XDG directories."""

    def __init__(self, venv: Path) -> None:
        self.venv = venv
        self.root = Path(tempfile.mkdtemp(prefix="vdbench-oneshot-", dir="/tmp"))
        runtime = self.root / "run"
        runtime.mkdir(mode=0o700)
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PYTHON", "VIRTDECK"))
        }
        self.env.update(
            XDG_RUNTIME_DIR=str(runtime),
            XDG_DATA_HOME=str(self.root / "data"),
            XDG_CONFIG_HOME=str(self.root / "config"),
            XDG_CACHE_HOME=str(self.root / "cache"),
        )
        self.pidfile = runtime / "virtdeck" / "virtdeckd.pid"

    def argv(self, *words: str) -> list[str]:
        return [str(self.venv / "bin" / "virtdeck"), *words]

    def run(self, *words: str) -> tuple[float, float, str]:
        return run_timed(self.argv(*words), self.env)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            terminate(int(self.pidfile.read_text().split()[0]), "virtdeckd")
        for pid in pids_mentioning(str(self.root)):
            terminate(pid, "")
        shutil.rmtree(self.root, ignore_errors=True)


def floors(session: Session, runs: int) -> dict[str, float]:
    python = str(session.venv / "bin" / "python")
    probes = {
        "python -I -S -c pass": [python, "-I", "-S", "-c", "pass"],
        "python -c pass (the venv's site)": [python, "-c", "pass"],
        "python -c 'import re' (the console script's own import)": [python, "-c", "import re"],
    }
    out = {}
    for label, argv in probes.items():
        got = Samples()
        for _ in range(runs):
            got.add(run_timed(argv, session.env))
        fig = Figure.of(got.wall)
        assert fig is not None
        out[label] = fig.median
    return out


def import_profile(session: Session, runs: int) -> dict[str, tuple[float, float]]:
    """``python -X importtime`` of ``virtdeck list --all``: {module: (self, cumulative)} in
    ms, each the minimum over ``runs`` (the least disturbed by other load)."""
    argv = [
        str(session.venv / "bin" / "python"),
        "-X",
        "importtime",
        *session.argv("list", "--all"),
    ]
    best: dict[str, tuple[float, float]] = {}
    for _ in range(runs):
        done = subprocess.run(argv, capture_output=True, text=True, env=session.env, check=True)
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            own, cumulative, name = line[len("import time:") :].split("|")
            key = name.strip()
            figures = (int(own) / 1000, int(cumulative) / 1000)
            old = best.get(key)
            best[key] = (
                figures if old is None else (min(old[0], figures[0]), min(old[1], figures[1]))
            )
    return best


def describe_imports(profile: dict[str, tuple[float, float]]) -> str:
    def group(name: str) -> str:
        top = name.split(".")[0]
        return top if top in ("drivers", "tui") else "standard library"

    sums: dict[str, float] = {}
    for name, (own, _) in profile.items():
        sums[group(name)] = sums.get(group(name), 0.0) + own
    largest = sorted(profile.items(), key=lambda item: -item[1][0])[:12]
    return (
        f"{len(profile)} modules, {sum(sums.values()):.1f} ms ("
        + ", ".join(f"{key} {value:.1f}" for key, value in sorted(sums.items()))
        + "); largest (self ms): "
        + ", ".join(f"{name} {own:.2f}" for name, (own, _) in largest)
    )


def measure(
    session: Session, peer: LibvirtPeer | None, counts: Sequence[int], runs: int
) -> dict[tuple[str, int], tuple[Samples, Samples]]:
    """{(command, domains): (ours, virsh)}; ours and virsh alternate within each run."""
    found: dict[tuple[str, int], tuple[Samples, Samples]] = {}
    defined: list[str] = []
    target = "vdbench-o00"
    steps = {
        "list --all": ("list", "--all"),
        "domstate": ("domstate", target),
        "start": ("start", target),
    }
    for count in sorted(counts):
        new = [f"vdbench-o{i:02d}" for i in range(len(defined), count)]
        for name in new:
            path = session.root / f"{name}.xml"
            path.write_text(DISKLESS.format(name=name))
            session.run("define", str(path))
        if peer is not None:
            peer.define_many({name: DISKLESS.format(name=name) for name in new})
        defined += new
        for label in steps:
            found[(label, count)] = (Samples(), Samples())
        for i in range(runs + 1):  # the first round is not counted (warms the caches)
            for label, words in steps.items():
                ours, theirs = found[(label, count)]
                measured = session.run(*words)
                if i:
                    ours.add(measured)
                if words[0] == "start":
                    session.run("destroy", target)
                if peer is None:
                    continue
                measured = run_timed(peer.virsh_argv(*words), dict(os.environ))
                if i:
                    theirs.add(measured)
                if words[0] == "start":
                    peer.virsh("destroy", target)
    return found


def collect(
    quick: bool = False,
    runs: int | None = None,
    counts: Sequence[int] = (1, 10),
    no_peer: bool = False,
    venv: Path | None = None,
) -> Report:
    runs = runs or (5 if quick else 9)
    report = Report("one-shot CLI")
    installed = installed_venv(venv)
    session = Session(installed)
    try:
        with contextlib.ExitStack() as stack:
            peer: LibvirtPeer | None = None
            if no_peer:
                report.notes.append("one-shot CLI: libvirt peer left out (--no-peer)")
            else:
                try:
                    peer = stack.enter_context(LibvirtPeer())
                except PeerUnavailable as err:
                    report.notes.append(f"one-shot CLI: libvirtd could not be brought up: {err}")
            t0 = time.perf_counter()
            session.run("list", "--all")
            report.notes.append(
                f"one-shot CLI: the first command started the session daemon in "
                f"{(time.perf_counter() - t0) * 1000:.0f} ms"
            )
            floor = floors(session, runs)
            imports = describe_imports(import_profile(session, runs))
            found = measure(session, peer, counts, runs)
    finally:
        session.close()
    for (label, count), (ours, theirs) in found.items():
        metric = f"{label}, {count} defined"
        ours_fig = Figure.of(ours.wall)
        peer_fig = Figure.of(theirs.wall)
        ratio = None if ours_fig is None or peer_fig is None else ours_fig.median / peer_fig.median
        report.add(
            Row(
                f"virtdeck {metric}",
                "ms",
                ours_fig,
                peer_fig,
                "virsh",
                f"≤ {TARGET}x virsh",
                None if ratio is None else ratio <= TARGET,
            )
        )
        report.add(
            Row(
                f"  CPU time of the same processes ({label.split()[0]}, {count})",
                "ms",
                Figure.of(ours.cpu),
                Figure.of(theirs.cpu),
                "virsh",
            )
        )
    report.notes.append(
        f"one-shot CLI: python -X importtime of virtdeck list --all, minimum of {runs} runs: "
        + imports
    )
    report.notes.append(
        "one-shot CLI floors (median wall ms): "
        + "; ".join(f"{label} {value:.1f}" for label, value in floor.items())
    )
    report.notes.append(
        f"one-shot CLI: {runs} runs per command, alternating virtdeck and virsh"
        + (" (quick: fewer than the 9 of a full run)" if quick else "")
        + f"; virtdeck installed with pip install . into {installed}"
    )
    return report


def main() -> None:
    from bench.results import main_table

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=None, help="counted runs (9)")
    parser.add_argument("--quick", action="store_true", help="5 runs")
    parser.add_argument(
        "--counts", type=lambda text: [int(x) for x in text.split(",")], default=[1, 10]
    )
    parser.add_argument("--no-peer", action="store_true", help="leave libvirtd out")
    parser.add_argument("--venv", type=Path, default=None, help="install into / reuse DIR")
    args = parser.parse_args()
    report = collect(args.quick, args.runs, args.counts, args.no_peer, args.venv)
    for line in main_table([report]):
        print(line)
    for note in report.notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
