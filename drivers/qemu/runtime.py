"""A domain as the QEMU-style drivers hold it: definition, state, flags, job, process.

:class:`DomainRuntime` implements the lifecycle API calls (start, suspend, destroy ...)
the way libvirt's QEMU driver does, for any :class:`Backend` — a real QEMU behind QMP, or
the in-memory QEMU of the ``test://`` driver. Every state change goes through
:meth:`DomainRuntime.feed`, which runs the event handler (:mod:`drivers.qemu.events`),
commits its outcome, persists it, emits its events and schedules its follow-up actions.
API code never writes the state; it only stores pending reasons and flags, sends the QMP
command, and waits for the event to arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from drivers.domxml import DomainDef, LifecycleAction
from drivers.errors import HypervisorError, OperationInvalid, VirtError
from drivers.jobs import JobLock
from drivers.model import (
    BalloonChangeEvent,
    DomainEvent,
    DomainInfo,
    DomainState,
    IOErrorEvent,
    LifecycleEvent,
    PausedReason,
    PMEvent,
    RebootEvent,
    RTCChangeEvent,
    RunningReason,
    ShutoffReason,
    StateReason,
    WatchdogEvent,
)
from drivers.qemu import events
from drivers.qemu.events import Action, Flags, Outcome, Trigger

if TYPE_CHECKING:
    from drivers.qemu.migration import Job

log = logging.getLogger(__name__)

#: How long an API call waits for the QMP event that completes it.
EVENT_WAIT = 10.0
#: How long destroy lets QEMU exit on SIGTERM before it sends SIGKILL.
DESTROY_GRACE = 5.0

_NOTICES: dict[str, type[DomainEvent]] = {
    "reboot": RebootEvent,
    "watchdog": WatchdogEvent,
    "io-error": IOErrorEvent,
    "rtc-change": RTCChangeEvent,
    "pm": PMEvent,
    "balloon-change": BalloonChangeEvent,
}


class Backend(Protocol):
    """A running hypervisor process of one domain, as the runtime drives it.

    The backend reports QMP events and its own end by calling
    :meth:`DomainRuntime.feed` (``Trigger.EOF`` last).
    """

    pid: int | None

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None) -> Any:
        """Run a QMP command; raises HypervisorError."""

    def kill(self, force: bool) -> None:
        """SIGTERM (or SIGKILL with ``force``) the process; returns at once."""

    async def wait_gone(self, timeout: float) -> bool:
        """True once the process has exited (within ``timeout`` s)."""

    def cpu_time_ns(self) -> int: ...

    async def detach(self) -> None:
        """Let go of the process without stopping it (the driver is closing)."""


class Host(Protocol):
    """What the runtime needs from its driver."""

    async def launch(self, rt: DomainRuntime, live: DomainDef, incoming: bool = False) -> Backend:
        """Start the hypervisor for ``live`` paused (-S); set ``rt.domid``. With
        ``incoming`` it waits for a migration stream (``-incoming defer``)."""

    def persist(self, rt: DomainRuntime) -> None:
        """Write the runtime status (called after every change)."""

    async def settle(self, rt: DomainRuntime) -> None:
        """Make what :meth:`persist` has written so far durable, before an API call that
        changed the domain returns (a daemon killed right after its reply must find the
        outcome, not the state before it)."""

    def publish(self, event: DomainEvent) -> None: ...

    def stopped(self, rt: DomainRuntime) -> None:
        """The process is gone: clean up runtime files, drop a transient domain."""

    def dump_path(self, rt: DomainRuntime) -> str | None:
        """Where a crash dump goes, or None when dumps are not possible."""


class DefinitionFacts:
    """What is read from one definition object on hot paths: the lifecycle actions (every
    QMP event), title/vCPUs/memory (every listing) and the XML text (every status write).

    Read once per object. A redefinition, or a new live definition at start, is a new
    object; the setters a definition has (id, lifecycle actions) are used while launching,
    before the runtime first reads it.
    """

    __slots__ = ("_xml", "actions", "defn", "listed")

    def __init__(self, defn: DomainDef) -> None:
        self.defn = defn
        self.actions: tuple[LifecycleAction, LifecycleAction, LifecycleAction, bool] = (
            defn.on_poweroff,
            defn.on_reboot,
            defn.on_crash,
            any(w.action == "dump" for w in defn.watchdogs),
        )
        self.listed: tuple[str, int, int] = (
            defn.title or "",
            defn.vcpus,
            defn.current_memory_kib,
        )
        self._xml: str | None = None

    @property
    def xml(self) -> str:
        if self._xml is None:
            self._xml = self.defn.to_xml()
        return self._xml


class DomainRuntime:
    """One domain: its definitions, its exact state and everything that moves it."""

    def __init__(
        self,
        host: Host,
        persistent: DomainDef | None,
        *,
        live: DomainDef | None = None,
        state: DomainState = DomainState.SHUTOFF,
        reason: StateReason = ShutoffReason.UNKNOWN,
        flags: Flags | None = None,
    ) -> None:
        defn = persistent or live
        assert defn is not None, "a domain needs a definition"
        self.host = host
        self.name = defn.name
        self.uuid = defn.uuid
        self.persistent = persistent
        self.live = live
        self.state = state
        self.reason = reason
        self.flags = flags or Flags()
        self.domid: int | None = None
        #: Unix time of the last start (kept across fake reboots, like a guest's uptime).
        self.started_wall: float | None = None
        self.backend: Backend | None = None
        self.jobs = JobLock(self.name)
        self.removed = False
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.trace: Callable[[Trigger | str, Outcome], None] | None = None
        self._facts: DefinitionFacts | None = None
        #: QEMU's last MIGRATION event status ('setup', 'active', 'completed', ...), for the
        #: migration phases that wait on it; None before any.
        self.migration_status: str | None = None
        #: The current or last migration job of this domain.
        self.migration: Job | None = None
        self._input = asyncio.Event()

    # --- input to the guest's screen -------------------------------------------------

    def input_sent(self) -> None:
        """Keys or the pointer went to the guest: screen viewers look again at once."""
        self._input.set()
        self._input = asyncio.Event()

    def input_event(self) -> asyncio.Event:
        """Set at the next :meth:`input_sent`."""
        return self._input

    # --- reading --------------------------------------------------------------------

    @property
    def definition(self) -> DomainDef:
        """The definition that describes the domain now (live while active)."""
        defn = self.live if self.live is not None and self.active else self.persistent
        if defn is None:
            defn = self.live
        assert defn is not None
        return defn

    @property
    def active(self) -> bool:
        return self.state.is_active

    def facts(self) -> DefinitionFacts:
        """What the hot paths read from the definition that applies now, read once per
        definition object."""
        defn = self.definition
        facts = self._facts
        if facts is None or facts.defn is not defn:
            facts = self._facts = DefinitionFacts(defn)
        return facts

    def context(self) -> events.Context:
        on_poweroff, on_reboot, on_crash, watchdog_dump = self.facts().actions
        return events.Context(
            state=self.state,
            reason=self.reason,
            flags=self.flags,
            on_poweroff=on_poweroff,
            on_reboot=on_reboot,
            on_crash=on_crash,
            watchdog_dump=watchdog_dump,
        )

    def listed(self) -> tuple[str, int, int]:
        """(title, vCPUs, current memory KiB) of the definition that applies now."""
        return self.facts().listed

    def info(self) -> DomainInfo:
        defn = self.definition
        cpu = self.backend.cpu_time_ns() if self.backend is not None and self.active else 0
        return DomainInfo(
            state=self.state,
            reason=self.reason,
            max_memory_kib=defn.memory_kib,
            memory_kib=defn.current_memory_kib,
            vcpus=defn.vcpus,
            cpu_time_ns=cpu,
        )

    # --- the one place where state changes ------------------------------------------

    def feed(
        self,
        trigger: Trigger | str,
        data: Mapping[str, Any] | None = None,
        when: float | None = None,
    ) -> Outcome:
        """Run the event handler on ``trigger`` and commit what it decides.

        ``when`` is QEMU's timestamp of the event, carried on the events it causes.
        """
        if trigger == "MIGRATION" and data is not None:
            self.migration_status = str(data.get("status", ""))
        outcome = events.handle(self.context(), trigger, data)
        if self.trace is not None:
            self.trace(trigger, outcome)
        changed = outcome.flags != self.flags or outcome.state is not None
        self.flags = outcome.flags
        if outcome.state is not None:
            self.state, self.reason = outcome.state
        stopped = outcome.state is not None and self.state is DomainState.SHUTOFF
        if stopped:
            self._forget_process()
        if changed:
            self.host.persist(self)
        for etype, detail in outcome.lifecycle:
            self.host.publish(
                LifecycleEvent(
                    domain=self.name, uuid=self.uuid, type=etype, detail=detail, source_wall=when
                )
            )
        for notice in outcome.notices:
            cls = _NOTICES[notice.kind]
            self.host.publish(
                cls(domain=self.name, uuid=self.uuid, source_wall=when, **notice.data)
            )
        if stopped:
            self.host.stopped(self)
        if outcome.actions:
            self._spawn(self._perform(outcome.actions), name=f"{self.name}-actions")
        self._changed.set()
        self._changed = asyncio.Event()
        return outcome

    def set_flags(self, **changes: Any) -> None:
        """Store pending reasons and flags before a command (persisted, no state change)."""
        self.flags = replace(self.flags, **changes)
        self.host.persist(self)

    def _forget_process(self) -> None:
        backend, self.backend = self.backend, None
        self.domid = None
        self.live = None
        if backend is not None:
            self._spawn(backend.detach(), name=f"{self.name}-detach")

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_change(self, timeout: float) -> None:
        """Until the event handler next runs for this domain; TimeoutError after
        ``timeout`` s."""
        await asyncio.wait_for(self._changed.wait(), timeout)

    async def wait_until(
        self, predicate: Callable[[], bool], what: str, timeout: float = EVENT_WAIT
    ) -> None:
        """Wait for the event handler to make ``predicate`` true."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise HypervisorError(
                    f"Domain '{self.name}' did not {what} within {timeout:g} s "
                    f"(it is {self.state.words} ({self.reason.words}))."
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    # --- checks -----------------------------------------------------------------------

    def _require_active(self) -> Backend:
        if not self.active or self.backend is None:
            raise OperationInvalid(f"Domain '{self.name}' is not running.")
        return self.backend

    def _require_running(self, verb: str) -> Backend:
        backend = self._require_active()
        if self.state is not DomainState.RUNNING:
            raise OperationInvalid(
                f"Domain '{self.name}' is {self.state.words}, not running, so it cannot be {verb}."
            )
        return backend

    # --- API calls --------------------------------------------------------------------

    async def start(self, paused: bool = False) -> None:
        async with self.jobs.job("start"):
            if self.active:
                raise OperationInvalid(f"Domain '{self.name}' is already running.")
            if self.persistent is None:
                raise OperationInvalid(f"Domain '{self.name}' has no definition to start.")
            live = self.persistent.copy()
            self.feed(Trigger.LAUNCH)
            try:
                self.live = live
                self.backend = await self.host.launch(self, live)
                if not paused:
                    self.set_flags(pending_running_reason=RunningReason.BOOTED)
                    await self.backend.execute("cont")
                    await self.wait_until(
                        lambda: self.state is not DomainState.PAUSED, "start running"
                    )
                    if not self.active:
                        raise HypervisorError(
                            f"Domain '{self.name}' stopped while it was starting."
                        )
                self.started_wall = time.time()
                self.feed(Trigger.STARTED, {"paused": paused})
                await self.host.settle(self)
            except BaseException:
                await self._abort_launch()
                raise

    async def _abort_launch(self) -> None:
        backend = self.backend
        if backend is not None:
            backend.kill(force=True)
            await backend.wait_gone(5.0)
            # The monitor's EOF normally ends the domain (row 5); make sure of it.
            with contextlib.suppress(VirtError):
                await self.wait_until(lambda: not self.active, "stop", timeout=2.0)
        if self.active:
            self.feed(Trigger.LAUNCH_FAILED)

    async def suspend(self) -> None:
        async with self.jobs.job("suspend"):
            backend = self._require_active()
            if self.state is DomainState.PAUSED:
                return
            backend = self._require_running("suspended")
            self.set_flags(pending_paused_reason=PausedReason.USER)
            try:
                await backend.execute("stop")
            except BaseException:
                self.set_flags(pending_paused_reason=None)
                raise
            await self.wait_until(lambda: self.state is not DomainState.RUNNING, "pause")

    async def resume(self) -> None:
        async with self.jobs.job("resume"):
            backend = self._require_active()
            if self.state is DomainState.RUNNING:
                raise OperationInvalid(f"Domain '{self.name}' is already running.")
            if self.state not in (DomainState.PAUSED, DomainState.CRASHED):
                raise OperationInvalid(
                    f"Domain '{self.name}' is {self.state.words}; only a paused or crashed "
                    "domain can be resumed."
                )
            self.set_flags(pending_running_reason=RunningReason.UNPAUSED)
            try:
                await backend.execute("cont")
            except BaseException:
                self.set_flags(pending_running_reason=None)
                raise
            await self.wait_until(
                lambda: self.state is DomainState.RUNNING or not self.active, "resume"
            )

    async def shutdown(self, request: Callable[[], Awaitable[None]] | None = None) -> None:
        """ACPI power button, or ``request`` (the guest agent's ``guest-shutdown``)."""
        async with self.jobs.job("shutdown"):
            backend = self._require_running("shut down")
            restart = self.definition.on_poweroff is LifecycleAction.RESTART
            self.set_flags(fake_reboot=restart)
            if request is None:
                await backend.execute("system_powerdown")
                return
            try:
                await request()
            except BaseException:
                self.set_flags(fake_reboot=False)
                raise

    async def reboot(self) -> None:
        async with self.jobs.job("reboot"):
            backend = self._require_active()
            on_reboot = self.definition.on_reboot
            # With on_reboot destroy/preserve a reboot request is a shutdown, as in libvirt.
            fake = on_reboot not in (LifecycleAction.DESTROY, LifecycleAction.PRESERVE)
            self.set_flags(fake_reboot=fake)
            await backend.execute("system_powerdown")

    async def reset(self) -> None:
        async with self.jobs.job("reset"):
            backend = self._require_active()
            await backend.execute("system_reset")
            self.set_flags(fake_reboot=False)
            self.feed(Trigger.RESET_API)

    async def destroy(self) -> None:
        if not self.active:
            raise OperationInvalid(f"Domain '{self.name}' is not running.")
        # Kill before taking the job, so a job stuck on a hung QEMU is released.
        self.set_flags(being_destroyed=True, stop_reason=ShutoffReason.DESTROYED, fake_reboot=False)
        backend = self.backend
        if backend is not None:
            backend.kill(force=False)
            if not await backend.wait_gone(DESTROY_GRACE):
                backend.kill(force=True)
                await backend.wait_gone(5.0)
        async with self.jobs.job("destroy", wait=EVENT_WAIT + DESTROY_GRACE):
            await self._finish_stop(ShutoffReason.DESTROYED)
            await self.host.settle(self)

    async def _finish_stop(self, reason: ShutoffReason) -> None:
        if not self.active:
            return
        self.set_flags(being_destroyed=True, stop_reason=reason)
        backend = self.backend
        if backend is None:
            self.feed(Trigger.EOF)
            return
        if not await backend.wait_gone(DESTROY_GRACE):
            backend.kill(force=True)
            await backend.wait_gone(5.0)
        with contextlib.suppress(VirtError):
            await self.wait_until(lambda: not self.active, "stop", timeout=3.0)
        if self.active:
            # The process is gone but no EOF came (monitor never connected): say so.
            self.feed(Trigger.EOF)

    # --- follow-up actions ------------------------------------------------------------

    async def _perform(self, actions: tuple[Action, ...]) -> None:
        try:
            for action in actions:
                await self._perform_one(action)
        except Exception:
            log.exception("domain %s: follow-up %s failed", self.name, actions)

    async def _perform_one(self, action: Action) -> None:
        if action is Action.TERMINATE:
            if self.backend is not None:
                self.backend.kill(force=False)
        elif action is Action.FAKE_REBOOT:
            await self._fake_reboot()
        elif action is Action.CRASH_DESTROY:
            async with self.jobs.job("crash destroy", wait=60.0):
                if self.active and self.backend is not None:
                    # SIGKILL: a crashed guest has nothing to flush, and a SIGTERM would
                    # make QEMU report a host shutdown that libvirt never shows here.
                    self.set_flags(being_destroyed=True, stop_reason=ShutoffReason.CRASHED)
                    self.backend.kill(force=True)
                    await self._finish_stop(ShutoffReason.CRASHED)
        elif action in (Action.CRASH_DUMP, Action.WATCHDOG_DUMP):
            await self._dump(resume=action is Action.WATCHDOG_DUMP)

    async def _fake_reboot(self) -> None:
        async with self.jobs.job("fake reboot", wait=60.0):
            backend = self.backend
            if not self.active or backend is None:
                return
            try:
                await backend.execute("system_reset")
                reason = (
                    RunningReason.CRASHED
                    if self.state is DomainState.CRASHED
                    else RunningReason.BOOTED
                )
                self.set_flags(pending_running_reason=reason)
                await backend.execute("cont")
            except VirtError as err:
                log.warning("domain %s: fake reboot failed (%s); killing it", self.name, err)
                backend.kill(force=True)
            finally:
                if self.active:
                    self.set_flags(paused_shutdown=False, fake_reboot=False)

    async def _dump(self, resume: bool) -> None:
        path = self.host.dump_path(self)
        backend = self.backend
        if path is None or backend is None:
            return
        async with self.jobs.job("dump", wait=60.0):
            try:
                await backend.execute(
                    "dump-guest-memory", {"paging": False, "protocol": f"file:{path}"}
                )
            except VirtError as err:
                log.warning("domain %s: memory dump failed: %s", self.name, err)
            if resume and self.state is DomainState.PAUSED:
                self.set_flags(pending_running_reason=RunningReason.UNPAUSED)
                await backend.execute("cont")

    async def detach(self) -> None:
        """The driver is closing: stop follow-up work and let go of the process."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self.backend is not None:
            await self.backend.detach()
