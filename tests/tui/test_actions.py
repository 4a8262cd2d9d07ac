"""Every domain action on test:///default, driven by keys; the states come from events."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.message import Message
from textual.pilot import Pilot

from drivers.errors import HypervisorError
from drivers.qemu.registry import RuntimeDomain
from drivers.test.driver import default_registry
from tests.tui.helpers import (
    SIZE,
    build,
    cell,
    loaded,
    main_screen,
    select,
    settle,
    state_of,
    table,
    until,
)
from tui.app import VirtdeckApp
from tui.messages import HostUpdates
from tui.screens.dialogs import ConfirmScreen, TypedConfirmScreen
from tui.screens.new_domain import NewDomainScreen


async def test_start_turns_the_row_running_from_the_event(tmp_path: Path) -> None:
    app = build(tmp_path)
    messages: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await loaded(pilot, app, 5)
        assert state_of(app, "build") == "shut off (unknown)"
        await select(pilot, app, "build")
        messages.clear()
        await pilot.press("s")
        await settle(app)
        await until(pilot, lambda: state_of(app, "build") == "running (booted)")
        # the state arrived in a HostUpdates batch carrying the lifecycle events
        words = [
            getattr(u, "words", "")
            for m in messages
            if isinstance(m, HostUpdates)
            for u in m.updates
        ]
        assert "Started Booted" in words
        assert cell(app, "build", "uptime") == "<1m"


async def test_shutdown_reboot_pause_resume(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "web1")
        await pilot.press("p")
        await until(pilot, lambda: state_of(app, "web1") == "paused (user)")
        await pilot.press("p")
        await until(pilot, lambda: state_of(app, "web1") == "running (unpaused)")
        await pilot.press("r")
        await settle(app)
        # a fake reboot keeps the domain running
        assert state_of(app, "web1") == "running (unpaused)"
        await pilot.press("S")
        await until(pilot, lambda: state_of(app, "web1") == "shut off (shutdown)")


async def test_actions_invalid_for_the_state_are_disabled(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = main_screen(app)
        await select(pilot, app, "build")  # shut off
        assert screen.check_action("start", ()) is True
        assert screen.check_action("shutdown", ()) is None
        assert screen.check_action("pause", ()) is None
        assert screen.check_action("destroy", ()) is None
        await select(pilot, app, "web1")  # running
        assert screen.check_action("start", ()) is None
        assert screen.check_action("shutdown", ()) is True
        # a disabled key does nothing
        await pilot.press("s")
        await settle(app)
        assert state_of(app, "web1") == "running (booted)"


async def test_reset_asks_yes_no(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "kernel-dev")  # crashed
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await settle(app)
        assert state_of(app, "kernel-dev") == "crashed (panicked)"
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        # libvirt: a reset of a crashed domain leaves it paused (crashed), told by REBOOT
        await until(pilot, lambda: state_of(app, "kernel-dev") == "paused (crashed)")


async def test_destroy_asks_then_the_event_brings_shut_off(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "test")
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#yes")
        await until(pilot, lambda: state_of(app, "test") == "shut off (destroyed)")
        assert cell(app, "test", "uptime") == ""


async def test_undefine_needs_the_typed_name(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "build")
        await pilot.press("U")
        await until(pilot, lambda: isinstance(app.screen, TypedConfirmScreen))
        await pilot.press(*"buil", "enter")
        assert isinstance(app.screen, TypedConfirmScreen)  # not yet
        assert app.screen.query_one("#yes").disabled
        await pilot.press("d", "enter")
        await until(pilot, lambda: table(app).row_count == 4, what="the row to go")
        assert "build" not in [r.name for r in app.store.rows.values()]
        assert "build" not in default_registry().by_name


async def test_undefine_can_delete_the_images_the_domain_owns(tmp_path: Path) -> None:
    from textual.widgets import Checkbox

    pool = default_registry().pool
    assert pool is not None
    assert "build.qcow2" in [v.name for v in await pool.list()]
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "build")
        await pilot.press("U")
        await until(pilot, lambda: isinstance(app.screen, TypedConfirmScreen))
        app.screen.query_one("#option", Checkbox).value = True
        app.screen.query_one("#word-0").focus()
        await pilot.press(*"build", "enter")
        await until(pilot, lambda: table(app).row_count == 4, what="the row to go")
        await settle(app)
    names = [v.name for v in await pool.list()]
    assert "build.qcow2" not in names
    assert "test.qcow2" in names and any(n.endswith(".iso") for n in names)


async def test_failure_shows_one_error_notification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(self: RuntimeDomain, paused: bool = False) -> None:
        raise HypervisorError("QEMU refused to start 'build': no memory left (test).")

    monkeypatch.setattr(RuntimeDomain, "start", refuse)
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "build")
        await pilot.press("s")
        await settle(app)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert [(n.title, n.message) for n in errors] == [
            ("Hypervisor error", "QEMU refused to start 'build': no memory left (test).")
        ]
        # never set optimistically: no event, no change
        assert state_of(app, "build") == "shut off (unknown)"
        assert cell(app, "build", "mark") == " "  # the busy hint is gone


async def test_marks_and_bulk_report(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = main_screen(app)
        await select(pilot, app, "test")
        await pilot.press("space")
        await select(pilot, app, "web1")
        await pilot.press("space")
        await select(pilot, app, "build")
        await pilot.press("space")
        assert len(screen.marks) == 3
        assert cell(app, "web1", "mark") == "●"
        await pilot.press("p")  # pause: valid for test and web1, build is skipped
        await settle(app)
        await until(pilot, lambda: state_of(app, "web1") == "paused (user)")
        await until(pilot, lambda: state_of(app, "test") == "paused (user)")
        notes = [n for n in app._notifications if n.title.startswith("Pause")]
        assert len(notes) == 1
        assert "test" in notes[0].message and "web1" in notes[0].message
        assert "build: skipped" in notes[0].message
        await pilot.press("escape")
        assert not screen.marks


async def test_bulk_partial_failure_lists_each(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = main_screen(app)
        for name in ("test", "web1"):
            await select(pilot, app, name)
            await pilot.press("space")
        # web1 gets paused behind our back before we press shutdown... the event updates it
        await default_registry().get("web1").suspend()
        await until(pilot, lambda: state_of(app, "web1") == "paused (user)")
        assert screen.check_action("shutdown", ()) is True
        await pilot.press("S")
        await settle(app)
        notes = [n for n in app._notifications if n.title.startswith("Shut down")]
        assert len(notes) == 1
        assert "web1: skipped, it is paused (user)" in notes[0].message


async def open_new_domain_form(pilot: Pilot[None], app: VirtdeckApp) -> NewDomainScreen:
    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, NewDomainScreen))
    form = app.screen
    assert isinstance(form, NewDomainScreen)
    return form


async def test_n_opens_the_new_domain_form_and_the_row_comes_by_event(tmp_path: Path) -> None:
    from textual.widgets import Input

    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        form = await open_new_domain_form(pilot, app)
        await until(pilot, lambda: form.names is not None)  # it read the host's names
        form.query_one("#name", Input).focus()
        await pilot.press(*"made-in-form")
        await pilot.pause(0.5)  # the form validates after a short debounce
        await pilot.press("ctrl+r")  # define and start
        await until(pilot, lambda: not isinstance(app.screen, NewDomainScreen))
        await until(pilot, lambda: state_of(app, "made-in-form") == "running (booted)")


async def test_the_form_builds_kvm_domains_only_on_hosts_that_offer_kvm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drivers.test.driver import TestConnection

    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        form = await open_new_domain_form(pilot, app)
        assert form.kvm_hosts == frozenset()  # TCG: type='qemu'
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, NewDomainScreen))

        caps = TestConnection.capabilities.fget  # type: ignore[attr-defined]
        monkeypatch.setattr(
            TestConnection, "capabilities", property(lambda conn: caps(conn) | {"kvm"})
        )
        form = await open_new_domain_form(pilot, app)
        assert form.kvm_hosts == frozenset(form.hosts)
        spec, _errors = form.evaluate()
        assert spec.virt_type == "kvm"


async def test_e_opens_the_xml_editor_on_the_cursor_domain(tmp_path: Path) -> None:
    from tui.screens.edit_xml import EditXmlScreen

    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "build")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditXmlScreen))
        editor = app.screen
        assert isinstance(editor, EditXmlScreen)
        editor.dismiss(False)
        await until(pilot, lambda: not isinstance(app.screen, EditXmlScreen))


async def test_define_domain_worker_brings_the_row_by_event(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        xml = (
            "<domain type='test'><name>fresh</name><memory unit='MiB'>128</memory>"
            "<vcpu>1</vcpu><os><type>hvm</type></os></domain>"
        )
        app.define_domain("default", xml, start=True)
        await until(pilot, lambda: any(r.name == "fresh" for r in app.store.rows.values()))
        await until(pilot, lambda: state_of(app, "fresh") == "running (booted)")
        app.define_domain("default", "<domain>broken")
        await settle(app)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1 and errors[0].title == "Invalid XML"
