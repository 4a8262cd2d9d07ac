"""The footer: the screen's keys on one line, drawn as one widget.

It looks and behaves like Textual's ``Footer`` (the same theme variables, the command
palette's key at the right, disabled keys dimmed, a click presses the key, hovering shows its
tooltip), but it is a single widget that paints a line of text. Textual's footer mounts a
widget per key and remounts them all whenever the bindings change: a dozen widgets to style
before the first paint (about 30 ms of virtdeck's start-up) and again whenever the cursor
reaches a row where other actions apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, NamedTuple

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget

from tui.text import inert


def shown_bindings(
    screen: Screen[Any], *, own_only: bool = False
) -> Iterator[tuple[Binding, bool, str]]:
    """The bindings a key line shows for ``screen``: (binding, enabled, tooltip), one per
    action, in the screen's order; ``own_only`` leaves out those of the focused widgets."""
    seen: set[str] = set()
    for node, binding, enabled, tooltip in screen.active_bindings.values():
        if not binding.show or binding.action in seen or (own_only and node is not screen):
            continue
        seen.add(binding.action)
        yield binding, enabled, tooltip


def key_hints(screen: Screen[Any]) -> Content:
    """The screen's own shown bindings as ``key description`` pairs (keymap applied).

    The forms show these instead of a Footer: a Footer rebuilds itself on every focus
    change, which costs a form of this size a noticeable pause per Tab.
    """
    parts = [
        Content.assemble(
            (inert(screen.app.get_key_display(binding), one_line=True), "$text-accent bold"),
            " ",
            (binding.description, "$text-muted"),
        )
        for binding, _, _ in shown_bindings(screen, own_only=True)
    ]
    return Content("  ").join(parts)


class FooterItem(NamedTuple):
    """One key as the footer shows it."""

    key: str
    display: str
    description: str
    enabled: bool
    tooltip: str


class KeyFooter(Widget, can_focus=False):
    """The active bindings of the screen, one line at the bottom."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "key-footer--item",
        "key-footer--key",
        "key-footer--description",
        "key-footer--separator",
        "key-footer--hover",
    }
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        & > .key-footer--item {
            background: $footer-item-background;
        }
        & > .key-footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .key-footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        & > .key-footer--separator {
            color: $foreground 20%;
        }
        & > .key-footer--hover {
            color: $footer-key-foreground;
            background: $block-hover-background;
        }
    }
    """

    def __init__(
        self,
        *,
        id: str | None = None,  # noqa: A002 - Textual's name
        own_only: bool = False,
    ) -> None:
        super().__init__(id=id)
        self.own_only = own_only
        """Show only the screen's own keys (the console, whose other keys go to the guest)."""
        self.items: tuple[FooterItem, ...] = ()
        """The keys on the left, in the screen's order."""
        self.palette: FooterItem | None = None
        """The command palette's key, on the right."""
        self._spans: list[tuple[int, int, FooterItem]] = []
        self._hover: FooterItem | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._update_items()

    def show_own_only(self, own_only: bool) -> None:
        if own_only != self.own_only:
            self.own_only = own_only
            self._update_items()

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._update_items()

    def _update_items(self) -> None:
        app = self.app
        items = [
            FooterItem(
                binding.key, app.get_key_display(binding), binding.description, enabled, tooltip
            )
            for binding, enabled, tooltip in shown_bindings(self.screen, own_only=self.own_only)
        ]
        palette: FooterItem | None = None
        if app.ENABLE_COMMAND_PALETTE and not self.own_only:
            found = self.screen.active_bindings.get(app.COMMAND_PALETTE_BINDING)
            if found is not None:
                binding = found.binding
                palette = FooterItem(
                    binding.key,
                    app.get_key_display(binding),
                    binding.description,
                    found.enabled,
                    binding.tooltip or binding.description,
                )
        if tuple(items) != self.items or palette != self.palette:
            self.items, self.palette = tuple(items), palette
            self.refresh()

    # --- drawing ----------------------------------------------------------------------

    def _item_text(self, item: FooterItem, *, compact: bool) -> Text:
        """One key as Textual's footer draws it: `` s Start `` (the palette's compactly:
        ``^p Commands``)."""
        key_style = self.get_component_rich_style("key-footer--key")
        description_style = self.get_component_rich_style("key-footer--description")
        item_style = self.get_component_rich_style("key-footer--item")
        if item == self._hover:
            item_style += self.get_component_rich_style("key-footer--hover")
        if compact:
            text = Text.assemble(
                (item.display, key_style), (" " + item.description, description_style)
            )
        else:
            text = Text.assemble(
                (f" {item.display} ", key_style), (item.description + " ", description_style)
            )
        text.stylize_before(item_style)
        if not item.enabled:
            text.stylize(Style(dim=True))
        return text

    def render(self) -> Text:
        width = self.size.width
        right = Text()
        if self.palette is not None:
            item_style = self.get_component_rich_style("key-footer--item")
            right.append("▏", item_style + self.get_component_rich_style("key-footer--separator"))
            right.append_text(self._item_text(self.palette, compact=True))
            right.append(" ", item_style)
        room = max(0, width - right.cell_len)
        line = Text(no_wrap=True, overflow="crop")
        self._spans = []
        # Too many keys for the width: draw them compactly, then leave out dimmed ones
        # (from the right), and only then cut the line after the last whole key.
        items = list(self.items)
        compact = False
        texts = [self._item_text(item, compact=False) for item in items]
        if sum(t.cell_len for t in texts) > room:
            compact = True
            texts = [self._item_text(item, compact=True) + " " for item in items]
            for index in range(len(items) - 1, -1, -1):
                if 1 + sum(t.cell_len for t in texts) <= room:
                    break
                if not items[index].enabled:
                    del items[index], texts[index]
        if compact:
            line.append(" ", self.get_component_rich_style("key-footer--item"))
        for item, text in zip(items, texts, strict=True):
            if line.cell_len + text.cell_len > room:
                break
            self._spans.append((line.cell_len, line.cell_len + text.cell_len, item))
            line.append_text(text)
        line.append(" " * (room - line.cell_len))
        if self.palette is not None:
            self._spans.append((room, room + right.cell_len, self.palette))
        line.append_text(right)
        return line

    # --- the mouse ----------------------------------------------------------------------

    def _item_at(self, x: int) -> FooterItem | None:
        for start, end, item in self._spans:
            if start <= x < end:
                return item
        return None

    def on_mouse_move(self, event: events.MouseMove) -> None:
        item = self._item_at(event.x)
        if item != self._hover:
            self._hover = item
            self.tooltip = (item.tooltip or item.description) if item is not None else None
            self.refresh()

    def on_leave(self, event: events.Leave) -> None:
        if self._hover is not None:
            self._hover = None
            self.tooltip = None
            self.refresh()

    def on_mouse_down(self, event: events.MouseDown) -> None:
        item = self._item_at(event.x)
        if item is None:
            return
        if item.enabled:
            self.app.simulate_key(item.key)
        else:
            self.app.bell()
