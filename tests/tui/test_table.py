"""The table: rows keyed by (host, uuid), filter, sort, hosts' modes, lost hosts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.pilot import Pilot

import drivers
from drivers.api import Connection
from drivers.reconnect import LinkState
from drivers.test.driver import default_registry
from tests.tui.helpers import (
    DEFAULT,
    SIZE,
    build,
    cell,
    find,
    loaded,
    main_screen,
    select,
    settle,
    state_of,
    table,
    until,
    with_modes,
)
from tui.config import HostMode
from tui.demo import demo_hosts
from tui.screens.dialogs import ConfirmScreen, TypedConfirmScreen
from tui.widgets.domain_table import row_id


def names(app: object) -> list[str]:
    t = table(app)  # type: ignore[arg-type]
    return [t.row_texts(i)[2] for i in range(t.row_count)]


async def test_filter_terms(tmp_path: Path) -> None:
    app = build(tmp_path, demo=True, uris=())
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 21)
        await pilot.press("slash", *"web")
        assert sorted(names(app)) == ["web-01", "web-02", "web-03", "web1"]
        box = main_screen(app).query_one("#filter")
        box.value = "host:lab state:running"  # type: ignore[attr-defined]
        await pilot.pause()
        assert sorted(names(app)) == [
            "api-01",
            "cache",
            "ci-runner-1",
            "db-primary",
            "web-01",
            "web-02",
        ]
        box.value = "re:^web-0[12]$ host:lab host:demo"  # type: ignore[attr-defined]
        await pilot.pause()
        assert sorted(names(app)) == ["web-01", "web-02"]
        box.value = "/^db/ !state:paused"  # type: ignore[attr-defined]
        await pilot.pause()
        assert sorted(names(app)) == ["db-primary"]
        box.value = "re:([bad"  # type: ignore[attr-defined]
        await pilot.pause()
        assert box.has_class("-invalid")  # the last good filter stays
        assert sorted(names(app)) == ["db-primary"]
        await pilot.press("enter")
        assert app.focused is table(app)
        # the filter follows events: a paused db-primary leaves the view
        await select(pilot, app, "db-primary")
        # lab is protected but pause needs no confirmation
        await pilot.press("p")
        await until(pilot, lambda: "db-primary" not in names(app))
        await pilot.press("escape")  # marks: none; clears the filter
        assert len(names(app)) == 21


async def test_sort_by_keys_and_header(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        assert names(app) == ["build", "db1", "kernel-dev", "test", "web1"]
        await pilot.press("5")  # memory
        assert names(app) == ["kernel-dev", "build", "web1", "db1", "test"]
        await pilot.press("5")  # again: reversed
        assert names(app) == ["test", "db1", "web1", "build", "kernel-dev"]
        await pilot.press("3")  # state: running first
        assert names(app)[:2] == ["test", "web1"] and names(app)[-1] == "build"
        # a header click sorts by that column
        await pilot.click("DomainTable", offset=(10, 0))
        await pilot.pause()
        assert main_screen(app).table.sort_column in ("host", "name")
        # sorted by state, an event moves the row
        await pilot.press("3")
        if main_screen(app).table.sort_reverse:
            await pilot.press("3")
        await default_registry().get("build").start()
        await until(pilot, lambda: state_of(app, "build") == "running (booted)")
        assert names(app).index("build") < names(app).index("db1")


async def test_rows_are_updated_in_place_and_new_domains_trigger_a_relist(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        t = table(app)
        before = t.get_row_index(row_id(find(app, "web1").key))
        await default_registry().get("web1").suspend()
        await until(pilot, lambda: state_of(app, "web1") == "paused (user)")
        assert t.get_row_index(row_id(find(app, "web1").key)) == before
        # a domain defined elsewhere: the event names an unknown uuid → relist
        conn = await drivers.open(DEFAULT)
        await conn.define_xml(
            "<domain type='test'><name>newcomer</name><memory unit='MiB'>256</memory>"
            "<vcpu>1</vcpu><os><type>hvm</type></os></domain>"
        )
        await until(pilot, lambda: "newcomer" in names(app))
        await until(pilot, lambda: cell(app, "newcomer", "vcpus") == "1")
        await conn.close()


async def test_read_only_host_offers_no_mutating_action(tmp_path: Path) -> None:
    app = build(tmp_path, demo=True, uris=())
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 21)
        screen = main_screen(app)
        await select(pilot, app, "gw-north", "edge")  # edge is read-only, gw-north runs
        for action in ("start", "shutdown", "reboot", "pause", "reset", "destroy", "undefine"):
            assert screen.check_action(action, ()) is False, action
        assert screen.check_action("edit_xml", ()) is False
        assert screen.check_action("details", ()) is True
        offered = {b.binding.action for b in screen.active_bindings.values()}
        assert not offered & {"start", "shutdown", "pause", "destroy", "undefine", "edit_xml"}
        assert "details" in offered
        await pilot.press("S", "D", "p")
        await settle(app)
        assert not isinstance(app.screen, ConfirmScreen)
        assert state_of(app, "gw-north", "edge") == "running (booted)"


async def test_protected_host_wants_its_name_typed(tmp_path: Path) -> None:
    config = with_modes(tmp_path, [("prod", DEFAULT, HostMode.PROTECTED)])
    app = build(tmp_path, uris=(), config=config)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "web1")
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, TypedConfirmScreen))
        assert "protected" in str(app.screen.query_one(".field-label").render())
        await pilot.press(*"web1", "enter")  # the wrong word
        assert isinstance(app.screen, TypedConfirmScreen)
        app.screen.query_one("#word-0").value = ""  # type: ignore[attr-defined]
        await pilot.press(*"prod", "enter")
        await until(pilot, lambda: state_of(app, "web1") == "shut off (destroyed)")
        # undefine on a protected host: the domain's name and the host's name
        await pilot.press("U")
        await until(pilot, lambda: isinstance(app.screen, TypedConfirmScreen))
        await pilot.press(*"web1", "enter", *"prod", "enter")
        await until(pilot, lambda: "web1" not in names(app))


async def test_lost_host_rows_read_lost_then_come_back(tmp_path: Path) -> None:
    opened: list[Connection] = []

    async def opener(uri: str) -> Connection:
        conn = await drivers.open(uri)
        opened.append(conn)
        return conn

    app = build(tmp_path, opener=opener, backoff=(0.3,))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        assert state_of(app, "web1") == "running (booted)"
        await opened[0].close()  # the link breaks
        await until(pilot, lambda: app.store.hosts["default"].link is LinkState.LOST)
        await pilot.pause()
        assert {state_of(app, n) for n in ("web1", "test", "db1", "build")} == {"lost"}
        assert cell(app, "web1", "uptime") == ""
        screen = main_screen(app)
        await select(pilot, app, "build")
        assert screen.check_action("start", ()) is False
        bar = str(screen.query_one("#hosts").render())
        assert "lost — retrying" in bar
        # the reconnect's snapshot replaces everything
        await until(pilot, lambda: state_of(app, "web1") == "running (booted)", timeout=5)
        assert len(opened) == 2


async def test_two_hosts_same_driver_different_rows(tmp_path: Path) -> None:
    hosts = demo_hosts(tmp_path / "demo")
    lab = hosts[1].uri
    app = build(tmp_path, uris=(DEFAULT, lab))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 17)
        assert {r.host for r in app.store.rows.values()} == {"default", "lab"}
        await asyncio.sleep(0)


async def test_run_opens_the_hosts_ahead_and_links_take_those_connections(
    tmp_path: Path,
) -> None:
    """run_async (what `virtdeck` runs) starts opening each autoconnected host before
    Textual builds the screen; the host's link then uses that connection, not a second one.
    None is left behind when the app quits at once."""
    opened: list[tuple[str, Connection]] = []
    before_mount: list[bool] = []

    async def opener(uri: str) -> Connection:
        before_mount.append(not app._mounted_event.is_set())
        conn = await drivers.open(uri)
        opened.append((uri, conn))
        return conn

    app = build(tmp_path, opener=opener)

    async def look(pilot: Pilot[None]) -> None:
        await loaded(pilot, app, 5)
        assert [uri for uri, _ in opened] == [DEFAULT]  # one connection: the one opened ahead
        app.exit()

    await app.run_async(headless=True, size=SIZE, auto_pilot=look)
    assert len(opened) == 1 and before_mount == [True]

    opened.clear()
    app = build(tmp_path, opener=opener)

    async def leave(pilot: Pilot[None]) -> None:
        app.exit()

    await app.run_async(headless=True, size=SIZE, auto_pilot=leave)
    assert app._head_start == {}  # claimed by the link, or closed


async def test_a_slow_host_does_not_hold_the_screen_back(tmp_path: Path) -> None:
    """run_async waits for the first sessions at most HEAD_START_WAIT; a host that takes
    longer connects while the app already runs."""
    import time

    from tui.app import HEAD_START_WAIT

    async def slow(uri: str) -> Connection:
        await asyncio.sleep(1.0)
        return await drivers.open(uri)

    app = build(tmp_path, opener=slow)
    started = time.monotonic()
    mounted: list[float] = []

    async def look(pilot: Pilot[None]) -> None:
        mounted.append(time.monotonic() - started)
        await loaded(pilot, app, 5)  # the slow host's rows arrive later
        app.exit()

    await app.run_async(headless=True, size=SIZE, auto_pilot=look)
    assert mounted and mounted[0] < HEAD_START_WAIT + 0.5 < 1.0


async def test_a_recoloured_host_recolours_its_rows(tmp_path: Path) -> None:
    from drivers.records import replace

    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        config = app.store.hosts["default"].config
        await app.edit_host("default", replace(config, color="#ff0000"))
        await pilot.pause()
        t = table(app)
        assert t.look.host_colors["default"] == "#ff0000"
        colours = {s.style.color.triplet for s in t.render_line(1) if s.style and s.style.color}
        assert (255, 0, 0) in colours, colours


def test_migration_progress_stays_out_of_the_event_history() -> None:
    from drivers.model import DomainState, DomainSummary, JobInfo, JobProgressEvent, RunningReason
    from drivers.reconnect import Snapshot
    from tui.config import HostConfig
    from tui.state import Changes, DomainStore

    store = DomainStore()
    store.add_host(HostConfig("test:///default", "h"))
    summary = DomainSummary("g", "u-1", 1, DomainState.RUNNING, RunningReason.BOOTED)
    store.apply_snapshot("h", Snapshot((summary,), None))
    running = JobInfo(type="unbounded", operation="outgoing migration", ram_total=10)
    done = JobInfo(type="completed", operation="outgoing migration")
    changes = Changes()
    for info in (running, running, done):
        store.apply_event("h", JobProgressEvent(domain="g", uuid="u-1", info=info), changes)
    (row,) = store.host_rows("h")
    assert [text for _, text in row.log] == ["Outgoing migration completed"]
