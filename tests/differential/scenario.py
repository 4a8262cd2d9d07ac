"""The scripted scenario both sides run, what each step records, and how sides compare.

Every step does one thing a user (or the guest, or fate) does, waits until the side has
settled (a line it must see, the guest's READY when the step reboots it, then a quiet
period on the event stream), and records

* ``state``: the ``domstate --reason`` line of the domain (``error`` when there is none);
* ``events``: the ``event --loop --all`` lines the step produced, normalised: lifecycle
  lines as their words (``Started Booted``), reboot lines as ``(reboot)`` with a run of
  them counted once (the guest's firmware resets 2-5 times per reboot, a count that varies
  run to run on libvirt itself, libvirt-semantics.md §8); other kinds are kept apart
  (shown, not compared: they are not lifecycle);
* ``guest``: whether the guest booted again within the step (steps that expect a boot).

The same code drives both sides; only :class:`~tests.differential.sides.Side` differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.differential.sides import Side, Watcher
from tests.e2e.helpers import guest_xml
from tests.guest import READY_RE, GuestImage, SerialConsole

PREFIX = "vddiff-"
NAME = PREFIX + "g"
QUIET = 0.4  # seconds without a new event line before a step counts as settled
BOOT_TIMEOUT = 45.0
#: The guest's ACPI power-button handler, slowed down so a daemon can be stopped between
#: the host's reboot request and the guest's power-off (the handler lives in the
#: initramfs, so the next boot has the original again).
POWEROFF_DELAY = 5.0
SLOW_POWEROFF = (
    f"sh printf '#!/bin/sh\\nsleep {POWEROFF_DELAY:g}\\npoweroff -f\\n' > /etc/acpi/PWRF/00000080"
)

_LIFECYCLE = re.compile(r"^event 'lifecycle' for domain '(?P<dom>[^']*)': (?P<words>.*)$")
_OTHER = re.compile(r"^event '(?P<kind>[^']+)' for domain '(?P<dom>[^']*)'")


@dataclass
class Observation:
    step: str
    state: str
    events: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    guest: str = ""
    note: str = ""
    seconds: float = 0.0  # how long the step took (shown, not compared)


def normalise(lines: Sequence[str]) -> tuple[list[str], list[str]]:
    """(lifecycle and reboot lines as compared, other event lines as shown)."""
    events: list[str] = []
    other: list[str] = []
    for line in lines:
        if (match := _LIFECYCLE.match(line)) is not None:
            events.append(match["words"])
        elif (match := _OTHER.match(line)) is not None:
            if match["kind"] == "reboot":
                if not events or events[-1] != "(reboot)":
                    events.append("(reboot)")
            else:
                other.append(match["kind"])
    return events, other


class StepFailed(Exception):
    pass


class Run:
    """One side's pass through the scenario."""

    def __init__(self, side: Side, scratch: Path, image: GuestImage) -> None:
        self.side = side
        self.scratch = scratch
        self.image = image
        self.serial = scratch / "s.sock"
        self.serial_b = scratch / "b.sock"
        self.observations: list[Observation] = []
        self.watcher: Watcher = side.watcher()
        self.dst_watcher: Watcher | None = None
        self.console: SerialConsole | None = None
        self.uuid = "6d5ae2b0-8d2c-4a4c-9d0e-3f2b1c0d9e11"
        self.files: dict[str, Path] = {}
        self.elapsed = 0.0

    # --- helpers ----------------------------------------------------------------------------

    def xml_file(
        self,
        on_crash: str,
        serial: Path | None = None,
        tag: str = "",
        on_poweroff: str = "destroy",
        on_reboot: str = "restart",
    ) -> str:
        key = f"{on_crash}{tag}"
        if key not in self.files:
            path = self.scratch / f"{key}.xml"
            text = guest_xml(
                NAME,
                self.image,
                serial or self.serial,
                on_poweroff=on_poweroff,
                on_reboot=on_reboot,
                on_crash=on_crash,
                uuid=self.uuid,
            )
            path.write_text(text)
            self.files[key] = path
        return str(self.files[key])

    async def cli(self, *args: str, uri: str | None = None) -> None:
        await self.side.cli(*args, uri=uri)

    async def attach(self) -> None:
        """A console on the (new) QEMU's serial socket."""
        await self.detach()
        self.console = await SerialConsole.connect(self.serial, timeout=15)

    async def detach(self) -> None:
        if self.console is not None:
            await self.console.close()
            self.console = None

    async def send(self, line: str) -> None:
        assert self.console is not None, "no console"
        await self.console.send(line)

    async def booted(self, timeout: float = BOOT_TIMEOUT) -> bool:
        if self.console is None:
            return False
        try:
            await self.console.wait_for(READY_RE, timeout=timeout)
        except (TimeoutError, EOFError):
            return False
        return True

    async def step(
        self,
        name: str,
        action: Callable[[], Awaitable[None]],
        *,
        until: str | None = None,
        boot: float | None = None,
        uri: str | None = None,
        watcher: Watcher | None = None,
    ) -> Observation:
        """Do ``action``; settle; record the state and the events of the step.

        ``until``: an event line (a substring) the step must produce before it settles;
        ``boot``: the step reboots the guest, wait up to that many seconds for READY.
        """
        seen = watcher or self.watcher
        mark = seen.mark()
        t0 = time.monotonic()
        try:
            await action()
        except Exception as err:
            obs = Observation(name, f"FAILED: {err}")
            self.observations.append(obs)
            raise StepFailed(name) from err
        note = ""
        if until is not None and not await seen.wait_line(mark, until, 30):
            note = f"no '{until}' within 30 s"
        guest = ""
        if boot is not None:
            guest = "booted" if await self.booted(boot) else "no boot"
        await seen.wait_quiet(QUIET, 15)
        state = await self.side.domstate(NAME, uri=uri)
        events, other = normalise(seen.lines[mark:])
        obs = Observation(name, state, events, other, guest, note, time.monotonic() - t0)
        self.observations.append(obs)
        return obs

    # --- the scenario -----------------------------------------------------------------------

    async def run(self) -> list[Observation]:
        started = time.monotonic()
        await self.watcher.start()
        await asyncio.sleep(0.3)  # let the watcher subscribe before the first step
        try:
            await self._lifecycle()
            await self._panics()
            await self._kill_and_restart()
            await self._migration()
        except StepFailed:
            pass
        except Exception as err:  # recorded: the comparison shows where this side stopped
            failed = f"FAILED: {type(err).__name__}: {err}"
            self.observations.append(Observation("(aborted)", failed))
        finally:
            await self.detach()
            await self.watcher.stop()
            if self.dst_watcher is not None:
                await self.dst_watcher.stop()
            self.elapsed = time.monotonic() - started
        return self.observations

    async def _lifecycle(self) -> None:
        restart = self.xml_file("restart")
        await self.step("define", lambda: self.cli("define", restart), until="Defined")

        async def start() -> None:
            await self.cli("start", NAME)
            await self.attach()

        await self.step("start", start, until="Started", boot=BOOT_TIMEOUT)
        await self.step("suspend", lambda: self.cli("suspend", NAME), until="Suspended")
        await self.step("resume", lambda: self.cli("resume", NAME), until="Resumed")
        await self.step("reboot", lambda: self.cli("reboot", NAME), boot=BOOT_TIMEOUT)
        await self.step("paused.suspend", lambda: self.cli("suspend", NAME), until="Suspended")
        await self.step("paused.reboot", lambda: self.cli("reboot", NAME))
        await self.step("paused.resume", lambda: self.cli("resume", NAME), boot=BOOT_TIMEOUT)
        await self.step("guest-reboot", lambda: self.send("reboot"), boot=BOOT_TIMEOUT)
        await self.step("reset", lambda: self.cli("reset", NAME), boot=BOOT_TIMEOUT)
        await self.step("panic.restart", lambda: self.send("panic"), boot=BOOT_TIMEOUT)
        await self.step("shutdown", lambda: self.cli("shutdown", NAME), until="Stopped")

    async def _start(self, suffix: str) -> None:
        async def start() -> None:
            await self.cli("start", NAME)
            await self.attach()

        await self.step(f"start.{suffix}", start, until="Started", boot=BOOT_TIMEOUT)

    async def _panics(self) -> None:
        for action in ("destroy", "coredump-destroy", "preserve", "coredump-restart"):
            path = self.xml_file(action)

            async def define(path: str = path) -> None:
                await self.cli("define", path)

            await self.step(f"define.{action}", define, until="Defined")
            await self._start(action)
            dumps = self.side.dumps(NAME)
            if action.endswith("restart"):
                obs = await self.step(
                    f"panic.{action}", lambda: self.send("panic"), boot=BOOT_TIMEOUT
                )
            elif action == "preserve":
                obs = await self.step(
                    f"panic.{action}", lambda: self.send("panic"), until="Crashed"
                )
            else:
                obs = await self.step(
                    f"panic.{action}", lambda: self.send("panic"), until="Stopped"
                )
            # A coredump-* action must have written one memory dump (compared too).
            written = self.side.dumps(NAME) - dumps
            obs.guest = f"{obs.guest}, {written} dump(s)".lstrip(", ")
            if action == "preserve":
                # reset of a crashed domain: paused (crashed) until resumed (row 28)
                await self.step("reset.crashed", lambda: self.cli("reset", NAME))
                await self.step(
                    "resume.crashed", lambda: self.cli("resume", NAME), boot=BOOT_TIMEOUT
                )
                await self.step(
                    "destroy.preserved", lambda: self.cli("destroy", NAME), until="Stopped"
                )
        restart = self.xml_file("restart")
        await self.step("define.restart", lambda: self.cli("define", restart), until="Defined")

    async def _kill9(self) -> None:
        pid = self.side.qemu_pid(NAME)
        assert pid is not None, "no QEMU pid recorded"
        os.kill(pid, signal.SIGKILL)

    async def _kill_and_restart(self) -> None:
        # The domain still runs with on_crash=coredump-restart (the config of its start).
        await self.step("kill-9", self._kill9, until="Stopped")
        await self._lifecycle_actions()

        async def start_paused() -> None:
            await self.cli("start", "--paused", NAME)
            await self.attach()

        await self.step("start.paused", start_paused, until="Suspended")
        # running (unpaused) after this: a fake reboot the daemon finishes itself keeps that
        # reason, one finished on reconnect (from 'in shutdown') reads running (booted).
        await self.step(
            "resume.after-start-paused", lambda: self.cli("resume", NAME), boot=BOOT_TIMEOUT
        )

        async def reboot_without_daemon() -> None:
            # The guest powers off POWEROFF_DELAY after the power button: the daemon is
            # stopped in between, the guest powers off with no daemon there, and the daemon
            # starting again must finish the fake reboot it began.
            assert self.console is not None
            await self.send(SLOW_POWEROFF)
            await self.console.wait_for("VIRTDECK-DONE rc=0", timeout=10)
            t0 = time.monotonic()
            await self.cli("reboot", NAME)
            await self.side.halt_daemon()
            await self.watcher.stop()
            halted = time.monotonic() - t0
            if halted > POWEROFF_DELAY - 1:
                raise AssertionError(
                    f"reboot and stopping the daemon took {halted:.1f} s: the guest may have "
                    f"powered off ({POWEROFF_DELAY:g} s) before the daemon was gone"
                )
            await asyncio.sleep(POWEROFF_DELAY + 1.5 - halted)  # it has powered off now
            await self.side.resume_daemon()
            self.watcher = self.side.watcher()
            await self.watcher.start()

        await self.step("daemon-restart-mid-reboot", reboot_without_daemon, boot=BOOT_TIMEOUT)
        await self.step("ping", self._ping)
        await self.step("destroy", lambda: self.cli("destroy", NAME), until="Stopped")
        await self.step("undefine", lambda: self.cli("undefine", NAME), until="Undefined")

    async def _lifecycle_actions(self) -> None:
        """on_poweroff=restart (a shutdown reboots) and on_reboot=destroy (a reboot stops).

        libvirt refuses the two together, so they are two definitions."""
        poweroff = self.xml_file("destroy", tag="-poweroff-restart", on_poweroff="restart")
        await self.step(
            "define.on-poweroff-restart", lambda: self.cli("define", poweroff), until="Defined"
        )
        await self._start("on-poweroff-restart")
        await self.step(
            "shutdown.on-poweroff-restart", lambda: self.cli("shutdown", NAME), boot=BOOT_TIMEOUT
        )
        await self.step(
            "destroy.on-poweroff-restart", lambda: self.cli("destroy", NAME), until="Stopped"
        )
        reboot = self.xml_file("destroy", tag="-reboot-destroy", on_reboot="destroy")
        await self.step(
            "define.on-reboot-destroy", lambda: self.cli("define", reboot), until="Defined"
        )
        await self._start("on-reboot-destroy")
        await self.step(
            "guest-reboot.on-reboot-destroy", lambda: self.send("reboot"), until="Stopped"
        )
        await self._start("on-reboot-destroy-2")
        await self.step(
            "reboot.on-reboot-destroy", lambda: self.cli("reboot", NAME), until="Stopped"
        )
        restart = self.xml_file("restart")
        await self.step(
            "define.restart-again", lambda: self.cli("define", restart), until="Defined"
        )

    async def _ping(self) -> None:
        assert self.console is not None
        await self.send("ping")
        await self.console.wait_for("VIRTDECK-PONG", timeout=10)

    async def _migration(self) -> None:
        restart = self.xml_file("restart")
        dest_xml = self.xml_file("restart", serial=self.serial_b, tag="-b")
        back_xml = restart
        await self.step("define.migration", lambda: self.cli("define", restart), until="Defined")
        await self._start("migration")
        dst = await self.side.second_host(self.scratch / "second")
        self.dst_watcher = self.side.watcher(uri=dst)
        await self.dst_watcher.start()
        await asyncio.sleep(0.3)
        dst_mark = self.dst_watcher.mark()

        async def migrate() -> None:
            await self.cli(
                "migrate", "--live", "--persistent", "--xml", dest_xml,
                "--migrateuri", "tcp:127.0.0.1", NAME, dst,
            )  # fmt: skip

        await self.step("migrate.source", migrate, until="Stopped")
        await self.dst_watcher.wait_line(dst_mark, "Resumed", 30)
        await self._observe_other("migrate.destination", dst, dst_mark)

        # Back again, slowly (1 MiB/s), aborted once the job runs.
        src_mark = self.watcher.mark()
        argv = self.side.argv(
            "migrate", "--live", "--persistent", "--xml", back_xml, "--bandwidth", "1",
            "--migrateuri", "tcp:127.0.0.1", NAME, self.side.uri, uri=dst,
        )  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.side.env,
        )
        try:
            note = ""
            if not await self.watcher.wait_line(src_mark, "Started Migrated", 30):
                note = "the incoming side never started"
            await asyncio.sleep(0.5)  # the job is copying RAM now

            async def abort() -> None:
                await self.cli("domjobabort", NAME, uri=dst)
                await asyncio.wait_for(proc.communicate(), 60)
                if proc.returncode == 0:
                    raise AssertionError("the aborted migration succeeded")

            obs = await self.step("domjobabort.source", abort, uri=dst, watcher=self.dst_watcher)
            obs.note = note or obs.note
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await self.watcher.wait_line(src_mark, "Stopped", 15)
        await self.watcher.wait_quiet(QUIET, 10)
        state = await self.side.domstate(NAME)
        events, other = normalise(self.watcher.lines[src_mark:])
        self.observations.append(Observation("domjobabort.destination", state, events, other))
        with contextlib.suppress(Exception):
            await self.side.cli("destroy", NAME, uri=dst, check=False)
            await self.side.cli("undefine", NAME, uri=dst, check=False)
            await self.side.cli("undefine", NAME, check=False)

    async def _observe_other(self, name: str, uri: str, mark: int) -> None:
        assert self.dst_watcher is not None
        await self.dst_watcher.wait_quiet(QUIET, 10)
        state = await self.side.domstate(NAME, uri=uri)
        events, other = normalise(self.dst_watcher.lines[mark:])
        self.observations.append(Observation(name, state, events, other))
