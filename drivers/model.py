"""Typed values that cross the driver boundary.

States, reasons, event types and details mirror libvirt's enums: member names are the
suffixes of libvirt's constants and the integer values are libvirt's, so
``VIR_DOMAIN_RUNNING_BOOTED`` is ``DomainState.RUNNING`` with ``RunningReason.BOOTED``.
Every enum also knows the words virsh prints for it, so the CLI and the TUI speak the
same language as libvirt users.
"""

from __future__ import annotations

import enum
import time

from drivers.records import field, record

TYPE_CHECKING = False  # not typing's: see drivers/records.py (one-shot CLI start-up)
if TYPE_CHECKING:
    from typing import ClassVar, TypeAlias

# --- domain states and their reasons --------------------------------------------------


class _Worded(enum.IntEnum):
    """An IntEnum whose members carry the text virsh prints for them."""

    words: str

    def __new__(cls, value: int, words: str = "") -> _Worded:
        member = int.__new__(cls, value)
        member._value_ = value
        member.words = words
        return member


class NostateReason(_Worded):
    UNKNOWN = 0, "unknown"


class RunningReason(_Worded):
    UNKNOWN = 0, "unknown"
    BOOTED = 1, "booted"
    MIGRATED = 2, "migrated"
    RESTORED = 3, "restored"
    FROM_SNAPSHOT = 4, "from snapshot"
    UNPAUSED = 5, "unpaused"
    MIGRATION_CANCELED = 6, "migration canceled"
    SAVE_CANCELED = 7, "save canceled"
    WAKEUP = 8, "event wakeup"
    CRASHED = 9, "crashed"
    POSTCOPY = 10, "post-copy"
    POSTCOPY_FAILED = 11, "post-copy failed"


class BlockedReason(_Worded):
    UNKNOWN = 0, "unknown"


class PausedReason(_Worded):
    UNKNOWN = 0, "unknown"
    USER = 1, "user"
    MIGRATION = 2, "migrating"
    SAVE = 3, "saving"
    DUMP = 4, "dumping"
    IOERROR = 5, "I/O error"
    WATCHDOG = 6, "watchdog"
    FROM_SNAPSHOT = 7, "from snapshot"
    SHUTTING_DOWN = 8, "shutting down"
    SNAPSHOT = 9, "creating snapshot"
    CRASHED = 10, "crashed"
    STARTING_UP = 11, "starting up"
    POSTCOPY = 12, "post-copy"
    POSTCOPY_FAILED = 13, "post-copy failed"
    API_ERROR = 14, "api error"


class ShutdownReason(_Worded):
    UNKNOWN = 0, "unknown"
    USER = 1, "user"


class ShutoffReason(_Worded):
    UNKNOWN = 0, "unknown"
    SHUTDOWN = 1, "shutdown"
    DESTROYED = 2, "destroyed"
    CRASHED = 3, "crashed"
    MIGRATED = 4, "migrated"
    SAVED = 5, "saved"
    FAILED = 6, "failed"
    FROM_SNAPSHOT = 7, "from snapshot"
    DAEMON = 8, "daemon"


class CrashedReason(_Worded):
    UNKNOWN = 0, "unknown"
    PANICKED = 1, "panicked"


class PMSuspendedReason(_Worded):
    UNKNOWN = 0, "unknown"


StateReason: TypeAlias = (
    NostateReason
    | RunningReason
    | BlockedReason
    | PausedReason
    | ShutdownReason
    | ShutoffReason
    | CrashedReason
    | PMSuspendedReason
)


class DomainState(_Worded):
    NOSTATE = 0, "no state"
    RUNNING = 1, "running"
    BLOCKED = 2, "idle"
    PAUSED = 3, "paused"
    SHUTDOWN = 4, "in shutdown"
    SHUTOFF = 5, "shut off"
    CRASHED = 6, "crashed"
    PMSUSPENDED = 7, "pmsuspended"

    @property
    def reasons(self) -> type[StateReason]:
        """The reason enum that goes with this state."""
        return _REASONS[self]

    @property
    def is_active(self) -> bool:
        """True when a hypervisor process exists for a domain in this state."""
        return self is not DomainState.SHUTOFF and self is not DomainState.NOSTATE

    def reason(self, value: int) -> StateReason:
        """The reason member for ``value``; unknown values read as UNKNOWN."""
        enum_cls = _REASONS[self]
        try:
            return enum_cls(value)
        except ValueError:
            return enum_cls(0)


_REASONS: dict[DomainState, type[StateReason]] = {
    DomainState.NOSTATE: NostateReason,
    DomainState.RUNNING: RunningReason,
    DomainState.BLOCKED: BlockedReason,
    DomainState.PAUSED: PausedReason,
    DomainState.SHUTDOWN: ShutdownReason,
    DomainState.SHUTOFF: ShutoffReason,
    DomainState.CRASHED: CrashedReason,
    DomainState.PMSUSPENDED: PMSuspendedReason,
}


def state_words(state: DomainState, reason: StateReason) -> str:
    """What ``virsh domstate --reason`` prints, e.g. ``running (booted)``."""
    return f"{state.words} ({reason.words})"


# --- lifecycle events -------------------------------------------------------------------


class DefinedDetail(_Worded):
    ADDED = 0, "Added"
    UPDATED = 1, "Updated"
    RENAMED = 2, "Renamed"
    FROM_SNAPSHOT = 3, "Snapshot"


class UndefinedDetail(_Worded):
    REMOVED = 0, "Removed"
    RENAMED = 1, "Renamed"


class StartedDetail(_Worded):
    BOOTED = 0, "Booted"
    MIGRATED = 1, "Migrated"
    RESTORED = 2, "Restored"
    FROM_SNAPSHOT = 3, "Snapshot"
    WAKEUP = 4, "Event wakeup"


class SuspendedDetail(_Worded):
    PAUSED = 0, "Paused"
    MIGRATED = 1, "Migrated"
    IOERROR = 2, "I/O Error"
    WATCHDOG = 3, "Watchdog"
    RESTORED = 4, "Restored"
    FROM_SNAPSHOT = 5, "Snapshot"
    API_ERROR = 6, "API error"
    POSTCOPY = 7, "Post-copy"
    POSTCOPY_FAILED = 8, "Post-copy Error"


class ResumedDetail(_Worded):
    UNPAUSED = 0, "Unpaused"
    MIGRATED = 1, "Migrated"
    FROM_SNAPSHOT = 2, "Snapshot"
    POSTCOPY = 3, "Post-copy"
    POSTCOPY_FAILED = 4, "Post-copy Error"


class StoppedDetail(_Worded):
    SHUTDOWN = 0, "Shutdown"
    DESTROYED = 1, "Destroyed"
    CRASHED = 2, "Crashed"
    MIGRATED = 3, "Migrated"
    SAVED = 4, "Saved"
    FAILED = 5, "Failed"
    FROM_SNAPSHOT = 6, "Snapshot"


class ShutdownDetail(_Worded):
    FINISHED = 0, "Finished"
    GUEST = 1, "Finished after guest request"
    HOST = 2, "Finished after host request"


class PMSuspendedDetail(_Worded):
    MEMORY = 0, "Memory"
    DISK = 1, "Disk"


class CrashedDetail(_Worded):
    PANICKED = 0, "Panicked"
    CRASHLOADED = 1, "Crashloaded"


EventDetail: TypeAlias = (
    DefinedDetail
    | UndefinedDetail
    | StartedDetail
    | SuspendedDetail
    | ResumedDetail
    | StoppedDetail
    | ShutdownDetail
    | PMSuspendedDetail
    | CrashedDetail
)


class EventType(_Worded):
    DEFINED = 0, "Defined"
    UNDEFINED = 1, "Undefined"
    STARTED = 2, "Started"
    SUSPENDED = 3, "Suspended"
    RESUMED = 4, "Resumed"
    STOPPED = 5, "Stopped"
    SHUTDOWN = 6, "Shutdown"
    PMSUSPENDED = 7, "PMSuspended"
    CRASHED = 8, "Crashed"

    @property
    def details(self) -> type[EventDetail]:
        """The detail enum that goes with this event type."""
        return _DETAILS[self]

    def detail(self, value: int) -> EventDetail:
        """The detail member for ``value``; raises ValueError for unknown values."""
        return _DETAILS[self](value)


_DETAILS: dict[EventType, type[EventDetail]] = {
    EventType.DEFINED: DefinedDetail,
    EventType.UNDEFINED: UndefinedDetail,
    EventType.STARTED: StartedDetail,
    EventType.SUSPENDED: SuspendedDetail,
    EventType.RESUMED: ResumedDetail,
    EventType.STOPPED: StoppedDetail,
    EventType.SHUTDOWN: ShutdownDetail,
    EventType.PMSUSPENDED: PMSuspendedDetail,
    EventType.CRASHED: CrashedDetail,
}


def _now() -> tuple[float, float]:
    return time.monotonic(), time.time()


@record(kw_only=True)
class Event:
    """Something a connection reports on its event stream.

    ``monotonic`` is when the driver learned of it (``time.monotonic()`` in the process
    that produced it) and ``wall`` the same instant as a Unix time.
    """

    kind: ClassVar[str] = "event"
    monotonic: float = field(default_factory=time.monotonic)
    wall: float = field(default_factory=time.time)


@record(kw_only=True)
class DomainEvent(Event):
    """An event about one domain."""

    kind: ClassVar[str] = "domain"
    domain: str
    uuid: str
    #: When the hypervisor says it happened (QEMU's event timestamp, Unix time), if known.
    source_wall: float | None = None


@record(kw_only=True)
class LifecycleEvent(DomainEvent):
    """A libvirt lifecycle event, e.g. ``Started Booted``."""

    kind: ClassVar[str] = "lifecycle"
    type: EventType
    detail: EventDetail

    @property
    def words(self) -> str:
        """What ``virsh event`` prints after the colon: ``Started Booted``."""
        return f"{self.type.words} {self.detail.words}"


@record(kw_only=True)
class RebootEvent(DomainEvent):
    """The guest was reset (QMP RESET); libvirt's REBOOT event."""

    kind: ClassVar[str] = "reboot"


@record(kw_only=True)
class WatchdogEvent(DomainEvent):
    """The guest's watchdog fired; ``action`` is what QEMU did."""

    kind: ClassVar[str] = "watchdog"
    action: str


@record(kw_only=True)
class IOErrorEvent(DomainEvent):
    """A disk reported an I/O error."""

    kind: ClassVar[str] = "io-error"
    device: str
    action: str
    reason: str


@record(kw_only=True)
class RTCChangeEvent(DomainEvent):
    """The guest changed its real-time clock by ``offset`` seconds."""

    kind: ClassVar[str] = "rtc-change"
    offset: int


@record(kw_only=True)
class PMEvent(DomainEvent):
    """Guest power management: ``phase`` is 'suspend', 'suspend-disk' or 'wakeup'."""

    kind: ClassVar[str] = "pm"
    phase: str


@record(kw_only=True)
class BalloonChangeEvent(DomainEvent):
    """The memory balloon reached a new size."""

    kind: ClassVar[str] = "balloon-change"
    actual_kib: int


@record(kw_only=True)
class ControlErrorEvent(DomainEvent):
    """The driver lost control of a domain's monitor without the domain stopping."""

    kind: ClassVar[str] = "control-error"
    message: str


class JobPhase(_Worded):
    """Where a migration job is, on the side that reports it (libvirt's migration phases)."""

    NONE = 0, "none"
    BEGIN = 1, "begin"
    PREPARE = 2, "prepare"
    PERFORM = 3, "perform"
    FINISH = 4, "finish"
    CONFIRM = 5, "confirm"
    COMPLETED = 6, "completed"
    FAILED = 7, "failed"
    CANCELLED = 8, "cancelled"


@record(kw_only=True)
class JobInfo:
    """What ``virsh domjobinfo`` shows: one domain's current (or last) migration job.

    Byte counts are bytes; rates are per second; times are milliseconds. Figures QEMU has
    not reported yet are 0 (``None`` for the downtimes, which only exist at the end).
    """

    #: "none", "unbounded" (running), "completed", "failed" or "cancelled" (virsh's words)
    type: str = "none"
    #: "outgoing migration" or "incoming migration"; "" for no job
    operation: str = ""
    phase: JobPhase = JobPhase.NONE
    #: QEMU's migration status (setup, active, device, completed, failed, cancelled …)
    status: str = ""
    elapsed_ms: int = 0
    ram_total: int = 0
    ram_transferred: int = 0
    ram_remaining: int = 0
    ram_rate: float = 0.0  # bytes/s
    dirty_rate: int = 0  # pages/s
    page_size: int = 4096
    iterations: int = 0
    expected_downtime_ms: int | None = None
    downtime_ms: int | None = None
    setup_ms: int | None = None
    #: QEMU's own ``total-time`` of the migration (``migrate`` → completed), at the end.
    qemu_total_ms: int | None = None
    disk_total: int = 0
    disk_transferred: int = 0
    disk_remaining: int = 0
    #: Why the job failed, in words a person can act on; "" otherwise.
    error: str = ""

    @property
    def active(self) -> bool:
        return self.type == "unbounded"


@record
class DiskCopy:
    """A disk that a migration with copy storage recreates and fills on the destination."""

    target: str  # the guest's device name, e.g. 'vda'
    path: str
    format: str  # 'qcow2' or 'raw'
    capacity_bytes: int


@record(kw_only=True)
class MigrationSource:
    """What the source tells the client in the Begin phase."""

    #: The definition the destination starts (the live one of an active domain).
    xml: str
    #: The persistent definition, if the domain has one (to persist at the destination).
    persistent_xml: str | None
    state: DomainState
    #: When the guest was started (Unix time): its uptime goes on at the destination.
    started_wall: float | None = None
    #: The disks with a source image, for copy storage and for the destination's checks.
    disks: tuple[DiskCopy, ...] = ()


@record(kw_only=True)
class IncomingMigration:
    """What the destination tells the client in the Prepare phase."""

    name: str
    uuid: str
    #: The TCP port its QEMU listens on for the migration stream (0 when tunnelled).
    port: int = 0
    #: The port of its NBD server for copy storage (0: none).
    nbd_port: int = 0
    #: Disk targets exported over NBD, under their own names.
    nbd_disks: tuple[str, ...] = ()


@record(kw_only=True)
class JobProgressEvent(DomainEvent):
    """A migration job of the domain moved on (progress figures or a new phase)."""

    kind: ClassVar[str] = "job-progress"
    info: JobInfo


@record
class ConsoleLine:
    """One line of a domain's serial console output, as kept since its boot.

    ``text`` is what the guest wrote, decoded as UTF-8 (invalid bytes replaced), without
    the line end; it may hold any control characters: show it through an inert filter.
    ``wall`` is when the host received it (Unix time; lines written while no daemon was
    watching carry the time the daemon first read them, and ``exact`` is False)."""

    wall: float
    text: str
    exact: bool = True


@record
class BlockStats:
    """One disk's counters since the domain started."""

    name: str  # the guest's device name ('vda'), or QEMU's id
    rd_bytes: int
    wr_bytes: int
    rd_reqs: int
    wr_reqs: int


@record
class NetStats:
    """One network interface's counters, as the guest sees them (host tap counters)."""

    name: str  # the host interface ('tap0')
    rx_bytes: int
    tx_bytes: int


@record(kw_only=True)
class DomainStats:
    """One sample of a running domain's figures; rates are per second over the last
    interval (0 in a domain's first sample)."""

    name: str
    uuid: str
    wall: float
    #: Host CPU used by the domain's QEMU process, percent of one core (can exceed 100).
    cpu_percent: float = 0.0
    cpu_time_ns: int = 0
    #: Per vCPU thread, percent of one core, and CPU time.
    vcpu_percent: tuple[float, ...] = ()
    vcpu_time_ns: tuple[int, ...] = ()
    rss_bytes: int = 0
    #: What the balloon says, when the guest reports it (KiB).
    balloon_actual_kib: int | None = None
    balloon_available_kib: int | None = None
    block_rd_bytes: int = 0
    block_wr_bytes: int = 0
    block_rd_ops: int = 0
    block_wr_ops: int = 0
    block_rd_rate: float = 0.0  # bytes/s
    block_wr_rate: float = 0.0
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0
    net_rx_rate: float = 0.0
    net_tx_rate: float = 0.0
    blocks: tuple[BlockStats, ...] = ()
    nets: tuple[NetStats, ...] = ()


@record(kw_only=True)
class HostStats:
    """One sample of a host's own load."""

    wall: float
    cpu_percent: float  # of all cores together, 0-100
    cpus: int
    memory_total: int  # bytes
    memory_used: int
    running: int


@record(kw_only=True)
class StatsSample:
    """What ``Connection.stats_stream`` yields once per interval."""

    host: HostStats
    domains: tuple[DomainStats, ...]


@record(kw_only=True)
class ConnectionClosedEvent(Event):
    """The last item of an event stream whose connection ended; ``reason`` says why."""

    kind: ClassVar[str] = "connection-closed"
    reason: str
    lost: bool = True


# --- handles ---------------------------------------------------------------------------


class DomainIdentity:
    """What every handle on a domain knows without asking: its name and uuid.

    The base of :class:`drivers.api.Domain`, and of the blocking client's domains (which do
    not load the API's asyncio)."""

    def __init__(self, name: str, uuid: str) -> None:
        self._name = name
        self._uuid = uuid

    @property
    def name(self) -> str:
        return self._name

    @property
    def uuid(self) -> str:
        return self._uuid


# --- information about domains and hosts ------------------------------------------------


@record
class DomainInfo:
    """What ``virDomainGetInfo`` returns, plus the reason."""

    state: DomainState
    reason: StateReason
    max_memory_kib: int
    memory_kib: int
    vcpus: int
    cpu_time_ns: int


@record
class DomainSummary:
    """One row of ``list --all``: enough to draw a table without further calls."""

    name: str
    uuid: str
    id: int | None
    state: DomainState
    reason: StateReason
    persistent: bool = True
    title: str = ""
    vcpus: int | None = None
    memory_kib: int | None = None
    #: When the running (or paused) domain was started, as Unix time; None when shut off.
    started_wall: float | None = None


@record
class HostInfo:
    """The host a connection talks to."""

    hostname: str
    hypervisor: str
    hypervisor_version: str
    driver_version: str
    uri: str


@record
class VolumeInfo:
    """One image in a host's default storage pool."""

    name: str
    path: str
    format: str  # 'qcow2', 'raw' or 'iso'
    capacity_bytes: int
    allocation_bytes: int


@record
class PoolInfo:
    """A host's default storage pool: a directory of images."""

    name: str
    path: str
    capacity_bytes: int
    available_bytes: int


# --- guest network addresses (virDomainInterfaceAddresses) ----------------------------

#: Where ``interface_addresses`` looks: the DHCP leases the host knows, the guest agent,
#: or the host's ARP table (``virsh domifaddr --source``).
ADDRESS_SOURCES = ("lease", "agent", "arp")
#: How a domain can be asked to shut down (``virsh shutdown --mode``).
SHUTDOWN_MODES = ("acpi", "agent")


@record
class IPAddress:
    """One address of a guest interface."""

    type: str  # 'ipv4' or 'ipv6'
    address: str
    prefix: int


@record
class InterfaceAddresses:
    """A guest network interface and its addresses, as ``virsh domifaddr`` lists them.

    ``name`` and ``hwaddr`` may come from the guest (source 'agent'): show them inert."""

    name: str
    hwaddr: str | None
    addresses: tuple[IPAddress, ...] = ()
# --- the guest's screen and input ----------------------------------------------------------


@record(kw_only=True)
class Screenshot:
    """One picture of a domain's display, as QEMU's ``screendump`` wrote it.

    ``data`` is the whole file (PNG unless another format was asked for); ``width`` and
    ``height`` are the guest's resolution in pixels. ``captured_monotonic`` is the
    ``CLOCK_MONOTONIC`` of the host that took it, read when the screendump was issued (the
    start of a frame's latency); ``seq`` counts the frames of one stream."""

    data: bytes
    format: str
    width: int
    height: int
    captured_wall: float
    captured_monotonic: float
    seq: int = 0

    @property
    def mime(self) -> str:
        return "image/png" if self.format == "png" else "image/x-portable-pixmap"


@record
class KeyInput:
    """A key of the guest's keyboard going down (or up), named by its QEMU qcode
    (``ctrl``, ``alt``, ``delete``, ``f2``, ``a``; see :data:`drivers.keys.QCODES`)."""

    qcode: str
    down: bool


@record
class PointerMove:
    """The absolute pointer (a tablet) moves to pixel (``x``, ``y``) of a frame of
    ``width`` x ``height`` pixels; the guest needs ``<input type='tablet'>``."""

    x: int
    y: int
    width: int
    height: int


@record
class PointerButton:
    """A pointer button going down or up: ``left``, ``middle``, ``right``, ``wheel-up``,
    ``wheel-down``."""

    button: str
    down: bool


@record
class InputPause:
    """Hold what is pressed for ``ms`` milliseconds (``send-key --holdtime``)."""

    ms: int


InputEvent: TypeAlias = KeyInput | PointerMove | PointerButton | InputPause
