"""Every benchmark in one run, one Markdown table: ``python -m bench``.

    python -m bench [--quick] [--only NAME[,NAME...]] [--json FILE]

Runs the benchmarks one after another (their own progress lines first), then prints the
machine, one table (metric, virtdeck median / p99, peer median / p99, ratio, target,
pass/fail) and the scaling table. The peer is libvirtd + virsh on this machine, brought up
by each benchmark through bench/libvirt_peer.py (it waits on a machine-wide lock while
another run owns libvirtd) and measured alternately with virtdeck in the same run. A
benchmark that fails is reported as failed and the others still run. ``--quick`` runs
every benchmark shorter (fewer runs, which each benchmark's notes say); ``--json FILE``
also writes every row and the machine as JSON.

Benchmarks, in the order they run: {names}.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from bench.results import Report, machine, machine_line, main_table, scaling_table, to_json


def _core(quick: bool) -> Report:
    from bench import core

    return core.collect(quick)


def _daemon(quick: bool) -> Report:
    from bench import daemon

    return daemon.collect(quick)


def _oneshot(quick: bool) -> Report:
    from bench import oneshot

    return oneshot.collect(quick)


def _scaling(quick: bool) -> Report:
    from bench import scaling

    return scaling.collect(quick)


def _tui(quick: bool) -> Report:
    from bench import tui_startup

    return tui_startup.collect(quick)


def _migration(quick: bool) -> Report:
    from bench import migration

    return migration.collect(quick)


def _console(quick: bool) -> Report:
    from bench import console_stats

    return console_stats.collect(quick)


BENCHMARKS: dict[str, tuple[str, Callable[[bool], Report]]] = {
    "core": ("QMP event → API event; start() of a diskless domain (bench.core)", _core),
    "oneshot": ("one-shot CLI list/domstate/start at 1 and 10 domains (bench.oneshot)", _oneshot),
    "daemon": ("event → CLI line, CLI start, list at 10/100/500, RSS (bench.daemon)", _daemon),
    "scaling": ("10 → 1000 domains behind a test-driver daemon (bench.scaling)", _scaling),
    "console": ("console round trip, stats cost (bench.console_stats)", _console),
    "tui": ("TUI cold start, RSS, idle CPU, event storm (bench.tui_startup)", _tui),
    "migration": ("live migration vs raw QMP and libvirt (bench.migration)", _migration),
}
__doc__ = (__doc__ or "").format(names=", ".join(BENCHMARKS))


def selected(only: str | None) -> list[str]:
    if not only:
        return list(BENCHMARKS)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise SystemExit(
            f"error: no benchmark called {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    return names


def run_one(name: str, quick: bool) -> Report:
    """One benchmark; its failure becomes a failed report. Each benchmark may set up its
    own environment (XDG directories, PYTHONPATH): it is restored afterwards."""
    title, collect = BENCHMARKS[name]
    print(f"\n=== {name}: {title}{' (quick)' if quick else ''}", flush=True)
    saved = dict(os.environ)
    t0 = time.monotonic()
    try:
        report = collect(quick)
    except Exception as err:
        traceback.print_exc()
        report = Report(name, failed=f"{type(err).__name__}: {err}")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    print(f"=== {name}: done in {time.monotonic() - t0:.1f} s", flush=True)
    return report


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a short run of each benchmark")
    parser.add_argument("--only", metavar="NAME[,NAME]", help="just these benchmarks")
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write JSON here")
    args = parser.parse_args(argv)
    names = selected(args.only)
    signal.signal(signal.SIGTERM, _sigterm)
    before = machine()
    t0 = time.monotonic()
    reports = [run_one(name, args.quick) for name in names]
    facts = machine()
    facts["load_before"] = before["load"]
    facts["seconds"] = round(time.monotonic() - t0, 1)
    print(f"\n## virtdeck benchmarks{' (--quick)' if args.quick else ''}\n")
    print(machine_line(facts) + f" (load at the start {' '.join(map(str, before['load']))})")
    if any(report.rows or report.failed for report in reports):
        print()
        for line in main_table(reports):
            print(line)
    scaling = [point for report in reports for point in report.scaling]
    if scaling:
        print("\n### Scaling: test driver behind a real daemon\n")
        for line in scaling_table(scaling):
            print(line)
    notes = [note for report in reports for note in report.notes]
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
    if args.json is not None:
        args.json.write_text(to_json(facts, reports, args.quick) + "\n")
        print(f"\nJSON written to {args.json}")
    failed = [r.name for r in reports if r.failed is not None]
    missed = sum(1 for r in reports for row in r.rows if row.passed is False)
    print(
        f"\n{len(reports)} benchmarks, {len(failed)} failed to run"
        + (f" ({', '.join(failed)})" if failed else "")
        + f", {missed} targets missed"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
