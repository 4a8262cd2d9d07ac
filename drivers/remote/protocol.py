"""The daemon protocol: frames, messages, how typed values and errors travel.

A frame is a 4-byte big-endian length, one type byte and a payload. Type ``J`` carries one
JSON object (UTF-8); type ``B`` carries bytes of a multiplexed stream: a 4-byte stream id
then the data. The length counts the type byte and the payload and may not exceed
:data:`MAX_FRAME`. docs/protocol.md describes the messages.
"""

from __future__ import annotations

import enum
import functools
import json
import sys

from drivers import records
from drivers.errors import ProtocolError, VirtError, error_classes
from drivers.model import (
    BlockStats,
    ConnectionClosedEvent,
    DiskCopy,
    DomainEvent,
    DomainInfo,
    DomainState,
    DomainStats,
    DomainSummary,
    Event,
    EventType,
    HostInfo,
    HostStats,
    IncomingMigration,
    InputEvent,
    InputPause,
    InterfaceAddresses,
    IPAddress,
    JobInfo,
    JobPhase,
    JobProgressEvent,
    KeyInput,
    LifecycleEvent,
    MigrationSource,
    NetStats,
    PointerButton,
    PointerMove,
    PoolInfo,
    Screenshot,
    StatsSample,
    VolumeInfo,
)
from drivers.records import record

TYPE_CHECKING = False  # not typing's: see drivers/records.py (one-shot CLI start-up)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Protocol, TypeVar

    _Value = TypeVar("_Value")

    class ByteReader(Protocol):
        """The read half of a protocol stream (asyncio.StreamReader, or an SSH channel's)."""

        async def readexactly(self, n: int) -> bytes: ...

    class ByteWriter(Protocol):
        """The write half of a protocol stream (asyncio.StreamWriter, or an SSH channel's)."""

        def write(self, data: bytes) -> None: ...

        async def drain(self) -> None: ...

        def close(self) -> None: ...


PROTOCOL_VERSION = 1
MAX_FRAME = 4 << 20
JSON = ord("J")
BYTES = ord("B")


@record
class Frame:
    kind: int
    payload: bytes


# Packed with int.to_bytes, not struct: one module fewer for a one-shot command to load.
HEADER_SIZE = 5


def _header(length: int, kind: int) -> bytes:
    """A frame header: the 4-byte big-endian length, then the type byte."""
    return length.to_bytes(4) + bytes((kind,))


def read_header(header: bytes, max_frame: int = MAX_FRAME) -> tuple[int, int]:
    """A frame header's (length, kind); ProtocolError if no frame may have them."""
    if len(header) != HEADER_SIZE:
        raise ProtocolError(f"A frame header is {HEADER_SIZE} bytes, not {len(header)}.")
    length, kind = int.from_bytes(header[:4]), header[4]
    if length < 1 or length > max_frame:
        raise ProtocolError(f"Frame of {length} bytes refused; frames are 1 to {max_frame} bytes.")
    if kind not in (JSON, BYTES):
        raise ProtocolError(f"Unknown frame type {kind}.")
    return length, kind


async def read_frame(reader: ByteReader, max_frame: int = MAX_FRAME) -> Frame:
    """The next frame; raises EOFError at a clean end, ProtocolError on garbage."""
    import asyncio  # here, so one-shot CLI commands using the codec never load asyncio

    try:
        header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as err:
        if not err.partial:
            raise EOFError from None
        raise ProtocolError("The peer closed the connection in the middle of a frame.") from err
    length, kind = read_header(header, max_frame)
    try:
        payload = await reader.readexactly(length - 1)
    except asyncio.IncompleteReadError as err:
        raise ProtocolError("The peer closed the connection in the middle of a frame.") from err
    return Frame(kind, payload)


def encode_message(message: dict[str, Any]) -> bytes:
    # A lone surrogate (a name a peer sent as "\ud800") cannot be UTF-8: it goes as the
    # JSON escape it came as, which reads back as the same string.
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    payload = text.encode("utf-8", "backslashreplace")
    if len(payload) + 1 > MAX_FRAME:
        raise ProtocolError(f"A message of {len(payload)} bytes is larger than a frame may be.")
    return _header(len(payload) + 1, JSON) + payload


def encode_call(call_id: int, method: str, args: dict[str, Any]) -> bytes:
    """The frame of one call; a call too large for a frame is refused in the words a
    too-large domain XML gets locally (InvalidXML when it carries one)."""
    message = {"type": "call", "id": call_id, "method": method, "args": args}
    try:
        return encode_message(message)
    except ProtocolError:
        pass
    xml = args.get("xml")
    if isinstance(xml, str):
        raise xml_too_large(xml)
    from drivers.errors import InvalidArgument

    raise InvalidArgument(
        f"The '{method}' call is larger than the {_FRAME_WORDS}; send less at once."
    )


_FRAME_WORDS = (
    f"{MAX_FRAME >> 20} MiB per message over a remote connection (quotes and newlines count twice)"
)


def xml_too_large(xml: str) -> VirtError:
    """The error for a domain XML that does not fit in one frame, in the words a
    too-large XML gets locally."""
    # only on this rare path: one-shot CLI commands keep lxml unloaded
    from drivers.domxml.tree import too_large
    from drivers.errors import InvalidXML

    return InvalidXML(too_large(len(xml.encode()), _FRAME_WORDS))


def encode_bytes(stream: int, data: bytes) -> bytes:
    body = stream.to_bytes(4) + data
    return _header(len(body) + 1, BYTES) + body


def decode_message(frame: Frame) -> dict[str, Any]:
    try:
        message = json.loads(frame.payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(f"A frame is not valid JSON: {err}.") from err
    except RecursionError:
        raise ProtocolError("A frame nests its JSON too deeply.") from None
    except ValueError:  # an integer of more digits than Python converts
        raise ProtocolError(
            f"A frame holds a number of more than {sys.get_int_max_str_digits()} digits."
        ) from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("A message must be a JSON object with a 'type'.")
    return message


def decode_bytes(frame: Frame) -> tuple[int, bytes]:
    if len(frame.payload) < 4:
        raise ProtocolError("A stream frame is too short to hold a stream id.")
    stream = int.from_bytes(frame.payload[:4])
    return stream, frame.payload[4:]


# --- errors ----------------------------------------------------------------------------------


def error_to_wire(err: VirtError) -> dict[str, str]:
    return {"class": type(err).__name__, "message": err.message}


def error_from_wire(data: Any) -> VirtError:
    if not isinstance(data, dict):
        return ProtocolError("The daemon sent an error without details.")
    cls = error_classes().get(str(data.get("class")), VirtError)
    return cls(str(data.get("message", "The daemon reported an error without a message.")))


# --- typed values ----------------------------------------------------------------------------


def to_wire(value: Any) -> dict[str, Any]:
    """A frozen dataclass of the model as JSON: enums by their libvirt names."""
    return {
        name: (v.name if isinstance(v, enum.Enum) else v)
        for name in records.fields(value)
        for v in (getattr(value, name),)
    }


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    # get_type_hints evaluates every annotation: far too slow to repeat for each of 500 rows.
    # typing loads here, not at import: listing domains never needs it. The model imports
    # ClassVar only for type checkers, so it is handed in for evaluating annotations.
    found = _HINTS.get(cls)
    if found is None:
        import typing

        found = _HINTS[cls] = typing.get_type_hints(cls, localns={"ClassVar": typing.ClassVar})
    return found


def from_wire(cls: type[_Value], data: Any) -> _Value:
    """The dataclass ``cls`` from :func:`to_wire`'s JSON; ProtocolError on a bad shape."""
    if not isinstance(data, dict):
        raise ProtocolError(f"Expected an object for {cls.__name__}.")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    try:
        for name in records.fields(cls):
            if name not in data:
                continue
            raw = data[name]
            if name == "state":
                values[name] = DomainState[raw]
            elif name == "reason":
                values[name] = DomainState[data["state"]].reasons[raw]
            elif hints[name] is int:
                values[name] = int(raw)
            elif hints[name] is str:
                values[name] = str(raw)
            else:
                values[name] = raw
        return cls(**values)
    except (KeyError, TypeError, ValueError) as err:
        raise ProtocolError(f"A {cls.__name__} from the daemon is malformed: {err}.") from err


def summary_to_wire(s: DomainSummary) -> dict[str, Any]:
    # Written out, not through to_wire: a listing encodes hundreds of these at once.
    return {
        "name": s.name,
        "uuid": s.uuid,
        "id": s.id,
        "state": s.state.name,
        "reason": s.reason.name,
        "persistent": s.persistent,
        "title": s.title,
        "vcpus": s.vcpus,
        "memory_kib": s.memory_kib,
        "started_wall": s.started_wall,
    }


def summary_from_wire(d: Any) -> DomainSummary:
    # Written out, not through from_wire: a listing decodes hundreds of these at once.
    try:
        state = DomainState[d["state"]]
        ident, vcpus, memory, started = (
            d.get("id"),
            d.get("vcpus"),
            d.get("memory_kib"),
            d.get("started_wall"),
        )
        return DomainSummary(
            name=str(d["name"]),
            uuid=str(d["uuid"]),
            id=None if ident is None else int(ident),
            state=state,
            reason=state.reasons[d["reason"]],
            persistent=bool(d.get("persistent", True)),
            title=str(d.get("title") or ""),
            vcpus=None if vcpus is None else int(vcpus),
            memory_kib=None if memory is None else int(memory),
            started_wall=None if started is None else float(started),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ProtocolError(f"A DomainSummary from the daemon is malformed: {err}.") from err


def info_to_wire(i: DomainInfo) -> dict[str, Any]:
    return to_wire(i)


def info_from_wire(d: Any) -> DomainInfo:
    return from_wire(DomainInfo, d)


def host_to_wire(h: HostInfo) -> dict[str, Any]:
    return to_wire(h)


def host_from_wire(d: Any) -> HostInfo:
    return from_wire(HostInfo, d)


def volume_to_wire(v: VolumeInfo) -> dict[str, Any]:
    return to_wire(v)


def volume_from_wire(d: Any) -> VolumeInfo:
    return from_wire(VolumeInfo, d)


def pool_to_wire(i: PoolInfo) -> dict[str, Any]:
    return to_wire(i)


def pool_from_wire(d: Any) -> PoolInfo:
    return from_wire(PoolInfo, d)


def interfaces_to_wire(found: list[InterfaceAddresses]) -> list[dict[str, Any]]:
    return [
        {
            "name": i.name,
            "hwaddr": i.hwaddr,
            "addresses": [[a.type, a.address, a.prefix] for a in i.addresses],
        }
        for i in found
    ]


def interfaces_from_wire(data: Any) -> list[InterfaceAddresses]:
    if not isinstance(data, list):
        raise ProtocolError("Expected a list of interfaces.")
    try:
        return [
            InterfaceAddresses(
                name=str(item["name"]),
                hwaddr=None if item.get("hwaddr") is None else str(item["hwaddr"]),
                addresses=tuple(
                    IPAddress(type=str(kind), address=str(addr), prefix=int(prefix))
                    for kind, addr, prefix in item.get("addresses", [])
                ),
            )
            for item in data
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ProtocolError(f"An interface list from the daemon is malformed: {err}.") from err


def job_to_wire(j: JobInfo) -> dict[str, Any]:
    return to_wire(j)


def job_from_wire(d: Any) -> JobInfo:
    if not isinstance(d, dict):
        raise ProtocolError("Expected an object for JobInfo.")
    try:
        data = dict(d)
        data["phase"] = JobPhase[data.get("phase", "NONE")]
    except KeyError as err:
        raise ProtocolError(f"A JobInfo from the daemon has an unknown phase: {err}.") from err
    return from_wire(JobInfo, data)


def disks_to_wire(disks: tuple[DiskCopy, ...]) -> list[dict[str, Any]]:
    return [to_wire(d) for d in disks]


def disks_from_wire(data: Any) -> tuple[DiskCopy, ...]:
    if not isinstance(data, list):
        raise ProtocolError("Expected a list of disks.")
    return tuple(from_wire(DiskCopy, d) for d in data)


def source_to_wire(m: MigrationSource) -> dict[str, Any]:
    data = to_wire(m)
    data["disks"] = disks_to_wire(m.disks)
    return data


def source_from_wire(d: Any) -> MigrationSource:
    if not isinstance(d, dict):
        raise ProtocolError("Expected an object for MigrationSource.")
    data = dict(d)
    data["disks"] = disks_from_wire(data.get("disks", []))
    return from_wire(MigrationSource, data)


def incoming_to_wire(m: IncomingMigration) -> dict[str, Any]:
    data = to_wire(m)
    data["nbd_disks"] = list(m.nbd_disks)
    return data


def incoming_from_wire(d: Any) -> IncomingMigration:
    if not isinstance(d, dict):
        raise ProtocolError("Expected an object for IncomingMigration.")
    data = dict(d)
    data["nbd_disks"] = tuple(str(x) for x in data.get("nbd_disks", []))
    return from_wire(IncomingMigration, data)


def _domain_stats_to_wire(d: DomainStats) -> dict[str, Any]:
    data = to_wire(d)
    data["blocks"] = [to_wire(b) for b in d.blocks]
    data["nets"] = [to_wire(n) for n in d.nets]
    return data


def sample_to_wire(sample: StatsSample) -> dict[str, Any]:
    domains = [_domain_stats_to_wire(d) for d in sample.domains]
    return {"host": to_wire(sample.host), "domains": domains}


def sample_from_wire(data: Any) -> StatsSample:
    if not isinstance(data, dict):
        raise ProtocolError("Expected an object for a stats sample.")
    try:
        domains = []
        for raw in data.get("domains", []):
            d = dict(raw)
            d["vcpu_percent"] = tuple(float(x) for x in d.get("vcpu_percent", ()))
            d["vcpu_time_ns"] = tuple(int(x) for x in d.get("vcpu_time_ns", ()))
            d["blocks"] = tuple(from_wire(BlockStats, b) for b in d.get("blocks", ()))
            d["nets"] = tuple(from_wire(NetStats, n) for n in d.get("nets", ()))
            domains.append(from_wire(DomainStats, d))
        return StatsSample(host=from_wire(HostStats, data["host"]), domains=tuple(domains))
    except (KeyError, TypeError, ValueError) as err:
        raise ProtocolError(f"A stats sample from the daemon is malformed: {err}.") from err


@functools.cache
def _event_classes() -> dict[str, type[Event]]:
    found: dict[str, type[Event]] = {}
    pending: list[type[Event]] = [Event]
    while pending:
        cls = pending.pop()
        found[cls.kind] = cls
        pending.extend(cls.__subclasses__())
    return found


def event_to_wire(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": event.kind}
    for name, value in vars(event).items():
        data[name] = value.name if isinstance(value, EventType) else value
    if isinstance(event, LifecycleEvent):
        data["detail"] = event.detail.name
    elif isinstance(event, JobProgressEvent):
        data["info"] = job_to_wire(event.info)
    return data


def event_from_wire(data: dict[str, Any]) -> Event:
    kind = str(data.get("kind"))
    cls = _event_classes().get(kind)
    if cls is None or cls in (Event, DomainEvent):
        raise ProtocolError(f"Unknown event kind '{kind}'.")
    fields = {k: v for k, v in data.items() if k != "kind"}
    if cls is LifecycleEvent:
        etype = EventType[fields["type"]]
        fields["type"] = etype
        fields["detail"] = etype.details[fields["detail"]]
    if cls is ConnectionClosedEvent:
        fields.setdefault("reason", "")
    if cls is JobProgressEvent:
        fields["info"] = job_from_wire(fields.get("info"))
    return cls(**fields)


# --- the screen ----------------------------------------------------------------------------

#: The bytes a screen frame's header may take at most (JSON, then a newline, then the image).
_SHOT_HEADER_MAX = 1024


def screenshot_to_wire(shot: Screenshot) -> bytes:
    """A picture as one stream frame's data: a one-line JSON header, then the image."""
    header = {
        "format": shot.format,
        "width": shot.width,
        "height": shot.height,
        "wall": shot.captured_wall,
        "monotonic": shot.captured_monotonic,
        "seq": shot.seq,
    }
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + shot.data


def screenshot_from_wire(data: bytes) -> Screenshot:
    head, newline, image = data.partition(b"\n")
    if not newline or len(head) > _SHOT_HEADER_MAX:
        raise ProtocolError("A screen frame from the daemon has no header.")
    try:
        header = json.loads(head)
        return Screenshot(
            data=image,
            format=str(header["format"]),
            width=int(header["width"]),
            height=int(header["height"]),
            captured_wall=float(header["wall"]),
            captured_monotonic=float(header["monotonic"]),
            seq=int(header.get("seq", 0)),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ProtocolError(f"A screen frame's header is malformed: {err}.") from err


_INPUT_KINDS: dict[str, type[InputEvent]] = {
    "key": KeyInput,
    "move": PointerMove,
    "button": PointerButton,
    "pause": InputPause,
}
_INPUT_NAMES = {cls: name for name, cls in _INPUT_KINDS.items()}


def input_to_wire(events: Sequence[InputEvent]) -> list[dict[str, Any]]:
    return [{"kind": _INPUT_NAMES[type(e)], **to_wire(e)} for e in events]


def input_from_wire(data: Any) -> list[InputEvent]:
    """Input events from a call's arguments; InvalidArgument (the caller's mistake, not a
    broken protocol) for anything else."""
    from drivers.errors import InvalidArgument

    if not isinstance(data, list):
        raise InvalidArgument("Argument 'events' must be a list of input events.")
    events: list[InputEvent] = []
    for item in data:
        cls = _INPUT_KINDS.get(str(item.get("kind"))) if isinstance(item, dict) else None
        if cls is None:
            raise InvalidArgument(
                f"An input event must have a kind ({', '.join(_INPUT_KINDS)}), not {item!r}."
            )
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for name in records.fields(cls):
            value = item.get(name)
            kind = hints[name]
            if kind is bool and not isinstance(value, bool):
                raise InvalidArgument(f"Input event field '{name}' must be true or false.")
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidArgument(f"Input event field '{name}' must be a whole number.")
            if kind is str and not isinstance(value, str):
                raise InvalidArgument(f"Input event field '{name}' must be a string.")
            values[name] = value
        events.append(cls(**values))
    return events
