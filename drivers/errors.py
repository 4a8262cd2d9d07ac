"""The one error hierarchy of the driver layer.

Every failure a driver reports is a :class:`VirtError`. Its message is a sentence a user
can act on: it says what went wrong and, where there is one, what to do about it. The
daemon protocol sends errors as ``(class name, message)`` and the client raises the same
class again, so the names here are part of the wire format.
"""

from __future__ import annotations


class VirtError(Exception):
    """The root of every error a driver raises."""

    title = "Error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidURI(VirtError):
    """A connection URI could not be understood."""

    title = "Invalid URI"


class ConnectionFailed(VirtError):
    """A connection could not be opened."""

    title = "Connection failed"


class AccessDenied(ConnectionFailed):
    """The caller may not use that connection."""

    title = "Access denied"


class ConnectionLost(VirtError):
    """An open connection broke; calls in flight fail with this."""

    title = "Connection lost"


class NoSuchDomain(VirtError):
    """No domain has that name or UUID."""

    title = "No such domain"


class DomainExists(VirtError):
    """A different domain already uses that name or UUID."""

    title = "Domain exists"


class InvalidXML(VirtError):
    """A domain definition is not well-formed or not valid."""

    title = "Invalid XML"


class InvalidArgument(VirtError):
    """An argument has the wrong type or value."""

    title = "Invalid argument"


class OperationInvalid(VirtError):
    """The operation makes no sense in the domain's current state."""

    title = "Operation not valid now"


class DomainBusy(VirtError):
    """Another operation holds the domain's job lock."""

    title = "Domain busy"


class NotSupported(VirtError):
    """The driver or this host cannot do that."""

    title = "Not supported"


class HypervisorError(VirtError):
    """QEMU failed, refused a command or stopped answering."""

    title = "Hypervisor error"


class OperationTimeout(HypervisorError):
    """The hypervisor did not answer in time."""

    title = "Timed out"


class OperationFailed(VirtError):
    """Something the driver itself tried failed (files, processes)."""

    title = "Operation failed"


class AgentUnavailable(OperationFailed):
    """The guest agent is not connected, does not answer, or went away mid-command."""

    title = "Guest agent unavailable"


class ProtocolError(VirtError):
    """A peer broke the daemon protocol."""

    title = "Protocol error"


def error_classes() -> dict[str, type[VirtError]]:
    """Every VirtError subclass by name, for re-raising errors that crossed the wire."""
    found: dict[str, type[VirtError]] = {}
    pending: list[type[VirtError]] = [VirtError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found
