"""The XML editor on test:///default: validation, the diff, saving, running domains, $EDITOR."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from drivers.api import Connection
from drivers.domxml import parse_domain
from drivers.model import DomainState, EventType, LifecycleEvent
from tests.tui_forms.helpers import FIXED_XML, SIZE, FormHost, until
from tui.screens.dialogs import ConfirmScreen
from tui.screens.edit_xml import (
    NEXT_BOOT,
    EditorError,
    EditXmlScreen,
    XmlDiffScreen,
    diff_content,
    edit_externally,
    editor_command,
    xml_diff,
)


async def define_fixed(conns: dict[str, Connection]) -> None:
    await conns["local"].define_xml(FIXED_XML)


def host_app(name: str = "snap", active: bool = False) -> FormHost:
    def build(conns: dict[str, Connection]) -> EditXmlScreen:
        return EditXmlScreen(conns["local"], name, active, host="local")

    return FormHost(build, prepare=define_fixed)


def screen_of(app: FormHost) -> EditXmlScreen:
    assert isinstance(app.form, EditXmlScreen)
    return app.form


async def loaded(pilot: Pilot[None], app: FormHost) -> EditXmlScreen:
    await until(pilot, lambda: app.form is not None and app.screen is app.form)
    screen = screen_of(app)
    await until(pilot, lambda: screen.original is not None, what="the XML")
    await pilot.pause()
    return screen


def status(screen: EditXmlScreen) -> str:
    return str(screen.status.render())


def set_vcpus(screen: EditXmlScreen, count: int) -> None:
    editor = screen.editor
    editor.text = editor.text.replace("<vcpu>2</vcpu>", f"<vcpu>{count}</vcpu>")


async def saved_xml(app: FormHost, name: str = "snap") -> str:
    return await (await app.conn.lookup(name)).xml(inactive=True)


# --- in-app editing ----------------------------------------------------------------------------


async def test_the_definition_loads_into_the_editor() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        assert screen.editor.text == await saved_xml(app)
        assert not screen.editor.read_only
        assert screen.editor.has_focus
        assert status(screen) == ""
        assert not screen.query("#ex-note")  # shut off: no next-boot note


async def test_invalid_xml_is_refused_inline_and_nothing_is_defined() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        events = app.conn.events()
        before = await saved_xml(app)
        editor = screen.editor
        editor.text = editor.text.replace("<vcpu>2</vcpu>", "<vcpu>two</vcpu>")
        editor.move_cursor((5, 4))
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "<vcpu>" in status(screen) and screen.status.has_class("-error")
        assert editor.cursor_location == (5, 4)
        assert app.screen is screen  # no diff
        editor.text = editor.text.replace("</domain>", "")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "not well-formed" in status(screen)
        assert await saved_xml(app) == before
        assert events.pending() == []
        assert app.results == []


async def test_renaming_and_new_uuids_are_refused() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        original = screen.editor.text
        screen.editor.text = original.replace("<name>snap</name>", "<name>other</name>")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "renaming is not supported here" in status(screen)
        screen.editor.text = original.replace("4b1d7a3e", "00000000")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "keep <uuid>4b1d7a3e-5c2f-4e8a-9d6b-0a1b2c3d4e5f</uuid>" in status(screen)
        assert app.screen is screen


async def test_an_unchanged_text_needs_no_saving() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert status(screen) == "Nothing has changed."
        assert app.screen is screen


async def test_a_valid_change_shows_the_diff_and_saves_on_confirm() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        events = app.conn.events()
        set_vcpus(screen, 3)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, XmlDiffScreen))
        diff = app.screen
        assert isinstance(diff, XmlDiffScreen)
        assert "-  <vcpu>2</vcpu>" in diff.lines and "+  <vcpu>3</vcpu>" in diff.lines
        shown = str(diff.query_one("#xd-diff", Static).render())
        assert "+  <vcpu>3</vcpu>" in shown
        await pilot.click("#confirm")
        await until(pilot, lambda: app.results != [])
        assert app.results == [True]
        assert parse_domain(await saved_xml(app)).vcpus == 3
        defined = [e for e in events.pending() if isinstance(e, LifecycleEvent)]
        assert [e.type for e in defined] == [EventType.DEFINED]


async def test_back_from_the_diff_saves_nothing() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        set_vcpus(screen, 4)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, XmlDiffScreen))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        assert parse_domain(await saved_xml(app)).vcpus == 2
        assert "<vcpu>4</vcpu>" in screen.editor.text  # the edit is kept
        assert screen.editor.has_focus
        assert app.results == []


async def test_escape_in_the_text_closes_an_unchanged_editor_at_once() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        assert screen.editor.has_focus
        await pilot.press("escape")
        await until(pilot, lambda: app.results != [])
        assert app.results == [False]


async def test_escape_asks_before_dropping_changes() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        set_vcpus(screen, 4)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Discard your changes to snap's XML?" in str(
            app.screen.query_one("#dialog-question", Static).render()
        )
        await pilot.press("n")  # keep editing
        await until(pilot, lambda: app.screen is screen)
        assert "<vcpu>4</vcpu>" in screen.editor.text and screen.editor.has_focus
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: app.results != [])
        assert app.results == [False]
        assert parse_domain(await saved_xml(app)).vcpus == 2  # nothing was saved


async def test_a_running_domain_changes_at_its_next_boot() -> None:
    app = host_app("snap", active=True)

    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        dom = await app.conn.lookup("snap")
        await dom.start()
        assert str(screen.query_one("#ex-note", Static).render()).endswith(f"{NEXT_BOOT}.")
        set_vcpus(screen, 3)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, XmlDiffScreen))
        assert NEXT_BOOT in str(app.screen.query_one("#xd-note", Static).render())
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.results != [])
        assert app.results == [True]
        messages = [n.message for n in app._notifications]
        assert messages == [f"Saved the definition of snap; {NEXT_BOOT}."]
        # The running domain keeps 2 vCPUs; the next boot gets 3.
        assert parse_domain(await dom.xml()).vcpus == 2
        assert parse_domain(await dom.xml(inactive=True)).vcpus == 3
        assert (await dom.state())[0] is DomainState.RUNNING


async def test_a_failed_define_shows_the_drivers_message() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        set_vcpus(screen, 3)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, XmlDiffScreen))
        await app.conn.close()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen and screen.pending is None)
        await pilot.pause()
        assert "This connection is closed" in status(screen)
        assert screen.status.has_class("-error")
        assert app.results == []


async def test_a_missing_domain_says_so() -> None:
    app = host_app("ghost")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.form is not None and app.screen is app.form)
        screen = screen_of(app)
        await until(pilot, lambda: "ghost" in status(screen) and "not found" in status(screen))
        assert screen.check_action("save", ()) is None
        await pilot.press("escape")
        await until(pilot, lambda: app.results != [])
        assert app.results == [False]


async def test_a_definition_changed_meanwhile_is_not_overwritten() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        set_vcpus(screen, 3)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, XmlDiffScreen))
        # Someone else changes the memory in the meantime.
        await app.conn.define_xml(FIXED_XML.replace(">512<", ">768<"))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen and screen.pending is None)
        await pilot.pause()
        assert "was changed by someone else since it was loaded" in status(screen)
        defn = parse_domain(await saved_xml(app))
        assert (defn.vcpus, defn.memory_kib) == (2, 768 * 1024)
        assert app.results == []


async def test_characters_a_terminal_would_obey_are_shown_as_references() -> None:
    async def define_odd(conns: dict[str, Connection]) -> None:
        await conns["local"].define_xml(
            FIXED_XML.replace("<vcpu>", "<title>a\u009b31mb\u202ec</title><vcpu>")
        )

    def build(conns: dict[str, Connection]) -> EditXmlScreen:
        return EditXmlScreen(conns["local"], "snap", False)

    app = FormHost(build, prepare=define_odd)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        assert "<title>a&#x9b;31mb&#x202e;c</title>" in screen.editor.text
        assert "\u009b" not in screen.editor.text and "\u202e" not in screen.editor.text
        set_vcpus(screen, 3)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, XmlDiffScreen))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.results != [])
        defn = parse_domain(await saved_xml(app))
        assert defn.title == "a\u009b31mb\u202ec"  # the same document, saved
        assert defn.vcpus == 3


# --- $EDITOR ------------------------------------------------------------------------------------


@pytest.fixture
def editor_script(tmp_path: Path) -> Iterator[Path]:
    """An 'editor' that records the file's mode and turns 2 vCPUs into 5."""
    script = tmp_path / "fake-editor"
    script.write_text(
        "#!/bin/sh\n"
        f'stat -c %a "$1" > {tmp_path}/mode\n'
        f'echo "$1" > {tmp_path}/path\n'
        "sed -i 's|<vcpu>2</vcpu>|<vcpu>5</vcpu>|' \"$1\"\n"
    )
    script.chmod(0o755)
    yield script


def test_the_editor_edits_a_private_file_that_is_removed(editor_script: Path) -> None:
    text = "<vcpu>2</vcpu>\n"
    assert edit_externally(text, {"EDITOR": str(editor_script)}) == "<vcpu>5</vcpu>\n"
    mode = (editor_script.parent / "mode").read_text().strip()
    assert mode == "600"
    path = Path((editor_script.parent / "path").read_text().strip())
    assert not path.exists()


def test_visual_wins_and_commands_are_split_like_a_shell() -> None:
    assert editor_command({"VISUAL": "code --wait", "EDITOR": "nano"}) == ["code", "--wait"]
    assert editor_command({"EDITOR": "'my editor' -n"}) == ["my editor", "-n"]
    assert editor_command({}) == ["vi"]
    with pytest.raises(EditorError, match="cannot be read"):
        editor_command({"EDITOR": "vim 'unclosed"})
    with pytest.raises(EditorError, match="blank"):
        editor_command({"EDITOR": "   "})


def test_editor_failures_are_sentences_and_leave_no_files() -> None:
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("virtdeck-*.xml"))
    with pytest.raises(EditorError, match="'/nonexistent/ed' was not found"):
        edit_externally("x", {"EDITOR": "/nonexistent/ed"})
    with pytest.raises(EditorError, match="exited with status 1; the XML was left"):
        edit_externally("x", {"EDITOR": "false"})
    assert set(temp.glob("virtdeck-*.xml")) == before


def headless_suspend(app: FormHost, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Let App.suspend() work under run_test, recording the driver calls."""
    driver = app._driver
    assert driver is not None
    calls: list[str] = []
    monkeypatch.setattr(type(driver), "can_suspend", property(lambda self: True))
    monkeypatch.setattr(driver, "suspend_application_mode", lambda: calls.append("suspend"))
    monkeypatch.setattr(driver, "resume_application_mode", lambda: calls.append("resume"))
    return calls


async def test_ctrl_e_edits_in_editor_under_suspend(
    editor_script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(editor_script))
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        calls = headless_suspend(app, monkeypatch)
        await pilot.press("ctrl+e")
        await until(pilot, lambda: "<vcpu>5</vcpu>" in screen.editor.text)
        assert calls == ["suspend", "resume"]
        assert "press ctrl+s" in status(screen)
        # The change is an ordinary edit: it can be undone, and saving goes through the diff.
        screen.editor.undo()
        assert "<vcpu>2</vcpu>" in screen.editor.text
        screen.editor.redo()
        assert "<vcpu>5</vcpu>" in screen.editor.text
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, XmlDiffScreen))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.results != [])
        assert parse_domain(await saved_xml(app)).vcpus == 5


async def test_a_missing_editor_is_an_inline_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", "/nonexistent/editor --flag")
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        calls = headless_suspend(app, monkeypatch)
        before = screen.editor.text
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert calls == ["suspend", "resume"]  # the terminal came back all the same
        assert "'/nonexistent/editor' was not found" in status(screen)
        assert screen.status.has_class("-error")
        assert screen.editor.text == before


async def test_no_editor_where_the_terminal_cannot_be_suspended() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert "cannot be handed over to an editor" in status(screen)


# --- the diff --------------------------------------------------------------------------------


def test_the_diff_is_inert_and_coloured_by_theme_variables() -> None:
    lines = xml_diff("x\x1b]0;pwn\x07", "<a>1</a>\n<b/>\n", "<a>2</a>\n<b/>\n")
    content = diff_content(lines)
    assert "\x1b" not in content.plain and "\\x1b" in content.plain
    styles = {content.plain[s.start : s.end]: s.style for s in content.spans}
    assert styles["-<a>1</a>"] == "$text-error"
    assert styles["+<a>2</a>"] == "$text-success"
    assert all(isinstance(s, str) and s.startswith("$") for s in styles.values())
