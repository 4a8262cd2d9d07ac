"""The main screen: the host strip, the merged domain table, the filter and the footer.

The screen owns what is purely visual (filter, sort, marks, transient "busy" hints) and
asks the app to act: every driver call runs in an app worker. Rows change only when the
app publishes the store's :class:`~tui.state.Changes`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static

from drivers.errors import VirtError
from drivers.reconnect import LinkState
from drivers.records import replace
from tui.actions import ACTIONS, ACTIONS_BY_NAME, Danger, DomainAction, Plan, plan
from tui.filtering import Filter, FilterError, parse_filter
from tui.messages import ActionFinished
from tui.state import Changes, DomainRow, Key
from tui.text import inert
from tui.widgets.domain_table import SORTABLE, DomainTable, Look, RowLook
from tui.widgets.footer import KeyFooter
from tui.widgets.host_bar import HostBar

if TYPE_CHECKING:
    from tui.app import VirtdeckApp
    from tui.migration import MigrationJob

_SORT_KEYS = {
    "host": "1",
    "name": "2",
    "state": "3",
    "vcpus": "4",
    "memory": "5",
    "uptime": "6",
    "cpu": "7",
}


def _action_bindings() -> list[BindingType]:
    bindings: list[BindingType] = [
        Binding(a.key, a.name, a.description, show=a.show, id=a.binding_id, tooltip=a.tooltip)
        for a in ACTIONS
    ]
    bindings += [
        Binding(
            "enter",
            "details",
            "Details",
            id="domain.details",
            show=False,
            tooltip="Overview, XML and event history of the domain under the cursor",
        ),
        Binding(
            "c",
            "console",
            "Console",
            id="domain.console",
            tooltip="The domain's serial console inside virtdeck; ctrl+] returns to the table "
            "(as in virsh console)",
        ),
        Binding(
            "v",
            "screen",
            "Screen",
            id="domain.screen",
            show=False,
            tooltip="The domain's display, live, inside virtdeck: keys go to the guest; ctrl+] "
            "returns",
        ),
        Binding(
            "l",
            "logs",
            "Logs",
            id="domain.logs",
            show=False,
            tooltip="The serial console's output since boot, with times: follow, search",
        ),
        Binding(
            "n",
            "new_domain",
            "New",
            id="domain.new",
            tooltip="Define a new domain on the cursor's host",
        ),
        Binding(
            "e",
            "edit_xml",
            "Edit XML",
            id="domain.edit",
            show=False,
            tooltip="Edit the domain's XML (applies at the next boot)",
        ),
        Binding(
            "space",
            "mark",
            "Mark",
            id="table.mark",
            show=False,
            tooltip="Mark or unmark the row; actions apply to marked rows",
        ),
        Binding(
            "ctrl+a",
            "mark_all",
            "Mark all",
            id="table.mark_all",
            show=False,
            tooltip="Mark every row the filter shows",
        ),
        Binding(
            "slash",
            "filter",
            "Filter",
            id="table.filter",
            tooltip="Filter: words, re:REGEX, /REGEX/, host:NAME, state:STATE, !TERM",
        ),
        Binding(
            "escape",
            "clear",
            "Clear",
            id="table.clear",
            show=False,
            tooltip="Close the filter, then clear marks, then clear the filter",
        ),
        Binding(
            "M",
            "drain",
            "Drain host",
            id="host.drain",
            show=False,
            tooltip="Move the running domains of the cursor's host elsewhere",
        ),
        Binding(
            "ctrl+r",
            "reconnect",
            "Reconnect",
            id="host.reconnect",
            show=False,
            tooltip="Retry lost hosts now instead of waiting for the backoff",
        ),
    ]
    for column, key in _SORT_KEYS.items():
        busiest = column == "cpu"
        bindings.append(
            Binding(
                key,
                f"sort('{column}')",
                "Sort by CPU" if busiest else f"Sort by {column}",
                id=f"table.sort_{column}",
                show=False,
                tooltip=(
                    "Sort by host CPU use, the busiest domain of all hosts first; again to reverse"
                    if busiest
                    else f"Sort by {column}; again to reverse"
                ),
            )
        )
    return bindings


class MainScreen(Screen[None]):
    """Every domain of every connected host."""

    BINDINGS: ClassVar[list[BindingType]] = _action_bindings()
    BINDING_GROUP_TITLE = "Domains"

    def __init__(self) -> None:
        super().__init__(id="main")
        self.filter = Filter()
        self.marks: set[Key] = set()
        self.busy: dict[Key, str] = {}
        self._bindings_state: tuple[bool | None, ...] = ()
        self._status_text = ""
        self._pending = Changes()
        self._flush_timer: Timer | None = None
        self._bindings_timer: Timer | None = None
        self._last_flush = 0.0
        self._flush_due = 0.0

    def compose(self) -> ComposeResult:
        yield HostBar(id="hosts")
        yield DomainTable(id="domains")
        # the filter line (#filter) is mounted here when first opened: one widget and its
        # styles less to set up before the first paint
        yield Static(id="status")
        yield KeyFooter()

    @property
    def table(self) -> DomainTable:
        return self.query_one(DomainTable)

    @property
    def vapp(self) -> VirtdeckApp:
        from tui.app import VirtdeckApp

        assert isinstance(self.app, VirtdeckApp)
        return self.app

    def on_mount(self) -> None:
        app = self.vapp
        self._update_look()
        app.domains_changed.subscribe(self, self._on_changes, immediate=True)
        app.ticked.subscribe(self, self._on_tick, immediate=True)
        app.theme_changed_signal.subscribe(self, lambda _: self._restyle(), immediate=True)
        self._refill()
        self.table.focus()

    # --- rendering ----------------------------------------------------------------------

    def _update_look(self) -> None:
        app = self.vapp
        self.table.look = Look(
            variables=dict(app.theme_variables),
            host_colors={name: app.host_colour(name) for name in app.store.hosts},
            now=app.clock.wall,
        )

    def _how(self, row: DomainRow) -> RowLook:
        return self._look_of(row.key, self.vapp.store.is_lost(row.key))

    def _look_of(self, key: Key, lost: bool) -> RowLook:
        return RowLook(lost, key in self.marks, self.busy.get(key, ""))

    def _refill(self) -> None:
        is_lost, matches = self.vapp.store.is_lost, self.filter.matches
        shown = ((r, is_lost(r.key)) for r in self.vapp.store.rows.values())
        self.table.show_stats = self._any_stats()
        self.table.fill((r, self._look_of(r.key, lost)) for r, lost in shown if matches(r, lost))
        self._show_hosts()
        self._show_status()
        self._show_empty()
        self.update_bindings()

    def _any_stats(self) -> bool:
        """Some host sends statistics: the table has room made for them."""
        return any(h.figures is not None for h in self.vapp.store.hosts.values())

    # --- the empty state ----------------------------------------------------------------

    def empty_text(self) -> Text | None:
        """What the table area says when there is no domain to list (and no filter hides
        any); None while there are rows, or while a host is still listing its first."""
        app = self.vapp
        store = app.store
        if store.rows or not self.filter.empty:
            return None
        hosts = list(store.hosts.values())
        if any(h.link is LinkState.CONNECTING and not h.connected_once for h in hosts):
            return None  # the first listing is on its way: no flash of "nothing here"
        variables = app.theme_variables
        key_style = Style(color=variables.get("primary"), bold=True)
        muted = Style(color=variables.get("state-shutoff"))
        connected = [h.name for h in hosts if not h.lost]
        text = Text()
        if not hosts:
            text.append("No hosts yet.", Style(bold=True))
        elif connected:
            names = ", ".join(inert(n, one_line=True) for n in connected)
            text.append(f"No domains on {names} yet.", Style(bold=True))
        else:
            text.append("No host is connected, so there is nothing to list.", Style(bold=True))
        text.append("\n\n")
        steps: list[tuple[str, str]] = []
        if self.check_action("new_domain", ()):
            steps.append(
                ("n", "Create a domain: name, memory, vCPUs, a disk, an ISO or a kernel to boot.")
            )
        steps.append(("H", "Add a host: another machine over SSH (qemu+ssh://user@host/system)."))
        if not app.demo:
            steps.append(("virtdeck --demo", "Explore first, on simulated hosts (no QEMU needed)."))
        width = max(len(key) for key, _ in steps)
        for key, words in steps:
            text.append(f"  {key:<{width}}  ", key_style)
            text.append(words + "\n")
        text.append("\n? lists every key; : searches every action.", muted)
        return text

    def _show_empty(self) -> None:
        text = self.empty_text()
        box: Static | None
        try:
            box = self.query_one("#empty", Static)
        except NoMatches:
            box = None
        if text is None:
            if box is not None and box.display:
                box.display = False
                self.table.display = True
                self.table.focus()
            return
        if box is None:
            box = Static(id="empty")
            self.mount(box, after=self.table)
        box.update(text)
        box.display = True
        self.table.display = False

    def _restyle(self) -> None:
        self._update_look()
        self._refill()

    def _show_hosts(self) -> None:
        app = self.vapp
        self.query_one(HostBar).show_hosts(
            app.store, app.host_colour, app.theme_variables, app.clock.monotonic()
        )

    def _show_status(self) -> None:
        store = self.vapp.store
        shown, total = self.table.row_count, len(store.rows)
        parts = [f"{shown} of {total} domains" if shown != total else f"{total} domains"]
        if self.marks:
            parts.append(f"{len(self.marks)} marked")
        column = self.table.sort_column
        parts.append(f"sort: {column} {'▼' if self.table.descending else '▲'}")
        if not self.filter.empty:
            parts.append(f"filter: {inert(self.filter.text, one_line=True)}")
        if self.busy:
            parts.append(", ".join(sorted({f"{v}…" for v in self.busy.values()})))
        text = " · ".join(parts)
        if text != self._status_text:  # an update costs a layout pass: only when it changed
            self._status_text = text
            self.query_one("#status", Static).update(Text(text), layout=False)

    #: Under a burst of events the table is redrawn at most this often (seconds); a lone
    #: event is shown at once.
    REDRAW_INTERVAL = 0.2
    #: Rows that appear or go (a host's listing, a define) wait at most this long.
    RESHAPE_INTERVAL = 0.05

    def _on_changes(self, changes: Changes) -> None:
        """Collect what changed; the table catches up at most every REDRAW_INTERVAL (every
        RESHAPE_INTERVAL when rows appeared or went: hosts' listings arriving one after
        another at start-up fill the table as they come)."""
        self._pending.merge(changes)
        pending = self._pending
        reshaped = bool(pending.added or pending.removed or pending.relinked)
        interval = self.RESHAPE_INTERVAL if reshaped else self.REDRAW_INTERVAL
        if self._flush_timer is not None:
            if not reshaped or self._flush_due <= self._last_flush + interval:
                return
            self._flush_timer.stop()  # due later than rows may wait: reschedule sooner
        wait = self._last_flush + interval - self.vapp.clock_now()
        if wait <= 0:
            self._flush()
        else:
            self._flush_due = self._last_flush + interval
            self._flush_timer = self.set_timer(wait, self._flush, name="table catch-up")

    def _flush(self) -> None:
        self._flush_timer = None
        self._last_flush = self.vapp.clock_now()
        changes, self._pending = self._pending, Changes()
        store = self.vapp.store
        table = self.table
        if changes.hosts:
            app = self.vapp
            colours = {name: app.host_colour(name) for name in store.hosts}
            if colours != table.look.host_colors:  # a host came, went or was recoloured
                self._update_look()
                table.restyle()
        was_empty = table.row_count == 0
        keep = table.cursor_key()
        resort = False
        for key in changes.removed:
            table.drop(key)
            self.marks.discard(key)
        if changes.stats or changes.hosts:
            table.show_stats = self._any_stats()
        touched = changes.added | changes.updated | changes.stats
        for host in changes.relinked:
            touched |= {r.key for r in store.host_rows(host)}
        rows, is_lost, matches = store.rows, store.is_lost, self.filter.matches
        for key in sorted(touched):
            row = rows.get(key)
            if row is None:
                continue
            lost = is_lost(key)
            if matches(row, lost):
                _, moved = table.put(row, self._look_of(key, lost))
                resort = resort or moved
            elif table.has(key):
                table.drop(key)
        if resort:
            table.resort(None if was_empty else keep)
            if was_empty and table.row_count:
                table.move_cursor(row=0, animate=False)
        table.repaint_changed()
        if changes.hosts or changes.host_stats:
            self._show_hosts()
        self._show_status()
        if changes.added or changes.removed or changes.hosts:
            self._show_empty()
        if changes.added or changes.removed or changes.updated or changes.hosts:
            self.schedule_bindings()  # (statistics never change what an action may do)

    def _on_tick(self, now: float) -> None:
        store = self.vapp.store
        if any(h.link is LinkState.LOST for h in store.hosts.values()):
            self._show_hosts()
        # Only the uptimes move with the clock, a minute at a time: touch just the rows
        # whose uptime reads differently now (a tick must not cost O(rows) of redrawing).
        lost = {name for name, host in store.hosts.items() if host.lost}
        running = (r for r in store.rows.values() if r.started is not None and r.host not in lost)
        table = self.table
        resort = False
        for row in table.stale_uptimes(running):
            resort = table.put(row, self._how(row))[1] or resort
        if resort:
            table.resort()
        table.repaint_changed()

    # --- selection ------------------------------------------------------------------------

    def cursor_row(self) -> DomainRow | None:
        key = self.table.cursor_key()
        return None if key is None else self.vapp.store.get(key)

    def targets(self) -> list[DomainRow]:
        """The marked rows, else the cursor's row."""
        store = self.vapp.store
        if self.marks:
            return [r for k in sorted(self.marks) if (r := store.get(k)) is not None]
        row = self.cursor_row()
        return [] if row is None else [row]

    def plan_for(self, action: DomainAction, rows: Iterable[DomainRow] | None = None) -> Plan:
        store = self.vapp.store
        modes = {name: h.config.mode for name, h in store.hosts.items()}
        lost = {name for name, h in store.hosts.items() if h.lost}
        return plan(action, list(self.targets() if rows is None else rows), modes, lost)

    _GATED = (
        *ACTIONS_BY_NAME,
        "edit_xml",
        "console",
        "screen",
        "logs",
        "new_domain",
        "details",
        "mark",
        "reconnect",
        "drain",
    )

    #: The footer follows the cursor and the events this long after they settle: a bindings
    #: refresh re-checks every binding of the screen, work a key's repaint need not wait for.
    BINDINGS_DELAY = 0.15

    def schedule_bindings(self) -> None:
        if self._bindings_timer is not None:
            self._bindings_timer.stop()
        self._bindings_timer = self.set_timer(self.BINDINGS_DELAY, self.update_bindings)

    def update_bindings(self) -> None:
        """Refresh the bindings only when an action's availability changed (not for every
        batch of events)."""
        self._bindings_timer = None
        state = tuple(self.check_action(name, ()) for name in self._GATED)
        if state != self._bindings_state:
            self._bindings_state = state
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        spec = ACTIONS_BY_NAME.get(action)
        store = self.vapp.store
        if action == "migrate":
            return self._can_migrate()
        if spec is not None:
            targets = self.targets()
            usable = [
                r
                for r in targets
                if not store.is_lost(r.key) and store.hosts[r.host].config.writable
            ]
            if not usable:
                return False  # read-only or lost hosts offer no mutating action at all
            return True if self.plan_for(spec, usable).calls else None
        if action in ("edit_xml",):
            row = self.cursor_row()
            if row is None or store.is_lost(row.key):
                return False
            return store.hosts[row.host].config.writable
        if action in ("console", "logs"):
            return self._can_console(action == "console")
        if action == "screen":
            return self._can_screen()
        if action == "new_domain":
            return any(not h.lost and h.config.writable for h in store.hosts.values())
        if action in ("details", "mark"):
            return self.cursor_row() is not None
        if action == "reconnect":
            return any(h.link is LinkState.LOST for h in store.hosts.values())
        if action == "drain":
            row = self.cursor_row()
            return row is not None and self.vapp.can_drain(row.host)
        return True

    def _can_console(self, interactive: bool) -> bool | None:
        """The console: on a writable, connected host whose driver has consoles, dimmed
        while the domain is not running. The log: also on read-only hosts, and for a domain
        that stopped (its last run's output)."""
        row = self.cursor_row()
        store = self.vapp.store
        if row is None or store.is_lost(row.key):
            return False
        if interactive and not store.hosts[row.host].config.writable:
            return False
        try:
            conn = self.vapp.connection(row.host)
        except VirtError:
            return False
        if "console" not in conn.capabilities:
            return False
        if interactive and not row.state.is_active:
            return None
        return True

    def _can_screen(self) -> bool | None:
        """The screen: on a connected host whose driver shows screens (read-only hosts
        too: watching is reading), dimmed while the domain is not running."""
        row = self.cursor_row()
        store = self.vapp.store
        if row is None or store.is_lost(row.key):
            return False
        try:
            conn = self.vapp.connection(row.host)
        except VirtError:
            return False
        if "screen" not in conn.capabilities:
            return False
        return True if row.state.is_active else None

    def _can_migrate(self) -> bool | None:
        """Hidden on read-only and lost hosts and where no other host can receive it;
        dimmed for a domain that is not running or paused."""
        row = self.cursor_row()
        store = self.vapp.store
        if row is None or store.is_lost(row.key) or not store.hosts[row.host].config.writable:
            return False
        try:
            source = self.vapp.connection(row.host)
        except VirtError:
            return False
        if "migration" not in source.capabilities or not self.vapp.migration_targets(row.host):
            return False
        return True if ACTIONS_BY_NAME["migrate"].method_for(row) else None

    @on(DomainTable.CursorMoved)
    def _row_moved(self) -> None:
        self.schedule_bindings()

    @on(DomainTable.HeaderClicked)
    def _header_clicked(self, event: DomainTable.HeaderClicked) -> None:
        if event.column in SORTABLE:
            self.action_sort(event.column)

    # --- actions ------------------------------------------------------------------------

    def _domain_action(self, name: str) -> None:
        spec = ACTIONS_BY_NAME[name]
        the_plan = self.plan_for(spec)
        if not the_plan.calls:
            return
        dialog = self._confirmation(the_plan)
        if dialog is None:
            self._execute(the_plan)
            return

        def answered(ok: bool | None) -> None:
            if ok:
                chosen = getattr(dialog, "option_chosen", False)
                self._execute(replace(the_plan, delete_images=chosen) if chosen else the_plan)

        self.app.push_screen(dialog, answered)

    def _confirmation(self, the_plan: Plan):  # type: ignore[no-untyped-def]
        from tui.screens.dialogs import ConfirmScreen, TypedConfirmScreen

        spec = the_plan.action
        rows = [row for row, _ in the_plan.calls]
        names = ", ".join(f"{r.name}" for r in rows[:6]) + (" …" if len(rows) > 6 else "")
        hosts = sorted({r.host for r in rows})
        where = f"on {', '.join(hosts)}"
        fields: list[tuple[str, str]] = []
        if spec.danger is Danger.TYPED:
            if len(rows) == 1:
                fields.append((f"Type the domain's name, {rows[0].name}, to confirm", rows[0].name))
            else:
                fields.append(
                    (f"Type the number of domains, {len(rows)}, to confirm", str(len(rows)))
                )
        for host in the_plan.protected_hosts:
            fields.append((f"{host} is a protected host: type its name to confirm", host))
        question = f"{spec.title} {names} {where}?"
        detail = spec.tooltip
        option = None
        if spec.name == "undefine":
            option = (
                "Also delete the disk images it owns in the host's image pool"
                if len(rows) == 1
                else "Also delete the disk images they own in their hosts' image pools"
            )
        if fields:
            return TypedConfirmScreen(spec.title, question, detail, fields, option)
        if spec.danger is Danger.YES_NO:
            return ConfirmScreen(spec.title, question, detail)
        return None

    def _execute(self, the_plan: Plan) -> None:
        keys = [row.key for row, _ in the_plan.calls]
        for key in keys:
            self.busy[key] = the_plan.action.progress
        self.vapp.perform(the_plan, self)
        self._repaint(keys)

    def _repaint(self, keys: Iterable[Key]) -> None:
        store = self.vapp.store
        for key in keys:
            row = store.get(key)
            if row is not None and self.table.has(key):
                self.table.put(row, self._how(row))
        self.table.repaint_changed()
        self._show_status()

    def on_action_finished(self, message: ActionFinished) -> None:
        for key in message.keys:
            self.busy.pop(key, None)
        self._repaint(message.keys)

    def action_start(self) -> None:
        self._domain_action("start")

    def action_shutdown(self) -> None:
        self._domain_action("shutdown")

    def action_reboot(self) -> None:
        self._domain_action("reboot")

    def action_pause(self) -> None:
        self._domain_action("pause")

    def action_reset(self) -> None:
        self._domain_action("reset")

    def action_destroy(self) -> None:
        self._domain_action("destroy")

    def action_undefine(self) -> None:
        self._domain_action("undefine")

    def action_migrate(self) -> None:
        """The migrate form for the cursor's domain; then its progress view."""
        from drivers.model import DomainState
        from tui.screens.migrate import MigrateScreen, MigrationScreen

        row = self.cursor_row()
        if row is None or self._can_migrate() is not True:
            return
        app = self.vapp
        form = MigrateScreen(
            row.host,
            row.name,
            row.uuid,
            source=app.connection(row.host),
            targets=app.migration_targets(row.host),
            paused=row.state is DomainState.PAUSED,
            daemons=app.daemon_hosts(),
        )

        def chosen(job: MigrationJob | None) -> None:
            if job is not None:
                self.app.push_screen(MigrationScreen(job))

        self.app.push_screen(form, chosen)

    def action_drain(self) -> None:
        """Drain the cursor's host: a plan, then the migrations."""
        row = self.cursor_row()
        if row is None or not self.vapp.can_drain(row.host):
            return
        from tui.screens.drain import DrainScreen

        self.app.push_screen(DrainScreen(row.host))

    def action_console(self) -> None:
        """The serial console of the cursor's domain."""
        row = self.cursor_row()
        if row is None or self._can_console(True) is not True:
            return
        self.open_console(row.host, row.uuid, row.name)

    def open_console(self, host: str, uuid: str, name: str) -> None:
        from tui.screens.console import ConsoleScreen

        self.app.push_screen(ConsoleScreen(host, uuid, name))

    def action_screen(self) -> None:
        """The screen of the cursor's domain."""
        row = self.cursor_row()
        if row is None or self._can_screen() is not True:
            return
        self.open_screen(row.host, row.uuid, row.name)

    def open_screen(self, host: str, uuid: str, name: str) -> None:
        from tui.screens.screen import ScreenView

        writable = self.vapp.store.hosts[host].config.writable
        self.app.push_screen(ScreenView(host, uuid, name, writable=writable))

    def action_logs(self) -> None:
        """The console log of the cursor's domain."""
        row = self.cursor_row()
        if row is None or self._can_console(False) is not True:
            return
        from tui.screens.logs import LogsScreen

        self.app.push_screen(LogsScreen(row.host, row.uuid, row.name))

    def action_new_domain(self) -> None:
        """The new-domain form, on the connected hosts that allow changes.

        The row appears when the driver's Defined event arrives, like any other change.
        """
        from tui.screens.new_domain import NewDomainScreen

        store = self.vapp.store
        hosts = {}
        for name, link in self.vapp.links.items():
            host = store.hosts.get(name)
            if host is None or host.lost or not host.config.writable:
                continue
            try:
                hosts[name] = link.require()
            except VirtError:
                continue
        if not hosts:
            return
        row = self.cursor_row()
        default = row.host if row is not None and row.host in hosts else next(iter(hosts))
        kvm = [name for name, conn in hosts.items() if "kvm" in conn.capabilities]
        form = NewDomainScreen(hosts, default, kvm_hosts=kvm)

        def closed(result: tuple[str, str] | None) -> None:
            wanted = form.console_after
            if result is not None and wanted is not None:
                self.open_console(*wanted)

        self.app.push_screen(form, closed)

    def action_edit_xml(self) -> None:
        from tui.screens.edit_xml import EditXmlScreen

        row = self.cursor_row()
        link = self.vapp.links.get(row.host) if row is not None else None
        if row is None or link is None:
            return
        try:
            conn = link.require()
        except VirtError as err:
            self.notify(err.message, title=err.title, severity="error", markup=False)
            return
        active = row.state.is_active
        self.app.push_screen(EditXmlScreen(conn, row.name, active, host=row.host))

    def action_details(self) -> None:
        row = self.cursor_row()
        if row is None:
            return
        from tui.screens.details import DetailsScreen

        self.app.push_screen(DetailsScreen(row.host, row.uuid))

    def action_mark(self) -> None:
        key = self.table.cursor_key()
        if key is None:
            return
        if key in self.marks:
            self.marks.discard(key)
        else:
            self.marks.add(key)
        self._repaint([key])
        self.table.action_cursor(1)
        self.update_bindings()

    def action_mark_all(self) -> None:
        store = self.vapp.store
        visible = [k for k in store.rows if self.table.has(k)]
        if all(k in self.marks for k in visible):
            self.marks.difference_update(visible)
        else:
            self.marks.update(visible)
        self._repaint(visible)
        self.update_bindings()

    def action_sort(self, column: str) -> None:
        """Sort by ``column``; again reverses. Figures (CPU …) start with the biggest."""
        table = self.table
        if table.sort_column == column:
            table.sort_reverse = not table.sort_reverse
        else:
            table.sort_column, table.sort_reverse = column, False
        table.resort()
        self._show_status()

    def _filter_box(self) -> Input | None:
        """The filter line, once it has been opened."""
        try:
            return self.query_one("#filter", Input)
        except NoMatches:
            return None

    async def action_filter(self) -> None:
        box = self._filter_box()
        if box is None:
            box = Input(
                placeholder="filter: words, re:REGEX, host:NAME, state:running, !TERM",
                id="filter",
            )
            await self.mount(box, before=self.query_one("#status"))
        box.remove_class("-hidden")
        box.focus()

    def action_clear(self) -> None:
        box = self._filter_box()
        if box is not None and box.has_focus:
            if not box.value:
                box.add_class("-hidden")
            self.table.focus()
            return
        if self.marks:
            marked = list(self.marks)
            self.marks.clear()
            self._repaint(marked)
            self.update_bindings()
            return
        if box is not None:
            if box.value:
                box.value = ""
            box.add_class("-hidden")

    def action_reconnect(self) -> None:
        for name, host in self.vapp.store.hosts.items():
            if host.link is LinkState.LOST:
                self.vapp.retry_host(name)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        try:
            new = parse_filter(event.value)
        except FilterError as err:
            event.input.add_class("-invalid")
            event.input.tooltip = str(err)
            return
        event.input.remove_class("-invalid")
        event.input.tooltip = None
        self.filter = new
        self._refill()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.add_class("-hidden")
        self.table.focus()
