"""The event handler, row by row (libvirt-semantics.md §3.6).

Each case gives the domain's state, reason and flags, one trigger, and what must come out:
the row that matched, the new state (or none), the lifecycle events in virsh words, the
other events, the follow-up actions and the flags afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from drivers.domxml import LifecycleAction
from drivers.model import (
    CrashedReason,
    DomainState,
    PausedReason,
    PMSuspendedReason,
    RunningReason,
    ShutdownReason,
    ShutoffReason,
    StateReason,
)
from drivers.qemu.events import RULES, Action, Context, Flags, Trigger, handle

R, P, SD, SO, C, PM = (
    DomainState.RUNNING,
    DomainState.PAUSED,
    DomainState.SHUTDOWN,
    DomainState.SHUTOFF,
    DomainState.CRASHED,
    DomainState.PMSUSPENDED,
)
A = LifecycleAction


@dataclass
class Case:
    row: int
    state: tuple[DomainState, StateReason]
    trigger: Trigger | str
    data: dict[str, Any] = field(default_factory=dict)
    flags: Flags = field(default_factory=Flags)
    actions_cfg: dict[str, LifecycleAction] = field(default_factory=dict)
    expect_state: tuple[DomainState, StateReason] | None = None
    expect_events: tuple[str, ...] = ()
    expect_notices: tuple[str, ...] = ()
    expect_actions: tuple[Action, ...] = ()
    expect_flags: dict[str, Any] = field(default_factory=dict)
    id: str = ""


STARTING = (P, PausedReason.STARTING_UP)
MIGRATING = (P, PausedReason.MIGRATION)
BOOTED = (R, RunningReason.BOOTED)

CASES = [
    Case(
        1,
        (SO, ShutoffReason.UNKNOWN),
        Trigger.LAUNCH,
        flags=Flags(fake_reboot=True),
        expect_state=STARTING,
        expect_flags={"fake_reboot": False},
        id="launch",
    ),
    Case(
        2,
        STARTING,
        "RESUME",
        flags=Flags(pending_running_reason=RunningReason.BOOTED),
        expect_state=BOOTED,
        expect_events=("Resumed Unpaused",),
        expect_flags={"pending_running_reason": None},
        id="start-resume",
    ),
    Case(
        2,
        BOOTED,
        Trigger.STARTED,
        {"paused": False},
        expect_events=("Started Booted",),
        id="start-finished",
    ),
    Case(
        3,
        STARTING,
        Trigger.STARTED,
        {"paused": True},
        expect_state=(P, PausedReason.USER),
        expect_events=("Started Booted", "Suspended Paused"),
        id="start-paused",
    ),
    Case(4, STARTING, "RESET", {"guest": False}, id="reset-while-starting"),
    Case(
        5,
        STARTING,
        Trigger.LAUNCH_FAILED,
        expect_state=(SO, ShutoffReason.FAILED),
        expect_events=("Stopped Failed",),
        id="launch-failed",
    ),
    Case(
        5,
        STARTING,
        Trigger.EOF,
        expect_state=(SO, ShutoffReason.FAILED),
        expect_events=("Stopped Failed",),
        id="eof-while-starting",
    ),
    Case(
        6,
        BOOTED,
        "STOP",
        flags=Flags(pending_paused_reason=PausedReason.USER),
        expect_state=(P, PausedReason.USER),
        expect_events=("Suspended Paused",),
        expect_flags={"pending_paused_reason": None},
        id="suspend",
    ),
    Case(
        7,
        BOOTED,
        "STOP",
        expect_state=(P, PausedReason.UNKNOWN),
        expect_events=("Suspended Paused",),
        id="external-stop",
    ),
    Case(
        8,
        BOOTED,
        "STOP",
        flags=Flags(migration_out=True),
        expect_state=(P, PausedReason.MIGRATION),
        expect_events=("Suspended Migrated",),
        id="stop-migrating",
    ),
    Case(
        8,
        BOOTED,
        "STOP",
        flags=Flags(migration_out=True, postcopy=True),
        expect_state=(P, PausedReason.POSTCOPY),
        expect_events=("Suspended Post-copy",),
        id="stop-postcopy",
    ),
    Case(
        9,
        BOOTED,
        "STOP",
        flags=Flags(paused_shutdown=True, fake_reboot=True),
        id="stop-during-fake-reboot",
    ),
    Case(
        10,
        (C, CrashedReason.PANICKED),
        "STOP",
        flags=Flags(pending_paused_reason=PausedReason.USER),
        expect_flags={"pending_paused_reason": None},
        id="stop-when-crashed",
    ),
    Case(10, (P, PausedReason.USER), "STOP", id="stop-when-paused"),
    Case(
        11,
        (P, PausedReason.USER),
        "RESUME",
        flags=Flags(pending_running_reason=RunningReason.UNPAUSED),
        expect_state=(R, RunningReason.UNPAUSED),
        expect_events=("Resumed Unpaused",),
        id="resume",
    ),
    Case(
        11,
        (P, PausedReason.UNKNOWN),
        "RESUME",
        expect_state=(R, RunningReason.UNPAUSED),
        expect_events=("Resumed Unpaused",),
        id="external-cont",
    ),
    Case(
        37,
        (P, PausedReason.MIGRATION),
        "RESUME",
        flags=Flags(pending_running_reason=RunningReason.MIGRATION_CANCELED),
        expect_state=(R, RunningReason.MIGRATION_CANCELED),
        expect_events=("Resumed Migrated",),
        id="resume-migration-canceled",
    ),
    Case(
        12,
        (C, CrashedReason.PANICKED),
        "RESUME",
        flags=Flags(pending_running_reason=RunningReason.UNPAUSED),
        expect_state=(R, RunningReason.UNPAUSED),
        expect_events=("Resumed Unpaused",),
        id="resume-crashed",
    ),
    Case(
        13,
        (C, CrashedReason.PANICKED),
        "RESUME",
        flags=Flags(pending_running_reason=RunningReason.CRASHED, fake_reboot=True),
        expect_state=(R, RunningReason.CRASHED),
        expect_events=("Resumed Unpaused",),
        id="seed-crash-restart",
    ),
    Case(
        14,
        (SD, ShutdownReason.UNKNOWN),
        "RESUME",
        flags=Flags(pending_running_reason=RunningReason.BOOTED),
        expect_state=BOOTED,
        expect_events=("Resumed Unpaused",),
        id="seed-resume-after-shutdown",
    ),
    Case(
        15,
        (R, RunningReason.UNPAUSED),
        "RESUME",
        flags=Flags(pending_running_reason=RunningReason.BOOTED),
        expect_flags={"pending_running_reason": None},
        id="resume-when-running",
    ),
    Case(
        16,
        BOOTED,
        "SHUTDOWN",
        {"guest": True, "reason": "guest-shutdown"},
        expect_state=(SD, ShutdownReason.UNKNOWN),
        expect_events=("Shutdown Finished after guest request",),
        expect_actions=(Action.TERMINATE,),
        id="guest-shutdown",
    ),
    Case(
        16,
        BOOTED,
        "SHUTDOWN",
        {"guest": False, "reason": "host-signal"},
        expect_state=(SD, ShutdownReason.UNKNOWN),
        expect_events=("Shutdown Finished after host request",),
        expect_actions=(Action.TERMINATE,),
        id="host-shutdown",
    ),
    Case(
        16,
        BOOTED,
        "SHUTDOWN",
        expect_state=(SD, ShutdownReason.UNKNOWN),
        expect_events=("Shutdown Finished",),
        expect_actions=(Action.TERMINATE,),
        id="shutdown-no-guest-field",
    ),
    Case(
        16,
        (C, CrashedReason.PANICKED),
        "SHUTDOWN",
        {"guest": False},
        expect_state=(SD, ShutdownReason.UNKNOWN),
        expect_events=("Shutdown Finished after host request",),
        expect_actions=(Action.TERMINATE,),
        id="destroy-preserved-crash",
    ),
    Case(
        17,
        BOOTED,
        "SHUTDOWN",
        {"guest": True},
        flags=Flags(fake_reboot=True),
        expect_flags={"paused_shutdown": True},
        expect_actions=(Action.FAKE_REBOOT,),
        id="fake-reboot",
    ),
    Case(
        17,
        BOOTED,
        "SHUTDOWN",
        {"guest": True},
        actions_cfg={"on_poweroff": A.RESTART},
        expect_flags={"paused_shutdown": True},
        expect_actions=(Action.FAKE_REBOOT,),
        id="on-poweroff-restart",
    ),
    Case(18, (SD, ShutdownReason.UNKNOWN), "SHUTDOWN", {"guest": False}, id="repeated-shutdown"),
    Case(
        19,
        (SD, ShutdownReason.UNKNOWN),
        Trigger.EOF,
        expect_state=(SO, ShutoffReason.SHUTDOWN),
        expect_events=("Stopped Shutdown",),
        id="eof-after-shutdown",
    ),
    Case(
        20,
        BOOTED,
        Trigger.EOF,
        expect_state=(SO, ShutoffReason.CRASHED),
        expect_events=("Stopped Failed",),
        id="qemu-killed",
    ),
    Case(
        20,
        (P, PausedReason.USER),
        Trigger.EOF,
        expect_state=(SO, ShutoffReason.CRASHED),
        expect_events=("Stopped Failed",),
        id="qemu-killed-paused",
    ),
    Case(
        21,
        (SD, ShutdownReason.UNKNOWN),
        Trigger.EOF,
        flags=Flags(being_destroyed=True),
        expect_state=(SO, ShutoffReason.DESTROYED),
        expect_events=("Stopped Destroyed",),
        expect_flags={"being_destroyed": False},
        id="destroy",
    ),
    Case(
        21,
        BOOTED,
        Trigger.EOF,
        flags=Flags(being_destroyed=True),
        expect_state=(SO, ShutoffReason.DESTROYED),
        expect_events=("Stopped Destroyed",),
        id="destroy-sigkill",
    ),
    Case(
        22,
        BOOTED,
        "RESET",
        {"guest": False, "reason": "host-qmp-system-reset"},
        flags=Flags(fake_reboot=True, paused_shutdown=True),
        expect_notices=("reboot",),
        expect_flags={"fake_reboot": False, "paused_shutdown": True},
        id="fake-reboot-reset",
    ),
    Case(
        27,
        (P, PausedReason.USER),
        "GUEST_PANICKED",
        {"action": "pause"},
        actions_cfg={"on_crash": A.PRESERVE},
        expect_state=(C, CrashedReason.PANICKED),
        expect_events=("Crashed Panicked",),
        id="panic-while-paused",
    ),
    Case(24, BOOTED, "GUEST_CRASHLOADED", expect_events=("Crashed Crashloaded",), id="crashloaded"),
    Case(
        25,
        BOOTED,
        "GUEST_PANICKED",
        {"action": "pause"},
        actions_cfg={"on_crash": A.DESTROY},
        expect_state=(C, CrashedReason.PANICKED),
        expect_events=("Crashed Panicked",),
        expect_actions=(Action.CRASH_DESTROY,),
        id="panic-destroy",
    ),
    Case(
        25,
        (C, CrashedReason.PANICKED),
        Trigger.EOF,
        flags=Flags(being_destroyed=True, stop_reason=ShutoffReason.CRASHED),
        expect_state=(SO, ShutoffReason.CRASHED),
        expect_events=("Stopped Crashed",),
        id="panic-destroy-eof",
    ),
    Case(
        25,
        BOOTED,
        "GUEST_PANICKED",
        {"action": "pause"},
        actions_cfg={"on_crash": A.COREDUMP_DESTROY},
        expect_state=(C, CrashedReason.PANICKED),
        expect_events=("Crashed Panicked",),
        expect_actions=(Action.CRASH_DUMP, Action.CRASH_DESTROY),
        id="panic-coredump-destroy",
    ),
    Case(
        26,
        BOOTED,
        "GUEST_PANICKED",
        {"action": "pause"},
        actions_cfg={"on_crash": A.RESTART},
        expect_state=(C, CrashedReason.PANICKED),
        expect_events=("Crashed Panicked",),
        expect_actions=(Action.FAKE_REBOOT,),
        expect_flags={"fake_reboot": True},
        id="panic-restart",
    ),
    Case(
        26,
        BOOTED,
        "GUEST_PANICKED",
        {"action": "pause"},
        actions_cfg={"on_crash": A.COREDUMP_RESTART},
        expect_state=(C, CrashedReason.PANICKED),
        expect_events=("Crashed Panicked",),
        expect_actions=(Action.CRASH_DUMP, Action.FAKE_REBOOT),
        expect_flags={"fake_reboot": True},
        id="panic-coredump-restart",
    ),
    Case(
        27,
        BOOTED,
        "GUEST_PANICKED",
        {"action": "pause"},
        actions_cfg={"on_crash": A.PRESERVE},
        expect_state=(C, CrashedReason.PANICKED),
        expect_events=("Crashed Panicked",),
        id="panic-preserve",
    ),
    Case(
        28,
        (C, CrashedReason.PANICKED),
        Trigger.RESET_API,
        expect_state=(P, PausedReason.CRASHED),
        id="reset-crashed",
    ),
    Case(
        29,
        BOOTED,
        "SUSPEND",
        expect_state=(PM, PMSuspendedReason.UNKNOWN),
        expect_events=("PMSuspended Memory",),
        expect_notices=("pm",),
        id="s3",
    ),
    Case(
        30,
        BOOTED,
        "SUSPEND_DISK",
        expect_state=(PM, PMSuspendedReason.UNKNOWN),
        expect_events=("PMSuspended Disk",),
        expect_notices=("pm",),
        id="s4",
    ),
    Case(
        31,
        (PM, PMSuspendedReason.UNKNOWN),
        "WAKEUP",
        expect_state=(R, RunningReason.WAKEUP),
        expect_events=("Started Event wakeup",),
        expect_notices=("pm",),
        id="wakeup",
    ),
    Case(
        32,
        BOOTED,
        "WATCHDOG",
        {"action": "pause"},
        expect_state=(P, PausedReason.WATCHDOG),
        expect_events=("Suspended Watchdog",),
        expect_notices=("watchdog",),
        id="watchdog-pause",
    ),
    Case(
        32,
        BOOTED,
        "WATCHDOG",
        {"action": "reset"},
        expect_notices=("watchdog",),
        id="watchdog-reset",
    ),
    Case(
        33,
        BOOTED,
        "BLOCK_IO_ERROR",
        {"device": "vda", "action": "stop", "reason": "enospc"},
        expect_state=(P, PausedReason.IOERROR),
        expect_events=("Suspended I/O Error",),
        expect_notices=("io-error",),
        id="io-error-stop",
    ),
    Case(
        33,
        BOOTED,
        "BLOCK_IO_ERROR",
        {"device": "vda", "action": "report"},
        expect_notices=("io-error",),
        id="io-error-report",
    ),
    Case(
        34,
        BOOTED,
        "RESET",
        {"guest": True, "reason": "guest-reset"},
        expect_notices=("reboot",),
        id="guest-reboot",
    ),
    Case(
        35,
        BOOTED,
        "SHUTDOWN",
        {"guest": True, "reason": "guest-reset"},
        actions_cfg={"on_reboot": A.DESTROY},
        expect_state=(SD, ShutdownReason.UNKNOWN),
        expect_events=("Shutdown Finished after guest request",),
        expect_actions=(Action.TERMINATE,),
        id="on-reboot-destroy",
    ),
    # rows 36-42: migration
    Case(
        8,
        BOOTED,
        "STOP",
        flags=Flags(migration_out=True),
        expect_state=MIGRATING,
        expect_events=("Suspended Migrated",),
        id="migration-switchover",
    ),
    Case(
        36,
        MIGRATING,
        Trigger.EOF,
        flags=Flags(being_destroyed=True, stop_reason=ShutoffReason.MIGRATED),
        expect_state=(SO, ShutoffReason.MIGRATED),
        expect_events=("Stopped Migrated",),
        id="migration-confirmed",
    ),
    Case(
        37,
        MIGRATING,
        "RESUME",
        flags=Flags(pending_running_reason=RunningReason.MIGRATION_CANCELED),
        expect_state=(R, RunningReason.MIGRATION_CANCELED),
        expect_events=("Resumed Migrated",),
        id="migration-cancelled",
    ),
    Case(
        38,
        MIGRATING,
        Trigger.RESUME_FAILED,
        flags=Flags(pending_running_reason=RunningReason.MIGRATION_CANCELED),
        expect_state=(P, PausedReason.API_ERROR),
        expect_events=("Suspended API error",),
        expect_flags={"pending_running_reason": None},
        id="migration-cannot-continue",
    ),
    Case(
        39,
        STARTING,
        Trigger.INCOMING,
        expect_state=MIGRATING,
        expect_events=("Started Migrated",),
        id="migration-prepared",
    ),
    Case(
        40,
        MIGRATING,
        "RESUME",
        flags=Flags(pending_running_reason=RunningReason.MIGRATED),
        expect_state=(R, RunningReason.MIGRATED),
        expect_events=("Resumed Migrated",),
        id="migration-finished",
    ),
    Case(
        41,
        MIGRATING,
        Trigger.INCOMING_PAUSED,
        expect_state=(P, PausedReason.USER),
        expect_events=("Suspended Paused",),
        id="migration-finished-paused",
    ),
    Case(
        42,
        MIGRATING,
        Trigger.EOF,
        flags=Flags(being_destroyed=True, stop_reason=ShutoffReason.FAILED),
        expect_state=(SO, ShutoffReason.FAILED),
        expect_events=("Stopped Failed",),
        id="migration-finish-failed",
    ),
    Case(0, BOOTED, Trigger.INCOMING, id="incoming-when-running"),
    Case(0, BOOTED, Trigger.RESUME_FAILED, id="resume-failed-when-running"),
    Case(0, (SO, ShutoffReason.SHUTDOWN), "STOP", id="stop-inactive"),
    Case(0, (SO, ShutoffReason.SHUTDOWN), Trigger.EOF, id="eof-inactive"),
    Case(0, BOOTED, "MIGRATION_PASS", {"pass": 1}, id="unknown-event"),
]


def _words(outcome_events: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(f"{t.words} {d.words}" for t, d in outcome_events)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_row(case: Case) -> None:
    cfg = case.actions_cfg
    ctx = Context(
        state=case.state[0],
        reason=case.state[1],
        flags=case.flags,
        on_poweroff=cfg.get("on_poweroff", A.DESTROY),
        on_reboot=cfg.get("on_reboot", A.RESTART),
        on_crash=cfg.get("on_crash", A.DESTROY),
    )
    out = handle(ctx, case.trigger, case.data)
    assert out.row == case.row
    assert out.state == case.expect_state
    assert _words(out.lifecycle) == case.expect_events
    assert tuple(n.kind for n in out.notices) == case.expect_notices
    assert out.actions == case.expect_actions
    for name, value in case.expect_flags.items():
        assert getattr(out.flags, name) == value, name


def test_every_row_of_the_table_is_tested() -> None:
    tested = {c.row for c in CASES}
    assert set(range(1, 43)) - tested == {23}  # row 23 (fake reboot failure) is a driver path


def test_rules_cover_rows_1_to_42() -> None:
    rows = {rule.row for rule in RULES}
    assert {
        1,
        3,
        4,
        5,
        6,
        9,
        10,
        11,
        15,
        16,
        17,
        18,
        19,
        20,
        21,
        24,
        28,
        29,
        30,
        31,
        32,
        33,
        34,
        38,
        39,
        41,
    } <= rows


def test_fake_reboot_sequence_never_leaves_running() -> None:
    """virsh reboot on the real guest: POWERDOWN, SHUTDOWN, STOP, RESET, RESUME, RESET."""
    ctx = Context(state=R, reason=RunningReason.UNPAUSED, flags=Flags(fake_reboot=True))
    seen_states = []
    notices = []
    for trigger, data in [
        ("POWERDOWN", {}),
        ("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"}),
        ("STOP", {}),
        ("RESET", {"guest": False, "reason": "host-qmp-system-reset"}),
        ("RESUME", {}),
        ("RESET", {"guest": True, "reason": "guest-reset"}),
    ]:
        if trigger == "RESUME":  # the fake-reboot worker stores the reason before 'cont'
            ctx = Context(
                ctx.state,
                ctx.reason,
                flags=Flags(
                    pending_running_reason=RunningReason.BOOTED,
                    paused_shutdown=ctx.flags.paused_shutdown,
                ),
            )
        out = handle(ctx, trigger, data)
        assert not out.lifecycle
        notices += [n.kind for n in out.notices]
        if out.state:
            ctx = Context(out.state[0], out.state[1], out.flags)
        else:
            ctx = Context(ctx.state, ctx.reason, out.flags)
        seen_states.append((ctx.state, ctx.reason))
    assert set(seen_states) == {(R, RunningReason.UNPAUSED)}
    assert notices == ["reboot", "reboot"]


def test_panic_then_stop_in_order_gives_no_suspended_event() -> None:
    """QEMU sends GUEST_PANICKED then STOP; libvirt's race sometimes shows Suspended Paused."""
    ctx = Context(state=R, reason=RunningReason.BOOTED, on_crash=A.PRESERVE)
    first = handle(ctx, "GUEST_PANICKED", {"action": "pause"})
    assert first.state is not None
    ctx = Context(first.state[0], first.state[1], first.flags, on_crash=A.PRESERVE)
    second = handle(ctx, "STOP", {})
    assert _words(first.lifecycle + second.lifecycle) == ("Crashed Panicked",)
    assert second.state is None


@pytest.mark.parametrize(
    ("state", "alive", "status", "expected"),
    [
        ((R, RunningReason.BOOTED), True, "running", None),
        ((P, PausedReason.USER), True, "running", (R, RunningReason.UNPAUSED)),
        (STARTING, True, "running", BOOTED),
        ((R, RunningReason.BOOTED), True, "paused", (P, PausedReason.USER)),
        ((R, RunningReason.BOOTED), True, "shutdown", (SD, ShutdownReason.UNKNOWN)),
        ((R, RunningReason.BOOTED), True, "guest-panicked", (C, CrashedReason.PANICKED)),
        ((P, PausedReason.USER), True, "paused", None),
        ((R, RunningReason.BOOTED), False, "", (SO, ShutoffReason.CRASHED)),
        ((SD, ShutdownReason.UNKNOWN), False, "", (SO, ShutoffReason.UNKNOWN)),
    ],
)
def test_reconcile(
    state: tuple[DomainState, StateReason],
    alive: bool,
    status: str,
    expected: tuple[DomainState, StateReason] | None,
) -> None:
    out = handle(Context(state[0], state[1]), Trigger.RECONCILE, {"alive": alive, "status": status})
    assert out.state == expected
    assert out.lifecycle == ()


@pytest.mark.parametrize(
    ("flags", "on_poweroff", "expected"),
    [
        (Flags(), A.DESTROY, Action.TERMINATE),
        (Flags(fake_reboot=True), A.DESTROY, Action.FAKE_REBOOT),
        (Flags(), A.RESTART, Action.FAKE_REBOOT),
        (Flags(paused_shutdown=True), A.DESTROY, Action.FAKE_REBOOT),
    ],
    ids=["guest-powered-off", "fake-reboot-pending", "on-poweroff-restart", "reset-pending"],
)
def test_reconcile_of_a_guest_that_powered_off_without_a_daemon(
    flags: Flags, on_poweroff: LifecycleAction, expected: Action
) -> None:
    """QEMU is in 'shutdown' when the daemon reconnects. A reboot the daemon began (or
    on_poweroff=restart) is finished as libvirt finishes it (found by
    tests/differential: libvirtd ends running (booted)); otherwise the guest is shut down."""
    ctx = Context(R, RunningReason.UNPAUSED, flags, on_poweroff=on_poweroff)
    out = handle(ctx, Trigger.RECONCILE, {"alive": True, "status": "shutdown"})
    assert out.actions == (expected,)
    assert out.lifecycle == ()
    if flags.paused_shutdown:
        assert out.state is None  # the SHUTDOWN was seen: the state never left running
        return
    assert out.state == (SD, ShutdownReason.UNKNOWN)
    # ... and the reboot's RESUME then reads running (booted), as libvirt's does
    after = handle(
        Context(
            SD,
            ShutdownReason.UNKNOWN,
            replace(out.flags, pending_running_reason=RunningReason.BOOTED),
        ),
        "RESUME",
    )
    assert after.row == 14 and after.state == BOOTED
    assert _words(after.lifecycle) == ("Resumed Unpaused",)
