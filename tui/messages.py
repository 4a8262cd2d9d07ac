"""The app's messages: what workers report (always posted, never applied by the worker).

Written with their ``__init__`` rather than as dataclasses: a dataclass costs a couple of
milliseconds to create at import, and every one of these is imported before the first paint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

from drivers.model import Event, StatsSample
from drivers.reconnect import LinkStatus, Snapshot

if TYPE_CHECKING:
    from tui.overview import Overview


class HostUpdates(Message):
    """What hosts' links reported since the last such message, in order per host.

    ``batches`` holds ``(host, generation, updates)``; a burst of events from many hosts
    arrives as one message, not one per event.
    """

    def __init__(
        self, batches: tuple[tuple[str, int, tuple[LinkStatus | Snapshot | Event, ...]], ...]
    ) -> None:
        super().__init__()
        self.batches = batches

    @property
    def updates(self) -> tuple[LinkStatus | Snapshot | Event, ...]:
        """Every update in the message (tests)."""
        return tuple(u for _, _, batch in self.batches for u in batch)


class DomainInfos(Message):
    """vCPUs and memory (KiB) of some domains of a host, by uuid."""

    def __init__(self, host: str, generation: int, infos: dict[str, tuple[int, int]]) -> None:
        super().__init__()
        self.host = host
        self.generation = generation
        self.infos = infos


class DomainXmlLoaded(Message):
    """A domain's XML, read for the details screen."""

    def __init__(self, host: str, uuid: str, xml: str, overview: Overview) -> None:
        super().__init__()
        self.host = host
        self.uuid = uuid
        self.xml = xml
        self.overview = overview


class ActionFinished(Message):
    """A domain action's calls all returned (or failed): its transient hints can go."""

    def __init__(self, keys: tuple[tuple[str, str], ...]) -> None:
        super().__init__()
        self.keys = keys


class AddressesFound(Message):
    """One round of a host's running domains' IP addresses (uuid → address or '')."""

    def __init__(self, host: str, generation: int, found: dict[str, str]) -> None:
        super().__init__()
        self.host = host
        self.generation = generation
        self.found = found


class StatsSampled(Message):
    """One statistics sample of a host (its own load and its running domains')."""

    def __init__(self, host: str, generation: int, sample: StatsSample) -> None:
        super().__init__()
        self.host = host
        self.generation = generation
        self.sample = sample
