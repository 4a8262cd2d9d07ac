"""The in-memory ``test://`` driver, like libvirt's test driver.

``test:///default`` is one process-wide instance seeded with a few domains in varied
states; every connection to it in a process sees the same domains. ``test:///PATH.xml``
loads a ``<node>`` document of ``<domain>`` elements (fresh state per connection); like
libvirt, parsed domains start running unless ``<test:runstate>`` (namespace
``http://libvirt.org/schemas/domain/test/1.0``) gives another virDomainState number.

Domains run on :class:`~drivers.test.simqemu.SimulatedQemu`, so they move through the
same event handler as real QEMU domains.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

from lxml import etree

from drivers.api import ConsoleStream
from drivers.domxml import DomainDef, parse_domain
from drivers.errors import (
    ConnectionFailed,
    InvalidArgument,
    InvalidURI,
    OperationInvalid,
    VirtError,
)
from drivers.model import (
    ConsoleLine,
    CrashedReason,
    DomainState,
    InterfaceAddresses,
    IPAddress,
    PausedReason,
    RunningReason,
    ShutoffReason,
    StateReason,
    StatsSample,
    VolumeInfo,
)
from drivers.qemu.registry import DomainRegistry, RegistryConnection
from drivers.qemu.runtime import Backend, DomainRuntime
from drivers.storage import MemoryPool
from drivers.test import simstats
from drivers.test.simconsole import PANIC, SimulatedConsole
from drivers.test.simqemu import SimulatedQemu
from drivers.uri import URI

#: Where seeded domains' start times, console lines and statistics get the time (tests
#: freeze it).
clock: Callable[[], float] = time.time


def _now() -> float:
    return clock()  # looked up at each call: a test may have replaced it


TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
IMAGE_DIR = "/var/lib/virtdeck/images"
MAX_NODE_BYTES = 64 << 20

_QEMU_STATUS = {
    DomainState.RUNNING: "running",
    DomainState.PAUSED: "paused",
    DomainState.SHUTDOWN: "shutdown",
    DomainState.CRASHED: "guest-panicked",
    DomainState.PMSUSPENDED: "suspended",
}

_DEFAULT_REASON: dict[DomainState, StateReason] = {
    DomainState.RUNNING: RunningReason.BOOTED,
    DomainState.PAUSED: PausedReason.USER,
    DomainState.CRASHED: CrashedReason.PANICKED,
    DomainState.SHUTOFF: ShutoffReason.UNKNOWN,
}


def domain_xml(
    name: str,
    uuid: str,
    memory_mib: int,
    vcpus: int,
    *,
    mac: str | None = None,
    vnc: bool = False,
    panic: bool = False,
    runstate: DomainState | None = None,
) -> str:
    """A test-driver domain: a qcow2 disk in the image directory, a NIC on 'default', a
    serial console; optionally a MAC address, a VNC display, a pvpanic-like device, and (in
    a ``<node>`` document) the state it starts in."""
    mac_line = f"\n      <mac address='{mac}'/>" if mac else ""
    extra = ""
    if vnc:
        extra += "\n    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>"
    if panic:
        extra += "\n    <panic model='isa'/>"
    state = "" if runstate is None else f"\n  <test:runstate>{runstate.value}</test:runstate>"
    return f"""<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>{vcpus}</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{IMAGE_DIR}/{name}.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>{mac_line}
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>{extra}
  </devices>{state}
</domain>"""


def node_xml(domains: Iterable[str], memory_kib: int | None = None) -> str:
    """A ``<node>`` document (what :func:`load_node` reads) holding ``domains``, made by
    :func:`domain_xml` with their run states; ``memory_kib`` is the host's memory
    (libvirt's ``<node><memory>``; default :data:`SIMULATED_MEMORY`)."""
    body = "".join("\n" + textwrap.indent(xml, "  ") for xml in domains)
    if memory_kib is not None:
        body = f"\n  <memory>{memory_kib}</memory>" + body
    return f"<node xmlns:test='{TEST_NS}'>{body}\n</node>\n"


#: (definition, initial state) of test:///default. 'test' is libvirt's own default domain.
DEFAULT_DOMAINS: tuple[tuple[str, DomainState], ...] = (
    (domain_xml("test", "6695eb01-f6a4-8304-79aa-97f2502e193f", 8192, 2), DomainState.RUNNING),
    (domain_xml("web1", "0f8d5a0c-31a2-4c41-9a53-8c5e0a6f2b11", 2048, 2), DomainState.RUNNING),
    (domain_xml("db1", "3c6e1f52-7d9b-4b8e-a2f4-5a1c9e0d7b22", 4096, 4), DomainState.PAUSED),
    (domain_xml("build", "8a2b4c6d-1e3f-4a5b-9c7d-2e4f6a8b0c33", 1024, 1), DomainState.SHUTOFF),
    (
        domain_xml("kernel-dev", "5d7e9f1a-2b3c-4d5e-8f9a-1b2c3d4e5f44", 512, 1, panic=True),
        DomainState.CRASHED,
    ),
)


def _seed_volumes() -> list[VolumeInfo]:
    gib = 1 << 30
    disks = [
        VolumeInfo(f"{name}.qcow2", f"{IMAGE_DIR}/{name}.qcow2", "qcow2", 20 * gib, 3 * gib)
        for name in ("test", "web1", "db1", "build", "kernel-dev")
    ]
    isos = [
        VolumeInfo(name, f"{IMAGE_DIR}/{name}", "iso", size, size)
        for name, size in (
            ("debian-12.8.0-amd64-netinst.iso", 660 << 20),
            ("alpine-virt-3.20.3-x86_64.iso", 62 << 20),
        )
    ]
    return disks + isos


#: The memory of the simulated host, in bytes.
SIMULATED_MEMORY = 16 << 30
#: The shortest interval stats_stream samples at (seconds).
MIN_STATS_INTERVAL = 0.05


class TestRegistry(DomainRegistry):
    """The domains of one test driver instance."""

    __test__ = False  # not a pytest test class
    hypervisor = "TEST"
    copies_storage = False

    def __init__(self, memory: int = SIMULATED_MEMORY) -> None:
        super().__init__()
        self.pool = MemoryPool(IMAGE_DIR, self.users_of, _seed_volumes())
        self.memory = memory
        """The simulated host's memory, in bytes."""
        self.consoles: dict[str, SimulatedConsole] = {}
        """Each domain's console of its last run, by UUID (kept after it stops)."""
        self._screen_dir: Path | None = None

    @property
    def cpus(self) -> int:
        """The simulated host's CPUs: 8, and 32 for a host of more than 64 GiB."""
        return 32 if self.memory > 64 << 30 else 8

    def store_definition(self, defn: DomainDef) -> None:
        """Definitions live in memory only."""

    def remove_definition(self, rt: DomainRuntime) -> None:
        """Definitions live in memory only."""

    async def launch(self, rt: DomainRuntime, live: DomainDef, incoming: bool = False) -> Backend:
        await asyncio.sleep(0)
        rt.domid = self.next_id()
        live.id = rt.domid
        backend = SimulatedQemu(rt, "inmigrate" if incoming else "prelaunch", _now)
        self.consoles[rt.uuid] = backend.console
        return backend

    def free_memory(self) -> int:
        used = sum(rt.definition.memory_kib for rt in self.by_uuid.values() if rt.active)
        return max(0, self.memory - used * 1024)

    def has_image(self, path: str) -> bool:
        pool = self.pool
        assert isinstance(pool, MemoryPool)
        return any(v.path == path for v in pool.volumes.values())

    def next_id(self) -> int:
        ids = [rt.domid for rt in self.by_uuid.values() if rt.domid is not None]
        return max(ids, default=0) + 1

    def seed(self, defn: DomainDef, state: DomainState) -> DomainRuntime:
        """Add a domain that is already in ``state`` (the driver's initial condition)."""
        rt = DomainRuntime(self, defn)
        self.add(rt)
        if state.is_active:
            rt.state = state
            rt.reason = _DEFAULT_REASON.get(state, state.reason(0))
            rt.live = defn.copy()
            # Seeded guests have been up for a while (hours, varying), as on a real host.
            rt.started_wall = clock() - 3600 * (1 + len(self.by_uuid) % 7)
            rt.domid = self.next_id()
            rt.live.id = rt.domid
            backend = SimulatedQemu(rt, _QEMU_STATUS.get(state, "running"), _now)
            rt.backend = backend
            # It booted before this driver watched: its output so far, stamped as read now.
            backend.console.boot(exact=False)
            if state is DomainState.CRASHED:
                backend.console.write(PANIC, exact=False)
            self.consoles[rt.uuid] = backend.console
        elif state is not DomainState.SHUTOFF:
            rt.state, rt.reason = state, state.reason(0)
        return rt

    # --- the console and statistics (the QEMU driver's hooks) ---------------------------

    async def open_console(self, rt: DomainRuntime, force: bool) -> ConsoleStream:
        if not rt.active or not isinstance(rt.backend, SimulatedQemu):
            raise OperationInvalid(
                f"Domain '{rt.name}' is not running, so it has no console to attach to; "
                "start it first."
            )
        defn = rt.definition
        if not defn.serials and not defn.consoles:
            raise OperationInvalid(
                f"Domain '{rt.name}' has no serial console (its definition has no <serial> "
                "or <console> device)."
            )
        return rt.backend.console.attach(force)

    async def console_lines(
        self, rt: DomainRuntime, since: float | None, follow: bool
    ) -> AsyncIterator[ConsoleLine]:
        console = self.consoles.get(rt.uuid)
        if console is None:
            return  # it never ran while this driver watched: nothing was written
        async for line in console.log(since, follow):
            yield line

    async def stats_stream(self, interval: float) -> AsyncIterator[StatsSample]:
        while True:
            yield self.sample()
            await asyncio.sleep(interval)

    def sample(self) -> StatsSample:
        """The host and its active domains now (by the test driver's clock)."""
        return simstats.sample(self.sorted(), clock(), self.cpus, self.memory)

    async def interface_addresses(
        self, rt: DomainRuntime, source: str
    ) -> list[InterfaceAddresses]:
        """Made-up addresses for every NIC, whatever the source, as libvirt's test driver
        gives them: ``testnetN``, 192.168.122.x/24 on networks (x grows with the domain
        id), 192.168.0.(N+1)/24 otherwise."""
        domid = rt.domid or 1
        found: list[InterfaceAddresses] = []
        for index, nic in enumerate(rt.definition.interfaces):
            if nic.type == "network":
                address = f"192.168.122.{((domid - 1) * 20 + index + 3) % 256}"
            else:
                address = f"192.168.0.{(index + 1) % 256}"
            found.append(
                InterfaceAddresses(
                    name=f"testnet{index}",
                    hwaddr=nic.mac,
                    addresses=(IPAddress(type="ipv4", address=address, prefix=24),),
                )
            )
        return found

    async def agent_shutdown(self, rt: DomainRuntime) -> None:
        # The simulated guest's agent powers it off, a moment later, as a real one does.
        asyncio.get_running_loop().call_soon(self.simulated(rt.name).guest_poweroff)

    def screen_dir(self, rt: DomainRuntime) -> Path | None:
        # The simulated QEMU writes its screendumps like QEMU does: to a private directory.
        if self._screen_dir is None:
            import shutil
            import tempfile
            import weakref

            self._screen_dir = Path(tempfile.mkdtemp(prefix="virtdeck-test-screen-"))
            weakref.finalize(self, shutil.rmtree, self._screen_dir, True)
        return self._screen_dir

    def simulated(self, name: str) -> SimulatedQemu:
        """The simulated QEMU of a running domain, to make its guest act (tests, demo)."""
        backend = self.get(name).backend
        if not isinstance(backend, SimulatedQemu):
            raise VirtError(f"Domain '{name}' is not running.")
        return backend


class TestConnection(RegistryConnection):
    __test__ = False
    registry: TestRegistry

    @property
    def capabilities(self) -> frozenset[str]:
        return super().capabilities | {"simulate", "console", "stats"}

    async def stats_stream(self, interval: float = 1.0) -> AsyncIterator[StatsSample]:
        if not interval >= MIN_STATS_INTERVAL:
            raise InvalidArgument(
                f"The statistics interval must be at least {MIN_STATS_INTERVAL} s, not {interval}."
            )
        self._check_open()
        while not self._closed:  # (the registry's own stream would outlive the connection)
            yield self.registry.sample()
            await asyncio.sleep(interval)


_default: TestRegistry | None = None


def default_registry() -> TestRegistry:
    """The process-wide test:///default instance."""
    global _default
    if _default is None:
        _default = TestRegistry()
        for xml, state in DEFAULT_DOMAINS:
            _default.seed(parse_domain(xml), state)
    return _default


def reset_default() -> None:
    """Forget test:///default (tests start each from the seed)."""
    global _default
    _default = None


def load_node(path: Path) -> TestRegistry:
    """A registry from a libvirt test-driver ``<node>`` file."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConnectionFailed(f"Cannot read the test driver file {path}: {err.strerror}.") from err
    if len(raw) > MAX_NODE_BYTES:
        raise ConnectionFailed(f"The test driver file {path} is larger than 64 MiB.")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        node = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as err:
        raise ConnectionFailed(f"The test driver file {path} is not valid XML: {err}.") from err
    if node.tag != "node":
        raise ConnectionFailed(f"The test driver file {path} must have a <node> root element.")
    registry = TestRegistry()
    memory = node.find("memory")
    if memory is not None:
        try:
            registry.memory = int((memory.text or "").strip()) * 1024
        except ValueError:
            raise ConnectionFailed(
                f"The <memory> of the test driver file {path} must be a number of KiB."
            ) from None
    for element in node.iterchildren("domain"):
        source = element.get("file")
        if source is not None:
            sub = (path.parent / source).resolve()
            try:
                element = etree.fromstring(sub.read_bytes(), parser)
            except (OSError, etree.XMLSyntaxError) as err:
                raise ConnectionFailed(f"Cannot load {sub} named in {path}: {err}.") from err
        runstate = element.find(f"{{{TEST_NS}}}runstate")
        state = DomainState.RUNNING
        if runstate is not None and (runstate.text or "").strip().isdigit():
            try:
                state = DomainState(int((runstate.text or "").strip()))
            except ValueError:
                state = DomainState.RUNNING
        try:
            defn = parse_domain(etree.tostring(element))
        except VirtError as err:
            raise ConnectionFailed(f"A domain in {path} is invalid: {err}") from err
        registry.seed(defn, state)
    return registry


async def open_test(uri: URI) -> TestConnection:
    if uri.host:
        raise InvalidURI("The test driver is local only: write test:///default.")
    if uri.path in ("/default", "/default/"):
        return TestConnection(default_registry(), "test:///default")
    path = Path(uri.path)
    if not path.is_absolute() or not uri.path.endswith(".xml"):
        raise InvalidURI(
            f"'{uri}' is not a test driver URI; use test:///default or test:///ABSOLUTE/PATH.xml."
        )
    return TestConnection(load_node(path), str(uri))
