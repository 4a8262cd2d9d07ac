"""The footer: Textual's, rebuilt only when the keys it shows change."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

Layout = tuple[tuple[object, ...], ...]


class KeyFooter(Footer):
    """Textual's footer (same keys, same looks), without its needless rebuilds.

    Textual's footer removes and re-mounts all its keys on every bindings refresh, which
    costs tens of milliseconds: two or three times while the app starts (the last one
    after the first paint, in the way of the first rows), and whenever the cursor reaches
    a row where another action is available. Here the keys are composed with the screen,
    refreshes that arrive together are handled once, a refresh that changes nothing is
    skipped, and one that only enables or disables keys restyles those keys in place.
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.set_reactive(Footer._bindings_ready, True)
        self._layout: Layout | None = None
        self._enabled: dict[str, bool] = {}
        self._update_pending = False

    def _shown(self) -> tuple[Layout, dict[str, bool]]:
        """What :meth:`Footer.compose` would show: per key, what it looks like (the layout),
        and per action whether it is enabled."""
        app = self.app
        active = self.screen.active_bindings
        layout: list[tuple[object, ...]] = []
        enabled: dict[str, bool] = {}
        for _, binding, is_enabled, tooltip in active.values():
            if binding.show and binding.action not in enabled:
                enabled[binding.action] = is_enabled
                layout.append(
                    (
                        binding.key,
                        app.get_key_display(binding),
                        binding.description,
                        binding.action,
                        binding.group,
                        tooltip,
                    )
                )
        if self.show_command_palette and app.ENABLE_COMMAND_PALETTE:
            palette = active.get(app.COMMAND_PALETTE_BINDING)
            if palette is not None:
                layout.append(
                    ("palette", palette.binding.key, app.get_key_display(palette.binding))
                )
                enabled.setdefault(palette.binding.action, palette.enabled)
        return tuple(layout), enabled

    def compose(self) -> ComposeResult:
        self._layout, self._enabled = self._shown()
        yield from super().compose()

    def bindings_changed(self, screen: Screen[object]) -> None:
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._update_pending:
            self._update_pending = True
            self.call_after_refresh(self._update_keys)

    async def _update_keys(self) -> None:
        self._update_pending = False
        if not self.is_attached or self._pruning:
            return
        layout, enabled = self._shown()
        if layout != self._layout:
            await self.recompose()
            return
        if enabled == self._enabled:
            return
        self._enabled = enabled
        for key in self.query(FooterKey):
            usable = enabled.get(key.action, True)
            key._disabled = not usable
            key.set_class(not usable, "-disabled")
