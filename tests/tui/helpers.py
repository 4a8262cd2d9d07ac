"""Helpers for the TUI tests: building the app on private dirs, waiting for rows and states."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from textual.pilot import Pilot

from drivers.reconnect import Opener
from tui.app import VirtdeckApp, make_app
from tui.config import HostConfig, HostMode
from tui.screens.main import MainScreen
from tui.state import DomainRow, FrozenClock
from tui.widgets.domain_table import DomainTable, row_id

SIZE = (120, 36)
DEFAULT = "test:///default"


def build(
    tmp: Path,
    uris: Sequence[str] = (DEFAULT,),
    *,
    demo: bool = False,
    config: str | None = None,
    theme: str | None = None,
    opener: Opener | None = None,
    backoff: Sequence[float] = (0.05,),
) -> VirtdeckApp:
    """The app as the CLI builds it, with its config and caches under ``tmp``."""
    config_file = tmp / "config" / "config.toml"
    if config is not None:
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(config)
    return make_app(
        list(uris),
        demo=demo,
        theme=theme,
        config_file=config_file,
        clock=FrozenClock(),
        opener=opener,
        backoff=backoff,
        demo_dir=tmp / "demo",
        tick=None,
    )


def with_modes(tmp: Path, hosts: Sequence[tuple[str, str, HostMode]]) -> str:
    """Config text with these (name, uri, mode) hosts."""
    lines = []
    for name, uri, mode in hosts:
        lines += ["[[hosts]]", f'name = "{name}"', f'uri = "{uri}"', f'mode = "{mode.value}"', ""]
    return "\n".join(lines)


def main_screen(app: VirtdeckApp) -> MainScreen:
    screen = app.screen_stack[0] if isinstance(app.screen_stack[0], MainScreen) else app.screen
    assert isinstance(screen, MainScreen), app.screen_stack
    return screen


def table(app: VirtdeckApp) -> DomainTable:
    return main_screen(app).table


async def until(
    pilot: Pilot[None], predicate: Callable[[], bool], timeout: float = 10.0, what: str = ""
) -> None:
    """Let the app run until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.01)


def find(app: VirtdeckApp, name: str, host: str | None = None) -> DomainRow:
    for row in app.store.rows.values():
        if row.name == name and (host is None or row.host == host):
            return row
    raise AssertionError(f"no row {name} on {host}: {[r.name for r in app.store.rows.values()]}")


def cell(app: VirtdeckApp, name: str, column: str, host: str | None = None) -> str:
    row = find(app, name, host)
    t = table(app)
    return t.cell_text(row.key, column) if t.has(row.key) else ""  # "" until it is drawn


def state_of(app: VirtdeckApp, name: str, host: str | None = None) -> str:
    return cell(app, name, "state", host)


async def loaded(pilot: Pilot[None], app: VirtdeckApp, rows: int) -> None:
    """Wait until the table shows ``rows`` rows with their vCPUs read."""

    def ready() -> bool:
        t = table(app)
        return t.row_count == rows and all(r.vcpus is not None for r in app.store.rows.values())

    await until(pilot, ready, what=f"{rows} rows")
    await pilot.pause()


async def select(pilot: Pilot[None], app: VirtdeckApp, name: str, host: str | None = None) -> None:
    """Put the cursor on a domain's row."""
    row = find(app, name, host)
    t = table(app)
    t.move_cursor(row=t.get_row_index(row_id(row.key)))
    await pilot.pause()


#: Worker groups that live as long as their host's link (or their screen).
LONG_LIVED = frozenset({"hosts", "stats", "addresses", "console", "logs"})


async def settle(app: VirtdeckApp) -> None:
    """Wait for every worker but the long-lived ones: host links, statistics, consoles and
    logs (so: the actions, reads, relists)."""
    for _ in range(3):
        await asyncio.sleep(0)
        pending = [w for w in app.workers if w.group not in LONG_LIVED and not w.is_finished]
        if pending:  # (an empty list would mean "every worker", the host links included)
            await app.workers.wait_for_complete(pending)
    await asyncio.sleep(0.01)


__all__ = [
    "DEFAULT",
    "SIZE",
    "HostConfig",
    "build",
    "cell",
    "find",
    "loaded",
    "main_screen",
    "select",
    "settle",
    "state_of",
    "table",
    "until",
    "with_modes",
]
