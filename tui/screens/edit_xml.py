"""``e``: edit a domain's XML in the app or in ``$EDITOR``, check it, confirm a diff, save.

:class:`EditXmlScreen` loads the definition the next boot uses (``xml(inactive=True)``)
into a TextArea. Saving checks the text with :func:`drivers.domxml.parse_domain` (a problem
shows under the editor and the cursor stays where it was), then shows the changes as a
unified diff in :class:`XmlDiffScreen`; only a confirmed diff is defined, in a worker. For
a running domain the new definition applies to the next boot, and the screen says so.

``ctrl+e`` hands the terminal to ``$VISUAL``/``$EDITOR`` (``vi`` when neither is set)
through ``App.suspend()``, on a private temporary file, and reads the result back.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from typing import ClassVar

from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.content import Content, Span
from textual.message import Message
from textual.widgets import Button, Static, TextArea
from textual.worker import Worker, WorkerState

from drivers.api import Connection
from drivers.domxml import parse_domain
from drivers.errors import InvalidXML, VirtError
from tui.screens.dialogs import ConfirmScreen, FramedDialog
from tui.text import inert, inert_xml
from tui.widgets.footer import key_hints

__all__ = [
    "EditXmlScreen",
    "EditorError",
    "XmlDiffScreen",
    "diff_content",
    "edit_externally",
    "editor_command",
    "xml_diff",
]

NEXT_BOOT = "the new definition applies to the next boot; the running domain keeps its current one"


class EditorError(Exception):
    """The external editor could not be used; the message is a sentence for the user."""


def editor_command(environ: Mapping[str, str] | None = None) -> list[str]:
    """``$VISUAL``, else ``$EDITOR``, else ``vi``, split into words like a shell would."""
    env = os.environ if environ is None else environ
    command = env.get("VISUAL") or env.get("EDITOR") or "vi"
    try:
        words = shlex.split(command)
    except ValueError as err:
        raise EditorError(f"The editor command {command!r} cannot be read: {err}.") from None
    if not words:
        raise EditorError("$VISUAL or $EDITOR is blank; set it to an editor, e.g. EDITOR=nano.")
    return words


def edit_externally(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Let the user's editor change ``text``; returns the edited text.

    The text goes to a temporary file only the user can read (mode 0600), which is removed
    afterwards. Call this while the app is suspended: the editor owns the terminal.

    Raises:
        EditorError: the editor is missing, failed, or left something that is not text.
    """
    argv = editor_command(environ)
    fd, path = tempfile.mkstemp(prefix="virtdeck-", suffix=".xml")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        try:
            result = subprocess.run([*argv, path], check=False)
        except FileNotFoundError:
            raise EditorError(
                f"The editor {argv[0]!r} was not found; set $VISUAL or $EDITOR to an "
                "installed editor, e.g. EDITOR=nano."
            ) from None
        except OSError as err:
            raise EditorError(f"The editor {argv[0]!r} could not run: {err.strerror}.") from None
        if result.returncode != 0:
            raise EditorError(
                f"The editor {argv[0]!r} exited with status {result.returncode}; the XML was "
                "left as it was."
            )
        try:
            with open(path, encoding="utf-8") as file:
                return file.read()
        except UnicodeDecodeError:
            raise EditorError(
                "The edited file is not UTF-8 text; the XML was left as it was."
            ) from None
        except OSError as err:
            raise EditorError(f"The edited file could not be read: {err.strerror}.") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def xml_language() -> str | None:
    """'xml' when this Textual build can highlight XML in a TextArea (tree-sitter), else None."""
    if find_spec("tree_sitter") is None or find_spec("tree_sitter_xml") is None:
        return None
    return "xml"


def xml_diff(name: str, old: str, new: str) -> list[str]:
    """The unified diff of two versions of a definition, one line per item."""
    return list(
        difflib.unified_diff(
            old.splitlines(),
            new.splitlines(),
            f"{name} (saved)",
            f"{name} (edited)",
            lineterm="",
        )
    )


def diff_content(lines: list[str]) -> Content:
    """Diff lines made inert and coloured with theme variables: + success, - error."""
    text_lines: list[str] = []
    spans: list[Span] = []
    offset = 0
    for line in lines:
        shown = inert(line, one_line=True)
        if line.startswith(("+++", "---")):
            style = "$text-muted bold"
        elif line.startswith("@@"):
            style = "$text-accent"
        elif line.startswith("+"):
            style = "$text-success"
        elif line.startswith("-"):
            style = "$text-error"
        else:
            style = ""
        if style:
            spans.append(Span(offset, offset + len(shown), style))
        text_lines.append(shown)
        offset += len(shown) + 1
    return Content("\n".join(text_lines), spans)


class XmlDiffScreen(FramedDialog[bool]):
    """The changes about to be saved; dismisses True to save them, False to go back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s",
            "answer(True)",
            "Save",
            id="edit_xml.diff.confirm",
            tooltip="Save the new definition",
        ),
        Binding(
            "escape",
            "answer(False)",
            "Back",
            id="edit_xml.diff.back",
            tooltip="Back to the editor; nothing is saved",
        ),
    ]

    DEFAULT_CSS = """
    XmlDiffScreen {
        #xd-dialog {
            width: 90%;
            max-width: 120;
            height: 80%;
        }
        #xd-note {
            color: $text-warning;
            margin-bottom: 1;
        }
        #xd-scroll {
            height: 1fr;
            background: $background;
        }
        #xd-diff {
            width: auto;
            text-wrap: nowrap;
        }
    }
    """

    def __init__(self, name: str, lines: list[str], active: bool) -> None:
        super().__init__()
        self.domain_name = name
        self.lines = lines
        self.active = active

    def compose(self) -> ComposeResult:
        with Vertical(id="xd-dialog", classes="dialog-frame"):
            if self.active:
                yield Static(
                    Text(inert(f"{self.domain_name} is running: {NEXT_BOOT}.")), id="xd-note"
                )
            with ScrollableContainer(id="xd-scroll"):
                yield Static(diff_content(self.lines), id="xd-diff")
            with Horizontal(id="xd-buttons", classes="dialog-buttons"):
                yield Static(id="xd-keys", classes="keys")
                yield Button("Back", id="back")
                yield Button("Save", id="confirm", variant="primary")

    def on_mount(self) -> None:
        dialog = self.query_one("#xd-dialog")
        dialog.border_title = Text(f"Save the changes to {inert(self.domain_name, one_line=True)}?")
        self.query_one("#xd-keys", Static).update(key_hints(self))
        self.query_one("#confirm", Button).focus()

    def action_answer(self, save: bool) -> None:
        self.dismiss(save)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")


class EditXmlScreen(FramedDialog[bool]):
    """Edit one domain's persistent definition; dismisses True once a new one is saved.

    Args:
        conn: the live connection of the domain's host.
        name: the domain's name.
        active: whether the domain runs (or is paused): then the change applies to the next
            boot, which the screen says.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s",
            "save",
            "Save",
            id="edit_xml.save",
            tooltip="Check the XML, show what changed and save it",
        ),
        Binding(
            "ctrl+e",
            "external_editor",
            "Open in $EDITOR",
            id="edit_xml.editor",
            priority=True,
            tooltip="Edit the XML in $VISUAL or $EDITOR (vi if neither is set)",
        ),
        Binding(
            "escape",
            "cancel",
            "Cancel",
            id="edit_xml.cancel",
            # ahead of the text area's own escape (leave the text area), so that one
            # press closes the editor; the buttons have keys of their own
            priority=True,
            tooltip="Close without saving (asks first if you changed anything)",
        ),
    ]

    DEFAULT_CSS = """
    EditXmlScreen {
        #ex-dialog {
            width: 100%;
            max-width: 150;
            height: 100%;
        }
        #ex-note {
            color: $text-warning;
        }
        #ex-editor {
            height: 1fr;
        }
    }
    """

    @dataclass
    class Loaded(Message, bubble=False):
        """The definition to edit."""

        xml: str

    @dataclass
    class Failed(Message, bubble=False):
        """Loading or saving failed; ``message`` is the driver's sentence."""

        message: str

    @dataclass
    class Saved(Message, bubble=False):
        """The new definition is saved."""

    editor = getters.query_one("#ex-editor", TextArea)
    status = getters.query_one("#ex-status", Static)

    def __init__(
        self,
        conn: Connection,
        name: str,
        active: bool,
        *,
        host: str | None = None,
    ) -> None:
        super().__init__()
        self.conn = conn
        self.domain_name = name
        self.active = active
        self.host = host
        """Only shown in the title, when given."""
        self.original: str | None = None
        """The definition as loaded; None until it is."""
        self.pending: str | None = None
        """The text being saved (confirmed in the diff, define in flight)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="ex-dialog", classes="dialog-frame"):
            if self.active:
                yield Static(
                    Text(inert(f"{self.domain_name} is running: {NEXT_BOOT}.")), id="ex-note"
                )
            yield TextArea(
                "",
                language=xml_language(),
                soft_wrap=False,
                tab_behavior="indent",
                show_line_numbers=True,
                read_only=True,
                id="ex-editor",
            )
            yield Static(
                Text(inert(f"Reading the definition of {self.domain_name}…")),
                id="ex-status",
                classes="dialog-status",
            )
            with Horizontal(id="ex-buttons", classes="dialog-buttons"):
                yield Static(id="ex-keys", classes="keys")
                yield Button("Open in $EDITOR", id="external", disabled=True)
                yield Button("Save", id="save", variant="primary", disabled=True)
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        where = f" on {self.host}" if self.host else ""
        title = inert(f"Edit XML: {self.domain_name}{where}", one_line=True)
        self.query_one("#ex-dialog").border_title = Text(title)
        self.query_one("#ex-keys", Static).update(key_hints(self))
        self.editor.focus()
        self._load()

    # --- loading -----------------------------------------------------------------------------

    @work(group="edit-xml", exclusive=True, exit_on_error=False, description="read the XML")
    async def _load(self) -> None:
        try:
            dom = await self.conn.lookup(self.domain_name)
            xml = await dom.xml(inactive=True)
        except VirtError as err:
            self.post_message(self.Failed(err.message))
            return
        self.post_message(self.Loaded(xml))

    def on_edit_xml_screen_loaded(self, message: Loaded) -> None:
        # Characters a terminal would obey (C1 controls, bidi overrides) become character
        # references: the same document, but inert on screen.
        self.original = inert_xml(message.xml)
        editor = self.editor
        editor.load_text(self.original)
        editor.read_only = False
        editor.move_cursor((0, 0))
        self._say("")
        self._show_busy()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Driver errors come back as messages; this catches the unexpected ones (which the
        # app reports too), so the screen never stays stuck.
        if event.worker.group != "edit-xml":
            return
        if event.state in (WorkerState.ERROR, WorkerState.CANCELLED) and self.pending:
            error = event.worker.error
            self.pending = None
            self._say(f"Saving failed: {type(error).__name__}: {error}", error=True)
            self._show_busy()

    def on_edit_xml_screen_failed(self, message: Failed) -> None:
        self.pending = None
        self._say(message.message, error=True)
        self._show_busy()

    # --- state -------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while nothing can be done: loading, or a save in flight."""
        return self.original is None or self.pending is not None

    def _show_busy(self) -> None:
        """Enable or disable what :attr:`busy` governs."""
        for button_id in ("#save", "#external"):
            self.query_one(button_id, Button).disabled = self.busy
        self.refresh_bindings()

    def _say(self, message: str, *, error: bool = False) -> None:
        self.status.update(Text(inert(message)))
        self.status.set_class(error, "-error")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("save", "external_editor"):
            return None if self.busy else True
        return True

    # --- saving ------------------------------------------------------------------------------

    def check_text(self, text: str) -> str | None:
        """Why ``text`` cannot replace the definition, or None."""
        assert self.original is not None
        try:
            edited = parse_domain(text)
        except InvalidXML as err:
            return err.message
        if edited.name != self.domain_name:
            return (
                f"The <name> was changed to {edited.name!r}; renaming is not supported here, "
                f"so keep <name>{self.domain_name}</name>."
            )
        try:
            uuid = parse_domain(self.original).uuid
        except InvalidXML:
            return None  # the driver's own XML; let the driver judge
        if edited.uuid != uuid:
            return (
                f"The <uuid> differs from {self.domain_name}'s; it would describe another "
                f"domain, so keep <uuid>{uuid}</uuid>."
            )
        return None

    def action_save(self) -> None:
        """Check the text; if it is valid and changed, show the diff to confirm."""
        if self.busy or self.original is None:
            return
        text = self.editor.text
        problem = self.check_text(text)
        if problem is not None:
            self._say(problem, error=True)
            return
        if text == self.original:
            self._say("Nothing has changed.")
            return
        self._say("")

        def answered(save: bool | None) -> None:
            if save:
                self.pending = text
                self._say(f"Saving the definition of {self.domain_name}…")
                self._show_busy()
                self._define(text, original)
            else:
                self.editor.focus()

        original = self.original
        lines = xml_diff(self.domain_name, original, text)
        self.app.push_screen(XmlDiffScreen(self.domain_name, lines, self.active), answered)

    @work(group="edit-xml", exclusive=True, exit_on_error=False, description="save the XML")
    async def _define(self, text: str, original: str) -> None:
        try:
            dom = await self.conn.lookup(self.domain_name)
            if inert_xml(await dom.xml(inactive=True)) != original:
                self.post_message(
                    self.Failed(
                        f"The definition of {self.domain_name} was changed by someone else "
                        "since it was loaded; nothing was saved. Copy your changes, cancel "
                        "and open the editor again."
                    )
                )
                return
            await self.conn.define_xml(text)
        except VirtError as err:
            self.post_message(self.Failed(err.message))
            return
        self.post_message(self.Saved())

    def on_edit_xml_screen_saved(self, message: Saved) -> None:
        name = inert(self.domain_name, one_line=True)
        if self.active:
            text = f"Saved the definition of {name}; {NEXT_BOOT}."
        else:
            text = f"Saved the definition of {name}."
        self.app.notify(text, title="XML saved", markup=False)
        self.dismiss(True)

    # --- the external editor -----------------------------------------------------------------

    def action_external_editor(self) -> None:
        """Edit the text in $VISUAL/$EDITOR with the app suspended, then load the result."""
        if self.busy:
            return
        before = self.editor.text
        problem: str | None = None
        edited = before
        try:
            with self.app.suspend():
                # Errors are caught inside: an exception leaving suspend() would keep the
                # app suspended.
                try:
                    edited = edit_externally(before)
                except EditorError as err:
                    problem = str(err)
        except SuspendNotSupported:
            problem = "This terminal cannot be handed over to an editor; edit the XML here."
        if problem is not None:
            self._say(problem, error=True)
            return
        self.load_edited(edited)

    def load_edited(self, text: str) -> None:
        """Put text from the external editor into the TextArea (undoable)."""
        editor = self.editor
        if text != editor.text:
            cursor = editor.cursor_location
            editor.replace(text, editor.document.start, editor.document.end)
            lines = editor.document.line_count
            row = min(cursor[0], lines - 1)
            editor.move_cursor((row, min(cursor[1], len(editor.document[row]))))
            self._say("Loaded the editor's changes; press ctrl+s to check and save them.")
        else:
            self._say("The editor made no changes.")
        editor.focus()

    # --- buttons -----------------------------------------------------------------------------

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#external")
    def _external_pressed(self) -> None:
        self.action_external_editor()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        if self.pending is not None:
            return
        if self.original is None or self.editor.text == self.original:
            self.dismiss(False)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(False)
            else:
                self.editor.focus()

        self.app.push_screen(
            ConfirmScreen(
                "Discard",
                f"Discard your changes to {self.domain_name}'s XML?",
                "Nothing has been saved.",
            ),
            answered,
        )
