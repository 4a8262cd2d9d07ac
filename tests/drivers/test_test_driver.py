"""The in-memory test:// driver honours the same transitions and events as the QEMU driver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import drivers
from drivers.errors import (
    DomainExists,
    InvalidURI,
    InvalidXML,
    NoSuchDomain,
    OperationInvalid,
)
from drivers.model import DomainState, LifecycleEvent, RebootEvent, state_words
from drivers.test.driver import TestConnection
from tests.e2e.helpers import EventRecorder


async def words(conn: drivers.Connection, name: str) -> str:
    state, reason = await (await conn.lookup(name)).state()
    return state_words(state, reason)


async def test_default_has_domains_in_varied_states() -> None:
    conn = await drivers.open("test:///default")
    summaries = {s.name: s for s in await conn.list_summaries()}
    assert summaries["test"].uuid == "6695eb01-f6a4-8304-79aa-97f2502e193f"
    assert {state_words(s.state, s.reason) for s in summaries.values()} >= {
        "running (booted)",
        "paused (user)",
        "shut off (unknown)",
        "crashed (panicked)",
    }
    assert summaries["test"].id is not None and summaries["build"].id is None
    await conn.close()


async def test_default_is_shared_by_connections_in_a_process() -> None:
    a = await drivers.open("test:///default")
    b = await drivers.open("test:///default")
    rec = EventRecorder(b)
    await (await a.lookup("test")).suspend()
    assert await words(b, "test") == "paused (user)"
    await rec.wait_lifecycle(["Suspended Paused"], 0)
    await rec.close()
    await a.close()
    await b.close()


async def test_transitions_and_events_match_the_qemu_driver() -> None:
    conn = await drivers.open("test:///default")
    rec = EventRecorder(conn)
    dom = await conn.lookup("build")

    mark = rec.mark()
    await dom.start()
    assert await words(conn, "build") == "running (booted)"
    await rec.wait_lifecycle(["Resumed Unpaused", "Started Booted"], mark)

    mark = rec.mark()
    await dom.suspend()
    await dom.resume()
    assert await words(conn, "build") == "running (unpaused)"
    await rec.wait_lifecycle(["Suspended Paused", "Resumed Unpaused"], mark)

    mark = rec.mark()
    await dom.reboot()
    await rec.wait_for(lambda evs: any(isinstance(e, RebootEvent) for e in evs), 2, mark)
    assert await words(conn, "build") == "running (unpaused)"
    assert rec.lifecycle(mark) == []

    mark = rec.mark()
    await dom.shutdown()
    await rec.wait_lifecycle(["Shutdown Finished after guest request", "Stopped Shutdown"], mark)
    assert await words(conn, "build") == "shut off (shutdown)"

    await dom.start()
    mark = rec.mark()
    await dom.destroy()
    await rec.wait_lifecycle(["Shutdown Finished after host request", "Stopped Destroyed"], mark)
    assert await words(conn, "build") == "shut off (destroyed)"
    await rec.close()
    await conn.close()


async def test_simulated_guest_panic_restart_is_the_seed_case() -> None:
    conn = await drivers.open("test:///default")
    assert isinstance(conn, TestConnection)
    rec = EventRecorder(conn)
    build = await conn.lookup("build")
    xml = (await build.xml(inactive=True)).replace(
        "</devices>", "</devices><on_crash>restart</on_crash>"
    )
    await conn.define_xml(xml)  # applies to the next boot
    await build.start()
    mark = rec.mark()
    conn.registry.simulated("build").guest_panic()
    await rec.wait_lifecycle(["Crashed Panicked", "Resumed Unpaused"], mark)
    assert await words(conn, "build") == "running (crashed)"

    mark = rec.mark()
    conn.registry.simulated("web1").guest_panic()  # web1 runs with on_crash=destroy
    await rec.wait_lifecycle(["Crashed Panicked", "Stopped Crashed"], mark)
    assert await words(conn, "web1") == "shut off (crashed)"

    mark = rec.mark()
    conn.registry.simulated("build").crash()
    await rec.wait_lifecycle(["Stopped Failed"], mark)
    assert await words(conn, "build") == "shut off (crashed)"
    await rec.close()
    await conn.close()


async def test_define_undefine_and_errors() -> None:
    conn = await drivers.open("test:///default")
    rec = EventRecorder(conn)
    xml = "<domain type='test'><name>new1</name><memory unit='MiB'>128</memory></domain>"
    dom = await conn.define_xml(xml)
    assert await words(conn, "new1") == "shut off (unknown)"
    again = await conn.define_xml((await dom.xml()).replace("128", "256"))
    assert again.uuid == dom.uuid
    with pytest.raises(DomainExists):
        await conn.define_xml(xml.replace("<name>new1", "<uuid>" + dom.uuid + "</uuid><name>x"))
    with pytest.raises(InvalidXML):
        await conn.define_xml("<domain><name>z</name></domain>")
    await dom.undefine()
    with pytest.raises(NoSuchDomain):
        await conn.lookup("new1")
    with pytest.raises(NoSuchDomain):
        await dom.state()
    await rec.wait_lifecycle(["Defined Added", "Defined Updated", "Undefined Removed"], 0)
    with pytest.raises(OperationInvalid, match="not running"):
        await (await conn.lookup("build")).destroy()
    await rec.close()
    await conn.close()


async def test_event_stream_ends_when_the_connection_closes() -> None:
    conn = await drivers.open("test:///default")
    stream = conn.events()
    await conn.close()
    items = [e async for e in stream]
    assert [e.kind for e in items] == ["connection-closed"]
    with pytest.raises(OperationInvalid, match="closed"):
        await conn.list_domains()


async def test_node_file(tmp_path: Path) -> None:
    node = tmp_path / "node.xml"
    domains = "".join(
        f"<domain type='test'><name>vm{i:03d}</name><memory unit='MiB'>64</memory>"
        f"{'' if i < 3 else '<test:runstate>5</test:runstate>'}</domain>"
        for i in range(10)
    )
    node.write_text(
        f"<node xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>{domains}</node>"
    )
    conn = await drivers.open(f"test://{node}")
    summaries = await conn.list_summaries()
    assert len(summaries) == 10
    running = [s.name for s in summaries if s.state is DomainState.RUNNING]
    assert running == ["vm000", "vm001", "vm002"]
    await conn.close()
    with pytest.raises(InvalidURI):
        await drivers.open("test:///relative.txt")


async def test_many_events_in_order() -> None:
    conn = await drivers.open("test:///default")
    rec = EventRecorder(conn)
    dom = await conn.lookup("test")
    for _ in range(200):
        await dom.suspend()
        await dom.resume()
    await rec.wait_for(lambda evs: len(evs) >= 400, 5)
    words_seen = [e.words for e in rec.events if isinstance(e, LifecycleEvent)]
    assert words_seen == ["Suspended Paused", "Resumed Unpaused"] * 200
    await rec.close()
    await conn.close()
    await asyncio.sleep(0)
