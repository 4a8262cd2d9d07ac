"""An in-memory stand-in for a QEMU process, for the ``test://`` driver.

It answers the QMP commands the runtime sends with the events real QEMU 7.2 sends for
them (machine-facts.md §2-3): ``cont`` → RESUME, ``stop`` → STOP, ``system_powerdown`` →
POWERDOWN then, a moment later, the cooperating guest's SHUTDOWN + STOP, SIGTERM → SHUTDOWN
(host-signal) then EOF, and the migration commands (``migrate-set-capabilities``,
``migrate-set-parameters``, ``migrate-incoming``, ``migrate``, ``query-migrate``,
``migrate_cancel``) as :mod:`drivers.test.simmigration` describes. Because the events go
through the same event handler as the real driver's, the test driver honours exactly the
same transitions and emits the same events.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Callable, Mapping
from typing import Any

from drivers.errors import HypervisorError
from drivers.qemu.events import Trigger
from drivers.qemu.runtime import DomainRuntime
from drivers.test import simconsole, simmigration, simscreen

#: How long the simulated guest takes to act on the ACPI power button.
GUEST_DELAY = 0.02

_pids = itertools.count(100000)


class SimulatedQemu:
    """One simulated QEMU process with a cooperating guest."""

    def __init__(
        self,
        rt: DomainRuntime,
        status: str = "prelaunch",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rt = rt
        self.status = status
        self.console = simconsole.SimulatedConsole(
            rt.name,
            clock,
            lambda: self.status == "running",
            {
                "poweroff": self.guest_poweroff,
                "reboot": self.guest_reboot,
                "panic": self.guest_panic,
            },
        )
        """The guest's serial console (this run's: a new process has a new one)."""
        self.screen = simscreen.SimulatedScreen(self.console)
        """Its display and keyboard (the keyboard types into the same shell)."""
        self.pid: int | None = next(_pids)
        self._gone = asyncio.Event()
        self._started = time.monotonic()
        self._handles: list[asyncio.TimerHandle] = []
        #: Capabilities set with migrate-set-capabilities (MIGRATION events need 'events').
        self.migrate_capabilities: dict[str, bool] = {}
        self.migrate_parameters: dict[str, int] = {
            "max-bandwidth": simmigration.DEFAULT_BANDWIDTH,
            "downtime-limit": simmigration.DEFAULT_DOWNTIME_LIMIT,
        }
        self.migration: simmigration.Outgoing | simmigration.Incoming | None = None

    # --- what QEMU would send ---------------------------------------------------------

    def _emit(self, name: str, data: Mapping[str, Any] | None = None) -> None:
        if not self._gone.is_set():
            self._rt.feed(name, data or {})

    def emit(self, name: str, data: Mapping[str, Any] | None = None) -> None:
        """Send a QMP event (the MIGRATION family only with the 'events' capability)."""
        if name.startswith("MIGRATION") and not self.migrate_capabilities.get("events"):
            return
        self._emit(name, data)

    def exit_later(self, delay: float) -> None:
        """End the process in ``delay`` seconds (QEMU after a failed incoming stream)."""
        self._later(delay, self._exit)

    def _exit(self) -> None:
        if self._gone.is_set():
            return
        for handle in self._handles:
            handle.cancel()
        moved = (
            isinstance(self.migration, simmigration.Outgoing)
            and self.migration.status == "completed"
        )
        if self.migration is not None:
            self.migration.close()
        self.console.end(simconsole.MIGRATED if moved else simconsole.STOPPED)
        self._rt.feed(Trigger.EOF)
        self._gone.set()

    def _later(self, delay: float, callback: Any) -> None:
        loop = asyncio.get_running_loop()
        self._handles.append(loop.call_later(delay, callback))

    # --- Backend ----------------------------------------------------------------------

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None) -> Any:
        if self._gone.is_set():
            raise HypervisorError(
                f"The monitor of domain '{self._rt.name}' is closed; QEMU has exited."
            )
        handler = getattr(self, "_cmd_" + command.replace("-", "_"), None)
        if handler is None:
            raise HypervisorError(f"QEMU refused '{command}': The command is not found.")
        result = handler(arguments or {})
        if inspect.isawaitable(result):
            result = await result
        return result

    def _cmd_query_status(self, args: Mapping[str, object]) -> Any:
        return {"status": self.status, "running": self.status == "running", "singlestep": False}

    def _cmd_cont(self, args: Mapping[str, object]) -> Any:
        if self.status in ("shutdown", "guest-panicked", "internal-error"):
            raise HypervisorError(
                f"QEMU refused 'cont' for domain '{self._rt.name}': Resetting the Virtual "
                "Machine is required"
            )
        if self.status == "inmigrate":
            # QEMU starts the guest once the incoming stream is complete.
            if isinstance(self.migration, simmigration.Incoming):
                self.migration.autostart = True
            return {}
        if self.status != "running":
            booting = self.status == "prelaunch"
            self.status = "running"
            if booting:
                self.console.boot()
            self._emit("RESUME")
            self.console.resumed()
        return {}

    def _cmd_stop(self, args: Mapping[str, object]) -> Any:
        if self.status == "running":
            self.status = "paused"
            self._emit("STOP")
        return {}

    def _cmd_system_reset(self, args: Mapping[str, object]) -> Any:
        self._emit("RESET", {"guest": False, "reason": "host-qmp-system-reset"})
        if self.status in ("shutdown", "guest-panicked"):
            self.status = "paused"
        self.console.boot()
        return {}

    def _cmd_system_powerdown(self, args: Mapping[str, object]) -> Any:
        self._emit("POWERDOWN")
        if self.status == "running" and self._rt.definition.acpi:
            self._later(GUEST_DELAY, self.guest_poweroff)
        return {}

    def _cmd_quit(self, args: Mapping[str, object]) -> Any:
        self._emit("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})
        asyncio.get_running_loop().call_soon(self._exit)
        return {}

    # --- migration ----------------------------------------------------------------------

    def _cmd_migrate_set_capabilities(self, args: Mapping[str, object]) -> Any:
        listed = args.get("capabilities")
        if not isinstance(listed, list):
            raise HypervisorError("QEMU refused 'migrate-set-capabilities': no capabilities.")
        for item in listed:
            if isinstance(item, dict):
                self.migrate_capabilities[str(item.get("capability"))] = bool(item.get("state"))
        return {}

    def _cmd_migrate_set_parameters(self, args: Mapping[str, object]) -> Any:
        for name in ("max-bandwidth", "downtime-limit"):
            value = args.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                if value < 0:
                    raise HypervisorError(
                        f"QEMU refused 'migrate-set-parameters': Parameter '{name}' expects "
                        "a positive number."
                    )
                self.migrate_parameters[name] = value
        return {}

    def _busy(self) -> bool:
        return self.migration is not None and self.migration.status in (
            "setup",
            "active",
            "device",
            "cancelling",
        )

    async def _cmd_migrate_incoming(self, args: Mapping[str, object]) -> Any:
        if self.status != "inmigrate":
            raise HypervisorError(
                "QEMU refused 'migrate-incoming': The incoming migration was not enabled "
                "with -incoming defer."
            )
        if self.migration is not None:
            raise HypervisorError(
                "QEMU refused 'migrate-incoming': The incoming migration has already started."
            )
        incoming = simmigration.Incoming(self, self._rt.uuid, str(args.get("uri", "")))
        await incoming.listen()
        self.migration = incoming
        return {}

    def _cmd_migrate(self, args: Mapping[str, object]) -> Any:
        if self._busy():
            raise HypervisorError(
                "QEMU refused 'migrate': There's a migration process in progress."
            )
        if self.status in ("inmigrate", "prelaunch", "shutdown", "guest-panicked"):
            raise HypervisorError(
                f"QEMU refused 'migrate': the guest cannot be migrated while it is {self.status}."
            )
        self.migration = simmigration.Outgoing(
            self,
            self._rt.uuid,
            self._rt.definition.memory_kib * 1024,
            str(args.get("uri", "")),
            self.migrate_parameters["max-bandwidth"],
            self.migrate_parameters["downtime-limit"],
        )
        return {}

    def _cmd_query_migrate(self, args: Mapping[str, object]) -> Any:
        return {} if self.migration is None else self.migration.reply()

    def _cmd_migrate_cancel(self, args: Mapping[str, object]) -> Any:
        if isinstance(self.migration, simmigration.Outgoing):
            self.migration.cancel()
        return {}

    def _cmd_query_chardev(self, args: Mapping[str, object]) -> Any:
        return []

    def _cmd_dump_guest_memory(self, args: Mapping[str, object]) -> Any:
        return {}

    def _cmd_screendump(self, args: Mapping[str, object]) -> Any:
        data = self.screen.png()
        if args.get("format") == "ppm":
            import io

            from PIL import Image

            out = io.BytesIO()
            Image.open(io.BytesIO(data)).convert("RGB").save(out, format="PPM")
            data = out.getvalue()
        with open(str(args["filename"]), "wb") as file:
            file.write(data)
        return {}

    def _cmd_input_send_event(self, args: Mapping[str, object]) -> Any:
        events = args.get("events")
        assert isinstance(events, list)
        self.screen.receive(events)
        return {}

    def kill(self, force: bool) -> None:
        if self._gone.is_set():
            return
        if not force:
            # QEMU turns SIGTERM into a host shutdown request before it exits.
            self._emit("SHUTDOWN", {"guest": False, "reason": "host-signal"})
        asyncio.get_running_loop().call_soon(self._exit)

    async def wait_gone(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._gone.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def cpu_time_ns(self) -> int:
        return int((time.monotonic() - self._started) * 1e7)

    async def detach(self) -> None:
        for handle in self._handles:
            handle.cancel()
        if self.migration is not None:
            self.migration.close()

    # --- what the guest can do on its own (for tests and demos) -----------------------

    def guest_poweroff(self) -> None:
        if self.status == "running":
            self.console.write("[   42.000000] reboot: Power down\r\n")
            self.status = "shutdown"
            self._emit("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})
            self._emit("STOP")

    def guest_reboot(self) -> None:
        if self.status == "running":
            self.console.write("[   42.000000] reboot: Restarting system\r\n")
            if self._rt.definition.on_reboot.value == "destroy":
                self.status = "shutdown"
                self._emit("SHUTDOWN", {"guest": True, "reason": "guest-reset"})
                self._emit("STOP")
                return
            self._emit("RESET", {"guest": True, "reason": "guest-reset"})
            self._emit("RESET", {"guest": True, "reason": "guest-reset"})
            self.console.boot()

    def guest_panic(self) -> None:
        if self.status == "running":
            self.console.write(simconsole.PANIC)
            self.status = "guest-panicked"
            self._emit("GUEST_PANICKED", {"action": "pause"})
            self._emit("STOP")

    def crash(self) -> None:
        """The QEMU process dies (like kill -9)."""
        asyncio.get_running_loop().call_soon(self._exit)
