"""Drain a host: move every running or paused domain of it to the other hosts.

The screen reads the plan's facts in a worker (each domain's XML, each candidate host's
free memory and pre-flight answer for each domain), suggests a target per domain
(:func:`tui.migration.suggest_targets`: the host with the most memory left that passed
the pre-flight, biggest domains first, so no host is overfilled), lets ``t`` change a
row's target (or leave the domain where it is), then runs the migrations through the app,
at most N at once, with a live row per domain and a summary line. ``a`` aborts: nothing
more starts and the running ones are cancelled, which rolls them back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Input, Label, Static
from textual.worker import Worker, WorkerState

from drivers.errors import VirtError
from drivers.model import DomainState
from tui.migration import (
    DEFAULT_PARALLEL,
    Candidate,
    JobState,
    JobView,
    MigrationJob,
    MigrationOptions,
    MigrationRun,
    duration,
    form_words,
    is_memory_reason,
    parse_parallel,
    size,
    suggest_targets,
)
from tui.text import inert
from tui.widgets.footer import KeyFooter

if TYPE_CHECKING:
    from tui.app import VirtdeckApp

__all__ = ["DrainScreen"]

#: (key, label, width); None: as wide as the widest cell.
_COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("domain", "Domain", None),
    ("memory", "Memory", 9),
    ("state", "State", 8),
    ("target", "Target", None),
    ("check", "Pre-flight", None),
    ("progress", "Progress", 14),
    ("downtime", "Downtime", 9),
    ("result", "Result", None),
)


@dataclass(frozen=True)
class PlanRow:
    """A domain of the drained host, as the plan starts."""

    name: str
    uuid: str
    memory_bytes: int
    paused: bool


class DrainScreen(Screen[None]):
    """The drain of one host: plan, run, live rows, summary."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "t",
            "target",
            "Change target",
            id="drain.target",
            tooltip="Send the row's domain to the next host (or leave it where it is)",
        ),
        Binding(
            "ctrl+r",
            "run",
            "Run",
            id="drain.run",
            tooltip="Start the migrations, at most the number in parallel at once",
        ),
        Binding(
            "a",
            "abort",
            "Abort",
            id="drain.abort",
            tooltip="Start no more migrations and cancel the running ones (they roll back)",
        ),
        Binding(
            "escape",
            "back",
            "Back",
            id="drain.back",
            tooltip="Back to the previous screen (running migrations go on)",
        ),
    ]
    BINDING_GROUP_TITLE = "Drain"

    DEFAULT_CSS = """
    DrainScreen {
        #drain-note {
            height: auto;
            padding: 0 1;
            color: $text-muted;
        }
        #drain-table {
            height: 1fr;
        }
        #drain-settings {
            height: 1;
            padding: 0 1;
            & > Label {
                color: $text-muted;
                margin-right: 1;
            }
            & > Input {
                width: 8;
            }
            & > #parallel-error {
                color: $text-error;
                margin-left: 2;
                width: 1fr;
            }
        }
        #drain-summary {
            height: auto;
            padding: 0 1;
            background: $surface;
            &.-bad {
                color: $text-error;
            }
            &.-good {
                color: $text-success;
            }
        }
    }
    """

    @dataclass
    class Planned(Message, bubble=False):
        """The facts of the plan: per domain, per target, the pre-flight reasons."""

        candidates: tuple[Candidate, ...]
        free: dict[str, int]

    @dataclass
    class Updated(Message, bubble=False):
        view: JobView

    class Finished(Message, bubble=False):
        """The run has no migration left running."""

    table = getters.query_one("#drain-table", DataTable)

    def __init__(self, host: str, *, options: MigrationOptions | None = None) -> None:
        super().__init__(id="drain-screen")
        self.host = host
        self.options = options or MigrationOptions()
        self.rows: tuple[PlanRow, ...] = ()
        self.candidates: dict[str, Candidate] = {}
        self.free: dict[str, int] = {}
        self.hosts: tuple[str, ...] = ()
        """The candidate target hosts, in the order ``t`` cycles through them."""
        self.plan: dict[str, str | None] = {}
        """Per domain uuid, its target (None: it stays)."""
        self.planned = False
        self.plan_error = ""
        self.migration_run: MigrationRun | None = None
        self.views: dict[str, JobView] = {}
        self.most_running = 0
        """The most migrations seen running at once (the parallel limit holds)."""
        self.aborting = False

    @property
    def vapp(self) -> VirtdeckApp:
        from tui.app import VirtdeckApp

        assert isinstance(self.app, VirtdeckApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Label(f"Drain {inert(self.host, one_line=True)}", classes="screen-title")
        yield Static(id="drain-note")
        yield DataTable(id="drain-table", cursor_type="row", zebra_stripes=False)
        with Horizontal(id="drain-settings"):
            yield Label("Migrations at once")
            yield Input(str(DEFAULT_PARALLEL), type="integer", id="parallel", compact=True)
            yield Static(id="parallel-error")
        yield Static(id="drain-summary")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.table
        for key, label, width in _COLUMNS:
            table.add_column(label, key=key, width=width)
        app = self.vapp
        store = app.store
        self.rows = tuple(
            PlanRow(r.name, r.uuid, (r.memory_kib or 0) * 1024, r.state is DomainState.PAUSED)
            for r in sorted(store.host_rows(self.host), key=lambda r: r.name)
            if r.state in (DomainState.RUNNING, DomainState.PAUSED)
        )
        targets = app.migration_targets(self.host)
        self.hosts = tuple(targets)
        if self.rows and self.hosts:
            self._read_plan(self.host, self.rows, self.hosts)
        else:
            self.planned = True
        self._fill()
        table.focus()

    # --- the plan ------------------------------------------------------------------------

    @work(group="drain-plan", exclusive=True, exit_on_error=False, description="plan a drain")
    async def _read_plan(self, host: str, rows: Sequence[PlanRow], targets: Sequence[str]) -> None:
        app = self.vapp
        source = app.connection(host)
        conns = {name: app.connection(name) for name in targets}
        free = {name: await conn.free_memory() for name, conn in conns.items()}
        candidates = []
        for row in rows:
            xml = await (await source.lookup_by_uuid(row.uuid)).xml()
            reasons = {
                name: tuple(await conn.migrate_preflight(xml, self.options.copy_storage))
                for name, conn in conns.items()
            }
            candidates.append(Candidate(row.name, row.uuid, row.memory_bytes, reasons))
        self.post_message(self.Planned(tuple(candidates), free))

    def on_drain_screen_planned(self, message: Planned) -> None:
        self.candidates = {c.uuid: c for c in message.candidates}
        self.free = dict(message.free)
        suggested = suggest_targets(message.candidates, message.free)
        self.plan = {row.uuid: suggested.get(row.uuid) for row in self.rows}
        self.planned = True
        self._fill()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "drain-plan" and event.state is WorkerState.ERROR:
            error = event.worker.error
            words = error.message if isinstance(error, VirtError) else str(error)
            self.plan_error = f"The plan could not be made: {words}"
            self.planned = True
            self._fill()

    def problems(self) -> dict[str, str]:
        """Why a row's chosen target cannot take it, per uuid (pre-flight reasons, or the
        plan putting more memory on a host than it has free)."""
        found: dict[str, str] = {}
        load: dict[str, int] = {}
        for row in self.rows:
            target = self.plan.get(row.uuid)
            if target is None:
                continue
            load[target] = load.get(target, 0) + row.memory_bytes
            cand = self.candidates.get(row.uuid)
            reasons = cand.reasons.get(target, ()) if cand is not None else ("not checked",)
            blocking = [r for r in reasons if not is_memory_reason(r)]
            if blocking:
                found[row.uuid] = blocking[0]
        for row in self.rows:
            target = self.plan.get(row.uuid)
            if target is None or row.uuid in found:
                continue
            if load[target] > self.free.get(target, 0):
                found[row.uuid] = (
                    f"{target} has {size(self.free.get(target, 0))} free, the plan puts "
                    f"{size(load[target])} there; send some elsewhere."
                )
        return found

    def _parallel(self) -> tuple[int | None, str]:
        return parse_parallel(self.query_one("#parallel", Input).value)

    @property
    def runnable(self) -> bool:
        parallel, _ = self._parallel()
        return (
            self.planned
            and self.migration_run is None
            and not self.plan_error
            and parallel is not None
            and any(t is not None for t in self.plan.values())
            and not self.problems()
        )

    # --- showing it ------------------------------------------------------------------------

    def _fill(self) -> None:
        table = self.table
        keep = table.cursor_row
        table.clear()
        problems = self.problems() if self.planned else {}
        for row in self.rows:
            table.add_row(*self._cells(row, problems), key=row.uuid)
        if self.rows:
            table.move_cursor(row=min(keep, len(self.rows) - 1), animate=False)
        self._show_note()
        self._show_summary()
        self.refresh_bindings()

    def _cells(self, row: PlanRow, problems: Mapping[str, str]) -> list[Text]:
        variables = self.app.theme_variables

        def style(name: str) -> Style:
            colour = variables.get(name)
            return Style(color=colour) if colour else Style()

        view = self.views.get(row.uuid)
        target = self.plan.get(row.uuid)
        if not self.planned:
            target_text, check = Text("…"), Text("checking…")
        elif target is None:
            cand = self.candidates.get(row.uuid)
            reasons = [r for rs in (cand.reasons.values() if cand else ()) for r in rs]
            why = "stays" if not reasons else f"stays: {form_words(inert(reasons[0]))}"
            target_text = Text("—")
            check = Text(why, style=style("text-warning"))
        else:
            target_text = Text(inert(target, one_line=True))
            problem = problems.get(row.uuid)
            check = (
                Text(f"✗ {form_words(inert(problem))}", style=style("text-error"))
                if problem
                else Text("✓ ok", style=style("text-success"))
            )
        progress, downtime, result = Text(""), Text(""), Text("")
        if view is not None:
            colour = {
                JobState.DONE: "text-success",
                JobState.FAILED: "text-error",
                JobState.CANCELLED: "text-warning",
            }.get(view.state, "")
            progress = Text(view.words(), style=style(colour) if colour else Style())
            info = view.info
            if info is not None and info.downtime_ms is not None:
                downtime = Text(duration(info.downtime_ms))
            words = ""
            if view.state is JobState.DONE:
                took = duration(view.elapsed_ms or 0)
                words = f"runs on {view.target} ({took})"
                if view.note:
                    words += f"; {view.note}"
            elif view.state is JobState.FAILED:
                words = form_words(view.error)
            elif view.state is JobState.CANCELLED:
                words = view.note
            result = Text(inert(words, one_line=True))
        state = "paused" if row.paused else "running"
        return [
            Text(inert(row.name, one_line=True)),
            Text(size(row.memory_bytes)),
            Text(state),
            target_text,
            check,
            progress,
            downtime,
            result,
        ]

    def _show_note(self) -> None:
        host = inert(self.host, one_line=True)
        if not self.hosts:
            note = (
                f"No other connected host can receive {host}'s domains: connect another "
                "host that allows changes (H), then try again."
            )
        elif not self.rows:
            note = f"{host} has no running or paused domain to move."
        else:
            where = ", ".join(
                f"{inert(h, one_line=True)} ({size(self.free[h])} free)"
                if h in self.free
                else inert(h, one_line=True)
                for h in self.hosts
            )
            note = (
                f"Moves {host}'s running and paused domains, live, to: {where}. "
                "t changes the row's target; ctrl+r runs."
            )
        self.query_one("#drain-note", Static).update(Text(note))

    def _show_summary(self) -> None:
        summary = self.query_one("#drain-summary", Static)
        run = self.migration_run
        good = bad = False
        if self.plan_error:
            text, bad = self.plan_error, True
        elif run is not None:
            counts = run.counts()
            if run.finished:
                verb = "Aborted" if run.aborted else "Finished"
                text = f"{verb}: {run.summary()}."
                bad = bool(counts[JobState.FAILED] or counts[JobState.CANCELLED])
                good = not bad
                rolled = [v.name for v in run.views if v.note.startswith("rolled back")]
                if rolled:
                    text += f" Rolled back (still on {self.host}): {', '.join(rolled)}."
            else:
                text = f"{'Aborting' if self.aborting else 'Running'}: {run.summary()}…"
        elif not self.planned:
            text = "Reading the domains and asking the other hosts whether they can take them…"
        else:
            moving = sum(1 for t in self.plan.values() if t is not None)
            problems = self.problems()
            text = f"{moving} of {len(self.rows)} domains would move."
            if problems:
                text += f" {len(problems)} cannot go where the plan sends them; change the target."
                bad = True
        summary.update(Text(inert(text)))
        summary.set_class(bad, "-bad")
        summary.set_class(good, "-good")

    # --- changes -------------------------------------------------------------------------------

    @on(Input.Changed, "#parallel")
    def _parallel_changed(self) -> None:
        _, error = self._parallel()
        self.query_one("#parallel-error", Static).update(Text(error))
        self.refresh_bindings()

    def on_drain_screen_updated(self, message: Updated) -> None:
        view = message.view
        self.views[view.uuid] = view
        running = sum(1 for v in self.views.values() if v.state is JobState.MIGRATING)
        self.most_running = max(self.most_running, running)
        row = next((r for r in self.rows if r.uuid == view.uuid), None)
        if row is not None:
            table = self.table
            for (key, _, _), cell in zip(_COLUMNS, self._cells(row, {}), strict=True):
                if key in ("progress", "downtime", "result"):
                    table.update_cell(row.uuid, key, cell, update_width=key == "result")
        self._show_summary()
        self.refresh_bindings()

    # --- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        running = self.migration_run is not None and not self.migration_run.finished
        if action == "target":
            return True if self.planned and self.migration_run is None and self.hosts else None
        if action == "run":
            return True if self.is_mounted and self.runnable else None
        if action == "abort":
            return True if running and not self.aborting else None
        return True

    def _cursor_uuid(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_target(self) -> None:
        """The next target for the cursor's domain: each host in turn, then none."""
        uuid = self._cursor_uuid()
        if uuid is None or not self.planned or self.migration_run is not None:
            return
        choices: list[str | None] = [*self.hosts, None]
        current = self.plan.get(uuid)
        index = choices.index(current) if current in choices else -1
        self.plan[uuid] = choices[(index + 1) % len(choices)]
        self._fill()

    def action_run(self) -> None:
        parallel, _ = self._parallel()
        if not self.runnable or parallel is None:
            return
        jobs = [
            MigrationJob(row.name, row.uuid, self.host, target, self.options, row.paused)
            for row in self.rows
            if (target := self.plan.get(row.uuid)) is not None
        ]
        app = self.vapp
        self.migration_run = MigrationRun(
            jobs,
            parallel=parallel,
            connect=app.connection,
            report=self._report,
            finished=self._finished,
        )
        self.query_one("#parallel", Input).disabled = True
        app.run_migrations(self.migration_run)
        self._show_summary()
        self.refresh_bindings()

    def on_drain_screen_finished(self) -> None:
        self.aborting = False
        self._show_summary()
        self.refresh_bindings()

    def _finished(self) -> None:
        self.post_message(self.Finished())

    def _report(self, view: JobView) -> None:
        self.post_message(self.Updated(view))

    def action_abort(self) -> None:
        run = self.migration_run
        if run is None or run.finished or self.aborting:
            return
        self.aborting = True
        self.vapp.abort_migrations(run)
        self._show_summary()
        self.refresh_bindings()

    def action_back(self) -> None:
        self.dismiss()
