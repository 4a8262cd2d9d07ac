"""?ro=1: a connection that can look at everything and change nothing."""

from __future__ import annotations

import asyncio
import sys

import pytest

import drivers
from drivers.errors import AccessDenied
from drivers.remote.client import RemoteConnection


async def test_in_process_read_only() -> None:
    conn = await drivers.open("test:///default?ro=1")
    assert "read-only" in conn.capabilities
    dom = await conn.lookup("test")
    assert (await dom.state())[0].words == "running"
    assert "<domain" in await dom.xml()
    for call in (dom.destroy(), dom.suspend(), dom.undefine(), conn.define_xml("<domain/>")):
        with pytest.raises(AccessDenied, match="read-only"):
            await call
    with pytest.raises(AccessDenied):
        await conn.create_volume("x.qcow2", 1 << 30)
    stream = conn.events()
    other = await drivers.open("test:///default")
    await (await other.lookup("test")).suspend()
    assert (await stream.get(timeout=2)).kind == "lifecycle"  # it still sees events
    await other.close()
    await conn.close()


async def test_the_daemon_refuses_changes_from_a_read_only_client() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "drivers.daemon", "--driver", "test:///default", "--stdio",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    conn = RemoteConnection(proc.stdout, proc.stdin, "qemu:///session?ro=1")
    try:
        await conn.handshake()
        assert conn.read_only
        dom = await conn.lookup("test")
        assert (await dom.state())[0].words == "running"
        with pytest.raises(AccessDenied, match="read-only"):
            await dom.destroy()
        with pytest.raises(AccessDenied):
            await conn.call("define_xml", xml="<domain/>")
        assert (await dom.state())[0].words == "running"
    finally:
        await conn.close()
        await asyncio.wait_for(proc.wait(), 10)


async def test_read_only_sees_logs_and_stats_but_types_on_no_console() -> None:
    from drivers.model import DomainState
    from drivers.readonly import ReadOnlyConnection

    conn = await drivers.open("test:///default?ro=1")
    try:
        assert isinstance(conn, ReadOnlyConnection)
        assert "console" not in conn.capabilities and "stats" in conn.capabilities
        running = [s for s in await conn.list_summaries() if s.state is DomainState.RUNNING]
        dom = await conn.lookup(running[0].name)
        with pytest.raises(AccessDenied, match="read-only"):
            await dom.console()
        assert [line async for line in dom.console_log()]  # the log is there to read
        samples = conn.stats_stream(1.0)
        sample = await anext(aiter(samples))
        assert {d.name for d in sample.domains} >= {running[0].name}
        await samples.aclose()  # type: ignore[attr-defined]
    finally:
        await conn.close()
