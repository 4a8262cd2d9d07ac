"""``v``: a domain's screen inside the app — its display, live, and keys typed into it.

The frames come from the driver's screen stream (several a second while the screen
changes, fewer while it does not; over SSH, PNG in the protocol's byte frames, only as fast
as the link takes them) and are drawn with the best picture protocol the terminal has
(:mod:`tui.graphics`), scaled to the pane with the guest's aspect ratio.

Every key goes to the guest's keyboard (:mod:`tui.screen_keys`) except ctrl+], which
returns to the table (as in the console), and ctrl+\\, which opens the "send special key"
menu for what a terminal cannot type (ctrl+alt+delete, ctrl+alt+F1…F12, SysRq). Clicks and
the wheel on the picture go to the guest's pointer (absolute: it needs a tablet,
``<input type='tablet'/>``). A
read-only host's screen can be watched, not typed on. A domain without a display says so
and points to its serial console.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from drivers.errors import NotSupported, VirtError
from drivers.keys import key_combo
from drivers.model import PointerButton, PointerMove
from tui import graphics
from tui.screen_keys import SPECIAL_KEYS, key_events
from tui.text import inert
from tui.widgets.footer import KeyFooter

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from drivers.model import InputEvent, Screenshot
    from tui.app import VirtdeckApp

__all__ = ["ScreenView", "SpecialKeys"]

ESCAPE_KEY = "ctrl+right_square_bracket"
ESCAPE_DISPLAY = "ctrl+]"
MENU_KEY = "ctrl+backslash"
MENU_DISPLAY = "ctrl+\\"
#: Frames a second while the screen changes, and the idle rate.
FPS = 10.0
IDLE_FPS = 1.0
#: The share of one core drawing frames may take: a bigger pane costs more per frame, so it
#: gets fewer frames (10 a second in an 80x24 terminal, about 5 in 200x50 with half-blocks).
CPU_BUDGET = 0.2
#: ... but never fewer than 2 frames a second.
MAX_INTERVAL = 0.5
#: Seconds of drawing the rate is judged on.
RATE_WINDOW = 1.0
#: Latencies kept for the status line and the benchmark.
KEEP = 200
#: Textual's mouse buttons, as the guest's pointer names them.
_BUTTONS = {1: "left", 2: "middle", 3: "right"}


def decode(data: bytes) -> PILImage:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class SpecialKeys(ModalScreen[tuple[str, ...] | None]):
    """The keys a terminal cannot send; the chosen one's qcodes, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="special_keys.cancel", tooltip="Send nothing"),
    ]
    DEFAULT_CSS = """
    SpecialKeys {
        align: center middle;
        & > OptionList {
            width: 52;
            height: auto;
            max-height: 80%;
            border: round $accent;
            background: $surface;
        }
    }
    """

    def compose(self) -> ComposeResult:
        options = OptionList(*(Option(words, id=str(i)) for i, (words, _) in
                               enumerate(SPECIAL_KEYS)), id="special-keys")  # fmt: skip
        options.border_title = "Send special key"
        yield options

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(SPECIAL_KEYS[int(event.option.id or 0)][1])

    def action_cancel(self) -> None:
        self.dismiss(None)


class ScreenView(Screen[None]):
    """The live screen of one domain.

    Args:
        host, uuid, name: the domain.
        writable: whether keys may go to it (False on read-only hosts).
        attach: start the frame stream on mount (snapshot tests show a fixed picture).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            ESCAPE_KEY,
            "back",
            "Back to the table",
            key_display=ESCAPE_DISPLAY,
            priority=True,
            id="screen.back",
            tooltip="Leave the screen (the guest keeps running), like ctrl+] in the console",
        ),
        Binding(
            MENU_KEY,
            "special_keys",
            "Special key",
            key_display=MENU_DISPLAY,
            priority=True,
            id="screen.special_keys",
            tooltip="Send a key the terminal cannot: ctrl+alt+delete, ctrl+alt+F1…F12, SysRq",
        ),
        Binding(
            "r",
            "reconnect",
            "Watch again",
            id="screen.reconnect",
            tooltip="Open the screen again (once it ended or could not be opened)",
        ),
        Binding(
            "escape,q",
            "back",
            "Back",
            show=False,
            id="screen.close",
            tooltip="Back to the table, once the screen is no longer shown",
        ),
    ]
    BINDING_GROUP_TITLE = "Screen"

    DEFAULT_CSS = """
    ScreenView {
        & #screen-pane {
            height: 1fr;
            align: center middle;
            background: $background;
        }
        & #screen-image {
            width: auto;
            height: auto;
        }
        & #screen-status {
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

    class Frame(Message):
        """A new picture of the screen."""

        def __init__(self, shot: Screenshot, image: PILImage) -> None:
            super().__init__()
            self.shot = shot
            self.image = image

    class Ended(Message):
        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    def __init__(
        self, host: str, uuid: str, name: str, *, writable: bool = True, attach: bool = True
    ) -> None:
        super().__init__(id="screen")
        self.host = host
        self.uuid = uuid
        self.domain = name
        self.writable = writable
        self.autostart = attach
        self.state = "opening"
        """opening, shown, ended, nodisplay or failed."""
        self.reason = ""
        self.size_px: tuple[int, int] | None = None
        self.frames = 0
        #: (captured, painted) CLOCK_MONOTONIC pairs of the last frames: their latency.
        self.painted: list[tuple[float, float]] = []
        self.keys_sent = 0
        #: Seconds between two frames drawn, and this process's share of a core meanwhile.
        self.interval = 1 / FPS
        self.usage = 0.0
        self._outbox: asyncio.Queue[list[InputEvent]] | None = None

    @property
    def vapp(self) -> VirtdeckApp:
        from tui.app import VirtdeckApp

        assert isinstance(self.app, VirtdeckApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Label(id="screen-title", classes="screen-title")
        with Container(id="screen-pane"):
            yield graphics.image_widget(id="screen-image")
        yield Static(id="screen-status")
        yield KeyFooter(own_only=True)

    def on_mount(self) -> None:
        self._show()
        if self.autostart:
            self._watch()

    # --- the stream --------------------------------------------------------------------------

    @work(group="screen", exclusive=True, exit_on_error=False, description="guest screen")
    async def _watch(self) -> None:
        dom = await self.vapp.connection(self.host).lookup_by_uuid(self.uuid)
        try:
            frames = await dom.screen_frames(FPS, IDLE_FPS)
        except NotSupported as err:
            self.post_message(self.Ended(err.message))
            self.state = "nodisplay"
            return
        outbox: asyncio.Queue[list[InputEvent]] = asyncio.Queue()
        self._outbox = outbox
        writer = asyncio.create_task(self._write(dom, outbox), name="screen-keys")
        reason = "the screen stream ended"
        try:
            while True:
                rate = await self._show_frames(frames)
                if rate is None:
                    break
                # The host paces the frames (they stay fresh): a new stream at the new rate.
                with contextlib.suppress(Exception):
                    await frames.aclose()  # type: ignore[attr-defined]
                frames = await dom.screen_frames(rate, min(IDLE_FPS, rate))
        except VirtError as err:
            reason = err.message
        finally:
            if self._outbox is outbox:
                self._outbox = None
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, VirtError):
                await writer
            with contextlib.suppress(Exception):
                await frames.aclose()  # type: ignore[attr-defined]
        self.post_message(self.Ended(reason))

    async def _show_frames(self, frames: AsyncIterator[Screenshot]) -> float | None:
        """Hand the stream's frames over until it ends (None) or drawing them takes more
        than the CPU budget, or much less than it while below the full rate: then the rate
        the last second's cost allows."""
        loop = asyncio.get_running_loop()
        window, window_cpu = loop.time(), time.process_time()
        async for shot in frames:
            self.post_message(self.Frame(shot, decode(shot.data)))
            now = loop.time()
            if now - window < RATE_WINDOW:
                continue
            self.usage = (time.process_time() - window_cpu) / (now - window)
            window, window_cpu = now, time.process_time()
            wanted = min(MAX_INTERVAL, max(1 / FPS, self.interval * self.usage / CPU_BUDGET))
            if abs(wanted - self.interval) > 0.25 * self.interval:
                self.interval = wanted
                return 1 / wanted
        return None

    @staticmethod
    async def _write(dom: Any, outbox: asyncio.Queue[list[InputEvent]]) -> None:
        """Send the keys as they come (those that came meanwhile together)."""
        while True:
            events = await outbox.get()
            while not outbox.empty():
                events += outbox.get_nowait()
            await dom.send_input(events)

    def send(self, events: list[InputEvent]) -> None:
        if self._outbox is not None and self.writable:
            self.keys_sent += 1
            self._outbox.put_nowait(events)

    # --- messages ----------------------------------------------------------------------------

    def on_screen_view_frame(self, message: Frame) -> None:
        self.show_image(message.image, message.shot)

    def show_image(self, image: PILImage, shot: Screenshot | None = None) -> None:
        """Draw ``image`` (a frame, or a fixed picture for screenshots and tests)."""
        graphics.show(self.query_one("#screen-image"), image)
        self.frames += 1
        first = self.size_px != image.size
        self.size_px = image.size
        if self.state != "shown":
            self._set_state("shown")
        elif first:
            self._show()
        if shot is not None:
            self.call_after_refresh(self._painted, shot.captured_monotonic)

    def _painted(self, captured: float) -> None:
        self.painted.append((captured, time.monotonic()))
        del self.painted[:-KEEP]

    def on_screen_view_ended(self, message: Ended) -> None:
        if self.state == "nodisplay" or "has no display" in message.reason:
            self._set_state("nodisplay", message.reason)
        else:
            self._set_state("ended", message.reason)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "screen" or event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        words = error.message if isinstance(error, VirtError) else str(error)
        self._set_state("failed", words)

    # --- keys --------------------------------------------------------------------------------

    def on_key(self, event: events.Key) -> None:
        if self.state != "shown":
            return  # the screen's own keys (r, escape, q) apply
        event.stop()
        event.prevent_default()
        found = key_events(event.key, event.character)
        if found:
            self.send(found)

    def _pointer(self, event: events.MouseEvent) -> PointerMove | None:
        """Where the mouse is on the guest's screen, in its pixels; None off the picture."""
        if self.state != "shown" or self.size_px is None:
            return None
        region = self.query_one("#screen-image").region
        x, y = event.screen_x - region.x, event.screen_y - region.y
        if not (0 <= x < region.width and 0 <= y < region.height):
            return None
        width, height = self.size_px
        return PointerMove(
            int((x + 0.5) * width / region.width),
            int((y + 0.5) * height / region.height),
            width,
            height,
        )

    def _click(self, event: events.MouseEvent, down: bool) -> None:
        where = self._pointer(event)
        button = _BUTTONS.get(event.button)
        if where is None or button is None:
            return
        event.stop()
        self.send([where, PointerButton(button, down)])

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self._click(event, True)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        self._click(event, False)

    def _wheel(self, event: events.MouseEvent, button: str) -> None:
        where = self._pointer(event)
        if where is None:
            return
        event.stop()
        self.send([where, PointerButton(button, True), PointerButton(button, False)])

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._wheel(event, "wheel-up")

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self._wheel(event, "wheel-down")

    def on_paste(self, event: events.Paste) -> None:
        if self.state != "shown":
            return
        event.stop()
        from drivers.keys import TYPABLE, text_events

        text = "".join(c for c in event.text.replace("\r\n", "\n") if c in TYPABLE)
        if text:
            self.send(text_events(text))

    # --- showing it --------------------------------------------------------------------------

    def _key_shown(self, binding_id: str, default: str, shown: str) -> str:
        """The key of a binding as shown: the default's display, or the keymap's keys."""
        keymap: dict[str, str] = getattr(self.app, "keymap_applied", {})
        key = keymap.get(binding_id, default)
        if key == default:
            return shown
        return ", ".join(
            self.app.get_key_display(Binding(k.strip(), "back")) for k in key.split(",")
        )

    def _set_state(self, state: str, reason: str = "") -> None:
        self.state = state
        self.reason = reason
        self.query_one(KeyFooter).show_own_only(state == "shown")
        self._show()
        self.refresh_bindings()

    def _show(self) -> None:
        name = inert(self.domain, one_line=True)
        title = Text()
        title.append(name, "bold")
        title.append(f" on {inert(self.host, one_line=True)} — screen")
        if self.size_px is not None:
            title.append(f" ({self.size_px[0]}x{self.size_px[1]})")
        self.query_one("#screen-title", Label).update(title)
        reason = inert(self.reason, one_line=True).rstrip(".")
        back = self._key_shown("screen.back", ESCAPE_KEY, ESCAPE_DISPLAY)
        menu = self._key_shown("screen.special_keys", MENU_KEY, MENU_DISPLAY)
        if self.state == "opening":
            words = f"Opening the screen of {name}…"
        elif self.state == "shown":
            typing = (
                "keys go to the guest" if self.writable else "this host is read-only: watching only"
            )
            words = (
                f"{typing}; {back} returns to the table, {menu} sends a special key "
                "(ctrl+alt+delete, ctrl+alt+F2 …)"
            )
        elif self.state == "nodisplay":
            words = f"{reason}. Press {back} and c for the serial console."
        elif self.state == "ended":
            words = f"The screen ended: {reason}. r opens it again."
        else:
            words = f"Could not show the screen: {reason}. r tries again."
        status = self.query_one("#screen-status", Static)
        status.update(Text(words))
        status.set_class(self.state in ("ended", "nodisplay"), "-ended")
        status.set_class(self.state == "failed", "-failed")

    # --- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "reconnect":
            return self.state in ("ended", "failed")
        if action == "special_keys":
            return self.state == "shown" and self.writable
        return True

    def action_back(self) -> None:
        self.dismiss()

    def action_reconnect(self) -> None:
        if self.state in ("ended", "failed"):
            self._set_state("opening")
            self._watch()

    def action_special_keys(self) -> None:
        if self.state != "shown" or not self.writable:
            return

        def chosen(qcodes: tuple[str, ...] | None) -> None:
            if qcodes:
                self.send(key_combo(qcodes, hold_ms=50))

        self.app.push_screen(SpecialKeys(), chosen)
