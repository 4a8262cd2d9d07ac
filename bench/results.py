"""The figures every benchmark hands to ``python -m bench``: typed rows, one table, JSON.

A benchmark module measures and returns a :class:`Report`; it never formats the harness's
table itself. A :class:`Row` holds the samples' summary (:class:`Figure`) of both sides, so
the ratio and the verdict are computed in one place, the same way for every metric.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.common import pct


@dataclass(frozen=True)
class Figure:
    """The summary of one side's samples of one metric."""

    median: float
    p99: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Figure | None:
        """Median and p99 (nearest rank) of ``samples``; None when there are none."""
        if not samples:
            return None
        return cls(statistics.median(samples), pct(samples, 0.99), len(samples))

    @classmethod
    def single(cls, value: float | None) -> Figure | None:
        """A metric measured once (an RSS, a CPU share): median and p99 are that value."""
        return None if value is None else cls(value, value, 1)


@dataclass(frozen=True)
class Row:
    """One metric: virtdeck's figure, the peer's (if measured), the target and its verdict."""

    metric: str
    unit: str
    ours: Figure | None
    peer: Figure | None = None
    #: who the peer is ("virsh", "raw QMP", "virtui-manager (published)"...).
    peer_name: str = ""
    target: str = ""
    #: None: nothing to judge (a figure reported for reference).
    passed: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.peer is None or not self.peer.median:
            return None
        return self.ours.median / self.peer.median


@dataclass(frozen=True)
class ScalePoint:
    """The scaling table's line for one domain count (test driver behind a real daemon)."""

    domains: int
    #: daemon spawned → the first ``list_summaries()`` through it returned every domain, ms.
    start_to_list: float
    #: the CPU time the daemon had used by then (user + system), ms: what a loaded machine
    #: changes least.
    start_cpu: float
    #: ``virtdeck list --all`` (a fresh process) against the running daemon, ms.
    list_cli: Figure
    #: the CPU time of those processes, ms.
    list_cpu: Figure
    #: the daemon's VmRSS once the list was served, KiB.
    rss_kib: float
    #: API suspend/resume issued → its lifecycle event on that client's event stream, ms.
    event: Figure


@dataclass
class Report:
    """What one benchmark module measured."""

    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scaling: list[ScalePoint] = field(default_factory=list)
    #: set when the benchmark could not run at all (the reason).
    failed: str | None = None

    def add(self, row: Row) -> None:
        self.rows.append(row)


# --- printing -------------------------------------------------------------------------------


def _number(value: float, unit: str) -> str:
    if unit == "KiB":
        return f"{value:.0f} KiB" if abs(value) < 1024 else f"{value / 1024:.1f} MiB"
    if unit in ("ms", "s", "%", "MiB", "MiB/s"):
        digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
        return f"{value:.{digits}f} {unit}"
    return f"{value:g} {unit}".rstrip()


def figure_cell(fig: Figure | None, unit: str, name: str = "") -> str:
    if fig is None:
        return "-"
    text = _number(fig.median, unit)
    if fig.n > 1:
        text += f" / {_number(fig.p99, unit)}"
    if name:
        text = f"{name}: {text}"
    return text


def verdict(passed: bool | None) -> str:
    return "-" if passed is None else ("pass" if passed else "FAIL")


def markdown(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table, columns padded so it also reads as plain text."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return out


def main_table(reports: Sequence[Report]) -> list[str]:
    head = [
        "metric",
        "virtdeck median / p99",
        "peer median / p99",
        "ratio",
        "target",
        "pass/fail",
    ]
    body: list[list[str]] = []
    for report in reports:
        if report.failed is not None:
            body.append([f"{report.name}: not measured", report.failed, "-", "-", "-", "FAIL"])
        for row in report.rows:
            ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
            body.append(
                [
                    f"{report.name}: {row.metric}",
                    figure_cell(row.ours, row.unit),
                    figure_cell(row.peer, row.unit, row.peer_name),
                    ratio,
                    row.target or "-",
                    verdict(row.passed),
                ]
            )
    return markdown(head, body)


def scaling_table(points: Sequence[ScalePoint]) -> list[str]:
    """Each count's figures, and what each step up in domains cost per domain (the marginal
    cost, taken from the CPU times, which a loaded machine disturbs least): flat from line to
    line is linear, growing with the count is super-linear."""
    if not points:
        return []
    head = [
        "domains",
        "daemon start → full list (its CPU)",
        "+CPU ms per 100 more",
        "list --all (CLI) median / p99 (CPU)",
        "+CPU ms per 100 more",
        "daemon RSS",
        "+KiB per domain",
        "event latency median / p99",
    ]
    body = []
    previous: ScalePoint | None = None
    for point in points:
        steps = ["-", "-", "-"]
        if previous is not None:
            more = point.domains - previous.domains
            steps = [
                f"{100 * (point.start_cpu - previous.start_cpu) / more:+.1f}",
                f"{100 * (point.list_cpu.median - previous.list_cpu.median) / more:+.1f}",
                f"{(point.rss_kib - previous.rss_kib) / more:+.1f}",
            ]
        body.append(
            [
                str(point.domains),
                f"{_number(point.start_to_list, 'ms')} ({_number(point.start_cpu, 'ms')})",
                steps[0],
                f"{figure_cell(point.list_cli, 'ms')} ({_number(point.list_cpu.median, 'ms')})",
                steps[1],
                _number(point.rss_kib, "KiB"),
                steps[2],
                figure_cell(point.event, "ms"),
            ]
        )
        previous = point
    return markdown(head, body)


# --- the machine ------------------------------------------------------------------------------


def _first_line(argv: Sequence[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    return lines[0] if lines else None


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    qemu = _first_line(["qemu-system-x86_64", "--version"])
    found = re.search(r"version (\S+)", qemu or "")
    libvirt = _first_line(["libvirtd", "--version"])
    return {
        "cores": os.cpu_count(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "qemu": found.group(1) if found else "not installed",
        "libvirt": (libvirt or "not installed").split()[-1],
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }


def machine_line(facts: dict[str, Any]) -> str:
    load = " ".join(f"{x:.2f}" for x in facts["load"])
    return (
        f"machine: {facts['cores']} cores, load {load}; QEMU {facts['qemu']} (TCG); "
        f"libvirt {facts['libvirt']}; python {facts['python']}; kernel {facts['kernel']}"
    )


def to_json(facts: dict[str, Any], reports: Sequence[Report], quick: bool) -> str:
    def rows(report: Report) -> list[dict[str, Any]]:
        return [{**asdict(row), "ratio": row.ratio} for row in report.rows]

    return json.dumps(
        {
            "machine": facts,
            "quick": quick,
            "benchmarks": [
                {
                    "name": r.name,
                    "failed": r.failed,
                    "rows": rows(r),
                    "notes": r.notes,
                    "scaling": [asdict(p) for p in r.scaling],
                }
                for r in reports
            ],
        },
        indent=2,
    )
