"""The libvirt driver on libvirt's own in-process test driver (``libvirt:test:///default``):
no daemon, so these run in milliseconds. The real libvirtd is in test_guest.py.

Shown here: ``libvirt:`` URIs; that ``import drivers`` does not load libvirt; the clear error
when libvirt-python is missing (the module hidden, in a fresh interpreter, through the API
and the CLI); that our enums are libvirt's numbers; events via libvirtaio mapped onto
LifecycleEvent; errors in virtdeck's hierarchy; blocking calls off the event loop; the
mixed libvirt/virtdeckd migration refused in both directions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import drivers
from drivers.api import Connection
from drivers.errors import (
    ConnectionFailed,
    DomainExists,
    InvalidArgument,
    InvalidURI,
    InvalidXML,
    NoSuchDomain,
    NotSupported,
    OperationInvalid,
    VirtError,
)
from drivers.model import (
    DomainState,
    EventType,
    LifecycleEvent,
)
from drivers.uri import is_libvirt, libvirt_target, parse_uri, with_read_only
from tests.libvirt.conftest import require_binding

REPO = Path(__file__).resolve().parents[2]
TEST_URI = "libvirt:test:///default"
NEWER_THAN_9_0 = {"VIR_DOMAIN_PAUSED_API_ERROR"}


@pytest.fixture
async def conn() -> AsyncIterator[Connection]:
    require_binding()
    connection = await drivers.open(TEST_URI)
    try:
        yield connection
    finally:
        await connection.close()


def small_xml(name: str) -> str:
    return (
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>"
        "<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
    )


# --- URIs -------------------------------------------------------------------------------


def test_libvirt_uris_keep_the_libvirt_uri_as_written() -> None:
    uri = parse_uri("libvirt:qemu+ssh://root@lab1:2222/system?keyfile=/k/id")
    assert uri.driver == "libvirt" and uri.host == "lab1" and uri.user == "root"
    assert uri.port == 2222 and uri.path == "/system"
    assert str(uri) == "libvirt:qemu+ssh://root@lab1:2222/system?keyfile=/k/id"
    assert libvirt_target(uri) == "qemu+ssh://root@lab1:2222/system?keyfile=/k/id"
    read_only = with_read_only(str(uri))
    assert read_only == "libvirt:qemu+ssh://root@lab1:2222/system?keyfile=/k/id&ro=1"
    # our ro=1 is not libvirt's to see
    assert libvirt_target(parse_uri(read_only)) == libvirt_target(uri)
    assert str(parse_uri("libvirt:lxc:///").without_params()) == "libvirt:lxc:///"
    assert is_libvirt("libvirt:qemu:///system") and not is_libvirt("qemu:///system")


@pytest.mark.parametrize("text", ["libvirt:", "libvirt:qemu", "libvirt:qemu/system"])
def test_malformed_libvirt_uris_say_what_to_write(text: str) -> None:
    with pytest.raises(InvalidURI, match=r"libvirt:qemu:///system"):
        parse_uri(text)


def test_unknown_drivers_mention_libvirt() -> None:
    with pytest.raises(InvalidURI, match=r"libvirt:<libvirt URI>"):
        parse_uri("xen:///system")


# --- the optional binding ---------------------------------------------------------------


def _python(code: str, hide: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if hide is not None:
        # A directory first on the path whose libvirt and libvirtaio fail to import, as on
        # a machine without libvirt-python.
        for name in ("libvirt", "libvirtaio"):
            (hide / f"{name}.py").write_text(f"raise ImportError({'No module named ' + name!r})\n")
        env["PYTHONPATH"] = f"{hide}{os.pathsep}{REPO}"
    return subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_import_drivers_does_not_load_libvirt() -> None:
    code = (
        "import sys, drivers, drivers.uri, drivers.migration, drivers.readonly;"
        "import drivers.libvirt;"
        "drivers.uri.parse_uri('libvirt:qemu:///system');"
        "print(sorted(m for m in sys.modules if m.startswith('libvirt')))"
    )
    done = _python(code, None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_libvirt_python_the_error_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import asyncio, drivers\n"
        "try:\n"
        "    asyncio.run(drivers.open('libvirt:qemu:///system'))\n"
        "except drivers.NotSupported as err:\n"
        "    print('NotSupported:', err)\n"
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "NotSupported: libvirt hosts need the libvirt-python binding" in done.stdout
    assert "pip install virtdeck[libvirt]" in done.stdout


def test_without_libvirt_python_the_cli_says_what_to_install(tmp_path: Path) -> None:
    done = _python("", tmp_path, "-m", "tui.cli", "-c", "libvirt:qemu:///system", "list", "--all")
    assert done.returncode == 1
    assert "error: libvirt hosts need the libvirt-python binding" in done.stderr
    assert "pip install virtdeck[libvirt]" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_libvirt_python_other_drivers_still_work(tmp_path: Path) -> None:
    done = _python("", tmp_path, "-m", "tui.cli", "-c", "test:///default", "list", "--all")
    assert done.returncode == 0, done.stderr
    assert "web1" in done.stdout


# --- our enums are libvirt's ------------------------------------------------------------


def test_states_reasons_events_and_details_are_libvirts_numbers() -> None:
    require_binding()
    import libvirt

    names: dict[str, int] = {}
    for state in DomainState:
        names[f"VIR_DOMAIN_{state.name}"] = state.value
        for reason in state.reasons:
            names[f"VIR_DOMAIN_{state.name}_{reason.name}"] = reason.value
    for kind in EventType:
        names[f"VIR_DOMAIN_EVENT_{kind.name}"] = kind.value
        for detail in kind.details:
            names[f"VIR_DOMAIN_EVENT_{kind.name}_{detail.name}"] = detail.value
    theirs = {name: getattr(libvirt, name, None) for name in names}
    assert {n: v for n, v in theirs.items() if v is not None and v != names[n]} == {}
    # (libvirt 9.0 predates the few members newer releases added; they are still ours)
    assert {n for n, v in theirs.items() if v is None} <= NEWER_THAN_9_0


# --- the driver on libvirt's test driver ------------------------------------------------


async def test_lifecycle_events_arrive_as_lifecycle_events(conn: Connection) -> None:
    stream = conn.events()
    dom = await conn.define_xml(small_xml("lv-unit-a"))
    try:
        await dom.start()
        await dom.suspend()
        await dom.resume()
        await dom.destroy()
        words = []
        for _ in range(5):
            event = await stream.get(5)
            assert isinstance(event, LifecycleEvent) and event.domain == "lv-unit-a"
            assert event.uuid == dom.uuid
            words.append(event.words)
        assert words == [
            "Defined Added",
            "Started Booted",
            "Suspended Paused",
            "Resumed Unpaused",
            "Stopped Destroyed",
        ]
        assert await dom.state() == (DomainState.SHUTOFF, DomainState.SHUTOFF.reason(2))
    finally:
        await dom.undefine()
    event = await stream.get(5)
    assert isinstance(event, LifecycleEvent) and event.words == "Undefined Removed"
    with pytest.raises(NoSuchDomain, match="lv-unit-a"):
        await conn.lookup("lv-unit-a")


async def test_summaries_handles_and_host(conn: Connection) -> None:
    rows = {row.name: row for row in await conn.list_summaries()}
    assert rows["test"].state is DomainState.RUNNING and rows["test"].id == 1
    assert rows["test"].persistent
    dom = await conn.lookup("test")
    assert (await conn.lookup_by_uuid(dom.uuid)).name == "test"
    assert await dom.id() == 1
    assert "<name>test</name>" in await dom.xml()
    assert [d.name for d in await conn.list_domains()] == sorted(rows)
    host = await conn.host_info()
    assert host.hypervisor == "TEST" and host.driver_version.startswith("libvirt ")
    assert host.uri == TEST_URI
    assert {"console", "stats", "migration", "libvirt"} <= conn.capabilities


async def test_addresses_and_shutdown_modes(conn: Connection) -> None:
    # libvirt's test driver makes up an address per NIC (what virsh domifaddr prints)
    dom = await conn.define_xml(small_xml("lv-unit-addr"))
    try:
        await dom.start()
        found = await dom.interface_addresses("lease")
        assert all(a.name.startswith("testnet") for a in found)
        with pytest.raises(InvalidArgument, match="lease, agent or arp"):
            await dom.interface_addresses("dhcp")
        with pytest.raises(InvalidArgument, match=r"acpi .*or agent"):
            await dom.shutdown(mode="button")
        await dom.shutdown()  # the test driver takes no mode flags: its power button
        assert (await dom.state())[0] is DomainState.SHUTOFF
    finally:
        with contextlib.suppress(VirtError):
            await dom.destroy()
        await dom.undefine()


async def test_errors_are_sentences_in_our_hierarchy(conn: Connection) -> None:
    with pytest.raises(NoSuchDomain, match=r"could not find domain 'nope'.*list --all"):
        await conn.lookup("nope")
    with pytest.raises(InvalidXML, match="could not define the domain"):
        await conn.define_xml("<domain type='test'><name>x</name>")
    dom = await conn.define_xml(small_xml("lv-unit-b"))
    try:
        other = small_xml("lv-unit-b").replace(
            "<name>", "<uuid>11111111-2222-3333-4444-555555555555</uuid><name>"
        )
        with pytest.raises(DomainExists, match="choose another name"):
            await conn.define_xml(other)
    finally:
        await dom.undefine()


async def test_connection_failure_is_connection_failed() -> None:
    require_binding()
    with pytest.raises(ConnectionFailed, match=r"Cannot connect to libvirt at .*/nowhere"):
        await drivers.open("libvirt:qemu:///system?socket=/nowhere/libvirt-sock")


async def test_blocking_calls_do_not_block_the_loop(conn: Connection) -> None:
    """A libvirt call that takes 0.5 s leaves the loop free: a ticker keeps ticking."""
    from drivers.libvirt.driver import LibvirtConnection

    assert isinstance(conn, LibvirtConnection)
    real = conn.handle

    class Slow:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def listAllDomains(self, flags: int = 0) -> Any:  # libvirt's name
            time.sleep(0.5)
            return real.listAllDomains(flags)

    conn.handle = Slow()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        await conn.list_domains()
    finally:
        ticker.cancel()
        conn.handle = real
    assert ticks >= 20


async def test_many_calls_at_once(conn: Connection) -> None:
    """Calls from several worker threads at once, and the events they cause, in order."""
    names = [f"lv-unit-m{i}" for i in range(8)]
    stream = conn.events()
    doms = await asyncio.gather(*(conn.define_xml(small_xml(n)) for n in names))
    try:
        await asyncio.gather(*(d.start() for d in doms))
        states = await asyncio.gather(*(d.state() for d in doms))
        assert {s for s, _ in states} == {DomainState.RUNNING}
        seen: dict[str, list[str]] = {n: [] for n in names}
        for _ in range(16):
            event = await stream.get(5)
            assert isinstance(event, LifecycleEvent)
            seen[event.domain].append(event.words)
        assert all(words == ["Defined Added", "Started Booted"] for words in seen.values())
    finally:
        for dom in doms:
            await dom.destroy()
            await dom.undefine()


async def test_stats_from_get_all_domain_stats(conn: Connection) -> None:
    samples = []
    async for sample in conn.stats_stream(0.05):
        samples.append(sample)
        if len(samples) == 2:
            break
    assert [d.name for d in samples[-1].domains] == ["test"]
    assert samples[-1].host.running == 1 and samples[-1].host.memory_total > 0


async def test_mixed_migration_is_refused_both_ways(conn: Connection) -> None:
    virtdeck = await drivers.open("test:///default")
    try:
        libvirt_dom = await conn.lookup("test")
        with pytest.raises(NotSupported, match="one is a libvirt host and the other a virtdeckd"):
            await libvirt_dom.migrate(virtdeck)
        virtdeck_dom = await virtdeck.lookup("web1")
        with pytest.raises(NotSupported, match="one is a libvirt host and the other a virtdeckd"):
            await virtdeck_dom.migrate(conn)
        with pytest.raises(OperationInvalid, match="already on"):
            await libvirt_dom.migrate(conn)
    finally:
        await virtdeck.close()


async def test_read_only_guard(conn: Connection) -> None:
    from drivers.errors import AccessDenied

    ro = await drivers.open(TEST_URI + "?ro=1")
    try:
        dom = await ro.lookup("test")
        assert (await dom.state())[0] is DomainState.RUNNING
        with pytest.raises(AccessDenied):
            await dom.destroy()
    finally:
        await ro.close()


async def test_closed_connection_refuses_calls() -> None:
    require_binding()
    connection = await drivers.open(TEST_URI)
    stream = connection.events()
    await connection.close()
    with pytest.raises(OperationInvalid, match="closed"):
        await connection.list_domains()
    last = await stream.get(1)
    assert getattr(last, "lost", None) is False


class _FakeError:
    """What translate() reads of a libvirtError."""

    def __init__(self, code: int, message: str) -> None:
        self.code, self.message = code, message

    def get_error_code(self) -> int:
        return self.code

    def get_error_message(self) -> str:
        return self.message


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("VIR_ERR_NO_DOMAIN", "Domain not found", "NoSuchDomain"),
        ("VIR_ERR_OPERATION_INVALID", "domain is not running", "OperationInvalid"),
        ("VIR_ERR_OPERATION_TIMEOUT", "cannot acquire state change lock", "DomainBusy"),
        ("VIR_ERR_OPERATION_FAILED", "domain 'x' already exists with uuid u", "DomainExists"),
        ("VIR_ERR_AUTH_FAILED", "authentication failed", "AccessDenied"),
        ("VIR_ERR_NO_SUPPORT", "this function is not supported", "NotSupported"),
        ("VIR_ERR_RPC", "Unable to read from socket", "ConnectionLost"),
        ("VIR_ERR_SYSTEM_ERROR", "Cannot recv data: Connection reset by peer", "ConnectionLost"),
        ("VIR_ERR_INTERNAL_ERROR", "qemu unexpectedly closed the monitor", "HypervisorError"),
    ],
)
def test_libvirt_error_codes_map_onto_our_classes(code: str, message: str, expected: str) -> None:
    require_binding()
    import libvirt

    from drivers.libvirt.errors import translate

    err = translate(libvirt, _FakeError(getattr(libvirt, code), message), "libvirt:x:///", "go")
    assert type(err).__name__ == expected
    assert err.message.startswith(("libvirt at libvirt:x:/// could not go: ", "The connection"))
    assert message in err.message and err.message.endswith(".")
