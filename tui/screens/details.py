"""A domain's details: overview (from its XML), the XML itself, and its event history."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static, TabbedContent, TabPane

from tui.messages import DomainXmlLoaded
from tui.overview import Overview
from tui.state import Changes, DomainRow, memory_text, uptime_text
from tui.text import inert
from tui.widgets.domain_table import Look

if TYPE_CHECKING:
    from tui.app import VirtdeckApp


def _t(value: str) -> Text:
    return Text(inert(value, one_line=True))


class DetailsScreen(Screen[None]):
    """Overview, XML and events of one domain; the state follows the events live."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back", id="details.back", tooltip="Back to the domain table"),
        Binding(
            "o", "tab('overview')", "Overview", id="details.overview", tooltip="Show the overview"
        ),
        Binding("x", "tab('xml')", "XML", id="details.xml", tooltip="Show the domain XML"),
        Binding(
            "v",
            "tab('events')",
            "Events",
            id="details.events",
            tooltip="Show the domain's event history",
        ),
    ]

    DEFAULT_CSS = """
    DetailsScreen {
        & #details-tabs {
            height: 1fr;
        }
        & #overview-body, & #xml-body, & #events-body {
            padding: 0 1;
        }
    }
    """
    BINDING_GROUP_TITLE = "Details"

    def __init__(self, host: str, uuid: str) -> None:
        super().__init__(id="details")
        self.host = host
        self.uuid = uuid
        self.overview: Overview | None = None
        self.xml: str | None = None

    @property
    def vapp(self) -> VirtdeckApp:
        from tui.app import VirtdeckApp

        assert isinstance(self.app, VirtdeckApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Label(id="details-title", classes="screen-title")
        with TabbedContent(initial="overview", id="details-tabs"):
            with TabPane("Overview", id="overview"), VerticalScroll():
                yield Static(Text("Reading the definition…"), id="overview-body")
            with TabPane("XML", id="xml"), VerticalScroll():
                yield Static(Text("Reading the definition…"), id="xml-body")
            with TabPane("Events", id="events"), VerticalScroll():
                yield Static(id="events-body")
        yield Footer()

    def on_mount(self) -> None:
        self.vapp.domains_changed.subscribe(self, self._on_changes, immediate=True)
        self.vapp.theme_changed_signal.subscribe(self, lambda _: self._show_all(), immediate=True)
        self._show_all()
        self.vapp.load_xml(self.host, self.uuid, self)

    def _row(self) -> DomainRow | None:
        return self.vapp.store.get((self.host, self.uuid))

    def _on_changes(self, changes: Changes) -> None:
        key = (self.host, self.uuid)
        if key in changes.updated or key in changes.removed or self.host in changes.relinked:
            self._show_title()
            self._show_overview()
            self._show_events()

    def on_domain_xml_loaded(self, message: DomainXmlLoaded) -> None:
        self.xml = message.xml
        self.overview = message.overview
        self._show_all()

    def _show_all(self) -> None:
        self._show_title()
        self._show_overview()
        self._show_xml()
        self._show_events()

    def _look(self) -> Look:
        return Look(variables=dict(self.app.theme_variables), now=self.vapp.clock.wall)

    def _state_text(self, row: DomainRow | None) -> Text:
        store = self.vapp.store
        if row is None:
            return Text("gone (undefined)", style=self._look().style("state-lost"))
        if store.is_lost(row.key):
            return Text("lost", style=self._look().style("state-lost"))
        return Text(row.words, style=self._look().state_style(row.state))

    def _show_title(self) -> None:
        row = self._row()
        name = row.name if row is not None else self.uuid
        title = Text()
        title.append(inert(name, one_line=True), "bold")
        title.append(f" on {inert(self.host, one_line=True)} — ")
        title.append_text(self._state_text(row))
        self.query_one("#details-title", Label).update(title)

    def _show_overview(self) -> None:
        row = self._row()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        grid.add_row("State", self._state_text(row))
        grid.add_row("UUID", _t(self.uuid))
        uptime = "" if row is None else uptime_text(row, self.vapp.clock.wall())
        if uptime:
            grid.add_row("Uptime", uptime)
        ov = self.overview
        parts: list[RenderableType] = [grid]
        if ov is None:
            grid.add_row("", Text("Reading the definition…", style="italic"))
        elif ov.error:
            grid.add_row("Definition", Text(inert(ov.error)))
        else:
            if ov.title:
                grid.add_row("Title", _t(ov.title))
            if ov.description:
                grid.add_row("Description", Text(inert(ov.description)))
            grid.add_row("vCPUs", str(ov.vcpus))
            grid.add_row("Memory", memory_text(ov.memory_kib))
            grid.add_row("Machine", _t(f"{ov.arch} {ov.machine}".strip()))
            grid.add_row(
                "On poweroff/reboot/crash",
                _t(f"{ov.on_poweroff} / {ov.on_reboot} / {ov.on_crash}"),
            )
            grid.add_row("VNC display", _t(ov.vnc or "none"))
            disks = Table("Disk", "Bus", "Device", "Format", "Source", box=None, pad_edge=False)
            for disk in ov.disks:
                disks.add_row(
                    _t(disk.target), _t(disk.bus), _t(disk.device), _t(disk.format), _t(disk.source)
                )
            nics = Table("NIC", "Source", "Model", "MAC", box=None, pad_edge=False)
            for nic in ov.nics:
                nics.add_row(_t(nic.kind), _t(nic.source), _t(nic.model), _t(nic.mac))
            parts += [Text(""), disks if ov.disks else Text("No disks."), Text("")]
            parts.append(nics if ov.nics else Text("No network interfaces."))
        self.query_one("#overview-body", Static).update(Group(*parts))

    def _show_xml(self) -> None:
        body = self.query_one("#xml-body", Static)
        if self.xml is None:
            return
        dark = self.app.current_theme.dark
        body.update(
            Syntax(
                inert(self.xml),
                "xml",
                theme="ansi_dark" if dark else "ansi_light",
                background_color="default",
                word_wrap=False,
            )
        )

    def _show_events(self) -> None:
        row = self._row()
        text = Text()
        if row is None or not row.log:
            text.append("No events since virtdeck connected to this host.", style="italic")
        else:
            for item in row.history:
                stamp = time.strftime("%H:%M:%S", time.localtime(item.wall))
                text.append(f"{stamp}  ", style="dim")
                text.append(inert(item.text, one_line=True) + "\n")
        self.query_one("#events-body", Static).update(text)

    def action_back(self) -> None:
        self.dismiss()

    def action_tab(self, name: str) -> None:
        self.query_one(TabbedContent).active = name
