"""One QMP connection to one QEMU process, over ``qemu.qmp``.

The monitor hands every QMP event to a callback *synchronously, in the order QEMU sent
them*, from inside qemu.qmp's reader: no queue sits between QEMU and the event handler, so
nothing can reorder events, and the end of the connection (EOF) is reported only after every
event that came before it. Commands have timeouts; a QEMU that stops answering gives an
:class:`~drivers.errors.OperationTimeout` naming the command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any

from qemu.qmp import EventListener, ExecuteError, QMPClient
from qemu.qmp.protocol import Runstate

from drivers.errors import HypervisorError, OperationTimeout

log = logging.getLogger(__name__)

EventCallback = Callable[[str, Mapping[str, Any], float], None]
"""Called with (event name, data, QEMU's timestamp as Unix time)."""

DEFAULT_TIMEOUT = 10.0


class _Forwarder(EventListener):
    """An EventListener that forwards instead of queueing."""

    def __init__(self, callback: EventCallback) -> None:
        super().__init__()
        self._callback = callback

    async def put(self, event: Any) -> None:
        stamp = event.get("timestamp") or {}
        when = float(stamp.get("seconds", 0)) + float(stamp.get("microseconds", 0)) / 1e6
        try:
            self._callback(str(event["event"]), event.get("data") or {}, when)
        except Exception:  # a handler bug must not kill the QMP reader
            log.exception("event handler failed on %s", event.get("event"))


class _Client(QMPClient):
    """qemu.qmp's client, minus the cost of logging every message when nobody listens."""

    def _cb_inbound(self, msg: Any) -> Any:
        # The base hook formats every message (str() of a whole event, ~18 us) for a debug
        # line that is almost never enabled: on the path of every lifecycle event.
        if self.logger.isEnabledFor(logging.DEBUG):
            return super()._cb_inbound(msg)
        return msg


class Monitor:
    """A QMP client bound to one domain."""

    def __init__(
        self,
        domain: str,
        on_event: EventCallback,
        on_eof: Callable[[], None],
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.domain = domain
        self.timeout = timeout
        self._on_eof = on_eof
        self._client = _Client(domain)
        self._client.register_listener(_Forwarder(on_event))
        self._closing = False
        self._watch: asyncio.Task[None] | None = None

    async def connect(self, address: str | socket.socket, timeout: float | None = None) -> None:
        """Connect (path or connected socket) and negotiate; raises HypervisorError."""
        limit = self.timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(self._client.connect(address), limit)
        except TimeoutError as err:
            with contextlib.suppress(Exception):
                await self._client.disconnect()
            raise OperationTimeout(
                f"QEMU for domain '{self.domain}' did not answer on its monitor within "
                f"{limit:g} s; it may be hung or the monitor may be in use by another client."
            ) from err
        except Exception as err:
            raise HypervisorError(
                f"Could not connect to the monitor of domain '{self.domain}': {err}."
            ) from err
        self._watch = asyncio.create_task(self._watch_runstate(), name=f"qmp-eof-{self.domain}")

    async def _watch_runstate(self) -> None:
        while self._client.runstate is Runstate.RUNNING:
            await self._client.runstate_changed()
        if not self._closing:
            self._closing = True
            with contextlib.suppress(Exception):
                await self._client.disconnect()
            self._on_eof()

    @property
    def connected(self) -> bool:
        return self._client.runstate is Runstate.RUNNING and not self._closing

    async def execute(
        self,
        command: str,
        arguments: Mapping[str, object] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Run one QMP command and return its result."""
        limit = self.timeout if timeout is None else timeout
        if not self.connected:
            raise HypervisorError(
                f"The monitor of domain '{self.domain}' is closed; QEMU has probably exited."
            )
        try:
            return await asyncio.wait_for(self._client.execute(command, arguments), limit)
        except ExecuteError as err:
            desc = str(err)
            raise HypervisorError(
                f"QEMU refused '{command}' for domain '{self.domain}': {desc}"
            ) from err
        except TimeoutError as err:
            raise OperationTimeout(
                f"QEMU for domain '{self.domain}' did not answer '{command}' within {limit:g} s; "
                "it may be hung. 'destroy' stops it."
            ) from err
        except Exception as err:
            raise HypervisorError(
                f"The monitor of domain '{self.domain}' failed during '{command}' ({err}); "
                "QEMU has probably exited."
            ) from err

    async def close(self) -> None:
        """Disconnect without reporting EOF (the driver is closing, QEMU keeps running)."""
        self._closing = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
        with contextlib.suppress(Exception):
            await self._client.disconnect()
