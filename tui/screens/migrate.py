"""``m``: the migrate form, and the progress view of a running migration.

:class:`MigrateScreen` asks where to (one of the other connected hosts that can receive
migrations; the domain's own host is never offered) and how: live, persistent, undefine
the source, copy storage, tunnelled (only between two daemon hosts), a bandwidth limit. A
pre-flight check (``migrate_preflight`` at the destination, in a worker) runs whenever
the destination or copy storage changes; Migrate stays disabled while it runs or while it
gives reasons. The form dismisses with the :class:`~tui.migration.MigrationJob` to run, or
None.

:class:`MigrationScreen` runs that job through the app (an app worker, so closing the view
does not stop the migration) and shows the live figures: phase, RAM sent / remaining /
total, rate, dirty pages, expected downtime, disks for copy storage, elapsed; ``x``
cancels (the source rolls back). At the end: the downtime and total time, or the error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from drivers.api import Connection
from drivers.errors import VirtError
from tui.migration import (
    JobState,
    JobView,
    MigrationJob,
    MigrationOptions,
    MigrationRun,
    done_fraction,
    duration,
    form_words,
    parse_bandwidth,
    rate,
    size,
)
from tui.screens.dialogs import FramedDialog
from tui.text import inert
from tui.widgets.footer import key_hints

if TYPE_CHECKING:
    from tui.app import VirtdeckApp

__all__ = ["MigrateScreen", "MigrationScreen", "bar"]


def bar(fraction: float, width: int = 30) -> Content:
    """A progress bar drawn with block characters, in theme colours."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return Content.assemble(
        ("█" * filled, "$success"),
        ("░" * (width - filled), "$text-muted"),
        f" {100 * fraction:3.0f} %",
    )


class MigrateScreen(FramedDialog[MigrationJob | None]):
    """Where and how to migrate one domain.

    Args:
        host: the domain's host; ``name``, ``uuid``: the domain; ``paused``: it is paused
            (it stays paused at the destination).
        source: the host's live connection.
        targets: the other connected hosts that can receive migrations, by name.
        daemons: the hosts (of ``targets`` and ``host``) reached through a daemon, which
            can tunnel.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s",
            "migrate",
            "Migrate",
            id="migrate.start",
            tooltip="Start the migration (once the pre-flight check found nothing wrong)",
        ),
        Binding(
            "escape",
            "cancel",
            "Cancel",
            id="migrate.cancel",
            tooltip="Close the form; nothing moves",
        ),
    ]

    DEFAULT_CSS = """
    MigrateScreen {
        #mg-dialog {
            width: 84;
            max-width: 100%;
            height: auto;
            max-height: 100%;
        }
        .mg-label {
            color: $text-muted;
            margin-top: 1;
        }
        #mg-from {
            margin-top: 1;
        }
        #mg-options {
            height: auto;
            & > Checkbox {
                margin-right: 2;
            }
        }
        #bandwidth {
            width: 24;
        }
        .mg-error {
            color: $text-error;
            &.-empty {
                display: none;
            }
        }
        #preflight {
            height: auto;
            min-height: 2;
            padding: 0 1;
            background: $panel;
            &.-bad {
                color: $text-error;
            }
            &.-good {
                color: $text-success;
            }
        }
        #no-target {
            color: $text-warning;
        }
    }
    """

    @dataclass
    class Checked(Message, bubble=False):
        """The destination's pre-flight answer for one (destination, copy storage)."""

        target: str
        copy_storage: bool
        xml: str
        reasons: tuple[str, ...]

    preflight = getters.query_one("#preflight", Static)

    def __init__(
        self,
        host: str,
        name: str,
        uuid: str,
        *,
        source: Connection,
        targets: Mapping[str, Connection],
        paused: bool = False,
        daemons: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self.host = host
        self.domain = name
        self.uuid = uuid
        self.source = source
        self.targets = {h: c for h, c in targets.items() if h != host}
        self.paused = paused
        self.daemons = daemons
        self.target: str | None = next(iter(self.targets), None)
        self.xml: str | None = None
        self.reasons: tuple[str, ...] | None = None
        """The pre-flight's reasons for the current choice; None while it runs."""
        self.check_failed = ""
        self._enabled: bool | None = None

    # --- layout ---

    @property
    def can_tunnel(self) -> bool:
        return self.host in self.daemons and self.target in self.daemons

    def compose(self) -> ComposeResult:
        name = inert(self.domain, one_line=True)
        host = inert(self.host, one_line=True)
        with Vertical(id="mg-dialog", classes="dialog-frame"):
            state = "paused" if self.paused else "running"
            yield Static(Text(f"{name} is {state} on {host}."), id="mg-from")
            yield Label("Destination", classes="mg-label")
            if self.targets:
                options = [(Text(inert(h, one_line=True)), h) for h in self.targets]
                yield Select(options, allow_blank=False, value=self.target, id="target")
            else:
                yield Static(
                    Text(
                        f"No other connected host can receive {name}: only {host} is "
                        "connected. Add or connect another host (H), then try again."
                    ),
                    id="no-target",
                )
            yield Label("Options", classes="mg-label")
            with Horizontal(id="mg-options"):
                yield Checkbox("Live", True, id="live", compact=True)
                yield Checkbox("Persistent", True, id="persistent", compact=True)
                yield Checkbox("Undefine source", False, id="undefine", compact=True)
                yield Checkbox("Copy storage", False, id="copy", compact=True)
                tunnel = Checkbox("Tunnelled", False, id="tunnelled", compact=True)
                tunnel.display = self.can_tunnel
                yield tunnel
            yield Label("Bandwidth (MiB/s)", classes="mg-label")
            yield Input(placeholder="unlimited", type="integer", id="bandwidth", compact=True)
            yield Static(id="bandwidth-error", classes="mg-error -empty")
            yield Label("Pre-flight check", classes="mg-label")
            yield Static(id="preflight")
            with Horizontal(id="mg-buttons", classes="dialog-buttons"):
                yield Static(id="mg-keys", classes="keys")
                yield Button("Migrate", id="migrate", variant="primary", disabled=True)
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        # the dialog's children may still be mounting: set them up once they are there
        self.call_after_refresh(self._set_up)

    def _set_up(self) -> None:
        self.query_one("#mg-dialog").border_title = f"Migrate {inert(self.domain, one_line=True)}"
        self.query_one("#mg-keys", Static).update(key_hints(self))
        if self.targets:
            self.query_one("#target", Select).focus()
        self._recheck()

    # --- reading the form ---

    def _box(self, box_id: str) -> bool:
        return self.query_one(f"#{box_id}", Checkbox).value

    def options(self) -> tuple[MigrationOptions, str]:
        """The chosen options, and the bandwidth's error if it is not valid."""
        bandwidth, error = parse_bandwidth(self.query_one("#bandwidth", Input).value)
        options = MigrationOptions(
            live=self._box("live"),
            persistent=self._box("persistent"),
            undefine_source=self._box("undefine"),
            copy_storage=self._box("copy"),
            tunnelled=self.can_tunnel and self._box("tunnelled"),
            bandwidth_mib=bandwidth,
        )
        return options, error

    @property
    def ready(self) -> bool:
        _, error = self.options()
        return (
            self.target is not None
            and self.reasons is not None
            and not self.reasons
            and not self.check_failed
            and not error
        )

    # --- the pre-flight check ---

    def _recheck(self) -> None:
        self.reasons = None
        self.check_failed = ""
        if self.target is not None:
            self._check(self.target, self._box("copy"), self.xml)
        self.update_form()

    @work(
        group="migrate-preflight",
        exclusive=True,
        exit_on_error=False,
        description="pre-flight check of a migration",
    )
    async def _check(self, target: str, copy_storage: bool, xml: str | None) -> None:
        if xml is None:
            xml = await (await self.source.lookup_by_uuid(self.uuid)).xml()
        reasons = await self.targets[target].migrate_preflight(xml, copy_storage=copy_storage)
        self.post_message(self.Checked(target, copy_storage, xml, tuple(reasons)))

    def on_migrate_screen_checked(self, message: Checked) -> None:
        self.xml = message.xml
        if message.target != self.target or message.copy_storage != self._box("copy"):
            return  # the choice changed since; its own check is on its way
        self.reasons = message.reasons
        self.update_form()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The app shows the error itself (its one place); the panel says the check is off.
        if event.worker.group != "migrate-preflight":
            return
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            words = error.message if isinstance(error, VirtError) else str(error)
            self.check_failed = f"The check could not run: {words}"
            self.update_form()

    # --- showing it ---

    def update_form(self) -> None:
        _, error = self.options()
        problem = self.query_one("#bandwidth-error", Static)
        problem.update(Text(error))
        problem.set_class(not error, "-empty")
        self.query_one("#bandwidth", Input).set_class(bool(error), "-invalid")
        panel = self.preflight
        target = inert(self.target or "", one_line=True)
        if self.target is None:
            text, bad, good = "Nothing to check: there is no destination.", True, False
        elif self.check_failed:
            text, bad, good = self.check_failed, True, False
        elif self.reasons is None:
            text, bad, good = f"Checking whether {target} can take it…", False, False
        elif self.reasons:
            text = "\n".join(f"✗ {form_words(inert(r))}" for r in self.reasons)
            bad, good = True, False
        else:
            text = (
                f"✓ {target} has the emulator, the machine type, the disks and the memory it needs."
            )
            bad, good = False, True
        panel.update(Text(text))
        panel.set_class(bad, "-bad")
        panel.set_class(good, "-good")
        ready = self.ready
        self.query_one("#migrate", Button).disabled = not ready
        if ready != self._enabled:
            self._enabled = ready
            self.refresh_bindings()

    # --- changes ---

    @on(Select.Changed, "#target")
    def _target_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.target:
            self.target = event.value
            self.query_one("#tunnelled", Checkbox).display = self.can_tunnel
            self._recheck()

    @on(Checkbox.Changed, "#copy")
    def _copy_changed(self) -> None:
        self._recheck()

    @on(Checkbox.Changed, "#live, #persistent, #undefine, #tunnelled")
    @on(Input.Changed, "#bandwidth")
    def _changed(self) -> None:
        self.update_form()

    # --- actions ---

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "migrate":
            return True if self.is_mounted and self.ready else None
        return True

    @on(Input.Submitted, "#bandwidth")
    @on(Button.Pressed, "#migrate")
    def action_migrate(self) -> None:
        if not self.ready or self.target is None:
            return
        options, _ = self.options()
        self.dismiss(
            MigrationJob(self.domain, self.uuid, self.host, self.target, options, self.paused)
        )

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class MigrationScreen(FramedDialog[None]):
    """The live figures of one migration, run by the app (closing the view does not stop
    it); ``x`` cancels it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "x",
            "abort",
            "Cancel migration",
            id="migration.abort",
            tooltip="Cancel the migration: the guest goes on at its source",
        ),
        Binding(
            "escape",
            "close",
            "Close",
            id="migration.close",
            tooltip="Close this view (a running migration goes on)",
        ),
    ]

    DEFAULT_CSS = """
    MigrationScreen {
        #mv-dialog {
            width: 84;
            max-width: 100%;
            height: auto;
        }
        #mv-figures {
            margin-top: 1;
            height: auto;
        }
        #mv-result {
            margin-top: 1;
            height: auto;
            &.-good {
                color: $text-success;
            }
            &.-bad {
                color: $text-error;
            }
        }
    }
    """

    @dataclass
    class Updated(Message, bubble=False):
        view: JobView

    def __init__(self, job: MigrationJob, *, start: bool = True) -> None:
        super().__init__()
        self.job = job
        self.autostart = start
        """Start the run on mount (tests and screenshots show a view fed by hand)."""
        self.view = JobView(0, job.name, job.uuid, job.source, job.target)
        self.migration_run: MigrationRun | None = None
        self.aborting = False

    @property
    def vapp(self) -> VirtdeckApp:
        from tui.app import VirtdeckApp

        assert isinstance(self.app, VirtdeckApp)
        return self.app

    def compose(self) -> ComposeResult:
        with Vertical(id="mv-dialog", classes="dialog-frame"):
            yield Static(id="mv-figures")
            yield Static(id="mv-result")
            with Horizontal(id="mv-buttons", classes="dialog-buttons"):
                yield Static(id="mv-keys", classes="keys")
                yield Button("Cancel migration", id="abort", variant="error")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.call_after_refresh(self._set_up)

    def _set_up(self) -> None:
        name = inert(self.job.name, one_line=True)
        source = inert(self.job.source, one_line=True)
        target = inert(self.job.target, one_line=True)
        self.query_one("#mv-dialog").border_title = f"Migrating {name}: {source} → {target}"
        self.query_one("#mv-keys", Static).update(key_hints(self))
        self.show(self.view)
        if self.autostart:
            app = self.vapp
            self.migration_run = MigrationRun(
                [self.job],
                parallel=1,
                connect=app.connection,
                report=self._report,
            )
            app.run_migrations(self.migration_run)

    def _report(self, view: JobView) -> None:
        self.post_message(self.Updated(view))

    def on_migration_screen_updated(self, message: Updated) -> None:
        self.show(message.view)

    def show(self, view: JobView) -> None:
        """Draw ``view``'s figures and result."""
        self.view = view
        info = view.info
        lines: list[Content | str] = []

        def line(label: str, value: str | Content) -> None:
            lines.append(Content.assemble((f"{label:<20}", "$text-muted"), value))

        state = view.words()
        if info is not None and info.type not in ("", "none"):
            phase = info.phase.words
            status = f" ({info.status})" if info.status and info.status != phase else ""
            line("Phase", f"{phase}{status}")
            line("Progress", bar(done_fraction(info)))
            if info.ram_total:
                sent = size(info.ram_transferred)
                line(
                    "Memory",
                    f"{sent} sent, {size(info.ram_remaining)} remaining of {size(info.ram_total)}",
                )
            line("Rate", rate(info.ram_rate) if info.ram_rate else "none")
            dirty = f"{info.dirty_rate:,} pages/s" if info.dirty_rate else "none"
            if info.dirty_rate:
                dirty += f" ({rate(info.dirty_rate * info.page_size)})"
            line("Dirty pages", dirty)
            if info.downtime_ms is not None:
                line("Downtime", duration(info.downtime_ms))
            elif info.expected_downtime_ms is not None:
                line("Expected downtime", duration(info.expected_downtime_ms))
            if info.disk_total:
                line(
                    "Disks",
                    f"{size(info.disk_transferred)} of {size(info.disk_total)} copied",
                )
            line("Elapsed", duration(info.elapsed_ms))
        else:
            line("Phase", "starting" if state == "migrating" else state)
        self.query_one("#mv-figures", Static).update(Content("\n").join(lines))
        result = self.query_one("#mv-result", Static)
        words, good, bad = "", False, False
        target = inert(view.target, one_line=True)
        source = inert(view.source, one_line=True)
        if view.state is JobState.DONE:
            downtime = info.downtime_ms if info is not None else None
            total = view.elapsed_ms if view.elapsed_ms is not None else 0
            words = f"Done: {inert(view.name, one_line=True)} runs on {target}"
            if downtime is not None:
                words += f"; downtime {duration(downtime)}"
            words += f", total {duration(total)}."
            good = True
        elif view.state is JobState.CANCELLED:
            words = f"Cancelled: rolled back, it goes on at {source}."
            bad = True
        elif view.state is JobState.FAILED:
            words = f"Failed: {form_words(inert(view.error))}"
            bad = True
        elif self.aborting:
            words = "Cancelling…"
        result.update(Text(words))
        result.set_class(good, "-good")
        result.set_class(bad, "-bad")
        self.query_one("#abort", Button).disabled = view.finished or self.aborting
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "abort":
            return None if self.view.finished or self.aborting else True
        return True

    @on(Button.Pressed, "#abort")
    def action_abort(self) -> None:
        if self.view.finished or self.aborting or self.migration_run is None:
            return
        self.aborting = True
        self.vapp.abort_migrations(self.migration_run)
        self.show(self.view)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
