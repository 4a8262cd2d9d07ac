"""The command palette (``:`` or ``ctrl+p``): the same actions as the keys, plus hosts and themes.

Entries depend on context: the domain actions offered are exactly those the main screen's
``check_action`` enables for the cursor's (or the marked) domains. Guest names are shown as
plain text, never parsed as markup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.markup import escape

from tui.actions import ACTIONS
from tui.text import inert

Command = tuple[str, str, Callable[[], object]]


class VirtdeckCommands(Provider):
    """Domain actions for the selection, host connections and theme switching."""

    def _commands(self) -> list[Command]:
        from tui.app import VirtdeckApp
        from tui.screens.main import MainScreen

        app = self.app
        if not isinstance(app, VirtdeckApp):
            return []
        commands: list[Command] = []
        screen = self.screen
        if isinstance(screen, MainScreen):
            targets = screen.targets()
            if len(targets) == 1:
                what = f"{inert(targets[0].name, one_line=True)} ({targets[0].host})"
            else:
                what = f"{len(targets)} marked domains"
            for spec in ACTIONS:
                if screen.check_action(spec.name, ()) is True:
                    commands.append(
                        (
                            f"{spec.title} {what}",
                            spec.tooltip,
                            getattr(screen, f"action_{spec.name}"),
                        )
                    )
            row = screen.cursor_row()
            if row is not None:
                name = inert(row.name, one_line=True)
                commands.append(
                    (f"Details of {name}", "Overview, XML and events", screen.action_details)
                )
                if screen.check_action("edit_xml", ()) is True:
                    commands.append(
                        (f"Edit XML of {name}", "Edit the definition", screen.action_edit_xml)
                    )
                if screen.check_action("console", ()) is True:
                    commands.append(
                        (
                            f"Console of {name}",
                            "The serial console; ctrl+] returns",
                            screen.action_console,
                        )
                    )
                if screen.check_action("logs", ()) is True:
                    commands.append(
                        (f"Console log of {name}", "Its output since boot", screen.action_logs)
                    )
            if screen.check_action("new_domain", ()) is True:
                commands.append(("New domain", "Define a new domain", screen.action_new_domain))
            commands.append(("Filter", "Filter the table", screen.action_filter))
        for name, host in app.store.hosts.items():
            shown = inert(name, one_line=True)
            if name in app.links:
                commands.append(
                    (f"Disconnect host {shown}", host.config.uri, partial(self._disconnect, name))
                )
                if host.lost:
                    commands.append(
                        (f"Retry host {shown} now", host.config.uri, partial(app.retry_host, name))
                    )
            else:
                commands.append(
                    (f"Connect host {shown}", host.config.uri, partial(app.connect_host, name))
                )
        for theme in sorted(app.available_themes):
            if theme != app.theme:
                commands.append(
                    (
                        f"Switch theme to {theme}",
                        "Change the colours",
                        partial(setattr, app, "theme", theme),
                    )
                )
        return commands

    async def _disconnect(self, name: str) -> None:
        from tui.app import VirtdeckApp

        if isinstance(self.app, VirtdeckApp):
            await self.app.disconnect_host(name)

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(Content(title), callback, text=title, help=help_text)

    async def search(self, query: str) -> AsyncIterator[Hit]:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                display = matcher.highlight(title) if escape(title) == title else Content(title)
                yield Hit(score, display, callback, text=title, help=help_text)
