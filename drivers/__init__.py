"""virtdeck's virtualization API: a small libvirt-like layer over QEMU.

``conn = await drivers.open(uri)`` picks a driver by a libvirt-style URI:

- ``qemu:///embed?root=DIR`` — the QEMU driver inside this process, state under DIR;
- ``test:///default`` or ``test:///ABSOLUTE/PATH.xml`` — the in-memory test driver;
- ``libvirt:<libvirt URI>`` — a host libvirt manages, through libvirt-python (the optional
  extra ``virtdeck[libvirt]``, imported only when such a URI is opened).

This package never imports textual, rich, tui or themes.
"""

from __future__ import annotations

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

TYPE_CHECKING = False  # not typing's: see drivers/records.py (one-shot CLI start-up)
if TYPE_CHECKING:
    from typing import Any

    from drivers.api import Connection, Domain, EventStream
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

# Loaded on first use (PEP 562): a one-shot CLI command that needs only the model and the
# codec must not pay for asyncio and the API classes.
_LAZY = {
    "URI": "drivers.uri",
    "parse_uri": "drivers.uri",
    "Connection": "drivers.api",
    "Domain": "drivers.api",
    "EventStream": "drivers.api",
    "ConnectionClosedEvent": "drivers.model",
    "DomainEvent": "drivers.model",
    "DomainInfo": "drivers.model",
    "DomainState": "drivers.model",
    "DomainSummary": "drivers.model",
    "Event": "drivers.model",
    "EventType": "drivers.model",
    "HostInfo": "drivers.model",
    "LifecycleEvent": "drivers.model",
    "RebootEvent": "drivers.model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'drivers' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)


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
    """Open a connection to the driver ``uri`` names (``?ro=1``: look, change nothing)."""
    from drivers.uri import parse_uri

    parsed = parse_uri(uri) if isinstance(uri, str) else uri
    return await _open(parsed)


def _in_process(parsed: URI, conn: Connection) -> Connection:
    """An in-process driver's connection, behind the read-only guard for ``?ro=1`` (a
    daemon puts its read-only clients behind the same guard itself)."""
    from drivers.uri import is_read_only

    if not is_read_only(parsed):
        return conn
    from drivers.readonly import ReadOnlyConnection

    return ReadOnlyConnection(conn)


async def _open(parsed: URI) -> Connection:
    path = parsed.path.rstrip("/")
    if parsed.driver == "libvirt":
        from drivers.libvirt import open_libvirt

        return _in_process(parsed, await open_libvirt(parsed))
    if parsed.driver == "test":
        from drivers.test.driver import open_test

        return _in_process(parsed, await open_test(parsed))
    if parsed.transport == "ssh":
        from drivers.remote.ssh import open_ssh

        return await open_ssh(parsed)
    if parsed.driver == "qemu" and not parsed.host and path == "/embed":
        from drivers.qemu.driver import open_embed

        return _in_process(parsed, await open_embed(parsed))
    if parsed.driver == "qemu" and not parsed.host and path == "/session":
        from drivers.remote.local import open_session

        return await open_session(str(parsed))
    if parsed.driver == "qemu" and not parsed.host and path == "/system":
        from pathlib import Path

        from drivers.remote.local import open_system

        socket = parsed.param("socket")
        return await open_system(str(parsed), Path(socket) if socket else None)
    raise InvalidURI(
        f"virtdeck cannot open '{parsed}'; use qemu:///session, qemu:///system, "
        "qemu+ssh://[user@]host/session|system, qemu:///embed?root=DIR, test:///default or "
        "libvirt:<libvirt URI>."
    )
