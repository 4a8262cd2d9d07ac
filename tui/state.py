"""What the app knows about hosts and domains, changed only by the app's message handlers.

:class:`DomainStore` is keyed by ``(host, uuid)``. A host's rows are replaced by the
:class:`~drivers.reconnect.Snapshot` taken after every (re)connect and then updated in place
by lifecycle events: the new state is derived from the event (libvirt's event → state
mapping), never from a poll or from an action that "should" have worked. When a host's link
is lost its rows stay but read as ``lost``; the next snapshot replaces them.

Each ``apply_*`` method returns a :class:`Changes` that the screens use to touch only the
rows that changed. This module imports no Textual.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from drivers.model import (
    CrashedReason,
    DomainEvent,
    DomainState,
    DomainSummary,
    Event,
    EventType,
    JobProgressEvent,
    LifecycleEvent,
    NostateReason,
    PausedReason,
    PMSuspendedReason,
    RebootEvent,
    ResumedDetail,
    RunningReason,
    ShutdownReason,
    ShutoffReason,
    StartedDetail,
    StateReason,
    StatsSample,
    StoppedDetail,
    SuspendedDetail,
    state_words,
)
from drivers.reconnect import LinkState, LinkStatus, Snapshot
from drivers.records import record
from tui.config import HostConfig
from tui.stats import DomainFigures, HostFigures

#: How many events each domain's history keeps.
HISTORY = 200

Key = tuple[str, str]


class Clock(Protocol):
    """Where the app reads the time (tests and screenshots pass a frozen one)."""

    def wall(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


@record
class FrozenClock:
    """A clock that stands still (snapshot tests, screenshots)."""

    at_wall: float = 1_800_000_000.0
    at_monotonic: float = 1_000.0

    def wall(self) -> float:
        return self.at_wall

    def monotonic(self) -> float:
        return self.at_monotonic


@record
class HistoryItem:
    wall: float
    text: str


@dataclass(slots=True, eq=False)
class DomainRow:
    """One domain as the table shows it."""

    host: str
    uuid: str
    name: str
    state: DomainState
    reason: StateReason
    persistent: bool = True
    title: str = ""
    vcpus: int | None = None
    memory_kib: int | None = None
    started: float | None = None
    """Wall time it started; when only a snapshot said it runs, the snapshot's time."""
    started_exact: bool = False
    log: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    """The event history as (wall time, text): plain tuples of a float and a string, which
    the garbage collector stops tracking, so that a long history costs its collections
    nothing (HISTORY items for each of thousands of domains would)."""
    figures: DomainFigures | None = None
    """Its statistics, once its host sampled it (hosts with the 'stats' capability)."""
    ip: str = ""
    """Its IP address while it runs, as the last round of tui.addresses found it."""

    @property
    def key(self) -> Key:
        return (self.host, self.uuid)

    @property
    def history(self) -> list[HistoryItem]:
        """The event history, oldest first."""
        return [HistoryItem(wall, text) for wall, text in self.log]

    @property
    def words(self) -> str:
        return state_words(self.state, self.reason)


@dataclass(slots=True)
class HostState:
    """A host's configuration and its link as last reported."""

    config: HostConfig
    link: LinkState = LinkState.CONNECTING
    message: str = ""
    retry_at: float | None = None
    connected_once: bool = False
    figures: HostFigures | None = None
    """The host's own load, while it sends statistics."""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def lost(self) -> bool:
        """Rows of this host are stale: the link is down (or was never up)."""
        return self.link is not LinkState.CONNECTED


@dataclass
class Changes:
    """What one batch of updates changed."""

    added: set[Key] = field(default_factory=set)
    removed: set[Key] = field(default_factory=set)
    updated: set[Key] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    """Hosts whose link, counts or rows' lost-ness changed."""
    relinked: set[str] = field(default_factory=set)
    """Hosts whose rows all change look (lost ↔ connected)."""
    refresh: set[str] = field(default_factory=set)
    """Hosts that need a relist: an event named a domain not seen before."""
    infos: dict[str, set[str]] = field(default_factory=dict)
    """Per host, uuids whose vCPUs/memory should be (re)read."""
    stats: set[Key] = field(default_factory=set)
    """Rows whose statistics changed (a sample came, or they left it)."""
    host_stats: set[str] = field(default_factory=set)
    """Hosts whose own figures changed."""

    def __bool__(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.updated
            or self.hosts
            or self.refresh
            or self.infos
            or self.stats
            or self.host_stats
        )

    def merge(self, other: Changes) -> None:
        self.added |= other.added
        self.removed |= other.removed
        self.updated |= other.updated
        self.hosts |= other.hosts
        self.stats |= other.stats
        self.host_stats |= other.host_stats
        self.relinked |= other.relinked
        self.refresh |= other.refresh
        for host, uuids in other.infos.items():
            self.infos.setdefault(host, set()).update(uuids)

    def want_info(self, host: str, uuid: str) -> None:
        self.infos.setdefault(host, set()).add(uuid)


# --- events → states (libvirt's mapping; libvirt-semantics.md §2.4, §3.6) ----------------

_SUSPENDED_REASON: dict[SuspendedDetail, PausedReason] = {
    SuspendedDetail.PAUSED: PausedReason.USER,
    SuspendedDetail.MIGRATED: PausedReason.MIGRATION,
    SuspendedDetail.IOERROR: PausedReason.IOERROR,
    SuspendedDetail.WATCHDOG: PausedReason.WATCHDOG,
    SuspendedDetail.RESTORED: PausedReason.USER,
    SuspendedDetail.FROM_SNAPSHOT: PausedReason.FROM_SNAPSHOT,
    SuspendedDetail.API_ERROR: PausedReason.API_ERROR,
    SuspendedDetail.POSTCOPY: PausedReason.POSTCOPY,
    SuspendedDetail.POSTCOPY_FAILED: PausedReason.POSTCOPY_FAILED,
}
_RESUMED_REASON: dict[ResumedDetail, RunningReason] = {
    ResumedDetail.UNPAUSED: RunningReason.UNPAUSED,
    ResumedDetail.MIGRATED: RunningReason.MIGRATED,
    ResumedDetail.FROM_SNAPSHOT: RunningReason.FROM_SNAPSHOT,
    ResumedDetail.POSTCOPY: RunningReason.POSTCOPY,
    ResumedDetail.POSTCOPY_FAILED: RunningReason.POSTCOPY_FAILED,
}
_STARTED: dict[StartedDetail, tuple[DomainState, StateReason]] = {
    StartedDetail.BOOTED: (DomainState.RUNNING, RunningReason.BOOTED),
    StartedDetail.MIGRATED: (DomainState.PAUSED, PausedReason.MIGRATION),
    StartedDetail.RESTORED: (DomainState.RUNNING, RunningReason.RESTORED),
    StartedDetail.FROM_SNAPSHOT: (DomainState.RUNNING, RunningReason.FROM_SNAPSHOT),
    StartedDetail.WAKEUP: (DomainState.RUNNING, RunningReason.WAKEUP),
}
_STOPPED_REASON: dict[StoppedDetail, ShutoffReason] = {
    StoppedDetail.SHUTDOWN: ShutoffReason.SHUTDOWN,
    StoppedDetail.DESTROYED: ShutoffReason.DESTROYED,
    StoppedDetail.CRASHED: ShutoffReason.CRASHED,
    StoppedDetail.MIGRATED: ShutoffReason.MIGRATED,
    StoppedDetail.SAVED: ShutoffReason.SAVED,
    StoppedDetail.FAILED: ShutoffReason.FAILED,
    StoppedDetail.FROM_SNAPSHOT: ShutoffReason.FROM_SNAPSHOT,
}


def state_after(
    event: LifecycleEvent, current: DomainState
) -> tuple[DomainState, StateReason] | None:
    """The state a lifecycle event puts a domain in; None for events that change none."""
    kind, detail = event.type, event.detail
    if kind is EventType.STARTED and isinstance(detail, StartedDetail):
        return _STARTED.get(detail, (DomainState.RUNNING, RunningReason.BOOTED))
    if kind is EventType.SUSPENDED and isinstance(detail, SuspendedDetail):
        return DomainState.PAUSED, _SUSPENDED_REASON.get(detail, PausedReason.UNKNOWN)
    if kind is EventType.RESUMED and isinstance(detail, ResumedDetail):
        return DomainState.RUNNING, _RESUMED_REASON.get(detail, RunningReason.UNPAUSED)
    if kind is EventType.STOPPED and isinstance(detail, StoppedDetail):
        return DomainState.SHUTOFF, _STOPPED_REASON.get(detail, ShutoffReason.UNKNOWN)
    if kind is EventType.SHUTDOWN:
        return DomainState.SHUTDOWN, ShutdownReason.UNKNOWN
    if kind is EventType.PMSUSPENDED:
        return DomainState.PMSUSPENDED, PMSuspendedReason.UNKNOWN
    if kind is EventType.CRASHED:
        return DomainState.CRASHED, CrashedReason.PANICKED
    return None


def event_text(event: Event) -> str:
    """One line for a domain's event history (virsh's words)."""
    if isinstance(event, LifecycleEvent):
        return event.words
    if isinstance(event, RebootEvent):
        return "Reboot"
    if isinstance(event, JobProgressEvent):
        info = event.info
        return f"{info.operation.capitalize()} {info.type}" + (
            f": {info.error}" if info.error else ""
        )
    words = event.kind.replace("-", " ").capitalize()
    details = [
        f"{name}={getattr(event, name)}"
        for name in ("action", "device", "reason", "offset", "phase", "actual_kib", "message")
        if hasattr(event, name)
    ]
    return words + (": " + ", ".join(details) if details else "")


# --- the store ------------------------------------------------------------------------------


def _counts(rows: Mapping[str, DomainRow]) -> tuple[int, int]:
    """(running, total) of some rows."""
    return sum(1 for r in rows.values() if r.state is DomainState.RUNNING), len(rows)


def _follow_start(row: DomainRow, state: DomainState, now: float, *, exact: bool) -> None:
    """Set or clear ``row``'s start time as it goes to ``state`` (active from inactive:
    started ``now``; inactive: no start time)."""
    if state.is_active and not row.state.is_active:
        row.started, row.started_exact = now, exact
    elif not state.is_active:
        row.started, row.started_exact = None, False


class DomainStore:
    """Hosts and their domains."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.hosts: dict[str, HostState] = {}
        self.rows: dict[Key, DomainRow] = {}
        self._by_host: dict[str, dict[str, DomainRow]] = {}

    # --- reading --------------------------------------------------------------------------

    def host_rows(self, host: str) -> Iterator[DomainRow]:
        return iter(self._by_host.get(host, {}).values())

    def get(self, key: Key) -> DomainRow | None:
        return self.rows.get(key)

    def all_counts(self) -> dict[str, tuple[int, int]]:
        """(running, total) of every host, in one pass."""
        return {name: _counts(rows) for name, rows in self._by_host.items()}

    def counts(self, host: str) -> tuple[int, int]:
        """(running, total) of a host."""
        return _counts(self._by_host.get(host, {}))

    def is_lost(self, key: Key) -> bool:
        host = self.hosts.get(key[0])
        return host is None or host.lost

    # --- hosts ----------------------------------------------------------------------------

    def add_host(self, config: HostConfig) -> Changes:
        self.hosts[config.name] = HostState(config)
        self._by_host.setdefault(config.name, {})
        return Changes(hosts={config.name})

    def update_host_config(self, old_name: str, config: HostConfig) -> Changes:
        """Rename or reconfigure a host (its rows keep their state)."""
        state = self.hosts.pop(old_name)
        state.config = config
        self.hosts[config.name] = state
        changes = Changes(hosts={old_name, config.name})
        if old_name != config.name:
            rows = self._by_host.pop(old_name, {})
            self._by_host[config.name] = rows
            for row in rows.values():
                del self.rows[(old_name, row.uuid)]
                changes.removed.add((old_name, row.uuid))
                row.host = config.name
                self.rows[row.key] = row
                changes.added.add(row.key)
        else:
            changes.relinked.add(config.name)
        return changes

    def remove_host(self, name: str) -> Changes:
        changes = self.clear_host(name)
        self._by_host.pop(name, None)
        self.hosts.pop(name, None)
        return changes

    def clear_host(self, name: str) -> Changes:
        """Forget a host's rows (after a deliberate disconnect)."""
        changes = Changes(hosts={name})
        host = self.hosts.get(name)
        if host is not None:
            host.figures = None
        for row in self._by_host.get(name, {}).values():
            del self.rows[row.key]
            changes.removed.add(row.key)
        self._by_host[name] = {}
        return changes

    def set_link(self, name: str, status: LinkStatus) -> Changes:
        host = self.hosts[name]
        was_lost = host.lost
        host.link = status.state
        host.message = status.message
        host.retry_at = status.retry_at
        if status.state is LinkState.CONNECTED:
            host.connected_once = True
        changes = Changes(hosts={name})
        if was_lost != host.lost:
            changes.relinked.add(name)
        return changes

    # --- domains --------------------------------------------------------------------------

    def apply_snapshot(self, name: str, snapshot: Snapshot) -> Changes:
        """Replace a host's rows by a fresh listing."""
        now = self.clock.wall()
        changes = Changes(hosts={name}, relinked={name})
        old = self._by_host.get(name, {})
        new: dict[str, DomainRow] = {}
        for summary in snapshot.summaries:
            row = old.pop(summary.uuid, None)
            if row is None:
                row = self._new_row(name, summary, now)
                changes.added.add(row.key)
            else:
                self._refresh_row(row, summary, now)
                changes.updated.add(row.key)
            new[summary.uuid] = row
            self.rows[row.key] = row
            if summary.vcpus is None:  # a daemon too old to list vCPUs and memory
                changes.want_info(name, summary.uuid)
        for row in old.values():
            del self.rows[row.key]
            changes.removed.add(row.key)
        self._by_host[name] = new
        return changes

    @staticmethod
    def _new_row(host: str, summary: DomainSummary, now: float) -> DomainRow:
        row = DomainRow(
            host=host,
            uuid=summary.uuid,
            name=summary.name,
            state=summary.state,
            reason=summary.reason,
            persistent=summary.persistent,
            title=summary.title,
        )
        if summary.state.is_active:
            row.started = now
        DomainStore._take_summary_facts(row, summary)
        return row

    @staticmethod
    def _take_summary_facts(row: DomainRow, summary: DomainSummary) -> None:
        """vCPUs, memory and start time, when the driver lists them (one call per relist)."""
        if summary.vcpus is not None:
            row.vcpus = summary.vcpus
        if summary.memory_kib is not None:
            row.memory_kib = summary.memory_kib
        if summary.started_wall is not None and summary.state.is_active:
            row.started, row.started_exact = summary.started_wall, True

    @staticmethod
    def _refresh_row(row: DomainRow, summary: DomainSummary, now: float) -> None:
        _follow_start(row, summary.state, now, exact=False)
        row.name = summary.name
        row.state = summary.state
        row.reason = summary.reason
        row.persistent = summary.persistent
        row.title = summary.title
        DomainStore._take_summary_facts(row, summary)

    def apply_infos(self, name: str, infos: dict[str, tuple[int, int]]) -> Changes:
        changes = Changes()
        rows = self._by_host.get(name, {})
        for uuid, (vcpus, memory_kib) in infos.items():
            row = rows.get(uuid)
            if row is None or (row.vcpus, row.memory_kib) == (vcpus, memory_kib):
                continue
            row.vcpus, row.memory_kib = vcpus, memory_kib
            changes.updated.add(row.key)
        return changes

    def apply_addresses(self, name: str, found: dict[str, str]) -> Changes:
        """The addresses of host ``name``'s domains (uuid → address, '' when unknown)."""
        changes = Changes()
        rows = self._by_host.get(name, {})
        for uuid, address in found.items():
            row = rows.get(uuid)
            if row is None or row.ip == address:
                continue
            row.ip = address
            changes.updated.add(row.key)
        return changes

    def apply_stats(self, name: str, sample: StatsSample) -> Changes:
        """A statistics sample of host ``name``: its own figures and its domains'."""
        host = self.hosts.get(name)
        rows = self._by_host.get(name)
        if host is None or rows is None:
            return Changes()
        if host.figures is None:
            host.figures = HostFigures()
        host.figures.update(sample.host)
        changes = Changes(host_stats={name})
        sampled: set[str] = set()
        for stats in sample.domains:
            row = rows.get(stats.uuid)
            if row is None:
                continue  # not listed yet: the next sample finds it
            if row.figures is None:
                row.figures = DomainFigures()
            row.figures.update(stats, row.memory_kib)
            sampled.add(stats.uuid)
            changes.stats.add(row.key)
        second = int(sample.host.wall)
        for row in rows.values():
            figures = row.figures
            if figures is not None and figures.latest is not None and row.uuid not in sampled:
                figures.stopped(second)
                changes.stats.add(row.key)
        return changes

    def apply_event(self, name: str, event: Event, changes: Changes) -> None:
        """Apply one event of host ``name``, adding what it changed to ``changes``."""
        if not isinstance(event, DomainEvent):
            return
        rows = self._by_host.get(name)
        if rows is None:
            return
        if isinstance(event, JobProgressEvent) and event.info.active:
            return  # figures for whoever shows the job; only its end goes in the history
        row = rows.get(event.uuid)
        if row is None:
            if not (isinstance(event, LifecycleEvent) and event.type is EventType.UNDEFINED):
                changes.refresh.add(name)
            return
        row.log.append((self.clock.wall(), event_text(event)))
        changes.updated.add(row.key)
        if isinstance(event, RebootEvent):
            # libvirt row 28: a reset of a crashed domain leaves it paused, with no
            # lifecycle event; the REBOOT event is what tells us.
            if row.state is DomainState.CRASHED:
                row.state, row.reason = DomainState.PAUSED, PausedReason.CRASHED
                changes.hosts.add(name)
            return
        if not isinstance(event, LifecycleEvent):
            return
        if event.type is EventType.DEFINED:
            row.persistent = True
            changes.want_info(name, row.uuid)
            return
        if event.type is EventType.UNDEFINED:
            if row.state.is_active:
                row.persistent = False
            else:
                self._drop(row, changes)
            return
        after = state_after(event, row.state)
        if after is None:
            return
        state, reason = after
        _follow_start(row, state, self.clock.wall(), exact=True)
        row.state, row.reason = state, reason
        changes.hosts.add(name)
        if state is DomainState.SHUTOFF and not row.persistent:
            self._drop(row, changes)  # a transient domain vanishes when it stops

    def _drop(self, row: DomainRow, changes: Changes) -> None:
        self._by_host.get(row.host, {}).pop(row.uuid, None)
        self.rows.pop(row.key, None)
        changes.updated.discard(row.key)
        changes.added.discard(row.key)
        changes.removed.add(row.key)
        changes.hosts.add(row.host)

    def apply_updates(self, name: str, updates: Iterable[LinkStatus | Snapshot | Event]) -> Changes:
        """Apply a batch from a host's link, in order."""
        changes = Changes()
        if name not in self.hosts:
            return changes
        for update in updates:
            if isinstance(update, LinkStatus):
                changes.merge(self.set_link(name, update))
            elif isinstance(update, Snapshot):
                changes.merge(self.apply_snapshot(name, update))
                changes.refresh.discard(name)
            else:
                self.apply_event(name, update, changes)
        return changes


def uptime_text(row: DomainRow, now: float) -> str:
    """Uptime at minute resolution.

    When virtdeck saw the domain start it knows the uptime; when the domain was already
    running at connect time it only knows a lower bound, shown as ``≥5m`` (and nothing in
    the first minute, which would say nothing).
    """
    if row.started is None or not row.state.is_active:
        return ""
    seconds = max(0, int(now - row.started))
    if seconds < 60:
        return "<1m" if row.started_exact else ""
    if seconds < 3600:
        text = f"{seconds // 60}m"
    elif seconds < 86400:
        text = f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    else:
        text = f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
    return text if row.started_exact else "≥" + text


def memory_text(kib: int | None) -> str:
    if kib is None:
        return ""
    mib = kib / 1024
    if mib < 1024:
        return f"{mib:.0f} MiB"
    gib = mib / 1024
    return f"{gib:.0f} GiB" if gib == int(gib) else f"{gib:.1f} GiB"


STATE_ORDER = {
    DomainState.RUNNING: 0,
    DomainState.PAUSED: 1,
    DomainState.CRASHED: 2,
    DomainState.SHUTDOWN: 3,
    DomainState.PMSUSPENDED: 4,
    DomainState.BLOCKED: 5,
    DomainState.NOSTATE: 6,
    DomainState.SHUTOFF: 7,
}

__all__ = [
    "HISTORY",
    "STATE_ORDER",
    "Changes",
    "Clock",
    "DomainRow",
    "DomainStore",
    "FrozenClock",
    "HistoryItem",
    "HostState",
    "Key",
    "NostateReason",
    "SystemClock",
    "event_text",
    "memory_text",
    "state_after",
    "uptime_text",
]
