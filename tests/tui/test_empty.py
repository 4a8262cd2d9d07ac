"""A newcomer's first screen: no domains, so the table area says what to do, and the footer
keeps n (New) whenever a host can define."""

from __future__ import annotations

from pathlib import Path

from drivers.test.driver import node_xml
from tests.tui.helpers import SIZE, build, main_screen, until
from tui.screens.new_domain import NewDomainScreen
from tui.widgets.footer import KeyFooter


def empty_host(tmp_path: Path) -> str:
    node = tmp_path / "empty.xml"
    node.write_text(node_xml(()))
    return f"test://{node}"


async def test_an_empty_host_shows_what_to_do_and_n_stays_in_the_footer(tmp_path: Path) -> None:
    app = build(tmp_path, uris=(empty_host(tmp_path),))
    async with app.run_test(size=SIZE) as pilot:
        screen = main_screen(app)
        await until(pilot, lambda: screen.empty_text() is not None, what="the empty state")
        await pilot.pause(0.3)
        box = screen.query_one("#empty")
        assert box.display and not screen.table.display
        text = str(screen.empty_text())
        assert "No domains on" in text
        assert "n  " in text and "Create a domain" in text
        assert "H  " in text and "Add a host" in text
        assert "virtdeck --demo" in text
        footer = screen.query_one(KeyFooter)
        shown = [item.description for item in footer.items]
        assert shown == ["New", "Filter", "Help", "Hosts", "Quit"]
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewDomainScreen))
        form = app.screen
        assert isinstance(form, NewDomainScreen)
        await until(pilot, lambda: form.names is not None)
        await pilot.press(*"first")
        await until(pilot, lambda: not form.query_one("#define").disabled)
        await pilot.press("ctrl+s")
        # the new row replaces the empty state
        await until(pilot, lambda: screen.table.row_count == 1 and screen.table.display)
        assert not box.display and screen.table.has_focus


async def test_a_filter_that_hides_everything_is_not_the_empty_state(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = main_screen(app)
        await until(pilot, lambda: screen.table.row_count == 5)
        await pilot.press("slash", *"nothing-matches-this")
        await until(pilot, lambda: screen.table.row_count == 0)
        assert screen.empty_text() is None and screen.table.display


async def test_the_demo_does_not_suggest_itself(tmp_path: Path) -> None:
    app = build(tmp_path, uris=(empty_host(tmp_path),))
    app.demo = True
    async with app.run_test(size=SIZE) as pilot:
        screen = main_screen(app)
        await until(pilot, lambda: screen.empty_text() is not None)
        assert "--demo" not in str(screen.empty_text())
