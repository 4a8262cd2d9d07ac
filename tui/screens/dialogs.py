"""Confirmations scaled to the danger: a yes/no question, or words to type."""

from __future__ import annotations

from typing import ClassVar, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from tui.text import inert

_Result = TypeVar("_Result")


class FramedDialog(ModalScreen[_Result]):
    """A large dialog (a form, an editor) in a frame over the screen, which ModalScreen
    dims.

    The subclasses' frame is the container with the ``dialog-frame`` class; they size it.
    Under their content they may put a ``dialog-status`` line (``-error`` when it reports a
    failure) and a ``dialog-buttons`` row: its ``keys`` line on the left, buttons right.
    """

    DEFAULT_CSS = """
    FramedDialog {
        align: center middle;

        & .dialog-frame {
            background: $surface;
            border: thick $primary;
            border-title-color: $text;
            border-title-style: bold;
            padding: 0 1;
        }
        & .dialog-status {
            height: auto;
            color: $text-muted;
            &.-error {
                color: $text-error;
            }
        }
        & .dialog-buttons {
            height: auto;
            & > Button {
                margin-left: 1;
            }
            & > .keys {
                width: 1fr;
                height: 3;
                content-align: left middle;
            }
        }
    }
    """


class Dialog(ModalScreen[_Result]):
    """A small dialog over the dimmed screen: a confirmation, the help, the host form.

    Its content goes in a ``#dialog`` container (``-danger`` for a dangerous question); the
    helpers below give it a title, a question, a detail line and a row of buttons.
    """

    DEFAULT_CSS = """
    Dialog {
        align: center middle;

        & #dialog {
            width: 72;
            max-width: 95%;
            height: auto;
            max-height: 90%;
            padding: 1 2;
            background: $surface;
            border: thick $primary;
            &.-danger {
                border: thick $error;
            }
        }
        & #dialog-title {
            text-style: bold;
            color: $text;
            margin-bottom: 1;
        }
        & #dialog-question {
            margin-bottom: 1;
        }
        & #dialog-detail {
            color: $text-muted;
        }
        & #dialog-buttons {
            height: auto;
            margin-top: 1;
            align-horizontal: right;
            & > Button {
                margin-left: 2;
            }
        }
    }
    """


def _heading(title: str, question: str, detail: str) -> ComposeResult:
    """A confirmation's title, question and (if any) detail, all shown inert."""
    yield Label(Text(inert(title, one_line=True)), id="dialog-title")
    yield Static(Text(inert(question)), id="dialog-question")
    if detail:
        yield Static(Text(inert(detail)), id="dialog-detail")


class ConfirmScreen(Dialog[bool]):
    """Yes or no; ``y``/``n`` answer, ``escape`` is no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="Go ahead"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no", tooltip="Leave it be"),
    ]

    def __init__(self, title: str, question: str, detail: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="-danger"):
            yield from _heading(self.title_text, self.question, self.detail)
            with Horizontal(id="dialog-buttons"):
                yield Button("No", id="no", variant="default", compact=True)
                yield Button(
                    f"Yes, {self.title_text.lower()}", id="yes", variant="error", compact=True
                )

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TypedConfirmScreen(Dialog[bool]):
    """Type each required word (a domain's name, a protected host's name) to go ahead."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="confirm.cancel", tooltip="Leave it be"),
    ]

    DEFAULT_CSS = """
    TypedConfirmScreen {
        & .field-label {
            margin-top: 1;
            color: $text-muted;
        }
        & Input.typed {
            margin-top: 1;
            background: $panel;
        }
    }
    """

    def __init__(
        self,
        title: str,
        question: str,
        detail: str,
        fields: list[tuple[str, str]],
        option: str | None = None,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.question = question
        self.detail = detail
        self.fields = fields
        self.option = option
        """A checkbox offered with the confirmation (e.g. delete the disk images too)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="-danger"):
            yield from _heading(self.title_text, self.question, self.detail)
            for index, (prompt, _) in enumerate(self.fields):
                yield Label(Text(inert(prompt, one_line=True)), classes="field-label")
                yield Input(id=f"word-{index}", classes="typed", compact=True)
            if self.option is not None:
                yield Checkbox(Text(inert(self.option, one_line=True)), id="option", compact=True)
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="no", variant="default", compact=True)
                yield Button(
                    self.title_text, id="yes", variant="error", disabled=True, compact=True
                )

    def on_mount(self) -> None:
        self.query_one("#word-0", Input).focus()

    def _complete(self) -> bool:
        return all(
            self.query_one(f"#word-{i}", Input).value == word
            for i, (_, word) in enumerate(self.fields)
        )

    @on(Input.Changed)
    def _typed(self) -> None:
        self.query_one("#yes", Button).disabled = not self._complete()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if self._complete():
            self.dismiss(True)
            return
        inputs = list(self.query(Input))
        index = inputs.index(event.input)
        inputs[(index + 1) % len(inputs)].focus()

    @property
    def option_chosen(self) -> bool:
        """Whether the offered checkbox was ticked."""
        return self.option is not None and self.query_one("#option", Checkbox).value

    def action_cancel(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes" and self._complete())
