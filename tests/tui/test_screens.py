"""Details, hosts, help, the palette and themes, driven through the app."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandPalette
from textual.widgets import Input, Static, TabbedContent

from drivers.test.driver import default_registry
from tests.tui.helpers import (
    SIZE,
    build,
    loaded,
    main_screen,
    select,
    settle,
    state_of,
    table,
    until,
)
from tui.config import HostMode, load_config
from tui.screens.details import DetailsScreen
from tui.screens.dialogs import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.hosts import HostFormScreen, HostsScreen


def text_of(widget: Static) -> str:
    return str(widget.render())


async def test_details_overview_xml_and_events(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "web1")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
        screen = app.screen
        assert isinstance(screen, DetailsScreen)
        await settle(app)
        await until(pilot, lambda: screen.overview is not None)
        overview = screen.query_one("#overview-body", Static)
        await pilot.pause()
        body = app.screen.query_one("#overview-body", Static).visual
        rendered = str(body)
        del rendered, overview
        assert screen.overview is not None
        assert screen.overview.vcpus == 2
        assert [d.target for d in screen.overview.disks] == ["vda"]
        assert screen.overview.nics[0].source == "default"
        await pilot.press("x")
        assert screen.query_one(TabbedContent).active == "xml"
        assert screen.xml is not None and "<name>web1</name>" in screen.xml
        # events arrive live
        await pilot.press("v")
        await default_registry().get("web1").suspend()
        await until(
            pilot, lambda: "Suspended Paused" in str(screen.query_one("#events-body").render())
        )
        assert "paused (user)" in str(screen.query_one("#details-title").render())
        await pilot.press("escape")
        assert app.screen is main_screen(app)


async def test_help_lists_every_binding_with_keymap(tmp_path: Path) -> None:
    config = '[keymap]\n"domain.start" = "ctrl+s"\n'
    app = build(tmp_path, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        rows = {b.id: key for _, key, b in help_screen._rows()}
        for ident in (
            "domain.start",
            "domain.shutdown",
            "domain.reboot",
            "domain.pause",
            "domain.reset",
            "domain.destroy",
            "domain.undefine",
            "domain.new",
            "domain.edit",
            "domain.details",
            "table.filter",
            "table.mark",
            "app.help",
            "app.quit",
            "app.hosts",
            "app.palette",
        ):
            assert ident in rows, ident
        assert rows["domain.start"] == "^s"
        await pilot.press("escape")
        # the remapped key starts, the old one does nothing
        await select(pilot, app, "build")
        await pilot.press("s")
        await settle(app)
        assert state_of(app, "build") == "shut off (unknown)"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: state_of(app, "build") == "running (booted)")


async def test_palette_runs_domain_actions(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await select(pilot, app, "web1")
        await pilot.press("colon")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"pause web1")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: state_of(app, "web1") == "paused (user)")
        # ctrl+p opens it too, with theme switching
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"switch theme to virtdeck-light")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: app.theme == "virtdeck-light")
        colour = app.theme_variables["state-paused"]
        assert colour.lower() == "#8f6400"


async def test_hosts_add_edit_remove_saves_config(tmp_path: Path) -> None:
    app = build(tmp_path)
    config_file = tmp_path / "config" / "config.toml"
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await pilot.press("H")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen))
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, HostFormScreen))
        form = app.screen
        await pilot.press(*"qemu+foo://x/system")
        await pilot.pause()
        assert "Unknown transport" in text_of(form.query_one("#uri-error", Static))
        assert form.query_one("#save").disabled
        uri_box = form.query_one("#uri", Input)
        lab = tmp_path / "demo" / "lab.xml"
        from tui.demo import demo_hosts

        demo_hosts(tmp_path / "demo")
        uri_box.value = f"test://{lab}"
        form.query_one("#name", Input).value = "lab"
        await pilot.pause()
        assert not form.query_one("#save").disabled
        await pilot.click("#save")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen))
        await until(pilot, lambda: table(app).row_count == 17, what="lab's rows")
        saved = load_config(config_file)
        assert [h.name for h in saved.hosts] == ["lab"]
        # edit: make it protected
        hosts_screen = app.screen
        assert isinstance(hosts_screen, HostsScreen)
        from textual.widgets import DataTable

        host_table = hosts_screen.query_one("#host-table", DataTable)
        host_table.move_cursor(row=host_table.get_row_index("lab"))
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, HostFormScreen))
        from textual.widgets import Select

        app.screen.query_one("#mode", Select).value = HostMode.PROTECTED
        await pilot.pause()
        await pilot.click("#save")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen))
        await until(pilot, lambda: load_config(config_file).hosts[0].mode is HostMode.PROTECTED)
        # disconnect and connect
        await pilot.press("x")
        await until(pilot, lambda: table(app).row_count == 5)
        await pilot.press("c")
        await until(pilot, lambda: table(app).row_count == 17)
        # remove (asks first)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: table(app).row_count == 5)
        assert load_config(config_file).hosts == ()
        await pilot.press("escape")
        assert app.screen is main_screen(app)


async def test_theme_option_and_broken_user_theme(tmp_path: Path) -> None:
    themes = tmp_path / "config" / "themes"
    themes.mkdir(parents=True)
    (themes / "broken.toml").write_text("primary = 12\n")
    (themes / "sea.toml").write_text('primary = "#2277aa"\ndark = true\n')
    app = build(tmp_path, theme="sea")
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        assert app.theme == "sea"
        assert app.theme_variables["state-running"]  # filled in from the builtin
        errors = [n for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1 and "broken.toml" in errors[0].message


async def test_unknown_theme_falls_back(tmp_path: Path) -> None:
    app = build(tmp_path, theme="nope")
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        assert app.theme == "virtdeck-dark"
        assert any("nope" in n.message for n in app._notifications)
