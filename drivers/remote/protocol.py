"""The daemon protocol: frames, messages, how typed values and errors travel.

A frame is a 4-byte big-endian length, one type byte and a payload. Type ``J`` carries one
JSON object (UTF-8); type ``B`` carries bytes of a multiplexed stream: a 4-byte stream id
then the data. The length counts the type byte and the payload and may not exceed
:data:`MAX_FRAME`. docs/protocol.md describes the messages.
"""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass
from typing import Any

from drivers.errors import ProtocolError, VirtError, error_classes
from drivers.model import (
    ConnectionClosedEvent,
    DomainEvent,
    DomainInfo,
    DomainState,
    DomainSummary,
    Event,
    EventType,
    HostInfo,
    LifecycleEvent,
    PoolInfo,
    VolumeInfo,
)

PROTOCOL_VERSION = 1
MAX_FRAME = 4 << 20
_HEADER = struct.Struct(">IB")
JSON = ord("J")
BYTES = ord("B")


@dataclass(frozen=True)
class Frame:
    kind: int
    payload: bytes


async def read_frame(reader: asyncio.StreamReader, max_frame: int = MAX_FRAME) -> Frame:
    """The next frame; raises EOFError at a clean end, ProtocolError on garbage."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as err:
        if not err.partial:
            raise EOFError from None
        raise ProtocolError("The peer closed the connection in the middle of a frame.") from err
    length, kind = _HEADER.unpack(header)
    if length < 1 or length > max_frame:
        raise ProtocolError(f"Frame of {length} bytes refused; frames are 1 to {max_frame} bytes.")
    if kind not in (JSON, BYTES):
        raise ProtocolError(f"Unknown frame type {kind}.")
    try:
        payload = await reader.readexactly(length - 1)
    except asyncio.IncompleteReadError as err:
        raise ProtocolError("The peer closed the connection in the middle of a frame.") from err
    return Frame(kind, payload)


def encode_message(message: dict[str, Any]) -> bytes:
    payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(payload) + 1 > MAX_FRAME:
        raise ProtocolError(f"A message of {len(payload)} bytes is larger than a frame may be.")
    return _HEADER.pack(len(payload) + 1, JSON) + payload


def encode_bytes(stream: int, data: bytes) -> bytes:
    body = struct.pack(">I", stream) + data
    return _HEADER.pack(len(body) + 1, BYTES) + body


def decode_message(frame: Frame) -> dict[str, Any]:
    try:
        message = json.loads(frame.payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(f"A frame is not valid JSON: {err}.") from err
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("A message must be a JSON object with a 'type'.")
    return message


def decode_bytes(frame: Frame) -> tuple[int, bytes]:
    if len(frame.payload) < 4:
        raise ProtocolError("A stream frame is too short to hold a stream id.")
    (stream,) = struct.unpack(">I", frame.payload[:4])
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


def summary_to_wire(s: DomainSummary) -> dict[str, Any]:
    return {
        "name": s.name,
        "uuid": s.uuid,
        "id": s.id,
        "state": s.state.name,
        "reason": s.reason.name,
        "persistent": s.persistent,
        "title": s.title,
    }


def summary_from_wire(d: dict[str, Any]) -> DomainSummary:
    state = DomainState[d["state"]]
    return DomainSummary(
        name=str(d["name"]),
        uuid=str(d["uuid"]),
        id=d.get("id"),
        state=state,
        reason=state.reasons[d["reason"]],
        persistent=bool(d.get("persistent", True)),
        title=str(d.get("title", "")),
    )


def info_to_wire(i: DomainInfo) -> dict[str, Any]:
    return {
        "state": i.state.name,
        "reason": i.reason.name,
        "max_memory_kib": i.max_memory_kib,
        "memory_kib": i.memory_kib,
        "vcpus": i.vcpus,
        "cpu_time_ns": i.cpu_time_ns,
    }


def info_from_wire(d: dict[str, Any]) -> DomainInfo:
    state = DomainState[d["state"]]
    return DomainInfo(
        state=state,
        reason=state.reasons[d["reason"]],
        max_memory_kib=int(d["max_memory_kib"]),
        memory_kib=int(d["memory_kib"]),
        vcpus=int(d["vcpus"]),
        cpu_time_ns=int(d["cpu_time_ns"]),
    )


def host_to_wire(h: HostInfo) -> dict[str, Any]:
    return {
        "hostname": h.hostname,
        "hypervisor": h.hypervisor,
        "hypervisor_version": h.hypervisor_version,
        "driver_version": h.driver_version,
        "uri": h.uri,
    }


def host_from_wire(d: dict[str, Any]) -> HostInfo:
    return HostInfo(
        hostname=str(d["hostname"]),
        hypervisor=str(d["hypervisor"]),
        hypervisor_version=str(d["hypervisor_version"]),
        driver_version=str(d["driver_version"]),
        uri=str(d["uri"]),
    )


def volume_to_wire(v: VolumeInfo) -> dict[str, Any]:
    return {
        "name": v.name,
        "path": v.path,
        "format": v.format,
        "capacity_bytes": v.capacity_bytes,
        "allocation_bytes": v.allocation_bytes,
    }


def volume_from_wire(d: dict[str, Any]) -> VolumeInfo:
    return VolumeInfo(
        name=str(d["name"]),
        path=str(d["path"]),
        format=str(d["format"]),
        capacity_bytes=int(d["capacity_bytes"]),
        allocation_bytes=int(d["allocation_bytes"]),
    )


def pool_to_wire(i: PoolInfo) -> dict[str, Any]:
    return {
        "name": i.name,
        "path": i.path,
        "capacity_bytes": i.capacity_bytes,
        "available_bytes": i.available_bytes,
    }


def pool_from_wire(d: dict[str, Any]) -> PoolInfo:
    return PoolInfo(
        name=str(d["name"]),
        path=str(d["path"]),
        capacity_bytes=int(d["capacity_bytes"]),
        available_bytes=int(d["available_bytes"]),
    )


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
    return cls(**fields)
