"""The event handler: how a domain's state moves, as one table.

Every QMP event of a domain, and every internal step of an API call that libvirt models
as a state change (launch, start finished, launch failed, monitor EOF, reset of a crashed
domain), goes through :func:`handle`. It is a pure function of the domain's current state,
reason and private flags; it returns an :class:`Outcome` that says which row of the
transition table matched, the new state, the lifecycle and other events to emit, the new
flags, and the follow-up actions the driver must carry out (kill QEMU, fake reboot, ...).

The rows are those of libvirt-semantics.md §3.6 (modern libvirt, after commit e47949357b:
RESUME always updates the state, whatever it was). Nothing else in the drivers changes a
domain's state: API code only stores the *pending* reasons in the flags before it sends
``stop``/``cont``, and the STOP/RESUME rows turn them into state.

Events are handled strictly in the order QEMU sent them. libvirt handles GUEST_PANICKED in
a worker and sometimes lets the STOP that follows it win, emitting a spurious
``Suspended Paused``; handling in order never does.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from drivers.domxml import LifecycleAction
from drivers.model import (
    CrashedDetail,
    CrashedReason,
    DomainState,
    EventDetail,
    EventType,
    PausedReason,
    PMSuspendedDetail,
    PMSuspendedReason,
    ResumedDetail,
    RunningReason,
    ShutdownDetail,
    ShutdownReason,
    ShutoffReason,
    StartedDetail,
    StateReason,
    StoppedDetail,
    SuspendedDetail,
)

RUNNING = DomainState.RUNNING
PAUSED = DomainState.PAUSED
SHUTDOWN = DomainState.SHUTDOWN
SHUTOFF = DomainState.SHUTOFF
CRASHED = DomainState.CRASHED
PMSUSPENDED = DomainState.PMSUSPENDED


class Trigger(enum.StrEnum):
    """What can move a domain. QMP events keep QEMU's names; internal steps are lower case."""

    STOP = "STOP"
    RESUME = "RESUME"
    SHUTDOWN = "SHUTDOWN"
    RESET = "RESET"
    POWERDOWN = "POWERDOWN"
    GUEST_PANICKED = "GUEST_PANICKED"
    GUEST_CRASHLOADED = "GUEST_CRASHLOADED"
    SUSPEND = "SUSPEND"
    SUSPEND_DISK = "SUSPEND_DISK"
    WAKEUP = "WAKEUP"
    WATCHDOG = "WATCHDOG"
    BLOCK_IO_ERROR = "BLOCK_IO_ERROR"
    RTC_CHANGE = "RTC_CHANGE"
    BALLOON_CHANGE = "BALLOON_CHANGE"
    # internal steps of API calls and of the monitor
    LAUNCH = "launch"  # start API: QEMU is being launched with -S
    STARTED = "started"  # start API finished; data: paused (bool)
    LAUNCH_FAILED = "launch-failed"  # start API failed before the domain ran
    EOF = "monitor-eof"  # the QMP connection closed: QEMU is gone
    RESET_API = "reset-api"  # the reset API reset the virtual hardware
    RECONCILE = "reconcile"  # reconnect: data alive (bool) and status (QMP query-status)
    INCOMING = "incoming"  # migration Prepare: QEMU waits for the incoming stream
    INCOMING_PAUSED = "incoming-paused"  # migration Finish, asked to leave the guest paused
    RESUME_FAILED = "resume-failed"  # a failed migration's source could not be continued


class Action(enum.Enum):
    """Follow-up work the driver does after committing an outcome (may talk to QEMU)."""

    TERMINATE = "terminate"  # SIGTERM: the guest finished shutting down (row 16)
    FAKE_REBOOT = "fake-reboot"  # system_reset + cont, keeping the process (rows 17, 26)
    CRASH_DESTROY = "crash-destroy"  # kill QEMU; ends shut off (crashed) (row 25)
    CRASH_DUMP = "crash-dump"  # write a memory dump first (coredump-* actions)
    WATCHDOG_DUMP = "watchdog-dump"  # dump, then continue the guest


@dataclass(frozen=True)
class Flags:
    """libvirt's per-domain private flags (libvirt-semantics.md §3.2)."""

    pending_running_reason: RunningReason | None = None
    pending_paused_reason: PausedReason | None = None
    fake_reboot: bool = False
    paused_shutdown: bool = False
    being_destroyed: bool = False
    # what a deliberate stop ends as: DESTROYED for destroy(), CRASHED for on_crash=destroy
    stop_reason: ShutoffReason = ShutoffReason.DESTROYED
    migration_out: bool = False
    postcopy: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "pending_running_reason": _name(self.pending_running_reason),
            "pending_paused_reason": _name(self.pending_paused_reason),
            "fake_reboot": self.fake_reboot,
            "paused_shutdown": self.paused_shutdown,
            "being_destroyed": self.being_destroyed,
            "stop_reason": self.stop_reason.name,
            "migration_out": self.migration_out,
            "postcopy": self.postcopy,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Flags:
        running = data.get("pending_running_reason")
        paused = data.get("pending_paused_reason")
        return cls(
            pending_running_reason=RunningReason[running] if running else None,
            pending_paused_reason=PausedReason[paused] if paused else None,
            fake_reboot=bool(data.get("fake_reboot", False)),
            paused_shutdown=bool(data.get("paused_shutdown", False)),
            being_destroyed=bool(data.get("being_destroyed", False)),
            stop_reason=ShutoffReason[data.get("stop_reason", "DESTROYED")],
            migration_out=bool(data.get("migration_out", False)),
            postcopy=bool(data.get("postcopy", False)),
        )


def _name(member: enum.Enum | None) -> str | None:
    return None if member is None else member.name


@dataclass(frozen=True)
class Context:
    """Everything the handler may look at."""

    state: DomainState
    reason: StateReason
    flags: Flags = Flags()
    on_poweroff: LifecycleAction = LifecycleAction.DESTROY
    on_reboot: LifecycleAction = LifecycleAction.RESTART
    on_crash: LifecycleAction = LifecycleAction.DESTROY
    watchdog_dump: bool = False  # the domain's watchdog action is 'dump'


@dataclass(frozen=True)
class Notice:
    """A non-lifecycle event to emit: ``kind`` is a DomainEvent kind, ``data`` its fields."""

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What handling one trigger does. ``row`` is the table row that matched (0: none)."""

    row: int
    flags: Flags
    state: tuple[DomainState, StateReason] | None = None
    lifecycle: tuple[tuple[EventType, EventDetail], ...] = ()
    notices: tuple[Notice, ...] = ()
    actions: tuple[Action, ...] = ()


# --- reason → event detail maps (libvirt-semantics.md §2.4) --------------------------------

_RESUMED_DETAIL: dict[RunningReason, ResumedDetail] = {
    RunningReason.RESTORED: ResumedDetail.FROM_SNAPSHOT,
    RunningReason.FROM_SNAPSHOT: ResumedDetail.FROM_SNAPSHOT,
    RunningReason.MIGRATED: ResumedDetail.MIGRATED,
    RunningReason.MIGRATION_CANCELED: ResumedDetail.MIGRATED,
    RunningReason.POSTCOPY: ResumedDetail.POSTCOPY,
    RunningReason.POSTCOPY_FAILED: ResumedDetail.POSTCOPY_FAILED,
}

_SUSPENDED_DETAIL: dict[PausedReason, SuspendedDetail] = {
    PausedReason.MIGRATION: SuspendedDetail.MIGRATED,
    PausedReason.FROM_SNAPSHOT: SuspendedDetail.FROM_SNAPSHOT,
    PausedReason.POSTCOPY: SuspendedDetail.POSTCOPY,
    PausedReason.POSTCOPY_FAILED: SuspendedDetail.POSTCOPY_FAILED,
    PausedReason.API_ERROR: SuspendedDetail.API_ERROR,
}

_STOPPED_DETAIL: dict[ShutoffReason, StoppedDetail] = {
    ShutoffReason.SHUTDOWN: StoppedDetail.SHUTDOWN,
    ShutoffReason.DESTROYED: StoppedDetail.DESTROYED,
    ShutoffReason.CRASHED: StoppedDetail.CRASHED,
    ShutoffReason.MIGRATED: StoppedDetail.MIGRATED,
    ShutoffReason.SAVED: StoppedDetail.SAVED,
    ShutoffReason.FAILED: StoppedDetail.FAILED,
    ShutoffReason.FROM_SNAPSHOT: StoppedDetail.FROM_SNAPSHOT,
}


def resumed_detail(reason: RunningReason) -> ResumedDetail:
    return _RESUMED_DETAIL.get(reason, ResumedDetail.UNPAUSED)


def suspended_detail(reason: PausedReason) -> SuspendedDetail:
    return _SUSPENDED_DETAIL.get(reason, SuspendedDetail.PAUSED)


def stopped_detail(reason: ShutoffReason) -> StoppedDetail:
    return _STOPPED_DETAIL.get(reason, StoppedDetail.FAILED)


# --- the table ------------------------------------------------------------------------------

Guard = Callable[[Context, Mapping[str, Any]], bool]
Effect = Callable[[Context, Mapping[str, Any]], Outcome]


@dataclass(frozen=True)
class Rule:
    row: int
    trigger: Trigger
    guard: Guard
    effect: Effect
    summary: str


def _always(ctx: Context, data: Mapping[str, Any]) -> bool:
    return True


def _is_starting(ctx: Context) -> bool:
    return ctx.state is PAUSED and ctx.reason is PausedReason.STARTING_UP


def _active(ctx: Context) -> bool:
    return ctx.state.is_active


def _to(
    row: int,
    ctx: Context,
    state: DomainState,
    reason: StateReason,
    *events: tuple[EventType, EventDetail],
    flags: Flags | None = None,
    actions: tuple[Action, ...] = (),
    notices: tuple[Notice, ...] = (),
) -> Outcome:
    return Outcome(
        row=row,
        flags=ctx.flags if flags is None else flags,
        state=(state, reason),
        lifecycle=events,
        actions=actions,
        notices=notices,
    )


def _same(
    row: int,
    ctx: Context,
    *events: tuple[EventType, EventDetail],
    flags: Flags | None = None,
    actions: tuple[Action, ...] = (),
    notices: tuple[Notice, ...] = (),
) -> Outcome:
    return Outcome(
        row=row,
        flags=ctx.flags if flags is None else flags,
        lifecycle=events,
        actions=actions,
        notices=notices,
    )


# rows 1-5: starting -------------------------------------------------------------------------


def _launch(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    # A new process starts with clean private flags.
    return _to(1, replace(ctx, flags=Flags()), PAUSED, PausedReason.STARTING_UP)


def _started(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    booted = (EventType.STARTED, StartedDetail.BOOTED)
    if data.get("paused"):
        return _to(
            3, ctx, PAUSED, PausedReason.USER, booted, (EventType.SUSPENDED, SuspendedDetail.PAUSED)
        )
    return _same(2, ctx, booted)


def _launch_failed(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    return _to(
        5,
        ctx,
        SHUTOFF,
        ShutoffReason.FAILED,
        (EventType.STOPPED, StoppedDetail.FAILED),
        flags=Flags(),
    )


def _reset_while_starting(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    return _same(4, ctx)


# rows 6-10: STOP ----------------------------------------------------------------------------


def _stop_applies(ctx: Context, data: Mapping[str, Any]) -> bool:
    return ctx.state is RUNNING and not ctx.flags.paused_shutdown


def _stop(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    flags = replace(ctx.flags, pending_paused_reason=None)
    if ctx.flags.migration_out:
        reason = PausedReason.POSTCOPY if ctx.flags.postcopy else PausedReason.MIGRATION
        row = 8
    elif ctx.flags.pending_paused_reason is not None:
        reason, row = ctx.flags.pending_paused_reason, 6
    else:
        reason, row = PausedReason.UNKNOWN, 7
    return _to(
        row, ctx, PAUSED, reason, (EventType.SUSPENDED, suspended_detail(reason)), flags=flags
    )


def _stop_during_shutdown(ctx: Context, data: Mapping[str, Any]) -> bool:
    return ctx.state is RUNNING and ctx.flags.paused_shutdown


def _stop_hidden(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    return _same(9, ctx, flags=replace(ctx.flags, pending_paused_reason=None))


def _stop_ignored(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    return _same(10, ctx, flags=replace(ctx.flags, pending_paused_reason=None))


# rows 11-15: RESUME -------------------------------------------------------------------------


def _not_running(ctx: Context, data: Mapping[str, Any]) -> bool:
    return ctx.state is not RUNNING and _active(ctx)


def _resume(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    reason = ctx.flags.pending_running_reason or RunningReason.UNPAUSED
    detail = resumed_detail(reason)
    if ctx.state is CRASHED:
        row = 13 if reason is RunningReason.CRASHED else 12
    elif ctx.state is SHUTDOWN:
        row = 14
    elif _is_starting(ctx):
        row = 2
    elif reason is RunningReason.MIGRATION_CANCELED:
        row = 37  # a failed or cancelled migration's source continues
    elif reason is RunningReason.MIGRATED:
        row = 40  # the destination of a migration starts its CPUs (Finish)
    else:
        row = 11
    flags = replace(ctx.flags, pending_running_reason=None)
    return _to(row, ctx, RUNNING, reason, (EventType.RESUMED, detail), flags=flags)


def _resume_when_running(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    return _same(15, ctx, flags=replace(ctx.flags, pending_running_reason=None))


# rows 16-18: SHUTDOWN -----------------------------------------------------------------------


def _shutdown_is_reboot(ctx: Context) -> bool:
    return ctx.flags.fake_reboot or ctx.on_poweroff is LifecycleAction.RESTART


def _shutdown_applies(ctx: Context, data: Mapping[str, Any]) -> bool:
    return _active(ctx) and ctx.state is not SHUTDOWN and not _shutdown_is_reboot(ctx)


def _shutdown(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    guest = data.get("guest")
    if guest is True:
        detail = ShutdownDetail.GUEST
    elif guest is False:
        detail = ShutdownDetail.HOST
    else:
        detail = ShutdownDetail.FINISHED
    # Row 35: with on_reboot=destroy QEMU turns a guest reboot into this SHUTDOWN.
    row = 35 if data.get("reason") == "guest-reset" else 16
    return _to(
        row,
        ctx,
        SHUTDOWN,
        ShutdownReason.UNKNOWN,
        (EventType.SHUTDOWN, detail),
        actions=(Action.TERMINATE,),
    )


def _shutdown_reboots(ctx: Context, data: Mapping[str, Any]) -> bool:
    return _active(ctx) and ctx.state is not SHUTDOWN and _shutdown_is_reboot(ctx)


def _shutdown_fake_reboot(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    flags = replace(ctx.flags, paused_shutdown=True)
    return _same(17, ctx, flags=flags, actions=(Action.FAKE_REBOOT,))


def _shutdown_repeated(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    return _same(18, ctx)


# rows 19-21: monitor EOF --------------------------------------------------------------------


def _eof_destroyed(ctx: Context, data: Mapping[str, Any]) -> bool:
    return _active(ctx) and ctx.flags.being_destroyed


def _eof_after_destroy(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    reason = ctx.flags.stop_reason
    # 25: on_crash=destroy finishing; 36: a migration's source after Confirm; 42: a
    # migration's destination after a failed Finish
    row = {ShutoffReason.CRASHED: 25, ShutoffReason.MIGRATED: 36, ShutoffReason.FAILED: 42}.get(
        reason, 21
    )
    return _to(
        row, ctx, SHUTOFF, reason, (EventType.STOPPED, stopped_detail(reason)), flags=Flags()
    )


def _eof_after_shutdown(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    return _to(
        19,
        ctx,
        SHUTOFF,
        ShutoffReason.SHUTDOWN,
        (EventType.STOPPED, StoppedDetail.SHUTDOWN),
        flags=Flags(),
    )


def _eof_while_starting(ctx: Context, data: Mapping[str, Any]) -> bool:
    return _is_starting(ctx)


def _eof_unexpected(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    return _to(
        20,
        ctx,
        SHUTOFF,
        ShutoffReason.CRASHED,
        (EventType.STOPPED, StoppedDetail.FAILED),
        flags=Flags(),
    )


# rows 22, 34: RESET -------------------------------------------------------------------------


def _reset(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    # Row 22 is the RESET that a fake reboot's system_reset causes; row 34 a guest reboot.
    # Either way the state stays, libvirt emits its REBOOT event and a pending fake
    # reboot is over.
    row = 22 if ctx.flags.fake_reboot or ctx.flags.paused_shutdown else 34
    flags = replace(ctx.flags, fake_reboot=False)
    return _same(row, ctx, flags=flags, notices=(Notice("reboot"),))


# rows 24-27: GUEST_PANICKED -----------------------------------------------------------------


def _panic_applies(ctx: Context, data: Mapping[str, Any]) -> bool:
    return ctx.state in (RUNNING, PAUSED)


def _panic(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    event = (EventType.CRASHED, CrashedDetail.PANICKED)
    action = ctx.on_crash
    flags = ctx.flags
    actions: tuple[Action, ...]
    if action in (LifecycleAction.DESTROY, LifecycleAction.COREDUMP_DESTROY):
        row = 25
        actions = (Action.CRASH_DESTROY,)
    elif action in (LifecycleAction.RESTART, LifecycleAction.COREDUMP_RESTART):
        row = 26
        flags = replace(flags, fake_reboot=True)
        actions = (Action.FAKE_REBOOT,)
    else:
        row = 27
        actions = ()
    if action in (LifecycleAction.COREDUMP_DESTROY, LifecycleAction.COREDUMP_RESTART):
        actions = (Action.CRASH_DUMP, *actions)
    return _to(row, ctx, CRASHED, CrashedReason.PANICKED, event, flags=flags, actions=actions)


def _crashloaded(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    return _same(24, ctx, (EventType.CRASHED, CrashedDetail.CRASHLOADED))


def _crashed(ctx: Context, data: Mapping[str, Any]) -> bool:
    return ctx.state is CRASHED


def _reset_crashed(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    return _to(28, ctx, PAUSED, PausedReason.CRASHED)


# rows 29-33: guest power management, watchdog, I/O errors ----------------------------------


def _is_running(ctx: Context, data: Mapping[str, Any]) -> bool:
    return ctx.state is RUNNING


def _pm_suspend(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    notice = (Notice("pm", {"phase": "suspend"}),)
    if ctx.state is not RUNNING:
        return _same(29, ctx, notices=notice)
    event = (EventType.PMSUSPENDED, PMSuspendedDetail.MEMORY)
    return _to(29, ctx, PMSUSPENDED, PMSuspendedReason.UNKNOWN, event, notices=notice)


def _pm_suspend_disk(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    notice = (Notice("pm", {"phase": "suspend-disk"}),)
    if ctx.state is not RUNNING:
        return _same(30, ctx, notices=notice)
    event = (EventType.PMSUSPENDED, PMSuspendedDetail.DISK)
    return _to(30, ctx, PMSUSPENDED, PMSuspendedReason.UNKNOWN, event, notices=notice)


def _wakeup(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    notice = (Notice("pm", {"phase": "wakeup"}),)
    if ctx.state is not PMSUSPENDED:
        return _same(31, ctx, notices=notice)
    event = (EventType.STARTED, StartedDetail.WAKEUP)
    return _to(31, ctx, RUNNING, RunningReason.WAKEUP, event, notices=notice)


def _watchdog(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    action = str(data.get("action", ""))
    notice = (Notice("watchdog", {"action": action}),)
    follow = (Action.WATCHDOG_DUMP,) if ctx.watchdog_dump else ()
    if action == "pause" and ctx.state is RUNNING:
        event = (EventType.SUSPENDED, SuspendedDetail.WATCHDOG)
        return _to(32, ctx, PAUSED, PausedReason.WATCHDOG, event, notices=notice, actions=follow)
    return _same(32, ctx, notices=notice)


def _io_error(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    action = str(data.get("action", ""))
    device = str(data.get("device") or data.get("node-name") or "")
    notice = (
        Notice(
            "io-error", {"device": device, "action": action, "reason": str(data.get("reason", ""))}
        ),
    )
    if action == "stop" and ctx.state is RUNNING:
        event = (EventType.SUSPENDED, SuspendedDetail.IOERROR)
        return _to(33, ctx, PAUSED, PausedReason.IOERROR, event, notices=notice)
    return _same(33, ctx, notices=notice)


def _rtc_change(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    return _same(0, ctx, notices=(Notice("rtc-change", {"offset": int(data.get("offset", 0))}),))


def _balloon_change(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    actual = int(data.get("actual", 0)) // 1024
    return _same(0, ctx, notices=(Notice("balloon-change", {"actual_kib": actual}),))


# rows 36-42: migration (rows 36, 37, 40 and 42 are reached through EOF and RESUME) -------


def _incoming(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    event = (EventType.STARTED, StartedDetail.MIGRATED)
    return _to(39, ctx, PAUSED, PausedReason.MIGRATION, event)


def _migration_paused(ctx: Context, data: Mapping[str, Any]) -> bool:
    return ctx.state is PAUSED and ctx.reason is PausedReason.MIGRATION


def _incoming_paused(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    event = (EventType.SUSPENDED, SuspendedDetail.PAUSED)
    return _to(41, ctx, PAUSED, PausedReason.USER, event)


def _resume_failed(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    event = (EventType.SUSPENDED, SuspendedDetail.API_ERROR)
    flags = replace(ctx.flags, pending_running_reason=None)
    return _to(38, ctx, PAUSED, PausedReason.API_ERROR, event, flags=flags)


# reconnect (libvirt-semantics.md §3.7): silent corrections, no events ---------------------

_PAUSED_FROM_QEMU: dict[str, PausedReason] = {
    "paused": PausedReason.USER,
    "io-error": PausedReason.IOERROR,
    "watchdog": PausedReason.WATCHDOG,
    "inmigrate": PausedReason.MIGRATION,
    "postmigrate": PausedReason.MIGRATION,
    "finish-migrate": PausedReason.MIGRATION,
    "save-vm": PausedReason.SAVE,
    "shutdown": PausedReason.SHUTTING_DOWN,
    "guest-panicked": PausedReason.CRASHED,
}


def _reconcile(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    status = str(data.get("status", ""))
    if not data.get("alive"):
        if ctx.state is SHUTOFF:
            return _same(0, ctx)
        # A QEMU that died while nobody watched: a finished shutdown, else a crash; one
        # the reconnect itself killed (it was still starting up): the daemon's doing.
        if data.get("killed"):
            reason = ShutoffReason.DAEMON
        elif ctx.state is SHUTDOWN:
            reason = ShutoffReason.UNKNOWN
        else:
            reason = ShutoffReason.CRASHED
        return _to(0, ctx, SHUTOFF, reason, flags=Flags())
    if status == "running":
        if ctx.state is RUNNING:
            return _same(0, ctx)
        if ctx.state is SHUTOFF or _is_starting(ctx):
            return _to(0, ctx, RUNNING, RunningReason.BOOTED)
        return _to(0, ctx, RUNNING, RunningReason.UNPAUSED)
    if status == "suspended":
        return _to(0, ctx, PMSUSPENDED, PMSuspendedReason.UNKNOWN)
    if ctx.state is RUNNING or ctx.state is SHUTOFF:
        if status == "shutdown" and ctx.flags.paused_shutdown:
            return _same(0, ctx, actions=(Action.FAKE_REBOOT,))
        if status == "shutdown" and ctx.state is RUNNING and _shutdown_is_reboot(ctx):
            # The guest powered off for a fake reboot while no daemon watched (its SHUTDOWN
            # was never seen): as libvirt, in shutdown, and the reboot is finished now; the
            # RESUME that follows (row 14) brings running (booted) and Resumed Unpaused.
            return _to(0, ctx, SHUTDOWN, ShutdownReason.UNKNOWN, actions=(Action.FAKE_REBOOT,))
        if status == "shutdown":
            return _to(0, ctx, SHUTDOWN, ShutdownReason.UNKNOWN, actions=(Action.TERMINATE,))
        if status == "guest-panicked":
            return _to(0, ctx, CRASHED, CrashedReason.PANICKED)
        return _to(0, ctx, PAUSED, _PAUSED_FROM_QEMU.get(status, PausedReason.UNKNOWN))
    return _same(0, ctx)


def _ignore(ctx: Context, data: Mapping[str, Any]) -> Outcome:
    return _same(0, ctx)


def _inactive(ctx: Context, data: Mapping[str, Any]) -> bool:
    return not _active(ctx)


def _is_active(ctx: Context, data: Mapping[str, Any]) -> bool:
    return _active(ctx)


T = Trigger

#: The transition table, in the order rules are tried. The first rule whose trigger and
#: guard match decides; a trigger no rule matches changes nothing.
RULES: tuple[Rule, ...] = (
    # A QEMU that is gone (or never was) cannot move the domain.
    Rule(0, T.STOP, _inactive, _ignore, "inactive: ignore"),
    Rule(0, T.RESUME, _inactive, _ignore, "inactive: ignore"),
    Rule(0, T.SHUTDOWN, _inactive, _ignore, "inactive: ignore"),
    Rule(0, T.RESET, _inactive, _ignore, "inactive: ignore"),
    Rule(0, T.EOF, _inactive, _ignore, "already shut off: ignore"),
    Rule(1, T.LAUNCH, _inactive, _launch, "start: launch QEMU with -S → paused (starting up)"),
    Rule(3, T.STARTED, _is_active, _started, "start finished → Started Booted (+ paused if asked)"),
    Rule(5, T.LAUNCH_FAILED, _is_active, _launch_failed, "launch failed → shut off (failed)"),
    Rule(4, T.RESET, lambda c, d: _is_starting(c), _reset_while_starting, "RESET while starting"),
    Rule(6, T.STOP, _stop_applies, _stop, "STOP while running → paused (pending reason)"),
    Rule(9, T.STOP, _stop_during_shutdown, _stop_hidden, "STOP during fake reboot: hidden"),
    Rule(10, T.STOP, _always, _stop_ignored, "STOP when not running: ignored"),
    Rule(11, T.RESUME, _not_running, _resume, "RESUME when not running → running (pending)"),
    Rule(15, T.RESUME, _always, _resume_when_running, "RESUME when running: nothing"),
    Rule(16, T.SHUTDOWN, _shutdown_applies, _shutdown, "guest/host shutdown → in shutdown"),
    Rule(17, T.SHUTDOWN, _shutdown_reboots, _shutdown_fake_reboot, "shutdown as fake reboot"),
    Rule(18, T.SHUTDOWN, _always, _shutdown_repeated, "repeated SHUTDOWN: ignored"),
    Rule(21, T.EOF, _eof_destroyed, _eof_after_destroy, "EOF after destroy → shut off"),
    Rule(19, T.EOF, lambda c, d: c.state is SHUTDOWN, _eof_after_shutdown, "EOF after shutdown"),
    Rule(5, T.EOF, _eof_while_starting, _launch_failed, "EOF while starting → failed"),
    Rule(20, T.EOF, _always, _eof_unexpected, "EOF without SHUTDOWN → shut off (crashed)"),
    Rule(34, T.RESET, _always, _reset, "RESET → reboot event"),
    Rule(24, T.GUEST_PANICKED, _panic_applies, _panic, "panic → crashed (panicked)"),
    Rule(24, T.GUEST_CRASHLOADED, _is_active, _crashloaded, "crash kernel loaded"),
    Rule(28, T.RESET_API, _crashed, _reset_crashed, "reset of a crashed domain → paused"),
    Rule(29, T.SUSPEND, _is_active, _pm_suspend, "guest S3 → pmsuspended"),
    Rule(30, T.SUSPEND_DISK, _is_active, _pm_suspend_disk, "guest S4 → pmsuspended"),
    Rule(31, T.WAKEUP, _is_active, _wakeup, "wakeup → running (event wakeup)"),
    Rule(32, T.WATCHDOG, _is_active, _watchdog, "watchdog fired"),
    Rule(33, T.BLOCK_IO_ERROR, _is_active, _io_error, "disk I/O error"),
    Rule(39, T.INCOMING, lambda c, d: _is_starting(c), _incoming, "migration in → paused"),
    Rule(41, T.INCOMING_PAUSED, _migration_paused, _incoming_paused, "arrived, left paused"),
    Rule(38, T.RESUME_FAILED, _migration_paused, _resume_failed, "source cannot continue"),
    Rule(0, T.RECONCILE, _always, _reconcile, "reconnect: match what QEMU says"),
    Rule(0, T.RTC_CHANGE, _is_active, _rtc_change, "guest RTC changed"),
    Rule(0, T.BALLOON_CHANGE, _is_active, _balloon_change, "balloon changed"),
)


def handle(ctx: Context, trigger: Trigger | str, data: Mapping[str, Any] | None = None) -> Outcome:
    """Decide what ``trigger`` (with its QMP ``data``) does to a domain in ``ctx``."""
    try:
        trig = Trigger(trigger)
    except ValueError:
        return Outcome(row=0, flags=ctx.flags)  # an event that moves nothing (MIGRATION_PASS, ...)
    payload: Mapping[str, Any] = data or {}
    for rule in RULES:
        if rule.trigger is trig and rule.guard(ctx, payload):
            return rule.effect(ctx, payload)
    return Outcome(row=0, flags=ctx.flags)
