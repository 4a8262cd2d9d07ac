"""The test driver's simulated serial console and statistics (issue 11's API, in memory)."""

from __future__ import annotations

import asyncio

import pytest

import drivers
from drivers.api import ConsoleStream
from drivers.errors import DomainBusy, InvalidArgument, OperationInvalid
from drivers.model import ConsoleLine, StatsSample
from drivers.test import driver as test_driver
from drivers.test.driver import TestConnection


async def _open() -> TestConnection:
    conn = await drivers.open("test:///default")
    assert isinstance(conn, TestConnection)
    return conn


async def _read_until(stream: ConsoleStream, needle: bytes, timeout: float = 2.0) -> bytes:
    seen = b""
    async with asyncio.timeout(timeout):
        while needle not in seen:
            chunk = await stream.read()
            assert chunk, f"the stream ended ({stream.ended}) before {needle!r}: {seen!r}"
            seen += chunk
    return seen


async def _log(conn: TestConnection, name: str) -> list[ConsoleLine]:
    dom = await conn.lookup(name)
    return [line async for line in dom.console_log()]


async def test_capabilities_offer_console_and_stats() -> None:
    conn = await _open()
    assert {"console", "stats"} <= conn.capabilities
    await conn.close()


async def test_a_seeded_guest_has_its_boot_in_the_log_marked_inexact() -> None:
    conn = await _open()
    lines = await _log(conn, "web1")
    texts = [line.text for line in lines]
    assert texts[0].startswith("SeaBIOS")
    assert any(t.startswith("VIRTDECK-GUEST-READY uptime=") for t in texts)
    # it booted before the driver watched: the times are when the driver read them
    assert lines and not any(line.exact for line in lines)
    assert await _log(conn, "build") == []  # never ran: nothing was written
    await conn.close()


async def test_ping_answers_pong_and_typing_is_echoed() -> None:
    conn = await _open()
    dom = await conn.lookup("web1")
    async with await dom.console() as stream:
        await stream.write(b"pong\x7f\x7f\x7f\x7fping\r")
        seen = await _read_until(stream, b"VIRTDECK-PONG")
        assert b"pong\b \b" in seen  # echoed, then rubbed out
        assert seen.endswith(b"VIRTDECK-PONG\r\nroot@web1:~# ")
        await stream.write(b"frobnicate\r")
        assert b"VIRTDECK-UNKNOWN frobnicate" in await _read_until(stream, b"UNKNOWN")
        await stream.write(b"sh true\r")
        assert b"VIRTDECK-DONE rc=0" in await _read_until(stream, b"DONE")
    texts = [line.text for line in await _log(conn, "web1")]
    assert "VIRTDECK-PONG" in texts
    typed = [line for line in await _log(conn, "web1") if "VIRTDECK-PONG" in line.text]
    assert typed[-1].exact
    await conn.close()


async def test_arrow_keys_are_not_taken_for_text() -> None:
    conn = await _open()
    dom = await conn.lookup("web1")
    async with await dom.console() as stream:
        await stream.write(b"\x1b[A\x1b[Dpi\x1bOPng\n")
        seen = await _read_until(stream, b"VIRTDECK-PONG")
        assert b"[A" not in seen
    await conn.close()


async def test_escape_sequences_from_the_guest_reach_the_client_raw() -> None:
    """The driver passes the guest's bytes on unchanged: containing them is the client's job."""
    conn = await _open()
    dom = await conn.lookup("web1")
    async with await dom.console() as stream:
        await stream.write(b"title pwned\rclear\r")
        seen = await _read_until(stream, b"\x1b[2J")
        assert b"\x1b]0;pwned\x07" in seen
    await conn.close()


async def test_one_writer_at_a_time_and_force_takes_over() -> None:
    conn = await _open()
    other = await _open()
    dom = await conn.lookup("web1")
    first = await dom.console()
    with pytest.raises(DomainBusy, match="in use by another client"):
        await (await other.lookup("web1")).console()
    second = await (await other.lookup("web1")).console(force=True)
    assert await first.read() == b""
    assert first.ended == "another client took over the console"
    with pytest.raises(OperationInvalid, match="has ended"):
        await first.write(b"x")
    await second.write(b"ping\r")
    assert b"VIRTDECK-PONG" in await _read_until(second, b"PONG")
    await second.close()
    # closed: the console is free again
    again = await dom.console()
    await again.close()
    await conn.close()
    await other.close()


async def test_the_stream_and_the_followers_end_when_the_domain_stops() -> None:
    conn = await _open()
    dom = await conn.lookup("web1")
    stream = await dom.console()
    follower = dom.console_log(follow=True)
    seen: list[str] = []

    async def follow() -> None:
        async for line in follower:
            seen.append(line.text)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.01)
    await stream.write(b"ping\r")
    await _read_until(stream, b"PONG")
    await dom.destroy()
    async with asyncio.timeout(2):
        await task
        assert await stream.read() == b""
    assert stream.ended == "the domain stopped"
    assert "VIRTDECK-PONG" in seen
    with pytest.raises(OperationInvalid, match="not running"):
        await dom.console()
    # the last run's log is still there after the stop
    assert "VIRTDECK-PONG" in [line.text for line in await _log(conn, "web1")]
    await conn.close()


async def test_a_started_guest_boots_with_exact_times_and_since_filters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1_800_000_000.0]
    monkeypatch.setattr(test_driver, "clock", lambda: now[0])
    conn = await _open()
    dom = await conn.lookup("build")
    await dom.start()
    lines = await _log(conn, "build")
    assert lines and all(line.exact and line.wall == now[0] for line in lines)
    assert lines[-2].text.startswith("Type help") and lines[-1].text == ""
    now[0] += 10
    async with await dom.console() as stream:
        await stream.write(b"ping\r")
        await _read_until(stream, b"PONG")
    later = [line async for line in dom.console_log(since=now[0])]
    assert [line.text for line in later] == ["root@build:~# ping", "VIRTDECK-PONG"]
    await dom.destroy()
    await conn.close()


async def test_keys_typed_while_paused_are_read_on_resume() -> None:
    conn = await _open()
    dom = await conn.lookup("web1")
    async with await dom.console() as stream:
        await dom.suspend()
        await stream.write(b"ping\r")
        await asyncio.sleep(0.02)
        assert "VIRTDECK-PONG" not in [line.text for line in await _log(conn, "web1")]
        await dom.resume()
        assert b"VIRTDECK-PONG" in await _read_until(stream, b"PONG")
    await conn.close()


async def test_the_guest_reboots_and_powers_off_from_its_console() -> None:
    conn = await _open()
    dom = await conn.lookup("test")
    async with await dom.console() as stream:
        await stream.write(b"reboot\r")
        seen = await _read_until(stream, b"VIRTDECK-GUEST-READY")
        assert b"Restarting system" in seen
        await stream.write(b"poweroff\r")
        async with asyncio.timeout(2):
            while await stream.read():
                pass
    state, _ = await dom.state()
    assert not state.is_active
    await conn.close()


async def test_a_domain_without_a_serial_device_has_no_console() -> None:
    conn = await _open()
    xml = test_driver.domain_xml("noserial", "11111111-2222-4333-8444-555555555555", 64, 1)
    xml = xml.replace("<serial type='pty'><target port='0'/></serial>", "")
    dom = await conn.define_xml(xml)
    await dom.start()
    with pytest.raises(OperationInvalid, match="no serial console"):
        await dom.console()
    await dom.destroy()
    await conn.close()


# --- statistics ---------------------------------------------------------------------------


async def _first(conn: TestConnection, interval: float = 1.0) -> StatsSample:
    async for sample in conn.stats_stream(interval):
        return sample
    raise AssertionError("no sample")


async def test_stats_cover_the_active_domains_and_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(test_driver, "clock", lambda: 1_800_000_000.0)
    conn = await _open()
    sample = await _first(conn)
    by_name = {d.name: d for d in sample.domains}
    assert set(by_name) == {"test", "web1", "db1", "kernel-dev"}  # the active ones
    web1 = by_name["web1"]
    assert 0 < web1.cpu_percent <= 200 and len(web1.vcpu_percent) == 2
    assert abs(sum(web1.vcpu_percent) - web1.cpu_percent) < 0.1
    assert 0 < web1.rss_bytes <= (2048 << 20) + (48 << 20)
    assert web1.block_rd_rate > 0 and web1.net_rx_rate > 0
    assert by_name["db1"].cpu_percent == 0 and by_name["db1"].net_rx_rate == 0  # paused
    host = sample.host
    assert host.cpus == 8 and host.memory_total == 16 << 30
    assert 0 < host.memory_used < host.memory_total and host.running == 2
    assert 0 < host.cpu_percent <= 100
    # under a frozen clock every sample is the same (snapshot tests rely on it)
    assert await _first(conn) == sample
    await conn.close()


async def test_stats_vary_with_time(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_800_000_000.0]
    monkeypatch.setattr(test_driver, "clock", lambda: now[0])
    conn = await _open()
    cpus = set()
    for _ in range(30):
        sample = await _first(conn)
        cpus.add(next(d.cpu_percent for d in sample.domains if d.name == "test"))
        now[0] += 1
    assert len(cpus) > 20
    await conn.close()


async def test_stats_stream_samples_every_interval_and_ends_with_the_connection() -> None:
    conn = await _open()
    walls: list[float] = []

    async def consume() -> None:
        async for sample in conn.stats_stream(0.05):
            walls.append(sample.host.wall)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    await conn.close()
    async with asyncio.timeout(1):
        await task
    assert 3 <= len(walls) <= 8
    with pytest.raises(InvalidArgument, match="at least"):
        await _first(await _open(), interval=0)
