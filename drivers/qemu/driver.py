"""The QEMU driver behind ``qemu:///embed?root=DIR``: real QEMU processes under DIR.

Layout of the root (all files written atomically)::

    driver.lock           held (flock) while a driver instance owns the root
    domains/NAME.xml      persistent definitions
    run/NAME.json         runtime status of an active domain: pid, monitor, state, reason,
                          flags, id and the live XML
    run/NAME/monitor.sock the QMP socket (created by us, handed to QEMU as an fd)

``run`` may live elsewhere (``?run=DIR``): the session daemon keeps it under
$XDG_RUNTIME_DIR, which does not outlive the host's uptime, like the guests.
    log/NAME.log          QEMU's stdout/stderr, one header per start
    images/               the default storage pool (disk images and ISOs)
    dump/                 memory dumps of crashed guests (on_crash=coredump-*)

Opening a root again reconnects to every domain whose QEMU is still alive and reconciles
its state from ``query-status`` (libvirt-semantics.md §3.7).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

from drivers import fsutil
from drivers.api import ConsoleStream
from drivers.domxml import DomainDef, parse_domain
from drivers.domxml.channels import GUEST_AGENT
from drivers.errors import (
    AgentUnavailable,
    ConnectionFailed,
    DomainBusy,
    HypervisorError,
    InvalidURI,
    NotSupported,
    OperationFailed,
    OperationInvalid,
    VirtError,
)
from drivers.model import (
    ConsoleLine,
    DomainState,
    InterfaceAddresses,
    PausedReason,
    StatsSample,
)
from drivers.qemu import addresses, channels
from drivers.qemu.agent import GuestAgent
from drivers.qemu.argv import (
    LaunchContext,
    build_argv,
    chardev_aliases,
    console_chardev,
    qemu_environment,
    refused_devices,
)
from drivers.qemu.console import Attachment, ConsoleLog, attach
from drivers.qemu.events import Flags, Trigger
from drivers.qemu.lifecycle import refused_actions
from drivers.qemu.monitor import Monitor
from drivers.qemu.process import (
    QemuProcess,
    listening_socket,
    log_tail,
    owned_processes,
    pid_alive,
    pid_cmdline,
)
from drivers.qemu.registry import DomainRegistry, RegistryConnection, prepare_definition
from drivers.qemu.runtime import Backend, DomainRuntime
from drivers.qemu.stats import Sampler
from drivers.storage import DirectoryPool
from drivers.uri import URI

log = logging.getLogger(__name__)
logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)

DEFAULT_EMULATOR = "qemu-system-x86_64"
INSTALL_HINT = "Install QEMU (Debian/Ubuntu: apt-get install qemu-system-x86 qemu-utils)."
# Unix socket paths longer than this cannot be bound; see _short_path.
_SUN_PATH_MAX = 107


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "on", "yes", "true")


class QemuBackend:
    """A real QEMU process and its QMP monitor."""

    def __init__(self, process: QemuProcess, monitor: Monitor) -> None:
        self.process = process
        self.monitor = monitor
        self.pid: int | None = process.pid

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None) -> Any:
        return await self.monitor.execute(command, arguments)

    def kill(self, force: bool) -> None:
        self.process.signal(signal.SIGKILL if force else signal.SIGTERM)

    async def wait_gone(self, timeout: float) -> bool:
        return await self.process.wait(timeout)

    def cpu_time_ns(self) -> int:
        return self.process.cpu_time_ns()

    async def detach(self) -> None:
        await self.monitor.close()
        self.process.close()


class QemuRegistry(DomainRegistry):
    """The state of one ``qemu:///embed`` root."""

    def __init__(
        self,
        root: Path,
        *,
        allow_kvm: bool,
        emulator: str | None,
        run_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        self.run_root = run_dir or root / "run"
        self.allow_kvm = allow_kvm
        self.emulator = emulator
        self._lock_fd: int | None = None
        self._next_id = 1
        self.writer = fsutil.WriteBehind()
        #: The console log of each active domain, followed while it runs (by UUID).
        self.console_logs: dict[str, ConsoleLog] = {}
        #: Who holds each domain's interactive console (by UUID).
        self.consoles: dict[str, Attachment] = {}
        self.sampler = Sampler(self.sorted)
        #: The guest agent of each active domain that has its channel (by UUID).
        self.agents: dict[str, GuestAgent] = {}
        #: Where the 'lease' source looks (dnsmasq and libvirt lease files).
        self.lease_files: tuple[str, ...] = addresses.LEASE_FILES
        #: The QEMU pid of each domain between its spawn and the end of its launch (by
        #: UUID), so that the status file names the process before anything can go wrong.
        self._launching: dict[str, int] = {}
        self.pool = DirectoryPool(root / "images", self.users_of)
        for sub in ("domains", "log"):
            (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run_root.mkdir(parents=True, exist_ok=True, mode=0o700)

    # --- owning the root ----------------------------------------------------------------

    def lock(self) -> None:
        path = self.root / "driver.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConnectionFailed(
                f"Another virtdeck driver (pid {holder}) already manages {self.root}; close it, "
                "or reach its domains through that process."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        # Every status write must be on disk before another driver may own the root.
        if not self.writer.flush():
            log.error("status files under %s were not all written", self.root)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- paths ---------------------------------------------------------------------------

    def _def_path(self, name: str) -> Path:
        return self.root / "domains" / f"{name}.xml"

    def _status_path(self, name: str) -> Path:
        return self.run_root / f"{name}.json"

    def _run_dir(self, name: str) -> Path:
        return self.run_root / name

    def log_path(self, name: str) -> Path:
        return self.root / "log" / f"{name}.log"

    async def detach_all(self) -> None:
        for holder in list(self.consoles.values()):
            holder.end("the driver closed")
        self.consoles.clear()
        for console in list(self.console_logs.values()):
            await console.stop()
        self.console_logs.clear()
        for agent in list(self.agents.values()):
            await agent.close()
        self.agents.clear()
        await super().detach_all()

    def stats_stream(self, interval: float) -> AsyncIterator[StatsSample]:
        return self.sampler.stream(interval)

    def console_log_path(self, defn: DomainDef) -> Path | None:
        """Where the console of ``defn`` is logged: its ``<log file=…>``, else ours."""
        console = console_chardev(defn)
        if console is None:
            return None
        return Path(console[0].log_file or self.root / "log" / f"{defn.name}.console.log")

    def _follow_console(self, rt: DomainRuntime) -> None:
        self._follow_console_of(rt, rt.definition)

    def _follow_console_of(self, rt: DomainRuntime, defn: DomainDef) -> None:
        path = self.console_log_path(defn)
        if path is None:
            return
        console = ConsoleLog(path)
        self.console_logs[rt.uuid] = console
        console.start()

    def console_lines(
        self, rt: DomainRuntime, since: float | None, follow: bool
    ) -> AsyncIterator[ConsoleLine]:
        console = self.console_logs.get(rt.uuid)
        if console is None:
            path = self.console_log_path(rt.definition)
            if path is None:
                raise NotSupported(
                    f"Domain '{rt.name}' has no serial console (<serial> or <console>), so "
                    "there is no console log."
                )
            console = ConsoleLog(path)  # not running: what the last boots wrote
        return console.lines(since, follow)

    async def open_console(self, rt: DomainRuntime, force: bool) -> ConsoleStream:
        if not rt.active:
            raise OperationInvalid(f"Domain '{rt.name}' is not running; start it first.")
        found = console_chardev(rt.definition)
        if found is None:
            raise NotSupported(f"Domain '{rt.name}' has no serial console (<serial> or <console>).")
        holder = self.consoles.get(rt.uuid)
        if holder is not None and holder.ended is None:
            if not force:
                raise DomainBusy(
                    f"The console of '{rt.name}' is open in another client; open it with "
                    "force to take it over (virtdeck console --force); that client's console "
                    "then closes."
                )
            holder.end("another client took the console over")
        reader, writer = await attach(found[0], rt.name)

        def closed(attachment: Attachment) -> None:
            if self.consoles.get(rt.uuid) is attachment:
                del self.consoles[rt.uuid]

        attachment = Attachment(reader, writer, closed)
        self.consoles[rt.uuid] = attachment
        return attachment

    # --- storage hooks ----------------------------------------------------------------

    def check_definition(self, defn: DomainDef) -> None:
        if defn.virt_type not in ("qemu", "kvm"):
            raise NotSupported(
                f"Domain '{defn.name}' has type '{defn.virt_type}'; the QEMU driver runs "
                "<domain type='qemu'> (TCG) or type='kvm'."
            )
        problems = refused_devices(defn) + refused_actions(defn)
        if problems:
            raise NotSupported(f"Domain '{defn.name}' cannot be defined: {' '.join(problems)}")

    def prepare_definition(self, defn: DomainDef) -> None:
        prepare_definition(defn)

    def store_definition(self, defn: DomainDef) -> None:
        try:
            fsutil.atomic_write(self._def_path(defn.name), defn.to_xml())
        except OSError as err:
            raise OperationFailed(
                f"Could not save the definition of '{defn.name}': "
                f"{fsutil.describe(err, self.root)}."
            ) from err

    def remove_definition(self, rt: DomainRuntime) -> None:
        try:
            fsutil.remove(self._def_path(rt.name))
        except OSError as err:
            raise OperationFailed(
                f"Could not remove the definition of '{rt.name}': "
                f"{fsutil.describe(err, self.root)}."
            ) from err

    def persist(self, rt: DomainRuntime) -> None:
        path = self._status_path(rt.name)
        if not rt.active:
            self.writer.submit(path, None)
            return
        backend = rt.backend
        status = {
            "name": rt.name,
            "uuid": rt.uuid,
            "pid": backend.pid if backend is not None else self._launching.get(rt.uuid),
            "monitor": str(self._run_dir(rt.name) / "monitor.sock"),
            "id": rt.domid,
            "state": rt.state.name,
            "reason": rt.reason.name,
            "flags": rt.flags.to_json(),
            "persistent": rt.persistent is not None,
            "started": rt.started_wall,
            "xml": rt.facts().xml,
        }
        # Encoding happens in the writer thread, off the event path.
        self.writer.submit(path, lambda: json.dumps(status, indent=1))

    async def settle(self, rt: DomainRuntime) -> None:
        # A few milliseconds (one fsync), once per start or destroy, not per event.
        if not await asyncio.to_thread(self.writer.flush, 5.0):
            log.warning("domain %s: its status file was not written in time", rt.name)

    def stopped(self, rt: DomainRuntime) -> None:
        self._launching.pop(rt.uuid, None)
        shutil.rmtree(self._run_dir(rt.name), ignore_errors=True)
        holder = self.consoles.pop(rt.uuid, None)
        if holder is not None:
            holder.end("the domain stopped")
        console = self.console_logs.pop(rt.uuid, None)
        if console is not None:
            asyncio.get_running_loop().create_task(console.stop())
        agent = self.agents.pop(rt.uuid, None)
        if agent is not None:
            asyncio.get_running_loop().create_task(agent.close())
        super().stopped(rt)

    def dump_path(self, rt: DomainRuntime) -> str | None:
        directory = self.root / "dump"
        directory.mkdir(exist_ok=True, mode=0o700)
        return str(directory / f"{rt.name}-{time.strftime('%Y%m%d-%H%M%S')}.core")

    def cannot_run(self, defn: DomainDef) -> list[str]:
        from drivers.qemu.capabilities import machine_types

        wanted = defn.emulator or self.emulator or DEFAULT_EMULATOR
        found = shutil.which(wanted)
        if found is None:
            return [f"The emulator {wanted} is not installed on this host. {INSTALL_HINT}"]
        reasons = []
        machines = machine_types(found)
        if machines and defn.machine not in machines:
            reasons.append(
                f"{wanted} on this host has no machine type '{defn.machine}' "
                f"(it has e.g. {', '.join(sorted(machines)[:5])})."
            )
        if defn.virt_type == "kvm" and not self.allow_kvm:
            reasons.append("The domain runs under KVM, which is not enabled on this host.")
        return reasons

    def screen_dir(self, rt: DomainRuntime) -> Path | None:
        return self._run_dir(rt.name)

    def tunnel_path(self, name: str, direction: str) -> Path | None:
        run_dir = self._run_dir(name)
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return run_dir / f"mig-{direction}.sock"

    def hypervisor_version(self) -> str:
        from drivers.qemu.capabilities import qemu_version

        return qemu_version(self._emulator_path()) or "unknown"

    # --- loading ----------------------------------------------------------------------

    def load(self) -> None:
        """Read the definitions (unreadable files are logged and skipped)."""
        for path in sorted((self.root / "domains").glob("*.xml")):
            try:
                defn = parse_domain(path.read_bytes())
            except (VirtError, OSError) as err:
                log.warning("skipping %s: %s", path, err)
                continue
            if defn.name != path.stem:
                log.warning("skipping %s: it defines '%s'", path, defn.name)
                continue
            self.add(DomainRuntime(self, defn))

    async def reconnect(self) -> None:
        """Find every domain that was running when the last driver let go of this root."""
        for path in sorted(self.run_root.glob("*.json")):
            try:
                status = json.loads(path.read_text())
                live = parse_domain(status["xml"])
                state = DomainState[status["state"]]
                reason = state.reasons[status["reason"]]
                flags = Flags.from_json(status.get("flags", {}))
            except (VirtError, OSError, ValueError, KeyError) as err:
                log.warning("ignoring unreadable runtime status %s: %s", path, err)
                continue
            rt = self.by_uuid.get(live.uuid)
            if rt is None:
                rt = DomainRuntime(self, None, live=live)
                self.add(rt)
            rt.live, rt.state, rt.reason, rt.flags = live, state, reason, flags
            rt.domid = status.get("id")
            started = status.get("started")
            rt.started_wall = float(started) if isinstance(started, int | float) else None
            self._next_id = max(self._next_id, (rt.domid or 0) + 1)
            await self._adopt(rt, status)
        await self._kill_orphans()

    async def _kill_orphans(self) -> None:
        """Kill the QEMUs this root launched that no domain owns any more.

        A driver killed right after spawning a QEMU, before its status file named the
        process, leaves a guest nobody manages; starting the domain again would run it
        twice. libvirt kills a domain it cannot take back for the same reason.
        """
        adopted = {rt.backend.pid for rt in self.by_uuid.values() if rt.backend is not None}
        for pid, owner in owned_processes(f"{self.run_root}/").items():
            if pid in adopted:
                continue
            log.warning("killing QEMU pid %d (%s): no domain owns it any more", pid, owner)
            process = QemuProcess(pid)
            process.signal(signal.SIGKILL)
            await process.wait(5.0)
            process.close()

    async def _adopt(self, rt: DomainRuntime, status: dict[str, Any]) -> None:
        pid = status.get("pid")
        alive = isinstance(pid, int) and pid_alive(pid) and rt.uuid in " ".join(pid_cmdline(pid))
        qemu_status = ""
        killed = False
        if alive:
            assert isinstance(pid, int)
            process = QemuProcess(pid)
            monitor = self._monitor(rt)
            try:
                await monitor.connect(await _connect_unix(Path(status["monitor"])), timeout=5.0)
                reply = await monitor.execute("query-status")
                qemu_status = str(reply.get("status", ""))
                backend = QemuBackend(process, monitor)
                rt.backend = backend
            except VirtError as err:
                # A QEMU nobody can drive must not go on running: a start would run the
                # guest twice (libvirt kills it too; the domain then reads crashed).
                log.warning("domain %s: cannot reach QEMU pid %s (%s); killed", rt.name, pid, err)
                await monitor.close()
                process.signal(signal.SIGKILL)
                await process.wait(5.0)
                process.close()
                alive = False
            if (
                alive
                and rt.state is DomainState.PAUSED
                and rt.reason is PausedReason.STARTING_UP
                and qemu_status != "running"
            ):
                # The start never got as far as letting the guest run: libvirt kills such
                # a domain on reconnect ("wasn't fully started yet"), shut off (daemon).
                log.warning("domain %s was still starting up; killing it", rt.name)
                rt.backend = None
                await backend.monitor.close()
                backend.process.signal(signal.SIGKILL)
                await backend.process.wait(5.0)
                backend.process.close()
                alive, killed = False, True
        starting = rt.state is DomainState.PAUSED and rt.reason is PausedReason.STARTING_UP
        if pid is None and starting:
            # Killed before the process was written down: _kill_orphans ends it.
            killed = True
        rt.feed(Trigger.RECONCILE, {"alive": alive, "status": qemu_status, "killed": killed})
        if alive:
            self._follow_console(rt)
            await self._adopt_channels(rt)
        if alive and (rt.flags.migration_out or rt.reason is PausedReason.MIGRATION):
            from drivers.qemu.migration import recover

            await recover(rt, qemu_status)

    # --- launching ----------------------------------------------------------------------

    def _emulator_path(self, defn: DomainDef | None = None) -> str:
        wanted = (defn.emulator if defn is not None else None) or self.emulator or DEFAULT_EMULATOR
        found = shutil.which(wanted)
        if found is None:
            raise HypervisorError(f"The emulator {wanted} is not installed. {INSTALL_HINT}")
        return found

    def _check_accel(self, defn: DomainDef) -> None:
        if defn.virt_type != "kvm" or self.allow_kvm:
            return
        where = "" if os.path.exists("/dev/kvm") else " (and this host has no /dev/kvm)"
        raise NotSupported(
            f"Domain '{defn.name}' asks for KVM (<domain type='kvm'>), but KVM is not enabled "
            f"for this driver{where}. Use <domain type='qemu'> to run it under TCG, or, if KVM "
            "really runs guests on this host, open the driver with ?kvm=on."
        )

    def _monitor(self, rt: DomainRuntime) -> Monitor:
        def on_event(name: str, data: Mapping[str, Any], when: float) -> None:
            if name == "VSERPORT_CHANGE":
                # A port's guest side opened or closed: device state, not domain state.
                self._port_changed(rt, str(data.get("id", "")), data.get("open") is True)
                return
            rt.feed(name, data, when or None)

        def on_eof() -> None:
            rt.feed(Trigger.EOF)

        return Monitor(rt.name, on_event=on_event, on_eof=on_eof)

    async def launch(self, rt: DomainRuntime, live: DomainDef, incoming: bool = False) -> Backend:
        self._check_accel(live)
        emulator = self._emulator_path(live)
        for graphics in live.graphics:
            if graphics.socket is None and (graphics.autoport or graphics.port < 0):
                graphics.port = _free_vnc_port(graphics.listen)
        run_dir = self._run_dir(rt.name)
        log_path = self.log_path(rt.name)
        try:
            run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            mon_path = run_dir / "monitor.sock"
            channels.fill_socket_paths(live, run_dir)
            listener = _bind_monitor(mon_path)
        except OSError as err:
            raise OperationFailed(
                f"Could not start domain '{rt.name}': {fsutil.describe(err, self.run_root)}."
            ) from err
        domid = self._next_id
        self._next_id += 1
        live.id = domid
        rt.domid = domid
        try:
            ctx = LaunchContext(
                monitor_fd=listener.fileno(),
                domain_dir=str(run_dir),
                default_emulator=emulator,
                incoming=incoming,
                console_log=str(self.console_log_path(live) or "") or None,
            )
            argv = build_argv(live, ctx)
            process = QemuProcess.spawn(
                argv,
                log_path,
                pass_fds=(listener.fileno(),),
                owner=str(run_dir),
                env=qemu_environment(live),
            )
        except OSError as err:  # the log file (spawning itself raises HypervisorError)
            raise OperationFailed(
                f"Could not start domain '{rt.name}': {fsutil.describe(err, log_path.parent)}."
            ) from err
        finally:
            listener.close()
        self._make_agent(rt, live)
        # On disk before anything else happens: a driver killed from here on finds the
        # process again (and an older write of this status cannot land after this one).
        self._launching[rt.uuid] = process.pid
        self.persist(rt)
        if not await asyncio.to_thread(self.writer.flush, 5.0):
            log.warning("domain %s: the status file was not written in time", rt.name)
        monitor = self._monitor(rt)
        try:
            await monitor.connect(await _connect_unix(mon_path))
        except VirtError as err:
            agent = self.agents.pop(rt.uuid, None)
            if agent is not None:
                await agent.close()
            # A monitor that fails usually means QEMU is on its way out: let it finish,
            # so that how it ended can be told (and told apart from our own kill).
            await process.wait(0.5)
            ended = process.ended()
            process.signal(signal.SIGKILL)
            await process.wait(5.0)
            process.close()
            tail = log_tail(log_path, lines=3, since=process.log_offset).replace("\n", " ")
            if tail:
                why = f": {tail}"
            elif ended:
                why = f": its process {ended} before its monitor answered"
            else:
                why = f" ({err})"
            raise HypervisorError(
                f"QEMU could not start domain '{rt.name}'{why} (full log: {log_path})."
            ) from err
        backend = QemuBackend(process, monitor)
        agent = self.agents.get(rt.uuid)
        if agent is not None:
            agent.start()  # before the guest runs: its agent must find the host side there
        await self._fill_live(live, monitor, agent)
        self._follow_console_of(rt, live)
        return backend

    async def _fill_live(
        self, live: DomainDef, monitor: Monitor, agent: GuestAgent | None = None
    ) -> None:
        """Tell QEMU what the command line cannot carry, and record what QEMU chose."""
        for graphics in live.graphics:
            if graphics.passwd:
                # The password never goes on the command line (other users could read it).
                await monitor.execute(
                    "set_password", {"protocol": "vnc", "password": graphics.passwd}
                )
        aliases = chardev_aliases(live)
        ptys = any(c.type == "pty" for devs in aliases.values() for c in devs)
        if not ptys and not live.channels:
            return
        with contextlib.suppress(VirtError):
            chardevs = await monitor.execute("query-chardev")
            self._port_states(live, chardevs, agent)
            for chardev in chardevs:
                label = str(chardev.get("label"))
                filename = str(chardev.get("filename", ""))
                if not filename.startswith("pty:"):
                    continue
                for device in aliases.get(label, []):
                    if device.type == "pty":
                        device.source_path = filename.removeprefix("pty:")

    # --- channels and the guest agent ---------------------------------------------------

    def _make_agent(self, rt: DomainRuntime, live: DomainDef) -> None:
        found = channels.agent_channel(live)
        if found is None or not found[1].source_path:
            return
        old = self.agents.pop(rt.uuid, None)
        if old is not None:
            asyncio.get_running_loop().create_task(old.close())
        self.agents[rt.uuid] = GuestAgent(rt.name, Path(found[1].source_path))

    def _port_state(
        self, live: DomainDef, alias: str, is_open: bool, agent: GuestAgent | None
    ) -> None:
        """Record in the live definition whether the guest has channel ``alias`` open,
        and tell the guest agent when it is its port."""
        if not alias.startswith("channel") or not alias[7:].isdigit():
            return
        index = int(alias[7:])
        found = live.channels
        if index >= len(found):
            return
        channel = found[index]
        if channel.target_type == "virtio":
            channel.state = "connected" if is_open else "disconnected"
        agent_channel = channels.agent_channel(live)
        if agent is not None and agent_channel is not None and agent_channel[0] == index:
            agent.set_port_open(is_open)

    async def _adopt_channels(self, rt: DomainRuntime) -> None:
        """After a reconnect: the agent again, and whether the guest has its ports open."""
        live, backend = rt.live, rt.backend
        if live is None or backend is None or not live.channels:
            return
        self._make_agent(rt, live)
        agent = self.agents.get(rt.uuid)
        if agent is not None:
            agent.start()
        with contextlib.suppress(VirtError):
            self._port_states(live, await backend.execute("query-chardev"), agent)

    def _port_states(self, live: DomainDef, chardevs: Any, agent: GuestAgent | None) -> None:
        """The channels' port states from a ``query-chardev`` reply (``frontend-open``)."""
        for chardev in chardevs if isinstance(chardevs, list) else []:
            label = str(chardev.get("label"))
            if label.startswith("charchannel") and "frontend-open" in chardev:
                is_open = chardev["frontend-open"] is True
                self._port_state(live, label.removeprefix("char"), is_open, agent)

    def _port_changed(self, rt: DomainRuntime, alias: str, is_open: bool) -> None:
        if rt.live is not None:
            self._port_state(rt.live, alias, is_open, self.agents.get(rt.uuid))

    def _agent(self, rt: DomainRuntime) -> GuestAgent:
        agent = self.agents.get(rt.uuid)
        if agent is None:
            raise AgentUnavailable(
                f"Domain '{rt.name}' has no guest agent channel; add <channel type='unix'>"
                f"<target type='virtio' name='{GUEST_AGENT}'/></channel> to its "
                "definition (it takes effect at the next start) and install "
                "qemu-guest-agent in the guest."
            )
        return agent

    async def agent_shutdown(self, rt: DomainRuntime) -> None:
        await self._agent(rt).shutdown()

    async def interface_addresses(self, rt: DomainRuntime, source: str) -> list[InterfaceAddresses]:
        if source == "agent":
            return await self._agent(rt).network_interfaces()
        defn = rt.definition
        if source == "arp":
            table = addresses.arp_table()
        else:
            table = addresses.leases(addresses.lease_paths(self.lease_files))
        found, visible = addresses.host_view(defn, table)
        if defn.interfaces and not visible:
            what = "ARP table" if source == "arp" else "DHCP lease files"
            raise NotSupported(
                f"Domain '{rt.name}' has only user-mode network interfaces; the host's "
                f"{what} cannot see a guest behind QEMU's user-mode NAT (its DHCP server "
                "keeps its leases to itself). Use --source agent (qemu-guest-agent in the "
                "guest), or give the domain a bridge or tap interface."
            )
        return found


@contextlib.contextmanager
def _short_address(path: Path) -> Iterator[str]:
    """An address for ``path`` short enough for a unix socket.

    Roots under deep temporary directories give socket paths longer than sun_path allows;
    going through /proc/self/fd of the open parent directory keeps the address short.
    """
    if len(str(path).encode()) <= _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


async def _connect_unix(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        with _short_address(path) as address:
            await asyncio.get_running_loop().sock_connect(sock, address)
    except OSError as err:
        sock.close()
        raise HypervisorError(f"Cannot reach the QEMU monitor at {path}: {err.strerror}.") from err
    return sock


def _bind_monitor(path: Path) -> socket.socket:
    with _short_address(path) as address:
        return listening_socket(Path(address))


def _free_vnc_port(listen: str) -> int:
    for port in range(5900, 6900):
        with socket.socket(socket.AF_INET6 if ":" in listen else socket.AF_INET) as probe:
            try:
                probe.bind((listen, port))
            except OSError:
                continue
            return port
    raise HypervisorError("No free VNC port between 5900 and 6899 on this host.")


class QemuConnection(RegistryConnection):
    """A connection that owns a ``qemu:///embed`` root."""

    registry: QemuRegistry

    async def close(self) -> None:
        if self._closed:
            return
        await super().close()
        await self.registry.detach_all()
        self.registry.unlock()

    @property
    def capabilities(self) -> frozenset[str]:
        # 'kvm' only when the operator enabled it (?kvm=on, VIRTDECK_KVM): /dev/kvm alone
        # does not mean guests run (see the driver's allow_kvm)
        extra = {"console", "console-log", "stats"}
        if self.registry.allow_kvm:
            extra.add("kvm")
        return super().capabilities | extra


async def open_embed(uri: URI) -> QemuConnection:
    """Open ``qemu:///embed?root=DIR``."""
    root_text = uri.param("root")
    if not root_text:
        raise InvalidURI("qemu:///embed needs a state directory: qemu:///embed?root=/path/to/dir.")
    root = Path(root_text).expanduser()
    if not root.is_absolute():
        raise InvalidURI(f"The embed root must be an absolute path, not '{root_text}'.")
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise ConnectionFailed(f"Cannot create the embed root {root}: {err.strerror}.") from err
    allow_kvm = _truthy(uri.param("kvm")) or _truthy(os.environ.get("VIRTDECK_KVM"))
    run_text = uri.param("run")
    run_dir = Path(run_text).expanduser() if run_text else None
    if run_dir is not None and not run_dir.is_absolute():
        raise InvalidURI(f"The embed run directory must be an absolute path, not '{run_text}'.")
    registry = QemuRegistry(
        root, allow_kvm=allow_kvm, emulator=uri.param("emulator"), run_dir=run_dir
    )
    registry.lock()
    try:
        registry.load()
        await registry.reconnect()
    except BaseException:
        await registry.detach_all()
        registry.unlock()
        raise
    return QemuConnection(registry, str(uri))
