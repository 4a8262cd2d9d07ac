"""``l``: a domain's console log — what its serial console printed since boot, kept by the
host even while nobody was attached — with the time of each line, follow mode and search.

The lines come from ``Domain.console_log(follow=True)`` in a worker owned by this screen:
first the scrollback from boot, then each new line. Guest text can hold anything, so each
line is shown as plain, inert text (:func:`tui.text.plain_line`: escape sequences taken
out, control characters escaped). ``/`` searches (case does not matter), ``n``/``N`` go to
the next/previous match, ``f`` follows the end, ``escape`` goes back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Label, Static
from textual.worker import Worker, WorkerState

from drivers.errors import VirtError
from drivers.model import ConsoleLine
from tui.text import inert, plain_line
from tui.widgets.footer import KeyFooter
from tui.widgets.log_view import LogLine, LogView

if TYPE_CHECKING:
    from tui.app import VirtdeckApp

__all__ = ["LogsScreen"]


class LogsScreen(Screen[None]):
    """The console log of one domain."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back", id="logs.back", tooltip="Back to the domain table"),
        Binding(
            "slash", "search", "Search", id="logs.search", tooltip="Find text in the log (any case)"
        ),
        Binding("n", "next", "Next", id="logs.next", tooltip="Go to the next match"),
        Binding(
            "N", "previous", "Previous", id="logs.previous", tooltip="Go to the previous match"
        ),
        Binding(
            "f",
            "follow",
            "Follow",
            id="logs.follow",
            tooltip="Follow the end of the log as lines arrive (on, off)",
        ),
        Binding(
            "r",
            "reload",
            "Read again",
            id="logs.reload",
            tooltip="Read the log again from the start (after it ended)",
        ),
    ]
    BINDING_GROUP_TITLE = "Console log"

    DEFAULT_CSS = """
    LogsScreen {
        & #logs-search {
            dock: bottom;
            height: 3;
            margin: 0 0 2 0;
            border: tall $primary;
            &.-hidden {
                display: none;
            }
        }
        & #logs-status {
            height: 1;
            padding: 0 1;
            background: $surface;
            color: $text-muted;
        }
    }
    """

    class Lines(Message):
        """More lines were read (the screen takes what the worker gathered)."""

    class Ended(Message):
        """The log ended (the domain's run is over, or the host stopped sending)."""

    def __init__(self, host: str, uuid: str, name: str, *, read: bool = True) -> None:
        super().__init__(id="logs")
        self.host = host
        self.uuid = uuid
        self.domain = name
        self.autostart = read
        self.state = "reading"
        """reading, following, ended or failed."""
        self.reason = ""
        self._pending: list[ConsoleLine] = []

    @property
    def vapp(self) -> VirtdeckApp:
        from tui.app import VirtdeckApp

        assert isinstance(self.app, VirtdeckApp)
        return self.app

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def compose(self) -> ComposeResult:
        yield Label(id="logs-title", classes="screen-title")
        yield LogView(id="log")
        yield Input(placeholder="search: text in the log (any case)", id="logs-search")
        yield Static(id="logs-status")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#logs-search", Input).add_class("-hidden")
        self.watch(self.view, "follow", lambda _: self._show(), init=False)
        self.view.focus()
        self._show()
        if self.autostart:
            self._read()

    # --- reading -----------------------------------------------------------------------------

    @work(group="logs", exclusive=True, exit_on_error=False, description="console log")
    async def _read(self) -> None:
        dom = await self.vapp.connection(self.host).lookup_by_uuid(self.uuid)
        pending = self._pending
        async for line in dom.console_log(follow=True):
            pending.append(line)
            if len(pending) == 1:  # the screen takes all that came until it gets to it
                self.post_message(self.Lines())
        self.post_message(self.Ended())

    def add_lines(self, lines: list[ConsoleLine]) -> None:
        """Show more lines (the worker's, or fixed ones for screenshots)."""
        self.view.add([LogLine(line.wall, plain_line(line.text), line.exact) for line in lines])
        self._show()

    def replay(self, lines: list[ConsoleLine]) -> None:
        """Show fixed lines as if read and followed (screenshots, with ``read=False``)."""
        self.state = "following"
        self.add_lines(lines)

    def on_logs_screen_lines(self, message: Lines) -> None:
        lines, self._pending[:] = list(self._pending), []
        if self.state == "reading":
            self.state = "following"
        self.add_lines(lines)

    def on_logs_screen_ended(self, message: Ended) -> None:
        if self._pending:
            self.on_logs_screen_lines(self.Lines())
        self.state = "ended"
        self._show()
        self.refresh_bindings()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The app shows the error (its one place); the status line says the log is off.
        if event.worker.group != "logs" or event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        self.state = "failed"
        self.reason = error.message if isinstance(error, VirtError) else str(error)
        self._show()
        self.refresh_bindings()

    # --- showing it --------------------------------------------------------------------------

    def _show(self) -> None:
        view = self.view
        count = len(view.lines)
        title = Text()
        title.append(inert(self.domain, one_line=True), "bold")
        title.append(f" on {inert(self.host, one_line=True)} — console log, ")
        title.append(f"{count:,} line{'s' if count != 1 else ''} since boot")
        if any(not line.exact for line in view.lines[:1]) or any(
            not line.exact for line in view.lines[-1:]
        ):
            title.append(" · ≈ time read later, not when written", "dim")
        self.query_one("#logs-title", Label).update(title)
        parts: list[str] = []
        if self.state == "reading":
            parts.append("Reading the log…")
        elif self.state == "following":
            parts.append("following new lines" if view.follow else "not following (f follows)")
        elif self.state == "ended":
            parts.append("the log has ended (the domain is not running); r reads it again")
        else:
            parts.append(f"Could not read the log: {inert(self.reason, one_line=True)}")
        if view.search:
            found = len(view.matches)
            where = f"{view.current + 1} of {found}" if view.current >= 0 else f"{found} found"
            needle = inert(view.search, one_line=True)
            parts.append(f"search “{needle}”: {where if found else 'no match'}")
        self.query_one("#logs-status", Static).update(Text(" · ".join(parts)))

    # --- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("next", "previous"):
            return True if self.view.matches else None
        if action == "reload":
            return self.state in ("ended", "failed")
        return True

    def _search_box(self) -> Input | None:
        try:
            return self.query_one("#logs-search", Input)
        except NoMatches:
            return None

    def action_back(self) -> None:
        box = self._search_box()
        if box is not None and box.has_focus:
            if not box.value:
                box.add_class("-hidden")
            self.view.focus()
            return
        self.dismiss()

    def action_search(self) -> None:
        box = self._search_box()
        if box is not None:
            box.remove_class("-hidden")
            box.focus()

    def action_next(self) -> None:
        self.view.jump(1)
        self._show()

    def action_previous(self) -> None:
        self.view.jump(-1)
        self._show()

    def action_follow(self) -> None:
        view = self.view
        if view.follow:
            view.follow = False
        else:
            view.action_scroll_end()
        self._show()

    def action_reload(self) -> None:
        if self.state not in ("ended", "failed"):
            return
        view = self.view
        view.lines.clear()
        view.set_search(view.search)
        view.add([])
        view.refresh()
        self.state = "reading"
        self._show()
        self.refresh_bindings()
        self._read()

    @on(Input.Changed, "#logs-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.view.set_search(event.value)
        self._show()
        self.refresh_bindings()

    @on(Input.Submitted, "#logs-search")
    def _search_done(self, event: Input.Submitted) -> None:
        event.input.add_class("-hidden")  # the status line keeps the search; / edits it
        self.view.focus()
        self.view.jump(1)
        self._show()
