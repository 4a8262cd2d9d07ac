"""An in-memory stand-in for a QEMU process, for the ``test://`` driver.

It answers the QMP commands the runtime sends with the events real QEMU 7.2 sends for
them (machine-facts.md §2-3): ``cont`` → RESUME, ``stop`` → STOP, ``system_powerdown`` →
POWERDOWN then, a moment later, the cooperating guest's SHUTDOWN + STOP, SIGTERM → SHUTDOWN
(host-signal) then EOF. Because the events go through the same event handler as the real
driver's, the test driver honours exactly the same transitions and emits the same events.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from typing import Any

from drivers.errors import HypervisorError
from drivers.qemu.events import Trigger
from drivers.qemu.runtime import DomainRuntime

#: How long the simulated guest takes to act on the ACPI power button.
GUEST_DELAY = 0.02

_pids = itertools.count(100000)


class SimulatedQemu:
    """One simulated QEMU process with a cooperating guest."""

    def __init__(self, rt: DomainRuntime, status: str = "prelaunch") -> None:
        self._rt = rt
        self.status = status
        self.pid: int | None = next(_pids)
        self._gone = asyncio.Event()
        self._started = time.monotonic()
        self._handles: list[asyncio.TimerHandle] = []

    # --- what QEMU would send ---------------------------------------------------------

    def _emit(self, name: str, data: Mapping[str, Any] | None = None) -> None:
        if not self._gone.is_set():
            self._rt.feed(name, data or {})

    def _exit(self) -> None:
        if self._gone.is_set():
            return
        for handle in self._handles:
            handle.cancel()
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
        return handler(arguments or {})

    def _cmd_query_status(self, args: Mapping[str, object]) -> Any:
        return {"status": self.status, "running": self.status == "running", "singlestep": False}

    def _cmd_cont(self, args: Mapping[str, object]) -> Any:
        if self.status in ("shutdown", "guest-panicked", "internal-error"):
            raise HypervisorError(
                f"QEMU refused 'cont' for domain '{self._rt.name}': Resetting the Virtual "
                "Machine is required"
            )
        if self.status != "running":
            self.status = "running"
            self._emit("RESUME")
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

    def _cmd_query_chardev(self, args: Mapping[str, object]) -> Any:
        return []

    def _cmd_dump_guest_memory(self, args: Mapping[str, object]) -> Any:
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

    # --- what the guest can do on its own (for tests and demos) -----------------------

    def guest_poweroff(self) -> None:
        if self.status == "running":
            self.status = "shutdown"
            self._emit("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})
            self._emit("STOP")

    def guest_reboot(self) -> None:
        if self.status == "running":
            if self._rt.definition.on_reboot.value == "destroy":
                self.status = "shutdown"
                self._emit("SHUTDOWN", {"guest": True, "reason": "guest-reset"})
                self._emit("STOP")
                return
            self._emit("RESET", {"guest": True, "reason": "guest-reset"})
            self._emit("RESET", {"guest": True, "reason": "guest-reset"})

    def guest_panic(self) -> None:
        if self.status == "running":
            self.status = "guest-panicked"
            self._emit("GUEST_PANICKED", {"action": "pause"})
            self._emit("STOP")

    def crash(self) -> None:
        """The QEMU process dies (like kill -9)."""
        asyncio.get_running_loop().call_soon(self._exit)
