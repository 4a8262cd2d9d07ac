"""The runtime and the real QMP monitor against a scripted QMP peer.

First every row of the transition table again, this time as QMP events arriving over a
socket through ``qemu.qmp`` into :class:`DomainRuntime`; then whole API calls (start, suspend,
fake reboot, hung QEMU, EOF) against a peer that answers like QEMU.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from drivers.domxml import DomainDef, parse_domain
from drivers.errors import OperationTimeout
from drivers.model import DomainEvent, LifecycleEvent, state_words
from drivers.qemu.events import Action, Trigger
from drivers.qemu.monitor import Monitor
from drivers.qemu.runtime import Backend, DomainRuntime
from tests.drivers.qmp_peer import QmpPeer, qemu_like
from tests.drivers.test_events import CASES, Case

XML = """<domain type='qemu'><name>peer</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='q35'>hvm</type></os><features><acpi/></features>
<on_poweroff>{on_poweroff}</on_poweroff><on_reboot>{on_reboot}</on_reboot>
<on_crash>{on_crash}</on_crash></domain>"""


class PeerBackend:
    """A 'QEMU process' that is the scripted peer; killing it hangs the peer up."""

    def __init__(self, peer: QmpPeer, monitor: Monitor, gone: asyncio.Event) -> None:
        self.peer = peer
        self.monitor = monitor
        self.gone = gone
        self.pid: int | None = 4242
        self.kills: list[bool] = []

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None) -> Any:
        return await self.monitor.execute(command, arguments)

    def kill(self, force: bool) -> None:
        self.kills.append(force)

        async def die() -> None:
            if not force:
                await self.peer.emit("SHUTDOWN", {"guest": False, "reason": "host-signal"})
            await self.peer.hang_up()

        asyncio.get_running_loop().create_task(die())

    async def wait_gone(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gone.wait(), timeout)
        return self.gone.is_set()

    def cpu_time_ns(self) -> int:
        return 0

    async def detach(self) -> None:
        await self.monitor.close()


class PeerHost:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.events: list[DomainEvent] = []
        self.peer: QmpPeer | None = None
        self.backend: PeerBackend | None = None
        self.status = {"status": "prelaunch"}

    async def launch(
        self, rt: DomainRuntime, live: DomainDef, incoming: bool = False
    ) -> Backend:
        self.status["status"] = "prelaunch"
        path = self.directory / f"qmp{len(self.events)}.sock"
        self.peer = QmpPeer(path, qemu_like(self.status))
        await self.peer.start()
        gone = asyncio.Event()

        def on_event(name: str, data: Mapping[str, Any], _when: float) -> None:
            rt.feed(name, data)

        def on_eof() -> None:
            gone.set()
            rt.feed(Trigger.EOF)

        monitor = Monitor(rt.name, on_event=on_event, on_eof=on_eof, timeout=1.0)
        await monitor.connect(str(path))
        rt.domid = 1
        self.backend = PeerBackend(self.peer, monitor, gone)
        return self.backend

    def persist(self, rt: DomainRuntime) -> None:
        pass

    async def settle(self, rt: DomainRuntime) -> None:
        pass

    def publish(self, event: DomainEvent) -> None:
        self.events.append(event)

    def stopped(self, rt: DomainRuntime) -> None:
        pass

    def dump_path(self, rt: DomainRuntime) -> str | None:
        return None

    def lifecycle(self, since: int = 0) -> list[str]:
        return [e.words for e in self.events[since:] if isinstance(e, LifecycleEvent)]


class RecordingRuntime(DomainRuntime):
    """Records follow-up actions instead of running them, so one row shows on its own."""

    performed: list[Action]

    async def _perform(self, actions: tuple[Action, ...]) -> None:
        self.performed.extend(actions)


def _xml(**actions: str) -> str:
    values = {"on_poweroff": "destroy", "on_reboot": "restart", "on_crash": "destroy"}
    values.update(actions)
    return XML.format(**values)


@pytest.fixture
async def host(short_tmp: Path) -> AsyncIterator[PeerHost]:
    host = PeerHost(short_tmp)
    yield host
    if host.peer is not None:
        await host.peer.close()
    if host.backend is not None:
        await host.backend.detach()


QMP_CASES = [c for c in CASES if c.trigger == Trigger.EOF or str(c.trigger).isupper()]


@pytest.mark.parametrize("case", QMP_CASES, ids=[c.id for c in QMP_CASES])
async def test_row_over_qmp(case: Case, host: PeerHost) -> None:
    cfg = {k: v.value for k, v in case.actions_cfg.items()}
    rt = RecordingRuntime(host, parse_domain(_xml(**cfg)))
    rt.performed = []
    await rt.start()
    assert host.peer is not None and host.backend is not None
    # put the domain in the row's starting state, as earlier events would have
    rt.state, rt.reason = case.state
    rt.flags = replace(case.flags)
    mark = len(host.events)
    if case.trigger == Trigger.EOF:
        if not rt.active:
            return  # an inactive domain has no monitor to lose
        await host.peer.hang_up()
        await host.backend.wait_gone(2.0)
    else:
        await host.peer.emit(str(case.trigger), case.data)
        await host.backend.execute("query-status")  # its reply comes after the event
    if case.expect_state is not None:
        assert (rt.state, rt.reason) == case.expect_state
    elif case.state[0].is_active or case.trigger != Trigger.EOF:
        assert (rt.state, rt.reason) == case.state
    assert host.lifecycle(mark) == list(case.expect_events)
    assert [e.kind for e in host.events[mark:] if not isinstance(e, LifecycleEvent)] == list(
        case.expect_notices
    )
    assert tuple(rt.performed) == case.expect_actions


async def words(rt: DomainRuntime) -> str:
    return state_words(rt.state, rt.reason)


async def test_start_suspend_resume_over_qmp(host: PeerHost) -> None:
    rt = DomainRuntime(host, parse_domain(_xml()))
    await rt.start()
    assert await words(rt) == "running (booted)"
    assert host.lifecycle() == ["Resumed Unpaused", "Started Booted"]
    await rt.suspend()
    assert await words(rt) == "paused (user)"
    await rt.resume()
    assert await words(rt) == "running (unpaused)"
    assert host.lifecycle(2) == ["Suspended Paused", "Resumed Unpaused"]
    assert host.peer is not None
    assert host.peer.commands == ["qmp_capabilities", "cont", "stop", "cont"]


async def test_fake_reboot_over_qmp(host: PeerHost) -> None:
    rt = DomainRuntime(host, parse_domain(_xml()))
    await rt.start()
    await rt.suspend()
    await rt.resume()
    mark = len(host.events)
    await rt.reboot()
    assert host.peer is not None
    assert host.peer.commands[-1] == "system_powerdown"
    # the guest reacts to the power button
    host.status["status"] = "shutdown"
    await host.peer.emit("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})
    await host.peer.emit("STOP")
    await rt.wait_until(lambda: "cont" in host.peer.commands[-1:], "reboot", 2.0)  # type: ignore[union-attr]
    await rt.wait_until(lambda: not rt.flags.paused_shutdown, "finish the fake reboot", 2.0)
    assert await words(rt) == "running (unpaused)"
    assert host.lifecycle(mark) == []
    assert [e.kind for e in host.events[mark:]] == ["reboot"]
    assert host.peer.commands[-2:] == ["system_reset", "cont"]


async def test_hung_qemu_gives_a_clear_timeout(host: PeerHost) -> None:
    rt = DomainRuntime(host, parse_domain(_xml()))
    await rt.start()
    assert host.peer is not None
    host.peer.hung = True
    with pytest.raises(OperationTimeout, match="did not answer 'stop' within 1 s"):
        await rt.suspend()
    assert await words(rt) == "running (booted)"
    assert rt.flags.pending_paused_reason is None
    await rt.destroy()
    assert await words(rt) == "shut off (destroyed)"


async def test_eof_without_shutdown_is_a_crash(host: PeerHost) -> None:
    rt = DomainRuntime(host, parse_domain(_xml()))
    await rt.start()
    assert host.peer is not None
    mark = len(host.events)
    await host.peer.hang_up()
    await rt.wait_until(lambda: not rt.active, "stop", 2.0)
    assert await words(rt) == "shut off (crashed)"
    assert host.lifecycle(mark) == ["Stopped Failed"]
