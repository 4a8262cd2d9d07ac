"""The exact text virsh prints: vshTable tables, dominfo fields and event lines."""

from __future__ import annotations

import time
from collections.abc import Sequence

from drivers.model import (
    BalloonChangeEvent,
    ControlErrorEvent,
    DomainEvent,
    IOErrorEvent,
    LifecycleEvent,
    PMEvent,
    RebootEvent,
    RTCChangeEvent,
    WatchdogEvent,
)
from tui.text import display_width, inert


def field(value: str) -> str:
    """A value that others chose, made safe to print inside one line."""
    return inert(value, one_line=True)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, with_header: bool) -> str:
    """virsh's vshTable: one leading space per cell, two spaces between columns, a dash rule.

    Cells are escaped before they are measured, as virsh does, so a control character
    shows as ``\\xNN`` and the columns still line up.
    """
    cells = [[field(cell) for cell in row] for row in (header, *rows)]
    widths = [[display_width(cell) for cell in row] for row in cells]
    # Without the header (--quiet), virsh sizes the columns by the rows alone.
    measured = widths if with_header else widths[1:]
    columns = [max((row[i] for row in measured), default=0) for i in range(len(header))]
    lines = []
    for row, row_widths in zip(cells, widths, strict=True):
        line = ""
        for i, cell in enumerate(row):
            line += f" {cell}"
            if i < len(row) - 1:
                line += " " * (columns[i] - row_widths[i] + 2)
        lines.append(line + "\n")
    rule = "-" * sum(width + 3 for width in columns) + "\n"
    if not with_header:
        return "".join(lines[1:])
    return lines[0] + rule + "".join(lines[1:])


def info_line(label: str, value: str) -> str:
    """One ``dominfo`` line: the label padded to 15 columns, as virsh's ``%-15s %s``."""
    return f"{label:<15} {value}\n"


def cpu_seconds(ns: int) -> str:
    return f"{ns / 1e9:.1f}s"


def timestamp(wall: float) -> str:
    """virsh's ``--timestamp`` prefix: UTC with milliseconds, ``2024-05-01 10:00:00.123+0000``."""
    seconds = int(wall)
    millis = int((wall - seconds) * 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}+0000"


#: Every event name ``virsh event --list`` prints (libvirt 9.x), in libvirt's order.
EVENT_NAMES = (
    "lifecycle",
    "reboot",
    "rtc-change",
    "watchdog",
    "io-error",
    "graphics",
    "io-error-reason",
    "control-error",
    "block-job",
    "disk-change",
    "tray-change",
    "pm-wakeup",
    "pm-suspend",
    "balloon-change",
    "pm-suspend-disk",
    "device-removed",
    "block-job-2",
    "tunable",
    "agent-lifecycle",
    "device-added",
    "migration-iteration",
    "job-completed",
    "device-removal-failed",
    "metadata-change",
    "block-threshold",
    "memory-failure",
    "memory-device-size-change",
)

_WATCHDOG_ACTIONS = ("none", "pause", "reset", "poweroff", "shutdown", "debug", "inject-nmi")
# QEMU's BLOCK_IO_ERROR actions in the words libvirt's io-error event uses.
_IO_ACTIONS = {"ignore": "none", "stop": "pause", "report": "report"}
_PM_EVENTS = {"suspend": "pm-suspend", "suspend-disk": "pm-suspend-disk", "wakeup": "pm-wakeup"}


def event_lines(event: DomainEvent) -> list[tuple[str, str]]:
    """``(virsh event name, line)`` for each line virsh prints for ``event``.

    Most events give one line; an I/O error gives two, because libvirt raises both its
    ``io-error`` and ``io-error-reason`` events for it.
    """
    head = f"for domain '{field(event.domain)}'"
    if isinstance(event, LifecycleEvent):
        return [("lifecycle", f"event 'lifecycle' {head}: {event.words}\n")]
    if isinstance(event, RebootEvent):
        return [("reboot", f"event 'reboot' {head}\n")]
    if isinstance(event, RTCChangeEvent):
        return [("rtc-change", f"event 'rtc-change' {head}: {event.offset}\n")]
    if isinstance(event, WatchdogEvent):
        action = event.action if event.action in _WATCHDOG_ACTIONS else "unknown"
        return [("watchdog", f"event 'watchdog' {head}: {action}\n")]
    if isinstance(event, IOErrorEvent):
        action = _IO_ACTIONS.get(event.action, "unknown")
        # libvirt names the disk's source path, then its alias; the event carries only the
        # device QEMU reported, and libvirt itself prints an empty path when it has none.
        where = f"{head}:  ({field(event.device)}) {action}"
        return [
            ("io-error", f"event 'io-error' {where}\n"),
            ("io-error-reason", f"event 'io-error' {where} due to {field(event.reason)}\n"),
        ]
    if isinstance(event, PMEvent):
        name = _PM_EVENTS.get(event.phase)
        return [(name, f"event '{name}' {head}\n")] if name else []
    if isinstance(event, BalloonChangeEvent):
        return [("balloon-change", f"event 'balloon-change' {head}: {event.actual_kib}KiB\n")]
    if isinstance(event, ControlErrorEvent):
        return [("control-error", f"event 'control-error' {head}\n")]
    return []
