"""The IP column and the details screen's address (tui/addresses.py, one worker per host).

On test:///default every NIC has libvirt's test-driver address (web1, id 2, is
192.168.122.23): the column fills in for the running domains, stays blank for the
shut-off one, empties when a domain stops and fills soon after one starts (the round is
woken, it does not wait for the next interval).
"""

from __future__ import annotations

import time
from pathlib import Path

import drivers
from drivers.errors import AgentUnavailable, NotSupported
from drivers.model import InterfaceAddresses, IPAddress
from tests.tui.helpers import SIZE, build, find, loaded, select, table, until
from tui.addresses import ADDRESS_INTERVAL, AddressRounds, pick_address
from tui.screens.details import DetailsScreen


async def test_the_ip_column_follows_starts_and_stops(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        t = table(app)
        web1, build_row = find(app, "web1"), find(app, "build")
        await until(pilot, lambda: t.cell_text(web1.key, "ip") == "192.168.122.23")
        assert t.cell_text(find(app, "test").key, "ip") == "192.168.122.3"
        assert t.cell_text(build_row.key, "ip") == ""
        assert "ip" in t.shown_columns
        conn = await drivers.open("test:///default")
        try:
            await (await conn.lookup("web1")).destroy()
            await until(pilot, lambda: t.cell_text(web1.key, "ip") == "")
            started = time.monotonic()
            await (await conn.lookup("build")).start()
            await until(pilot, lambda: t.cell_text(build_row.key, "ip").startswith("192.168."))
            assert time.monotonic() - started < ADDRESS_INTERVAL  # woken by the start
        finally:
            await conn.close()


async def test_details_screen_shows_the_address(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        web1 = find(app, "web1")
        await until(pilot, lambda: web1.ip == "192.168.122.23")
        await select(pilot, app, "web1")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
        await until(pilot, lambda: "192.168.122.23" in app.export_screenshot())
        assert "IP&#160;address" in app.export_screenshot()


async def test_an_address_the_guest_chose_is_shown_inert(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        web1 = find(app, "web1")
        await until(pilot, lambda: web1.ip != "")
        app._publish(app.store.apply_addresses(web1.host, {web1.uuid: "10.0.0.1\x1b[2J"}))
        await until(pilot, lambda: table(app).cell_text(web1.key, "ip") == "10.0.0.1\\x1b[2J")


def test_pick_address_prefers_a_routable_ipv4() -> None:
    lo = InterfaceAddresses("lo", None, (IPAddress("ipv4", "127.0.0.1", 8),))
    eth = InterfaceAddresses(
        "eth0",
        "52:54:00:00:00:01",
        (
            IPAddress("ipv6", "fe80::1", 64),
            IPAddress("ipv6", "2001:db8::5", 64),
            IPAddress("ipv4", "169.254.3.4", 16),
            IPAddress("ipv4", "10.0.2.15", 24),
        ),
    )
    assert pick_address([lo, eth]) == "10.0.2.15"
    assert pick_address([lo, InterfaceAddresses("e", None, eth.addresses[:2])]) == "2001:db8::5"
    assert pick_address([lo]) == ""


class _CountingDomain:
    """A domain that knows no host-side addresses (only user-mode NICs) and no agent."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    async def interface_addresses(self, source: str) -> list[InterfaceAddresses]:
        self.calls.append(source)
        if source == "agent":
            raise AgentUnavailable("The guest agent is not connected in domain 'x'.")
        raise NotSupported("only user-mode network interfaces")


class _CountingConnection:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def lookup_by_uuid(self, uuid: str) -> _CountingDomain:
        self.calls.append("lookup")
        return _CountingDomain(self.calls)


async def test_rounds_skip_what_cannot_answer_until_the_domain_stops() -> None:
    conn = _CountingConnection()
    rounds = AddressRounds()
    for _ in range(3):
        rounds.keep_only({"u1"})
        assert await rounds.address(conn, "u1") == ""  # type: ignore[arg-type]
    # the first round looks the domain up and asks all three sources; later rounds ask
    # only the agent (it may still start), never the lease files or ARP table again
    assert conn.calls == ["lookup", "agent", "lease", "arp", "agent", "agent"]
    rounds.keep_only(set())  # it stopped: when it runs again, everything is asked again
    rounds.keep_only({"u1"})
    conn.calls.clear()
    await rounds.address(conn, "u1")  # type: ignore[arg-type]
    assert conn.calls == ["lookup", "agent", "lease", "arp"]
