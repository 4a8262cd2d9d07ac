"""libvirt's errors, as virtdeck's: one class per libvirt error code, one sentence each.

libvirt's own message says what failed (``Requested operation is not valid: domain is not
running``); the sentence adds what was being done, on which host, and what to do next.
"""

from __future__ import annotations

from typing import Any

from drivers.errors import (
    AccessDenied,
    ConnectionFailed,
    ConnectionLost,
    DomainBusy,
    DomainExists,
    HypervisorError,
    InvalidArgument,
    InvalidXML,
    NoSuchDomain,
    NotSupported,
    OperationFailed,
    OperationInvalid,
    OperationTimeout,
    VirtError,
)

#: libvirt error code names (VIR_ERR_...) → our class and what to do about it.
_BY_CODE: dict[str, tuple[type[VirtError], str]] = {
    "NO_DOMAIN": (NoSuchDomain, "'virtdeck list --all' shows the defined domains"),
    "DOM_EXIST": (DomainExists, "choose another name or UUID, or update that domain"),
    "OPERATION_INVALID": (OperationInvalid, "check the domain's state and try again"),
    "INVALID_ARG": (InvalidArgument, "check the values given"),
    "XML_ERROR": (InvalidXML, "correct the domain XML"),
    "XML_DETAIL": (InvalidXML, "correct the domain XML"),
    "XML_INVALID_SCHEMA": (InvalidXML, "correct the domain XML"),
    "NO_SUPPORT": (NotSupported, "this libvirt host cannot do that"),
    "ARGUMENT_UNSUPPORTED": (NotSupported, "this libvirt host cannot do that"),
    "CONFIG_UNSUPPORTED": (NotSupported, "change the definition to what this host supports"),
    "OPERATION_UNSUPPORTED": (NotSupported, "this libvirt host cannot do that"),
    "ACCESS_DENIED": (AccessDenied, "connect as a user libvirt lets do this"),
    "OPERATION_DENIED": (AccessDenied, "connect without read-only mode to change anything"),
    "AUTH_FAILED": (AccessDenied, "check the user name, key or password"),
    "AUTH_CANCELLED": (AccessDenied, "check the user name, key or password"),
    "AUTH_UNAVAILABLE": (AccessDenied, "check the user name, key or password"),
    "NO_CONNECT": (ConnectionFailed, "check that libvirtd runs there and the URI is right"),
    "OPERATION_TIMEOUT": (OperationTimeout, "try again; the host may be overloaded"),
    "AGENT_UNRESPONSIVE": (OperationTimeout, "check the guest agent in the guest"),
    "OPERATION_ABORTED": (OperationFailed, "start it again if it is still wanted"),
    "OPERATION_FAILED": (HypervisorError, "see the libvirt log on that host"),
    "INTERNAL_ERROR": (HypervisorError, "see the libvirt log on that host"),
    "MIGRATE_UNSAFE": (OperationInvalid, "make the domain's storage safe to migrate"),
    "MIGRATE_PERSIST_FAILED": (HypervisorError, "define the domain on the destination"),
    "NO_DOMAIN_SNAPSHOT": (NoSuchDomain, "list the domain's snapshots"),
}

#: Codes that mean the connection itself broke.
_LOST = ("RPC", "INVALID_CONN", "NO_CONNECT")


def _code_names(libvirt: Any) -> dict[int, str]:
    names: dict[int, str] = {}
    for attr in dir(libvirt):
        if attr.startswith("VIR_ERR_") and isinstance(getattr(libvirt, attr), int):
            names.setdefault(getattr(libvirt, attr), attr.removeprefix("VIR_ERR_"))
    return names


_names: dict[int, str] | None = None


def code_name(libvirt: Any, err: Any) -> str:
    """The VIR_ERR_ name (without the prefix) of a libvirtError's code."""
    global _names
    if _names is None:
        _names = _code_names(libvirt)
    code = err.get_error_code()
    return _names.get(code, str(code)) if isinstance(code, int) else "UNKNOWN"


def translate(libvirt: Any, err: Any, uri: str, what: str, *, opening: bool = False) -> VirtError:
    """The VirtError for libvirt's ``err`` raised while doing ``what`` (a verb phrase such
    as "start domain 'web1'") on ``uri``."""
    text = (err.get_error_message() or str(err)).strip().rstrip(".")
    name = code_name(libvirt, err)
    if opening:
        cls: type[VirtError] = AccessDenied if name.startswith("AUTH") else ConnectionFailed
        if name in ("ACCESS_DENIED", "OPERATION_DENIED"):
            cls = AccessDenied
        return cls(
            f"Cannot connect to libvirt at {uri}: {text}. Check that libvirtd (or virtqemud) "
            "runs there, that the URI is right and that you may use it."
        )
    if name in _LOST or (name == "SYSTEM_ERROR" and _looks_lost(text)):
        return ConnectionLost(
            f"The connection to libvirt at {uri} broke while trying to {what}: {text}. "
            "Reconnect; the domains keep running."
        )
    cls, hint = _BY_CODE.get(name, (HypervisorError, "see the libvirt log on that host"))
    if "state change lock" in text:
        # another call holds libvirt's job on the domain
        cls, hint = DomainBusy, "wait for the other operation on it to end, then try again"
    if name == "OPERATION_FAILED" and "already exists" in text:
        # libvirt's domain list reports a name or UUID clash so
        cls, hint = DomainExists, "choose another name or UUID, or update that domain"
    return cls(f"libvirt at {uri} could not {what}: {text}; {hint}.")


def _looks_lost(text: str) -> bool:
    lowered = text.lower()
    return any(
        word in lowered
        for word in ("end of file", "broken pipe", "connection reset", "client socket is closed")
    )
