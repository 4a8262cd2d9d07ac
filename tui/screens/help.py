"""``?``: every key of the screen it was opened from, with what it does and its binding id."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Label, Static

from tui.screens.dialogs import Dialog

FILTER_HELP = (
    "Filter terms (all must match): web — name contains · re:^web or /^web/ — regex · "
    "host:lab · state:running|paused|shutoff|crashed|lost|active · !term — not. "
    'Remap keys in config.toml: [keymap] "domain.start" = "ctrl+s" (ids on the right).'
)


class HelpScreen(Dialog[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,q,question_mark", "close", "Close", id="help.close", tooltip="Close the help"
        ),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        & #dialog.-help {
            width: 110;
            height: 90%;
        }
        & #help-scroll {
            scrollbar-gutter: stable;
            height: 1fr;
        }
    }
    """

    def __init__(self, under: Screen[object]) -> None:
        super().__init__()
        self.under = under

    def _rows(self) -> list[tuple[str, str, Binding]]:
        app = self.app
        keymap: dict[str, str] = dict(getattr(app, "keymap_applied", {}))
        seen: set[str] = set()
        rows: list[tuple[str, str, Binding]] = []
        owners: list[tuple[str, object]] = [
            (getattr(self.under, "BINDING_GROUP_TITLE", None) or "Screen", self.under)
        ]
        owners += [("Table", w) for w in self.under.query("DomainTable")]
        owners.append(("App", app))
        for group, owner in owners:
            for item in getattr(type(owner), "BINDINGS", []):
                if not isinstance(item, Binding) or not item.description:
                    continue
                ident = item.id or f"{group}:{item.action}"
                if ident in seen:
                    continue
                seen.add(ident)
                key = keymap.get(item.id or "", item.key)
                shown = ", ".join(
                    app.get_key_display(item.with_key(k.strip())) for k in key.split(",")
                )
                rows.append((group, shown, item))
        return rows

    def compose(self) -> ComposeResult:
        table = Table(expand=True, box=None, pad_edge=False, header_style="bold")
        table.add_column(Text("Key"), no_wrap=True)
        table.add_column(Text("Action"), no_wrap=True)
        table.add_column(Text("What it does"), ratio=1, overflow="fold")
        table.add_column(Text("Id in [keymap]"), no_wrap=True, style="dim")
        last = ""
        for group, key, binding in self._rows():
            if group != last:
                if last:
                    table.add_row("", "", "", "")
                table.add_row(Text(group, style="bold underline"), "", "", "")
                last = group
            table.add_row(
                Text(key, style="bold"),
                Text(binding.description),
                Text(binding.tooltip or ""),
                Text(binding.id or ""),
            )
        with Vertical(id="dialog", classes="-help"):
            yield Label("Keys", id="dialog-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(table, id="help-table")
            yield Static(Text(FILTER_HELP), id="dialog-detail")

    def action_close(self) -> None:
        self.dismiss()
