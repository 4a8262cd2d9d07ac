"""The strip above the table: each host with its colour, link state, running/total and,
when it sends statistics, its own CPU and memory use."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from drivers.reconnect import LinkState
from drivers.uri import is_libvirt
from tui.config import HostMode
from tui.state import DomainStore, HostState
from tui.text import inert


def link_words(host: HostState, now: float) -> str:
    """``connected``, ``connecting…``, ``lost — retrying in 4 s``, ``disconnected``."""
    if host.link is LinkState.CONNECTED:
        return "connected"
    if host.link is LinkState.CONNECTING:
        return "connecting…"
    if host.link is LinkState.CLOSED:
        return "disconnected"
    if host.retry_at is not None:
        seconds = max(0, round(host.retry_at - now))
        return f"lost — retrying in {seconds} s" if seconds else "lost — retrying now"
    return "lost"


class HostBar(Static):
    """One line (wrapping when narrow) summarising every host."""

    _shown: Text | None = None
    _lines = 0

    DEFAULT_CSS = """
    HostBar {
        height: auto;
        max-height: 3;
        padding: 0 1;
        background: $panel;
        color: $foreground;
    }
    """

    def show_hosts(
        self,
        store: DomainStore,
        colours: Callable[[str], str],
        variables: Mapping[str, str],
        now: float,
    ) -> None:
        text = Text(no_wrap=False, overflow="fold")
        counts = store.all_counts()
        for index, host in enumerate(store.hosts.values()):
            if index:
                text.append("   ")
            colour = colours(host.name)
            text.append("● ", Style(color=colour) if colour else "")
            text.append(inert(host.name, one_line=True), Style(bold=True))
            if host.config.mode is HostMode.PROTECTED:
                text.append(" ⚑", Style(color=variables.get("warning")))
            elif host.config.mode is HostMode.READ_ONLY:
                text.append(" ro", Style(color=variables.get("state-shutoff")))
            if is_libvirt(host.config.uri):
                # (a host without the badge is a virtdeck one: virtdeckd, embedded, test)
                text.append(" libvirt", Style(color=variables.get("accent"), italic=True))
            running, total = counts.get(host.name, (0, 0))
            if host.link is LinkState.CONNECTED:
                text.append(f" {running}/{total}", Style(color=variables.get("state-running")))
                load = host.figures.summary() if host.figures is not None else ""
                if load:
                    text.append(f" {load}", Style(color=variables.get("state-shutoff")))
            else:
                style = (
                    variables.get("state-crashed")
                    if host.link is LinkState.LOST
                    else variables.get("state-lost")
                )
                text.append(f" {link_words(host, now)}", Style(color=style))
        if text != self._shown:
            # a layout pass (costly while events stream) only when the height may change
            width = max(1, self.size.width - 2)
            lines = -(-text.cell_len // width)
            self._shown = text
            self.update(text, layout=lines != self._lines)
            self._lines = lines
