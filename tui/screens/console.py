"""``c``: a domain's serial console inside the app, in a terminal emulator.

Every key goes to the guest except ctrl+] (as in ``virsh console``), which returns to the
table; the guest keeps running. The console is attached in a worker owned by this screen
(leaving the screen ends it): one task reads what the guest writes and posts it here, where
the :class:`~tui.widgets.terminal.TerminalView` interprets it; another writes the keys the
view sends up. One client at a time may type: when another has the console the screen says
so and ``f`` takes it over (``virsh console --force``); when the stream ends (the domain
stopped, another client took over) it says why and offers ``r`` to attach again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Label, Static
from textual.worker import Worker, WorkerState

from drivers.errors import DomainBusy, VirtError
from tui.text import inert
from tui.widgets.footer import KeyFooter
from tui.widgets.terminal import TerminalView

if TYPE_CHECKING:
    from drivers.api import ConsoleStream
    from tui.app import VirtdeckApp

__all__ = ["ConsoleScreen"]

ESCAPE_KEY = "ctrl+right_square_bracket"
ESCAPE_DISPLAY = "ctrl+]"


class ConsoleScreen(Screen[None]):
    """The serial console of one domain.

    Args:
        host, uuid, name: the domain.
        force: take the console over from another client at once.
        attach: attach on mount (tests and screenshots show a view fed by hand).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            ESCAPE_KEY,
            "back",
            "Back to the table",
            key_display=ESCAPE_DISPLAY,
            priority=True,
            id="console.back",
            tooltip="Leave the console (the guest keeps running), like ctrl+] in virsh console",
        ),
        Binding(
            "r",
            "reconnect",
            "Attach again",
            id="console.reconnect",
            tooltip="Attach to the console again (once it has ended or could not attach)",
        ),
        Binding(
            "f",
            "force",
            "Take over",
            id="console.force",
            tooltip="Attach and take the console over from the client that has it "
            "(virsh console --force)",
        ),
        Binding(
            "escape,q",
            "back",
            "Back",
            show=False,
            id="console.close",
            tooltip="Back to the table, once the console is no longer attached",
        ),
    ]
    BINDING_GROUP_TITLE = "Console"

    DEFAULT_CSS = """
    ConsoleScreen {
        & #console-status {
            height: 1;
            padding: 0 1;
            background: $surface;
            color: $text-muted;
            &.-ended {
                color: $text-warning;
            }
            &.-failed {
                color: $text-error;
            }
        }
    }
    """

    class Attached(Message):
        """The console is attached; keys now go to the guest."""

    class Output(Message):
        """What the guest wrote."""

        def __init__(self, data: bytes) -> None:
            super().__init__()
            self.data = data

    class Ended(Message):
        """The console stream ended; ``reason`` says why."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    class Busy(Message):
        """Another client has the console."""

        def __init__(self, message: str) -> None:
            super().__init__()
            self.message = message

    def __init__(
        self, host: str, uuid: str, name: str, *, force: bool = False, attach: bool = True
    ) -> None:
        super().__init__(id="console")
        self.host = host
        self.uuid = uuid
        self.domain = name
        self.force = force
        self.autostart = attach
        self.state = "attaching"
        """attaching, attached, busy, ended or failed."""
        self.reason = ""
        """Why it ended, is busy or failed."""
        self._outbox: asyncio.Queue[bytes] | None = None

    @property
    def vapp(self) -> VirtdeckApp:
        from tui.app import VirtdeckApp

        assert isinstance(self.app, VirtdeckApp)
        return self.app

    @property
    def terminal(self) -> TerminalView:
        return self.query_one(TerminalView)

    def compose(self) -> ComposeResult:
        yield Label(id="console-title", classes="screen-title")
        yield TerminalView(id="terminal")
        yield Static(id="console-status")
        yield KeyFooter(own_only=True)

    def on_mount(self) -> None:
        self._show()
        self.terminal.focus()
        if self.autostart:
            self._open_console(self.force)

    # --- the session -----------------------------------------------------------------------

    @work(group="console", exclusive=True, exit_on_error=False, description="serial console")
    async def _open_console(self, force: bool) -> None:
        dom = await self.vapp.connection(self.host).lookup_by_uuid(self.uuid)
        try:
            stream = await dom.console(force=force)
        except DomainBusy as err:
            self.post_message(self.Busy(err.message))
            return
        outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._outbox = outbox
        self.post_message(self.Attached())
        writer = asyncio.create_task(self._write(stream, outbox), name="console-keys")
        try:
            while data := await stream.read():
                self.post_message(self.Output(data))
        finally:
            if self._outbox is outbox:
                self._outbox = None
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, VirtError):
                await writer
            with contextlib.suppress(VirtError):
                await stream.close()
        self.post_message(self.Ended(stream.ended or "the console stream ended"))

    @staticmethod
    async def _write(stream: ConsoleStream, outbox: asyncio.Queue[bytes]) -> None:
        """Send the keys as they come (those that came meanwhile together)."""
        while True:
            parts = [await outbox.get()]
            while not outbox.empty():
                parts.append(outbox.get_nowait())
            await stream.write(b"".join(parts))

    def send(self, data: bytes) -> None:
        """Bytes for the guest (the worker's writer sends them)."""
        if self._outbox is not None:
            self._outbox.put_nowait(data)

    @on(TerminalView.Input)
    def _keys(self, message: TerminalView.Input) -> None:
        message.stop()
        self.send(message.data)

    @on(TerminalView.TitleChanged)
    def _title(self, message: TerminalView.TitleChanged) -> None:
        message.stop()
        self._show()

    def on_console_screen_output(self, message: Output) -> None:
        self.terminal.feed(message.data)

    def on_console_screen_attached(self, message: Attached) -> None:
        self._set_state("attached")

    def on_console_screen_ended(self, message: Ended) -> None:
        self._set_state("ended", message.reason)

    def on_console_screen_busy(self, message: Busy) -> None:
        self._set_state("busy", message.message)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The app shows the error (its one place); the status line says the console is off.
        if event.worker.group != "console" or event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        words = error.message if isinstance(error, VirtError) else str(error)
        self._set_state("failed", words)

    def replay(self, data: bytes) -> None:
        """Show fixed guest output as if attached (screenshots and snapshot tests, with
        ``attach=False``)."""
        self._set_state("attached")
        self.terminal.feed(data)

    # --- showing it --------------------------------------------------------------------------

    def _set_state(self, state: str, reason: str = "") -> None:
        self.state = state
        self.reason = reason
        self.terminal.passthrough = state == "attached"
        self.query_one(KeyFooter).show_own_only(state == "attached")
        self._show()
        self.refresh_bindings()

    @property
    def escape_key(self) -> str:
        """The key that returns to the table, as shown (ctrl+] unless the keymap moved it)."""
        keymap: dict[str, str] = getattr(self.app, "keymap_applied", {})
        key = keymap.get("console.back", ESCAPE_KEY)
        if key == ESCAPE_KEY:
            return ESCAPE_DISPLAY
        return ", ".join(
            self.app.get_key_display(Binding(k.strip(), "back")) for k in key.split(",")
        )

    def _show(self) -> None:
        name = inert(self.domain, one_line=True)
        host = inert(self.host, one_line=True)
        title = Text()
        title.append(name, "bold")
        title.append(f" on {host} — serial console")
        guest_title = self.terminal.title
        if guest_title:
            title.append(f" — {inert(guest_title, one_line=True)}")
        self.query_one("#console-title", Label).update(title)
        reason = inert(self.reason, one_line=True).rstrip(".")
        state = self.state
        if state == "attaching":
            words = f"Attaching to the console of {name}…"
        elif state == "attached":
            emulator = self.terminal.emulator
            words = (
                f"Attached ({emulator.columns}x{emulator.lines}): keys go to the guest; "
                f"{self.escape_key} returns to the table. Press enter if the screen stays empty."
            )
        elif state == "busy":
            words = f"{reason}. f takes it over (the other client is let go); r tries again."
        elif state == "ended":
            words = f"The console ended: {reason}. r attaches again, f takes it over."
        else:
            words = f"Could not attach: {reason}. r tries again."
        status = self.query_one("#console-status", Static)
        status.update(Text(words))
        status.set_class(state in ("ended", "busy"), "-ended")
        status.set_class(state == "failed", "-failed")

    def on_resize(self) -> None:
        if self.state == "attached":
            self.call_after_refresh(self._show)

    # --- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("reconnect", "force"):
            return self.state in ("ended", "busy", "failed")
        return True

    def action_back(self) -> None:
        self.dismiss()

    def action_reconnect(self) -> None:
        if self.state in ("ended", "busy", "failed"):
            self._set_state("attaching")
            self._open_console(False)

    def action_force(self) -> None:
        if self.state in ("ended", "busy", "failed"):
            self._set_state("attaching")
            self._open_console(True)
