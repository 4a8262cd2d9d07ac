"""A domain's details: overview (from its XML), the XML itself, its event history, and its
statistics (the last minute and the last five minutes, when its host sends them).

Beside the overview of a running domain with a display, a small live picture of its screen,
taken again every few seconds while the screen is open (``v`` on the table shows it big)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static, TabbedContent, TabPane

from drivers.errors import VirtError
from tui import graphics
from tui.messages import DomainXmlLoaded
from tui.overview import Overview
from tui.state import Changes, DomainRow, memory_text, uptime_text
from tui.stats import (
    CPU_FLOOR,
    HISTORY_SECONDS,
    RATE_FLOOR,
    DomainFigures,
    Series,
    nice_bytes,
    nice_top,
    percent_text,
    rate_text,
    size_text,
)
from tui.text import inert
from tui.widgets.chart import Chart
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
        Binding(
            "t",
            "tab('stats')",
            "Stats",
            id="details.stats",
            tooltip="Show CPU, memory, disk and network over the last minute and five minutes",
        ),
    ]

    DEFAULT_CSS = """
    DetailsScreen {
        & #details-tabs {
            height: 1fr;
        }
        & #overview-row {
            height: 1fr;
        }
        & #thumb {
            width: 44;
            height: auto;
            padding: 0 1;
            display: none;
            &.-shown {
                display: block;
            }
            & > #thumb-image {
                width: 40;
                height: auto;
            }
            & > #thumb-caption {
                color: $text-muted;
            }
        }
        & #overview-body, & #xml-body, & #events-body, & #stats-body {
            padding: 0 1;
        }
        & .stats-head {
            height: 1;
            margin-top: 1;
            & > Label {
                width: 1fr;
                margin-right: 2;
            }
        }
        & .stats-charts {
            height: auto;
            & > Chart {
                margin-right: 2;
            }
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
        self._ticks = 0

    @property
    def vapp(self) -> VirtdeckApp:
        from tui.app import VirtdeckApp

        assert isinstance(self.app, VirtdeckApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Label(id="details-title", classes="screen-title")
        with TabbedContent(initial="overview", id="details-tabs"):
            with TabPane("Overview", id="overview"), Horizontal(id="overview-row"):
                with VerticalScroll():
                    yield Static(Text("Reading the definition…"), id="overview-body")
                with Vertical(id="thumb"):
                    yield Label(Text("Screen", style="bold"))
                    yield graphics.image_widget(id="thumb-image")
                    yield Static(id="thumb-caption")
            with TabPane("XML", id="xml"), VerticalScroll():
                yield Static(Text("Reading the definition…"), id="xml-body")
            with TabPane("Events", id="events"), VerticalScroll():
                yield Static(id="events-body")
            with TabPane("Stats", id="stats"), VerticalScroll(id="stats-body"):
                yield Static(id="stats-summary")
                for key, title, colour in _FIGURES:
                    with Horizontal(classes="stats-head"):
                        for span, words in _SPANS:
                            label = Text(title, style="bold") if span == 60 else Text()
                            label.append((" — " if span == 60 else "") + words, style="dim")
                            yield Label(label)
                    with Horizontal(classes="stats-charts"):
                        for span, _ in _SPANS:
                            yield Chart(colour, _LABELS[key], id=f"chart-{key}-{span}")
        yield Footer()

    def on_mount(self) -> None:
        self.vapp.ticked.subscribe(self, self._on_tick)
        self.vapp.domains_changed.subscribe(self, self._on_changes, immediate=True)
        self._show_stats()
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
            if self.query_one("#thumb").has_class("-shown") != self._thumb_wanted():
                self._thumbnail()
        if key in changes.stats or self.host in changes.relinked:
            self._show_stats()

    def on_domain_xml_loaded(self, message: DomainXmlLoaded) -> None:
        self.xml = message.xml
        self.overview = message.overview
        self._show_all()
        self._thumbnail()

    # --- the screen's thumbnail --------------------------------------------------------------

    def _thumb_wanted(self) -> bool:
        row = self._row()
        ov = self.overview
        if row is None or ov is None or not ov.display or not row.state.is_active:
            return False
        if self.vapp.store.is_lost(row.key):
            return False
        try:
            return "screen" in self.vapp.connection(self.host).capabilities
        except VirtError:
            return False

    def _on_tick(self, _now: float) -> None:
        self._ticks += 1
        if self._ticks % THUMB_SECONDS == 0 and self.app.screen is self:
            self._thumbnail()

    def _thumbnail(self) -> None:
        wanted = self._thumb_wanted()
        self.query_one("#thumb").set_class(wanted, "-shown")
        if wanted:
            self._take_thumbnail()

    @work(group="thumbnail", exclusive=True, exit_on_error=False, description="screen thumbnail")
    async def _take_thumbnail(self) -> None:
        caption = self.query_one("#thumb-caption", Static)
        try:
            dom = await self.vapp.connection(self.host).lookup_by_uuid(self.uuid)
            shot = await dom.screenshot()
        except VirtError as err:
            # Not the app's error: a picture that could not be taken this time (the guest
            # stopped meanwhile); the caption says so and the next tick tries again.
            caption.update(Text(inert(err.message)))
            return
        from tui.screens.screen import decode

        graphics.show(self.query_one("#thumb-image"), decode(shot.data))
        caption.update(
            Text(f"{shot.width}x{shot.height}, every {THUMB_SECONDS} s; v on the table opens it")
        )

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
        if row is not None and row.ip and row.state.is_active:
            grid.add_row("IP address", _t(row.ip))
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

    def _show_stats(self) -> None:
        row = self._row()
        figures = row.figures if row is not None else None
        summary = self.query_one("#stats-summary", Static)
        host = self.vapp.store.hosts.get(self.host)
        if figures is None:
            if host is not None and host.figures is None:
                words = f"{inert(self.host, one_line=True)} sends no statistics."
            else:
                words = "No statistics yet: the domain has not been sampled while running."
            summary.update(Text(words, style="italic"))
        else:
            summary.update(_summary(figures, row.memory_kib if row is not None else None))
        for key, series, top in _charts(figures, row.memory_kib if row is not None else None):
            for span in (60, HISTORY_SECONDS):
                values = series.tail(span) if series is not None else []
                scale = top(values)
                self.query_one(f"#chart-{key}-{span}", Chart).show(values, scale)

    def action_back(self) -> None:
        self.dismiss()

    def action_tab(self, name: str) -> None:
        self.query_one(TabbedContent).active = name


#: How often the thumbnail of the screen is taken again, in seconds (app ticks).
THUMB_SECONDS = 3

_SPANS = ((60, "last minute"), (HISTORY_SECONDS, "last 5 minutes"))
_FIGURES = (
    ("cpu", "CPU (percent of one host core)", "spark-cpu"),
    ("rss", "Memory in use (RSS of the QEMU process)", "spark-memory"),
    ("disk", "Disk (read and written per second)", "spark-disk"),
    ("net", "Network (received and sent per second)", "spark-net"),
)
_LABELS = {
    "cpu": lambda v: f"{v:.0f}%",
    "rss": size_text,
    "disk": size_text,
    "net": size_text,
}


def _rate_top(values: list[float | None]) -> float:
    return nice_bytes(max([RATE_FLOOR, *(v for v in values if v is not None)]))


def _charts(
    figures: DomainFigures | None, memory_kib: int | None
) -> list[tuple[str, Series | None, Callable[[list[float | None]], float]]]:
    """Each chart's series and how its scale's top is found."""

    def cpu_top(values: list[float | None]) -> float:
        return nice_top(max([CPU_FLOOR, *(v for v in values if v is not None)]))

    def rss_top(values: list[float | None]) -> float:
        if memory_kib:
            return float(memory_kib * 1024)
        return nice_bytes(max([1.0, *(v for v in values if v is not None)]))

    return [
        ("cpu", figures.cpu if figures else None, cpu_top),
        ("rss", figures.rss if figures else None, rss_top),
        ("disk", figures.disk if figures else None, _rate_top),
        ("net", figures.net if figures else None, _rate_top),
    ]


def _summary(figures: DomainFigures, memory_kib: int | None) -> Text:
    stats = figures.latest
    text = Text()
    if stats is None:
        text.append("Not running now; the charts show its last run.", style="italic")
        return text
    text.append("CPU ", style="bold")
    text.append(percent_text(stats.cpu_percent))
    if stats.vcpu_percent:
        per = ", ".join(percent_text(v) for v in stats.vcpu_percent)
        text.append(f" (vCPUs: {per})")
    text.append("\nMemory ", style="bold")
    text.append(size_text(stats.rss_bytes))
    if memory_kib:
        text.append(f" of {memory_text(memory_kib)}")
    if stats.balloon_actual_kib is not None:
        text.append(f", balloon {size_text(stats.balloon_actual_kib * 1024)}")
        if stats.balloon_available_kib is not None:
            text.append(f" ({size_text(stats.balloon_available_kib * 1024)} free in the guest)")
    text.append("\nDisk ", style="bold")
    text.append(f"read {rate_text(stats.block_rd_rate)}, written {rate_text(stats.block_wr_rate)}")
    text.append("   Network ", style="bold")
    text.append(f"received {rate_text(stats.net_rx_rate)}, sent {rate_text(stats.net_tx_rate)}")
    return text
