"""End to end: the TUI migrates the real guest between two real daemons, through the form,
and drains a host of two guests to the other.

Two ``virtdeckd --driver qemu:///embed?root=DIR --socket PATH`` processes play two hosts
(reached as ``qemu:///system?socket=PATH``). The guests' serial is a pty with an appended
log file: a serial unix socket would be bound again by the destination's QEMU on this
same machine, which the form cannot know to rename.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import drivers
from tests.e2e.helpers import guest_xml
from tests.guest import READY_RE, GuestImage, require_guest
from tests.remote.conftest import Session
from tests.remote.test_migration_daemons import Host, start_host, stop_host
from tests.tui.helpers import SIZE, build, loaded, select, settle, state_of, until, with_modes
from tui.config import HostMode
from tui.migration import JobState
from tui.screens.drain import DrainScreen
from tui.screens.migrate import MigrateScreen, MigrationScreen

pytestmark = [pytest.mark.qemu, pytest.mark.guest]

_SERIAL = re.compile(r"<serial type='unix'>.*?</serial>", re.S)


def pty_guest(name: str, image: GuestImage, log: Path) -> str:
    serial = f"<serial type='pty'><log file='{log}' append='on'/><target port='0'/></serial>"
    return _SERIAL.sub(serial, guest_xml(name, image, log.with_suffix(".sock")))


def qemu_count(name: str) -> int:
    """How many QEMU processes run the guest ``name`` on this machine."""
    marker = f"guest={name},".encode()
    found = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline and marker in cmdline:
            found += 1
    return found


async def ready(log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace") if log.exists() else ""
        if any(READY_RE.search(line) for line in text.splitlines()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{log.name}: no READY line; log: {text[-500:]!r}")
        await asyncio.sleep(0.1)


@pytest.fixture
def two_hosts(session: Session) -> Iterator[tuple[Host, Host]]:
    from tests.conftest import require_qemu

    require_qemu()
    hosts = [start_host(session, "h1"), start_host(session, "h2")]
    try:
        yield hosts[0], hosts[1]
    finally:
        for host in hosts:
            stop_host(host)


async def test_migrate_and_drain_through_the_tui(
    two_hosts: tuple[Host, Host], session: Session, tmp_path: Path
) -> None:
    image = require_guest()
    h1, h2 = two_hosts
    names = ("tg1", "tg2", "tg3")
    conn = await drivers.open(h1.uri)
    try:
        logs = {name: session.base / f"{name}.log" for name in names}
        for name in names:
            dom = await conn.define_xml(pty_guest(name, image, logs[name]))
            await dom.start()
        await asyncio.gather(*(ready(logs[name]) for name in names))
    finally:
        await conn.close()

    config = with_modes(
        tmp_path, [("h1", h1.uri, HostMode.NORMAL), ("h2", h2.uri, HostMode.NORMAL)]
    )
    app = build(tmp_path, uris=(), config=config)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 3)
        for name in names:
            assert state_of(app, name, "h1") == "running (booted)"

        # 1. tg1 through the form
        await select(pilot, app, "tg1", "h1")
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MigrateScreen))
        form = app.screen
        assert isinstance(form, MigrateScreen)
        assert form.target == "h2"
        await until(pilot, lambda: form.reasons is not None, timeout=30, what="pre-flight")
        assert form.reasons == ()
        assert form.query_one("#tunnelled").display  # two daemon hosts can tunnel
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, MigrationScreen))
        view = app.screen
        assert isinstance(view, MigrationScreen)
        await until(pilot, lambda: view.view.finished, timeout=120, what="tg1's migration")
        assert view.view.state is JobState.DONE, view.view.error
        assert view.view.info is not None and view.view.info.downtime_ms is not None
        await until(pilot, lambda: state_of(app, "tg1", "h2") == "running (migrated)")
        await until(pilot, lambda: state_of(app, "tg1", "h1") == "shut off (migrated)")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, MigrationScreen))

        # 2. drain h1: tg2 and tg3 go to h2, two at once
        await select(pilot, app, "tg2", "h1")
        await pilot.press("M")
        await until(pilot, lambda: isinstance(app.screen, DrainScreen))
        drain = app.screen
        assert isinstance(drain, DrainScreen)
        await until(pilot, lambda: drain.planned, timeout=30, what="the plan")
        assert sorted(r.name for r in drain.rows) == ["tg2", "tg3"]
        assert set(drain.plan.values()) == {"h2"} and not drain.problems()
        await pilot.press("ctrl+r")
        run = drain.migration_run
        assert run is not None
        await until(pilot, lambda: run.finished, timeout=180, what="the drain")
        assert [v.state for v in run.views] == [JobState.DONE] * 2, [v.error for v in run.views]
        for name in ("tg2", "tg3"):
            await until(pilot, lambda n=name: state_of(app, n, "h2") == "running (migrated)")  # type: ignore[misc]
            await until(pilot, lambda n=name: state_of(app, n, "h1") == "shut off (migrated)")  # type: ignore[misc]
        await settle(app)
        assert not [n for n in app._notifications if n.severity == "error"]

    # every guest runs exactly once, on h2
    for name in names:
        assert qemu_count(name) == 1, name
    dst = await drivers.open(h2.uri)
    try:
        for name in names:
            dom = await dst.lookup(name)
            state, _ = await dom.state()
            assert state.name == "RUNNING"
            await dom.destroy()
    finally:
        await dst.close()
