"""``m``: the migrate form and the progress view, on test-driver hosts in this process.

The hosts are ``test:///default`` ("src") and node files of the test driver; the
simulated QEMUs migrate as QEMU does (tests/drivers/test_test_migration.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Checkbox, Input, Select, Static

from drivers.api import Domain
from drivers.test import simmigration
from drivers.test.driver import node_xml
from tests.tui.helpers import (
    SIZE,
    build,
    find,
    loaded,
    main_screen,
    select,
    settle,
    state_of,
    until,
    with_modes,
)
from tui.app import VirtdeckApp
from tui.config import HostMode
from tui.migration import JobState
from tui.screens.migrate import MigrateScreen, MigrationScreen


def two_hosts(tmp: Path, *, memory_kib: int = 64 << 20, mode: HostMode = HostMode.NORMAL) -> str:
    """Config with 'src' (test:///default, 5 domains) and an empty 'dst'."""
    node = tmp / "dst.xml"
    node.write_text(node_xml([], memory_kib=memory_kib))
    return with_modes(
        tmp, [("src", "test:///default", HostMode.NORMAL), ("dst", f"test://{node}", mode)]
    )


async def open_form(pilot: Pilot[None], app: VirtdeckApp, name: str) -> MigrateScreen:
    await select(pilot, app, name, "src")
    await pilot.press("m")
    await until(pilot, lambda: isinstance(app.screen, MigrateScreen), what="the form")
    form = app.screen
    assert isinstance(form, MigrateScreen)
    return form


def panel(form: MigrateScreen) -> str:
    return str(form.query_one("#preflight", Static).render())


def migrate_button(form: MigrateScreen) -> Button:
    return form.query_one("#migrate", Button)


async def test_form_offers_other_hosts_and_checks_first(tmp_path: Path) -> None:
    app = build(tmp_path, uris=(), config=two_hosts(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        form = await open_form(pilot, app, "web1")
        select_box: Select[str] = form.query_one("#target", Select)
        # the domain's own host is never a destination
        assert [value for _, value in select_box._options] == ["dst"]
        assert form.target == "dst"
        await until(pilot, lambda: form.reasons is not None, what="the pre-flight")
        assert form.reasons == ()
        assert "✓ dst has" in panel(form)
        assert not migrate_button(form).disabled
        # tunnelled is only for two daemon hosts
        assert not form.query_one("#tunnelled", Checkbox).display
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, MigrateScreen))
        assert state_of(app, "web1", "src") == "running (booted)"


async def test_bandwidth_is_validated(tmp_path: Path) -> None:
    app = build(tmp_path, uris=(), config=two_hosts(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        form = await open_form(pilot, app, "web1")
        await until(pilot, lambda: form.reasons == ())
        box = form.query_one("#bandwidth", Input)
        error = form.query_one("#bandwidth-error", Static)
        for bad, words in (("0", "at least 1 MiB/s"), ("-5", "at least 1 MiB/s")):
            box.value = bad
            await pilot.pause()
            assert words in str(error.render())
            assert migrate_button(form).disabled
            assert box.has_class("-invalid")
        box.value = "50"
        await pilot.pause()
        assert not migrate_button(form).disabled
        assert form.options()[0].bandwidth_mib == 50
        box.value = ""
        await pilot.pause()
        assert form.options()[0].bandwidth_mib is None


async def test_preflight_reasons_are_shown_and_block(tmp_path: Path) -> None:
    # 1 GiB of memory at the destination: web1 (2 GiB) does not fit
    app = build(tmp_path, uris=(), config=two_hosts(tmp_path, memory_kib=1 << 20))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        form = await open_form(pilot, app, "web1")
        await until(pilot, lambda: form.reasons is not None)
        assert "needs 2048 MiB of memory" in panel(form)
        assert migrate_button(form).disabled
        # copy storage is checked again: the simulated host keeps no images to copy into
        form.query_one("#copy", Checkbox).value = True
        await until(pilot, lambda: form.reasons is not None and len(form.reasons) == 2)
        assert "keeps no disk images to copy into" in panel(form)
        await pilot.press("ctrl+s")  # refused: nothing happens
        assert isinstance(app.screen, MigrateScreen)


async def test_only_one_host_says_so(tmp_path: Path) -> None:
    app = build(tmp_path)  # test:///default alone
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "web1")
        screen = main_screen(app)
        assert screen.check_action("migrate", ()) is False  # no other host: not offered
        from tui.screens.migrate import MigrateScreen

        conn = app.connection("default")
        app.push_screen(
            MigrateScreen("default", "web1", find(app, "web1").uuid, source=conn, targets={})
        )
        await until(pilot, lambda: isinstance(app.screen, MigrateScreen))
        form = app.screen
        assert isinstance(form, MigrateScreen)
        await until(pilot, lambda: bool(form.query("#no-target")) and form.reasons is None)
        await pilot.pause()
        text = str(form.query_one("#no-target", Static).render())
        assert "No other connected host can receive web1" in text
        assert migrate_button(form).disabled


async def test_action_gating(tmp_path: Path) -> None:
    app = build(tmp_path, uris=(), config=two_hosts(tmp_path, mode=HostMode.READ_ONLY))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = main_screen(app)
        # the only other host is read-only: it cannot receive
        await select(pilot, app, "web1", "src")
        assert screen.check_action("migrate", ()) is False
    app = build(tmp_path / "b", uris=(), config=two_hosts(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = main_screen(app)
        await select(pilot, app, "web1", "src")
        assert screen.check_action("migrate", ()) is True
        await select(pilot, app, "build", "src")  # shut off: shown, not available
        assert screen.check_action("migrate", ()) is None


async def test_submit_migrates_with_the_chosen_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    original = Domain.migrate

    async def spy(self: Domain, dest: Any, **kwargs: Any) -> Domain:
        calls.append({"dest": dest.uri, **{k: v for k, v in kwargs.items() if k != "progress"}})
        return await original(self, dest, **kwargs)

    monkeypatch.setattr(Domain, "migrate", spy)
    app = build(tmp_path, uris=(), config=two_hosts(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        form = await open_form(pilot, app, "web1")
        await until(pilot, lambda: form.reasons == ())
        form.query_one("#undefine", Checkbox).value = True
        form.query_one("#bandwidth", Input).value = "500"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, MigrationScreen))
        view = app.screen
        assert isinstance(view, MigrationScreen)
        await until(pilot, lambda: view.view.finished, timeout=20, what="the end")
        assert view.view.state is JobState.DONE
        result = str(view.query_one("#mv-result", Static).render())
        assert result.startswith("Done: web1 runs on dst; downtime ")
        # the table follows the events: gone from src (undefined), running on dst
        await until(pilot, lambda: any(r.host == "dst" for r in app.store.rows.values()))
        await until(pilot, lambda: state_of(app, "web1", "dst") == "running (migrated)")
        await until(pilot, lambda: ("src", find(app, "web1", "dst").uuid) not in app.store.rows)
        await settle(app)
        assert not [n for n in app._notifications if n.severity == "error"]
    (call,) = calls
    assert call["bandwidth_mib"] == 500
    assert call["undefine_source"] is True
    assert call["live"] is True and call["persistent"] is True
    assert call["copy_storage"] is None and call["tunnelled"] is False
    assert call["paused"] is False


async def test_progress_updates_and_cancel_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simmigration, "LINK_RATE", 2e6)  # slow: 32 MiB take 16 s
    app = build(tmp_path, uris=(), config=two_hosts(tmp_path))
    shown: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        form = await open_form(pilot, app, "web1")
        await until(pilot, lambda: form.reasons == ())
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, MigrationScreen))
        view = app.screen
        assert isinstance(view, MigrationScreen)

        def figures() -> str:
            text = str(view.query_one("#mv-figures", Static).render())
            if text not in shown:
                shown.append(text)
            return text

        await until(pilot, lambda: "perform (active)" in figures(), what="active")
        first = view.view.info
        await until(pilot, lambda: view.view.info is not first and "sent" in figures())
        assert "Rate" in figures() and "Expected downtime" in figures()
        assert state_of(app, "web1", "dst") == "paused (migrating)"
        await pilot.press("x")
        await until(pilot, lambda: view.view.finished, timeout=20)
        assert view.view.state is JobState.CANCELLED
        result = str(view.query_one("#mv-result", Static).render())
        assert result == "Cancelled: rolled back, it goes on at src."
        assert view.check_action("abort", ()) is None
        await until(pilot, lambda: all(r.host != "dst" for r in app.store.rows.values()))
        assert state_of(app, "web1", "src") == "running (booted)"
    assert len(shown) >= 3  # the figures moved while it ran
