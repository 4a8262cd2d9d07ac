"""virtdeck's virtualization API: a small libvirt-like layer over QEMU.

``conn = await drivers.open(uri)`` picks a driver by a libvirt-style URI:

- ``qemu:///embed?root=DIR`` — the QEMU driver inside this process, state under DIR;
- ``test:///default`` or ``test:///ABSOLUTE/PATH.xml`` — the in-memory test driver.

This package never imports textual, rich, tui or themes.
"""

from __future__ import annotations

from drivers.api import Connection, Domain, EventStream
from drivers.errors import (
    AccessDenied,
    ConnectionFailed,
    ConnectionLost,
    DomainBusy,
    DomainExists,
    HypervisorError,
    InvalidArgument,
    InvalidURI,
    InvalidXML,
    NoSuchDomain,
    NotSupported,
    OperationFailed,
    OperationInvalid,
    OperationTimeout,
    ProtocolError,
    VirtError,
)
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
    RebootEvent,
)
from drivers.uri import URI, parse_uri

__all__ = [
    "URI",
    "AccessDenied",
    "Connection",
    "ConnectionClosedEvent",
    "ConnectionFailed",
    "ConnectionLost",
    "Domain",
    "DomainBusy",
    "DomainEvent",
    "DomainExists",
    "DomainInfo",
    "DomainState",
    "DomainSummary",
    "Event",
    "EventStream",
    "EventType",
    "HostInfo",
    "HypervisorError",
    "InvalidArgument",
    "InvalidURI",
    "InvalidXML",
    "LifecycleEvent",
    "NoSuchDomain",
    "NotSupported",
    "OperationFailed",
    "OperationInvalid",
    "OperationTimeout",
    "ProtocolError",
    "RebootEvent",
    "VirtError",
    "open",
    "parse_uri",
]


async def open(uri: str | URI) -> Connection:  # noqa: A001 - the API's fixed name
    """Open a connection to the driver ``uri`` names."""
    parsed = parse_uri(uri) if isinstance(uri, str) else uri
    if parsed.driver == "test":
        from drivers.test.driver import open_test

        return await open_test(parsed)
    if parsed.driver == "qemu" and not parsed.is_remote and parsed.path.rstrip("/") == "/embed":
        from drivers.qemu.driver import open_embed

        return await open_embed(parsed)
    raise NotSupported(
        f"'{parsed}' is not available yet; this version serves qemu:///embed?root=DIR and "
        "test:///default."
    )
