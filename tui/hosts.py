"""One supervisor per host: a :class:`~drivers.reconnect.ReconnectingConnection` whose
updates are relayed to the app, one by one, as they come.

The relay never touches app state: it hands each update to a callback, and the app gathers
what all hosts sent into :class:`~tui.messages.HostUpdates` messages (one per delivery
interval), so a burst of a thousand events costs a handful of messages, not a thousand.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence

from drivers.api import Connection
from drivers.model import Event
from drivers.reconnect import (
    DEFAULT_BACKOFF,
    LinkStatus,
    Opener,
    ReconnectingConnection,
    Session,
    Snapshot,
)
from tui.config import HostConfig, HostMode

Update = LinkStatus | Snapshot | Event
Post = Callable[[Update], None]

_generations = itertools.count(1)


def host_kind(uri: str) -> str:
    """What serves a host, in one word for its badge: ``libvirt`` (libvirtd, through
    libvirt-python), ``virtdeckd`` (a virtdeck daemon, local or over SSH), ``embedded``
    (the QEMU driver in this process) or ``test`` (the in-memory driver)."""
    from drivers.errors import InvalidURI
    from drivers.uri import parse_uri

    try:
        parsed = parse_uri(uri)
    except InvalidURI:
        return "?"
    if parsed.driver == "libvirt":
        return "libvirt"
    if parsed.driver == "test":
        return "test"
    if parsed.path.rstrip("/") == "/embed" and not parsed.host:
        return "embedded"
    return "virtdeckd"


def link_uri(config: HostConfig) -> str:
    """The URI a host's link opens."""
    if config.mode is HostMode.READ_ONLY:
        # The daemon (or the in-process guard) refuses changes too, not only the UI.
        from drivers.uri import with_read_only

        return with_read_only(config.uri)
    return config.uri


class HostLink:
    """A host's reconnecting connection, tagged with a generation so that messages from a
    link the user has since closed (disconnect, edit) are recognised and dropped."""

    def __init__(
        self,
        config: HostConfig,
        opener: Opener | None = None,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        first: Awaitable[Session] | None = None,
    ) -> None:
        """``first``: the host's first session, when it was opened ahead."""
        self.config = config
        self.generation = next(_generations)
        if opener is None:
            from tui.adapter import open_connection

            opener = open_connection
        self.link = ReconnectingConnection(
            link_uri(config), opener=opener, backoff=backoff, first=first
        )
        self.closing = False

    def require(self) -> Connection:
        return self.link.require()

    async def relay(self, post: Post) -> None:
        """Consume the link's updates until it closes, handing each to ``post``."""
        async for update in self.link.updates():
            post(update)

    async def close(self) -> None:
        self.closing = True
        await self.link.close()
