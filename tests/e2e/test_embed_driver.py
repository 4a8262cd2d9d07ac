"""qemu:///embed on real QEMU: reconnect, job lock, errors. Mostly diskless domains (fast)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

import drivers
from drivers.api import Connection
from drivers.errors import (
    ConnectionFailed,
    DomainBusy,
    DomainExists,
    HypervisorError,
    InvalidXML,
    NoSuchDomain,
    NotSupported,
    OperationInvalid,
)
from drivers.model import DomainState, state_words
from drivers.qemu.driver import QemuConnection
from tests.e2e.helpers import EventRecorder, diskless_xml, guest_xml
from tests.guest import READY_RE, GuestImage, SerialConsole

pytestmark = pytest.mark.qemu


def _pid(conn: Connection, name: str) -> int:
    assert isinstance(conn, QemuConnection)
    backend = conn.registry.get(name).backend
    assert backend is not None and backend.pid is not None
    return backend.pid


async def _words(conn: Connection, name: str) -> str:
    state, reason = await (await conn.lookup(name)).state()
    return state_words(state, reason)


async def test_start_and_events_diskless(conn: Connection) -> None:
    rec = EventRecorder(conn)
    dom = await conn.define_xml(diskless_xml("d1"))
    mark = rec.mark()
    await dom.start()
    assert await _words(conn, "d1") == "running (booted)"
    await rec.wait_lifecycle(["Resumed Unpaused", "Started Booted"], mark)
    assert await dom.id() == 1
    info = await dom.info()
    assert info.state is DomainState.RUNNING and info.max_memory_kib == 65536 and info.vcpus == 1
    live = await dom.xml()
    assert "id='1'" in live or 'id="1"' in live
    mark = rec.mark()
    await dom.destroy()
    await rec.wait_lifecycle(["Shutdown Finished after host request", "Stopped Destroyed"], mark)
    assert await dom.id() is None
    mark = rec.mark()
    await dom.start(paused=True)
    assert await _words(conn, "d1") == "paused (user)"
    await rec.wait_lifecycle(["Started Booted", "Suspended Paused"], mark)
    await dom.resume()
    assert await _words(conn, "d1") == "running (unpaused)"
    await dom.destroy()
    await rec.close()


async def test_reconnect_reads_the_right_state(
    embed_root: Path, guest: GuestImage, short_tmp: Path
) -> None:
    uri = f"qemu:///embed?root={embed_root}"
    serial = short_tmp / "r1.sock"
    conn = await drivers.open(uri)
    g = await conn.define_xml(guest_xml("r1", guest, serial))
    await g.start()
    console = await SerialConsole.connect(serial)
    await console.wait_for(READY_RE, timeout=30)
    await console.close()
    paused = await conn.define_xml(diskless_xml("r2"))
    await paused.start()
    await paused.suspend()
    dead = await conn.define_xml(diskless_xml("r3"))
    await dead.start()
    await conn.define_xml(diskless_xml("r4"))  # never started
    pids = {name: _pid(conn, name) for name in ("r1", "r2", "r3")}
    await conn.close()

    # the driver is gone; the guests are not
    for pid in pids.values():
        assert Path(f"/proc/{pid}").exists()
    os.kill(pids["r3"], signal.SIGKILL)
    await asyncio.sleep(0.2)

    conn = await drivers.open(uri)
    try:
        assert await _words(conn, "r1") == "running (booted)"
        assert await _words(conn, "r2") == "paused (user)"
        assert await _words(conn, "r3") == "shut off (crashed)"
        assert await _words(conn, "r4") == "shut off (unknown)"
        assert [d.name for d in await conn.list_domains()] == ["r1", "r2", "r3", "r4"]
        assert _pid(conn, "r1") == pids["r1"]
        # the reconnected monitor works, and its events flow
        rec = EventRecorder(conn)
        r1 = await conn.lookup("r1")
        mark = rec.mark()
        await r1.suspend()
        await r1.resume()
        await rec.wait_lifecycle(["Suspended Paused", "Resumed Unpaused"], mark)
        console = await SerialConsole.connect(serial)
        await console.send("ping")
        await console.wait_for("VIRTDECK-PONG")
        await console.close()
        # a guest that shuts down after the reconnect is seen through the adopted process
        mark = rec.mark()
        await r1.shutdown()
        await rec.wait_lifecycle(
            ["Shutdown Finished after guest request", "Stopped Shutdown"], mark
        )
        assert not Path(f"/proc/{pids['r1']}").exists() or _zombie(pids["r1"])
        await (await conn.lookup("r2")).destroy()
        await rec.close()
    finally:
        await conn.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


async def test_kvm_is_a_capability_only_when_the_operator_enables_it(
    embed_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/dev/kvm exists on these machines and Linux guests hang under it: KVM is offered
    (to the new-domain form) only with ?kvm=on or VIRTDECK_KVM, never from /dev/kvm."""
    monkeypatch.delenv("VIRTDECK_KVM", raising=False)
    for query, offered in (("", False), ("&kvm=on", True)):
        conn = await drivers.open(f"qemu:///embed?root={embed_root}{query}")
        try:
            assert ("kvm" in conn.capabilities) is offered
            assert "console-log" in conn.capabilities
        finally:
            await conn.close()


async def test_second_driver_on_the_same_root_is_refused(embed_root: Path) -> None:
    uri = f"qemu:///embed?root={embed_root}"
    conn = await drivers.open(uri)
    try:
        with pytest.raises(ConnectionFailed, match="already manages"):
            await drivers.open(uri)
    finally:
        await conn.close()


async def test_conflicting_calls(conn: Connection) -> None:
    dom = await conn.define_xml(diskless_xml("c1"))
    results = await asyncio.gather(dom.start(), dom.start(), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], OperationInvalid | DomainBusy)
    assert await _words(conn, "c1") == "running (booted)"

    # suspend and resume racing: each either happens in order or is refused; never corrupt
    outcomes = await asyncio.gather(
        dom.suspend(), dom.resume(), dom.suspend(), return_exceptions=True
    )
    assert all(o is None or isinstance(o, OperationInvalid | DomainBusy) for o in outcomes)
    state, _ = await dom.state()
    assert state in (DomainState.RUNNING, DomainState.PAUSED)
    qemu_status = await conn.registry.get("c1").backend.execute("query-status")  # type: ignore[attr-defined]
    assert (qemu_status["status"] == "running") == (state is DomainState.RUNNING)

    # a second job waits briefly, then gets DomainBusy naming the holder
    rt = conn.registry.get("c1")  # type: ignore[attr-defined]
    async with rt.jobs.job("test-holder"):
        with pytest.raises(DomainBusy, match="busy with 'test-holder'"):
            async with rt.jobs.job("suspend", wait=0.1):
                pass
    await dom.destroy()
    assert await _words(conn, "c1") == "shut off (destroyed)"


async def test_hung_qemu_times_out_and_destroy_still_works(conn: Connection) -> None:
    dom = await conn.define_xml(diskless_xml("hung"))
    await dom.start()
    backend = conn.registry.get("hung").backend  # type: ignore[attr-defined]
    backend.monitor.timeout = 0.5
    os.kill(backend.pid, signal.SIGSTOP)
    try:
        with pytest.raises(HypervisorError, match="did not answer 'stop'"):
            await dom.suspend()
        assert await _words(conn, "hung") == "running (booted)"
    finally:
        os.kill(backend.pid, signal.SIGCONT)
    # QEMU now runs the queued 'stop': the event brings the truth
    rec = EventRecorder(conn)
    await rec.wait_for(lambda evs: len(rec.lifecycle()) >= 1, 5.0)
    status = await backend.execute("query-status")
    state, _ = await dom.state()
    assert (status["status"] == "running") == (state is DomainState.RUNNING)
    os.kill(backend.pid, signal.SIGSTOP)
    try:
        await asyncio.wait_for(dom.destroy(), 15)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(backend.pid, signal.SIGCONT)
    assert await _words(conn, "hung") == "shut off (destroyed)"
    await rec.close()


async def test_errors_are_clear_and_nothing_is_persisted(
    conn: Connection, embed_root: Path
) -> None:
    with pytest.raises(InvalidXML, match="memory"):
        await conn.define_xml("<domain type='qemu'><name>bad</name><memory>lots</memory></domain>")
    with pytest.raises(InvalidXML):
        await conn.define_xml("<domain type='qemu'><name>bad</name>")
    assert list((embed_root / "domains").iterdir()) == []
    with pytest.raises(NoSuchDomain, match="'nope' not found"):
        await conn.lookup("nope")
    dom = await conn.define_xml(diskless_xml("e1"))
    with pytest.raises(OperationInvalid, match="not running"):
        await dom.suspend()
    with pytest.raises(OperationInvalid, match="not running"):
        await dom.destroy()
    with pytest.raises(DomainExists, match="already exists"):
        await conn.define_xml(diskless_xml("e1", uuid="11111111-2222-3333-4444-555555555555"))
    await dom.start()
    with pytest.raises(OperationInvalid, match="already running"):
        await dom.start()
    with pytest.raises(OperationInvalid, match="already running"):
        await dom.resume()
    await dom.destroy()
    kvm = diskless_xml("k1").replace("type='qemu'", "type='kvm'")
    k1 = await conn.define_xml(kvm)
    with pytest.raises(NotSupported, match="KVM"):
        await k1.start()
    assert await _words(conn, "k1") == "shut off (failed)"
    bad = diskless_xml("q1").replace("<devices>", "<devices><emulator>/nonexistent/qemu</emulator>")
    q1 = await conn.define_xml(bad)
    with pytest.raises(HypervisorError, match="not installed"):
        await q1.start()
    # QEMU itself refuses (a disk image that is not there): its own words reach the user
    missing = diskless_xml("h1").replace(
        "<devices>",
        "<devices><disk type='file' device='disk'><source file='/nonexistent/h1.img'/>"
        "<target dev='vda' bus='virtio'/></disk>",
    )
    h1 = await conn.define_xml(missing)
    with pytest.raises(HypervisorError, match=r"QEMU could not start domain 'h1'.*h1\.img"):
        await h1.start()
    assert await _words(conn, "h1") == "shut off (failed)"
    assert sorted(p.name for p in (embed_root / "run").iterdir()) == []


async def test_destroy_is_quick_every_time(conn: Connection) -> None:
    """Regression: a pidfd released by the EOF path left destroy waiting its full grace."""
    for index in range(4):
        dom = await conn.define_xml(diskless_xml(f"q{index}"))
        await dom.start()
        started = time.monotonic()
        await dom.destroy()
        assert time.monotonic() - started < 2.0
