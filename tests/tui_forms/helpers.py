"""A tiny host app for the form screens, and helpers to drive them."""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, TextArea

import drivers
from drivers.api import Connection

DEFAULT = "test:///default"
SIZE = (120, 40)

# A domain with every generated value written out, so screenshots of its XML are stable.
FIXED_XML = """<domain type='qemu'>
  <name>snap</name>
  <uuid>4b1d7a3e-5c2f-4e8a-9d6b-0a1b2c3d4e5f</uuid>
  <memory unit='MiB'>512</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/virtdeck/images/snap.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'><mac address='52:54:00:aa:bb:cc'/><model type='virtio'/></interface>
    <serial type='pty'><target port='0'/></serial>
  </devices>
</domain>
"""

Build = Callable[[dict[str, Connection]], Screen[Any]]
Prepare = Callable[[dict[str, Connection]], Awaitable[None]]


class FormHost(App[None]):
    """Opens the hosts, then pushes one screen and records what it dismissed with."""

    def __init__(
        self,
        build: Build,
        uris: Sequence[tuple[str, str]] = (("local", DEFAULT),),
        prepare: Prepare | None = None,
    ) -> None:
        super().__init__()
        self.build = build
        self.uris = tuple(uris)
        self.prepare = prepare
        self.conns: dict[str, Connection] = {}
        self.results: list[object] = []
        self.form: Screen[Any] | None = None
        # The app's own themes, looked up at run time: the forms depend only on the theme
        # variables being there, not on the themes package's API.
        themes: Any = importlib.import_module("themes")
        for theme in themes.BUILTIN_THEMES.values():
            self.register_theme(theme)
        self.theme = themes.DEFAULT_THEME

    async def on_mount(self) -> None:
        for name, uri in self.uris:
            self.conns[name] = await drivers.open(uri)
        if self.prepare is not None:
            await self.prepare(self.conns)
        self.form = self.build(self.conns)
        self.push_screen(self.form, self.results.append)

    @property
    def conn(self) -> Connection:
        return next(iter(self.conns.values()))


async def until(
    pilot: Pilot[None], predicate: Callable[[], bool], timeout: float = 10.0, what: str = ""
) -> None:
    """Let the app run until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.01)


async def type_into(pilot: Pilot[None], selector: str, text: str) -> None:
    """Focus the Input ``selector`` of the current screen and type ``text`` key by key."""
    widget = pilot.app.screen.query_one(selector, Input)
    widget.focus()
    await pilot.pause()
    await pilot.press(*text)


async def fill(pilot: Pilot[None], selector: str, text: str) -> None:
    """Focus the Input ``selector`` and replace its text at once (like a paste)."""
    widget = pilot.app.screen.query_one(selector, Input)
    widget.focus()
    await pilot.pause()
    widget.value = text
    await pilot.pause()


def still(screen: Screen[Any]) -> None:
    """Stop the cursors blinking, for screenshots."""
    for widget in screen.query(Input):
        widget.cursor_blink = False
    for area in screen.query(TextArea):
        area.cursor_blink = False
