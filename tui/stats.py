"""Statistics as the screens show them: a second-by-second history of each running domain
and each host over the last five minutes, and the texts of the table's cells, made once per
sample (so that drawing a row costs nothing more than before).

The figures come from ``Connection.stats_stream`` samples (rates are computed by the
drivers; nothing is derived here but the shape of the history). This module imports no
Textual.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from drivers.model import DomainStats, HostStats

#: Seconds of history kept per figure (the details screen's longest chart).
HISTORY_SECONDS = 300
#: Seconds a table sparkline spans, and how many characters it has.
SPARK_SECONDS = 60
SPARK_WIDTH = 8
BLOCKS = "▁▂▃▄▅▆▇█"

#: The smallest top of a CPU sparkline (percent): an idle guest's noise stays low.
CPU_FLOOR = 20.0
#: The smallest top of a disk or network sparkline (bytes/s).
RATE_FLOOR = 64 * 1024.0

NONE = float("inf")
"""The sort value of a figure that is not there (rows without figures sort last)."""

Cell = tuple[str, float]
"""A figure's cell: its text and how it sorts (busiest first)."""

NO_CELLS: tuple[Cell, ...] = (("", NONE),) * 8
"""The eight stats cells of a row that has no figures (value, sparkline; CPU, memory,
disk, network)."""


class Series:
    """One figure, one value per second for the last HISTORY_SECONDS seconds; None where
    nothing was sampled (the domain did not run)."""

    __slots__ = ("last", "values")

    def __init__(self) -> None:
        self.values: deque[float | None] = deque(maxlen=HISTORY_SECONDS)
        self.last: int | None = None
        """The second of the newest value."""

    def add(self, second: int, value: float | None) -> None:
        """The value at ``second`` (Unix time): a sample in the same second replaces the
        last one (a frozen clock, or a sample that came early); an older one is ignored."""
        last = self.last
        if last is not None and second <= last:
            if second == last and self.values:
                self.values[-1] = value
            return
        if last is not None and second > last + 1:
            self.values.extend([None] * min(second - last - 1, HISTORY_SECONDS))
        self.values.append(value)
        self.last = second

    def tail(self, seconds: int) -> list[float | None]:
        """The last ``seconds`` values, oldest first, padded with None at the start."""
        values = self.values
        if len(values) >= seconds:
            return list(values)[-seconds:]
        return [None] * (seconds - len(values)) + list(values)

    @property
    def latest(self) -> float | None:
        return self.values[-1] if self.values else None


def sparkline(values: Sequence[float | None], width: int, top: float) -> str:
    """``values`` drawn in ``width`` block characters (each the highest of its share of
    the values), scaled so that ``top`` is a full block; a space where there is none."""
    count = len(values)
    if count == 0 or width <= 0:
        return " " * max(0, width)
    chars: list[str] = []
    for i in range(width):
        chunk = [v for v in values[i * count // width : (i + 1) * count // width] if v is not None]
        if not chunk:
            chars.append(" ")
            continue
        level = int(max(chunk) / top * 8) if top > 0 else 0
        chars.append(BLOCKS[max(0, min(7, level))])
    return "".join(chars)


def window_top(values: Sequence[float | None], floor: float) -> float:
    return max([floor, *(v for v in values if v is not None)])


def percent_text(value: float) -> str:
    """``0.4%``, ``12%``, ``340%``."""
    return f"{value:.1f}%" if value < 9.95 else f"{value:.0f}%"


def size_text(value: float) -> str:
    """Bytes in at most five characters: ``512B``, ``9.5K``, ``12M``, ``1.5G``."""
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1000 or unit == "T":
            if unit == "B":
                return f"{value:.0f}B"
            return f"{value:.1f}{unit}" if value < 9.95 else f"{value:.0f}{unit}"
        value /= 1024
    return f"{value:.0f}T"  # pragma: no cover - the loop always returns


def rate_text(value: float) -> str:
    """Bytes per second, as :func:`size_text` with ``/s`` (``1.2M/s``)."""
    return size_text(value) + "/s"


class DomainFigures:
    """A running domain's figures: the latest sample, the history, the table's cells."""

    __slots__ = ("cells", "cpu", "disk", "latest", "net", "rss")

    def __init__(self) -> None:
        self.latest: DomainStats | None = None
        """The newest sample; None once the domain stopped being sampled."""
        self.cpu = Series()
        self.rss = Series()
        self.disk = Series()
        """Bytes read and written per second."""
        self.net = Series()
        """Bytes received and sent per second."""
        self.cells: tuple[Cell, ...] = NO_CELLS

    def update(self, stats: DomainStats, memory_kib: int | None) -> None:
        second = int(stats.wall)
        disk = stats.block_rd_rate + stats.block_wr_rate
        net = stats.net_rx_rate + stats.net_tx_rate
        self.latest = stats
        self.cpu.add(second, stats.cpu_percent)
        self.rss.add(second, float(stats.rss_bytes))
        self.disk.add(second, disk)
        self.net.add(second, net)
        cpu = self.cpu.tail(SPARK_SECONDS)
        rss = self.rss.tail(SPARK_SECONDS)
        disk_tail = self.disk.tail(SPARK_SECONDS)
        net_tail = self.net.tail(SPARK_SECONDS)
        memory = float(memory_kib * 1024) if memory_kib else window_top(rss, 1.0)
        self.cells = (
            (percent_text(stats.cpu_percent), -stats.cpu_percent),
            (sparkline(cpu, SPARK_WIDTH, window_top(cpu, CPU_FLOOR)), -stats.cpu_percent),
            (size_text(stats.rss_bytes), -float(stats.rss_bytes)),
            (sparkline(rss, SPARK_WIDTH, max(memory, window_top(rss, 1.0))), -stats.rss_bytes),
            (size_text(disk), -disk),
            (sparkline(disk_tail, SPARK_WIDTH, window_top(disk_tail, RATE_FLOOR)), -disk),
            (size_text(net), -net),
            (sparkline(net_tail, SPARK_WIDTH, window_top(net_tail, RATE_FLOOR)), -net),
        )

    def stopped(self, second: int) -> None:
        """The domain was not in a sample: it stopped (its history stays)."""
        self.latest = None
        for series in (self.cpu, self.rss, self.disk, self.net):
            series.add(second, None)
        self.cells = NO_CELLS


class HostFigures:
    """A host's own load: the latest sample and its history."""

    __slots__ = ("cpu", "latest", "memory")

    def __init__(self) -> None:
        self.latest: HostStats | None = None
        self.cpu = Series()
        self.memory = Series()
        """Bytes in use."""

    def update(self, stats: HostStats) -> None:
        second = int(stats.wall)
        self.latest = stats
        self.cpu.add(second, stats.cpu_percent)
        self.memory.add(second, float(stats.memory_used))

    def summary(self) -> str:
        """``cpu 12% · mem 3.1G/16G`` for the host strip."""
        stats = self.latest
        if stats is None:
            return ""
        used, total = stats.memory_used, stats.memory_total
        return f"cpu {percent_text(stats.cpu_percent)} · mem {size_text(used)}/{size_text(total)}"


def nice_top(value: float) -> float:
    """A round number at or above ``value`` for a chart's scale: 1, 2, 2.5 or 5 times a
    power of ten."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10**exponent
        if top >= value:
            return float(top)
    return float(10 ** (exponent + 1))  # pragma: no cover


def nice_bytes(value: float) -> float:
    """:func:`nice_top` in the binary unit of ``value`` (20 MiB rather than 19.07 MiB)."""
    unit = 1.0
    while value >= 1000 * unit and unit < 1 << 40:
        unit *= 1024
    return nice_top(value / unit) * unit


__all__ = [
    "BLOCKS",
    "HISTORY_SECONDS",
    "NONE",
    "NO_CELLS",
    "SPARK_SECONDS",
    "SPARK_WIDTH",
    "DomainFigures",
    "HostFigures",
    "Series",
    "nice_bytes",
    "nice_top",
    "percent_text",
    "rate_text",
    "size_text",
    "sparkline",
]
