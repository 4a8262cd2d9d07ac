"""The app's messages: what workers report (always posted, never applied by the worker)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from drivers.model import Event
from drivers.reconnect import LinkStatus, Snapshot

if TYPE_CHECKING:
    from tui.overview import Overview


@dataclass
class HostUpdates(Message):
    """What hosts' links reported since the last such message, in order per host.

    ``batches`` holds ``(host, generation, updates)``; a burst of events from many hosts
    arrives as one message, not one per event.
    """

    batches: tuple[tuple[str, int, tuple[LinkStatus | Snapshot | Event, ...]], ...]

    @property
    def updates(self) -> tuple[LinkStatus | Snapshot | Event, ...]:
        """Every update in the message (tests)."""
        return tuple(u for _, _, batch in self.batches for u in batch)


@dataclass
class DomainInfos(Message):
    """vCPUs and memory (KiB) of some domains of a host, by uuid."""

    host: str
    generation: int
    infos: dict[str, tuple[int, int]]


@dataclass
class DomainXmlLoaded(Message):
    """A domain's XML, read for the details screen."""

    host: str
    uuid: str
    xml: str
    overview: Overview


@dataclass
class ActionFinished(Message):
    """A domain action's calls all returned (or failed): its transient hints can go."""

    keys: tuple[tuple[str, str], ...]
