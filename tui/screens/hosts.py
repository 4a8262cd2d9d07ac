"""``H``: the hosts — add, edit, remove, connect, disconnect; changes are saved to the config."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Checkbox, DataTable, Footer, Input, Label, Select, Static

from drivers.reconnect import LinkState
from tui.config import HostConfig, HostMode, host_name_for, validate_name
from tui.hosts import host_kind
from tui.screens.dialogs import Dialog
from tui.state import Changes
from tui.text import inert
from tui.widgets.host_bar import link_words

if TYPE_CHECKING:
    from tui.app import VirtdeckApp

_MODES = [
    ("normal", HostMode.NORMAL),
    ("protected: type the host name for dangerous actions", HostMode.PROTECTED),
    ("read-only: no action changes anything", HostMode.READ_ONLY),
]


def _badge(uri: str, variables: dict[str, str]) -> Text:
    """The host's kind; libvirt hosts stand out (they migrate only among themselves)."""
    kind = host_kind(uri)
    colour = variables.get("accent") if kind == "libvirt" else variables.get("state-shutoff")
    return Text(kind, Style(color=colour))


class HostsScreen(Screen[None]):
    """Every configured host with its link and counts."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add", id="hosts.add", tooltip="Add a host (saved to the config)"),
        Binding("e", "edit", "Edit", id="hosts.edit", tooltip="Edit the host under the cursor"),
        Binding(
            "d",
            "remove",
            "Remove",
            id="hosts.remove",
            tooltip="Remove the host from the config (asks first)",
        ),
        Binding("c", "connect", "Connect", id="hosts.connect", tooltip="Connect to the host"),
        Binding(
            "x",
            "disconnect",
            "Disconnect",
            id="hosts.disconnect",
            tooltip="Close the host's connection (its rows leave the table)",
        ),
        Binding(
            "m",
            "drain",
            "Drain…",
            id="hosts.drain",
            tooltip="Move every running domain of the host to the other hosts (a plan first)",
        ),
        Binding(
            "r",
            "retry",
            "Retry now",
            id="hosts.retry",
            show=False,
            tooltip="Retry a lost host now instead of waiting",
        ),
        Binding("escape,q", "back", "Back", id="hosts.back", tooltip="Back to the domain table"),
    ]

    DEFAULT_CSS = """
    HostsScreen {
        & #host-table {
            height: 1fr;
        }
        & #hosts-note {
            height: 1;
            padding: 0 1;
            color: $text-muted;
            background: $surface;
        }
    }
    """
    BINDING_GROUP_TITLE = "Hosts"

    def __init__(self) -> None:
        super().__init__(id="hosts-screen")

    @property
    def vapp(self) -> VirtdeckApp:
        from tui.app import VirtdeckApp

        assert isinstance(self.app, VirtdeckApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Label("Hosts", id="hosts-title", classes="screen-title")
        yield DataTable(id="host-table", cursor_type="row")
        yield Static(id="hosts-note")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#host-table", DataTable)
        for key, label in (
            ("name", "Name"),
            ("kind", "Kind"),
            ("uri", "URI"),
            ("mode", "Mode"),
            ("link", "Link"),
            ("domains", "Running/Total"),
            ("auto", "Autoconnect"),
        ):
            table.add_column(label, key=key)
        self.vapp.domains_changed.subscribe(self, self._changed, immediate=True)
        self.vapp.ticked.subscribe(self, self._on_tick, immediate=True)
        note = (
            "Demo hosts are not saved."
            if self.vapp.demo
            else f"Changes are saved to {self.vapp.config.path or 'the config file'}."
        )
        self.query_one("#hosts-note", Static).update(Text(note))
        self._fill()
        table.focus()

    def _changed(self, changes: Changes) -> None:
        # Every host operation (add, edit, remove, connect, disconnect) publishes its
        # changes: the table follows from here alone.
        if changes.hosts:
            self._fill()

    def _on_tick(self, _now: float) -> None:
        # Only a lost host's "retrying in N s" moves with the clock.
        if any(h.link is LinkState.LOST for h in self.vapp.store.hosts.values()):
            self._fill()

    def _fill(self) -> None:
        table = self.query_one("#host-table", DataTable)
        app = self.vapp
        keep = self.selected()
        table.clear()
        now = app.clock.monotonic()
        variables = app.theme_variables
        counts = app.store.all_counts()
        for name, host in app.store.hosts.items():
            running, total = counts.get(name, (0, 0))
            link_style = {
                LinkState.CONNECTED: variables.get("state-running"),
                LinkState.LOST: variables.get("state-crashed"),
            }.get(host.link, variables.get("state-shutoff"))
            table.add_row(
                Text("● ", Style(color=app.host_colour(name))) + Text(inert(name, one_line=True)),
                _badge(host.config.uri, variables),
                Text(inert(host.config.uri, one_line=True)),
                Text(host.config.mode.value),
                Text(link_words(host, now), Style(color=link_style)),
                Text(f"{running}/{total}" if host.link is LinkState.CONNECTED else ""),
                Text("yes" if host.config.autoconnect else "no"),
                key=name,
            )
        if keep is not None and keep in app.store.hosts:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        self.refresh_bindings()

    def selected(self) -> str | None:
        table = self.query_one("#host-table", DataTable)
        if not table.row_count:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:
            return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        name = self.selected() if self.is_mounted else None
        host = self.vapp.store.hosts.get(name) if name else None
        if action in ("edit", "remove"):
            return host is not None
        if action == "connect":
            return host is not None and name not in self.vapp.links
        if action == "disconnect":
            return host is not None and name in self.vapp.links
        if action == "retry":
            return host is not None and host.link is LinkState.LOST
        if action == "drain":
            return name is not None and self.vapp.can_drain(name)
        return True

    @on(DataTable.RowHighlighted)
    def _moved(self) -> None:
        self.refresh_bindings()

    def action_back(self) -> None:
        self.dismiss()

    def action_add(self) -> None:
        async def added(host: HostConfig | None) -> None:
            if host is not None:
                await self.vapp.add_host(host)

        self.app.push_screen(HostFormScreen(None, self._taken()), added)

    def action_edit(self) -> None:
        name = self.selected()
        if name is None:
            return
        current = self.vapp.store.hosts[name].config

        async def edited(host: HostConfig | None) -> None:
            if host is not None and host != current:
                await self.vapp.edit_host(name, host)

        self.app.push_screen(HostFormScreen(current, self._taken(except_name=name)), edited)

    def action_remove(self) -> None:
        name = self.selected()
        if name is None:
            return
        from tui.screens.dialogs import ConfirmScreen

        async def answered(ok: bool | None) -> None:
            if ok:
                await self.vapp.remove_host(name)

        self.app.push_screen(
            ConfirmScreen(
                "Remove host",
                f"Remove {name} from virtdeck?",
                "Its guests keep running; only virtdeck forgets the host.",
            ),
            answered,
        )

    def action_connect(self) -> None:
        name = self.selected()
        if name is not None:
            self.vapp.connect_host(name)

    async def action_disconnect(self) -> None:
        name = self.selected()
        if name is not None:
            await self.vapp.disconnect_host(name)

    def action_drain(self) -> None:
        name = self.selected()
        if name is not None and self.vapp.can_drain(name):
            from tui.screens.drain import DrainScreen

            self.app.push_screen(DrainScreen(name))

    def action_retry(self) -> None:
        name = self.selected()
        if name is not None:
            self.vapp.retry_host(name)

    def _taken(self, except_name: str | None = None) -> tuple[set[str], set[str]]:
        hosts = [h for n, h in self.vapp.store.hosts.items() if n != except_name]
        return {h.name for h in hosts}, {h.config.uri for h in hosts}


class HostFormScreen(Dialog[HostConfig | None]):
    """Add or edit a host; the URI is checked as it is typed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="hostform.cancel", tooltip="Close without saving"),
    ]

    DEFAULT_CSS = """
    HostFormScreen {
        & #dialog.-form {
            width: 76;
        }
        & #form-body {
            height: auto;
            max-height: 20;
        }
        & .form-row {
            height: auto;
            margin-top: 1;
        }
        & .form-label {
            width: 8;
            color: $text-muted;
        }
        & .form-row > Input, & .form-row > Select {
            width: 1fr;
        }
        & .error {
            color: $text-error;
            height: auto;
            margin-left: 8;
        }
    }
    """

    def __init__(self, host: HostConfig | None, taken: tuple[set[str], set[str]]) -> None:
        super().__init__()
        self.host = host
        self.taken_names, self.taken_uris = taken

    def compose(self) -> ComposeResult:
        host = self.host
        with Vertical(id="dialog", classes="-form"):
            yield Label("Edit host" if host else "Add host", id="dialog-title")
            with VerticalScroll(id="form-body"):
                for field_id, label, value, placeholder in (
                    (
                        "uri",
                        "URI",
                        host.uri if host else "",
                        "qemu+ssh://user@host/system or libvirt:qemu:///system",
                    ),
                    ("name", "Name", host.name if host else "", "(from the URI)"),
                    (
                        "color",
                        "Colour",
                        host.color if host else "",
                        "e.g. #e5a84b or red; a theme colour if empty",
                    ),
                ):
                    with Horizontal(classes="form-row"):
                        yield Label(label, classes="form-label")
                        yield Input(value, id=field_id, compact=True, placeholder=placeholder)
                    yield Static(id=f"{field_id}-error", classes="error")
                with Horizontal(classes="form-row"):
                    yield Label("Mode", classes="form-label")
                    yield Select(
                        _MODES,
                        value=host.mode if host else HostMode.NORMAL,
                        allow_blank=False,
                        id="mode",
                        compact=True,
                    )
                with Horizontal(classes="form-row"):
                    yield Label("", classes="form-label")
                    yield Checkbox(
                        "Connect at start-up",
                        host.autoconnect if host else True,
                        id="auto",
                        compact=True,
                    )
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Save", id="save", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#uri", Input).focus()
        self._validate()

    def _errors(self) -> dict[str, str]:
        from drivers.errors import InvalidURI
        from drivers.uri import parse_uri

        errors: dict[str, str] = {}
        uri = self.query_one("#uri", Input).value.strip()
        try:
            parse_uri(uri)
        except InvalidURI as err:
            errors["uri"] = err.message
        else:
            if uri in self.taken_uris:
                errors["uri"] = f"{uri} is already a host."
        name = self.query_one("#name", Input).value.strip()
        if name:
            problem = validate_name(name)
            if problem:
                errors["name"] = problem
            elif name in self.taken_names:
                errors["name"] = f"Another host is already called '{name}'."
        color = self.query_one("#color", Input).value.strip()
        if color:
            from rich.color import Color, ColorParseError

            try:
                Color.parse(color)
            except ColorParseError:
                errors["color"] = f"'{color}' is not a colour."
        return errors

    @on(Input.Changed)
    def _validate(self) -> None:
        errors = self._errors()
        for field in ("uri", "name", "color"):
            label = self.query_one(f"#{field}-error", Static)
            label.update(Text(inert(errors.get(field, ""))))
            label.display = field in errors
        self.query_one("#save", Button).disabled = bool(errors)

    def _result(self) -> HostConfig:
        uri = self.query_one("#uri", Input).value.strip()
        name = self.query_one("#name", Input).value.strip() or host_name_for(uri, self.taken_names)
        mode = self.query_one("#mode", Select).value
        return HostConfig(
            uri=uri,
            name=name,
            color=self.query_one("#color", Input).value.strip(),
            mode=mode if isinstance(mode, HostMode) else HostMode.NORMAL,
            autoconnect=self.query_one("#auto", Checkbox).value,
            saved=True,
        )

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        if not self._errors():
            self.dismiss(self._result())

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
