"""A client of the QEMU guest agent (qemu-ga), over the unix socket of its channel.

The agent speaks QMP-like JSON over the ``org.qemu.guest_agent.0`` virtio-serial port: one
command at a time, one reply per command, each reply a JSON object on its own line. The
port can hold stale bytes (a reply to a command whose client gave up, half a request from
before a reboot), so every new connection starts with ``guest-sync-delimited``: the client
sends ``0xFF`` (which resets the agent's parser) and a random id, and the agent answers
``0xFF`` followed by the id; anything before that sentinel is discarded.

The driver connects to the socket as soon as QEMU runs (:meth:`GuestAgent.start`), as
libvirt does: while no host client is connected, the guest reads end-of-file on the port.
The agent is only asked while the guest has the port open (QEMU's VSERPORT_CHANGE, see
:meth:`GuestAgent.set_port_open`): writing to a port nobody reads would only fill QEMU's
buffer. Every wait has a deadline; a guest that never opened the port, a hung agent and
an agent that goes away in the middle of a command each end in
:class:`~drivers.errors.AgentUnavailable` with what to do, and the connection is closed
then, so the next command starts clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import random
import socket
from pathlib import Path
from typing import Any

from drivers.errors import AgentUnavailable, OperationFailed
from drivers.model import InterfaceAddresses, IPAddress

#: How long one command may take (libvirt waits 5 s by default, too).
DEFAULT_TIMEOUT = 5.0
#: How long the handshake of a new connection may take.
SYNC_TIMEOUT = 3.0
#: After ``guest-shutdown`` (which the agent never answers when it works): how long an
#: error reply may still come.
SHUTDOWN_GRACE = 1.0
#: The longest reply line accepted (an interface listing of a busy guest fits easily).
MAX_REPLY = 1 << 20
_SENTINEL = b"\xff"
_SUN_PATH_MAX = 107
_SHOW_MAX = 200


def _inert(text: object) -> str:
    """Guest-provided text for an error message: printable, one line, bounded."""
    value = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return value if len(value) <= _SHOW_MAX else value[:_SHOW_MAX] + "…"


class _Gone(Exception):
    """The connection ended (EOF, reset) while a reply was awaited."""


class GuestAgent:
    """The guest agent of one domain, reached through ``path`` (QEMU listens there)."""

    def __init__(
        self,
        domain: str,
        path: Path,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        sync_timeout: float = SYNC_TIMEOUT,
    ) -> None:
        self.domain = domain
        self.path = path
        self.timeout = timeout
        self.sync_timeout = sync_timeout
        #: Whether the guest has the port open (something in the guest listens).
        self.port_open = False
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._synced = False
        self._lock = asyncio.Lock()
        self._closed = False
        self._opening: asyncio.Task[None] | None = None

    # --- state --------------------------------------------------------------------------

    def set_port_open(self, is_open: bool) -> None:
        """QEMU reported that the guest opened (or closed) the port."""
        self.port_open = is_open
        if not is_open:
            # An agent that closed its port will not answer what is in flight: end the
            # wait now instead of at its deadline (and connect again for the next one).
            self._drop()
        self.start()

    def start(self) -> None:
        """Connect in the background (no handshake yet), unless connected already."""
        if self._closed or self._writer is not None:
            return
        if self._opening is not None and not self._opening.done():
            return
        self._opening = asyncio.get_running_loop().create_task(
            self._open_quietly(), name=f"agent-connect-{self.domain}"
        )

    async def _open_quietly(self) -> None:
        async with self._lock:
            if self._writer is not None or self._closed:
                return
            with contextlib.suppress(AgentUnavailable):
                self._reader, self._writer = await self._open()
                self._synced = False

    @property
    def connected(self) -> bool:
        """True while a synchronised connection to the agent is open."""
        return self._writer is not None

    def _not_connected(self) -> AgentUnavailable:
        return AgentUnavailable(
            f"The guest agent is not connected in domain '{self.domain}'; install and start "
            "qemu-guest-agent in the guest."
        )

    def _drop(self) -> None:
        self._synced = False
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()

    async def close(self) -> None:
        """Close the connection for good (the domain stopped, or the driver closes)."""
        self._closed = True
        opening = self._opening
        if opening is not None and not opening.done():
            opening.cancel()
            with contextlib.suppress(BaseException):
                await opening
        writer = self._writer
        self._drop()
        if writer is not None:
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # --- the wire -----------------------------------------------------------------------

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        fd: int | None = None
        try:
            address = str(self.path)
            if len(address.encode()) > _SUN_PATH_MAX:
                # a deep state directory: connect through the open parent directory
                fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
                address = f"/proc/self/fd/{fd}/{self.path.name}"
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, address), self.sync_timeout
            )
            return await asyncio.open_unix_connection(sock=sock, limit=MAX_REPLY)
        except (OSError, TimeoutError) as err:
            sock.close()
            why = err.strerror if isinstance(err, OSError) and err.strerror else "no answer"
            raise AgentUnavailable(
                f"Cannot reach the guest agent channel of domain '{self.domain}' at "
                f"{self.path} ({why}); the domain may have stopped. Start it, and check that "
                "qemu-guest-agent runs in the guest."
            ) from err
        finally:
            if fd is not None:
                os.close(fd)

    async def _line(self, reader: asyncio.StreamReader, deadline: float) -> bytes:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), remaining)
        except TimeoutError:
            raise  # (an OSError too, but not a hang-up)
        except asyncio.IncompleteReadError as err:
            raise _Gone from err
        except asyncio.LimitOverrunError as err:
            raise OperationFailed(
                f"The guest agent in domain '{self.domain}' sent a reply longer than "
                f"{MAX_REPLY} bytes; it was not read."
            ) from err
        except (ConnectionError, OSError) as err:
            raise _Gone from err
        return line

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self.timeout)
        except TimeoutError:
            raise
        except (ConnectionError, OSError, RuntimeError) as err:
            raise _Gone from err

    async def _sync(self) -> None:
        """Connect (unless connected) and run the ``guest-sync-delimited`` handshake."""
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await self._open()
        reader, writer = self._reader, self._writer
        sync_id = random.randrange(1, 2**31)
        request = {"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.sync_timeout
        try:
            await self._send(writer, _SENTINEL + json.dumps(request).encode() + b"\n")
            while True:
                line = await self._line(reader, deadline)
                if _SENTINEL not in line:
                    continue  # stale output from before the sentinel
                reply = _parse(line.rsplit(_SENTINEL, 1)[1])
                if isinstance(reply, dict) and reply.get("return") == sync_id:
                    self._synced = True
                    return
        except TimeoutError as err:
            self._drop()
            raise AgentUnavailable(
                f"The guest agent in domain '{self.domain}' did not answer the handshake "
                f"(guest-sync-delimited) within {self.sync_timeout:g} s; it may be hung or "
                "not running. Install and start (or restart) qemu-guest-agent in the guest."
            ) from err
        except BaseException:
            self._drop()
            raise

    # --- commands -----------------------------------------------------------------------

    async def execute(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        timeout: float | None = None,
        *,
        expect_reply: bool = True,
    ) -> Any:
        """Run one agent command and return its ``return`` value.

        Raises:
            AgentUnavailable: the port is closed, the agent did not answer in time, or
                it went away during the command.
            OperationFailed: the agent refused the command (its ``error``).
        """
        limit = self.timeout if timeout is None else timeout
        async with self._lock:
            if self._closed or not self.port_open:
                raise self._not_connected()
            try:
                if self._writer is None or not self._synced:
                    await self._sync()
                reader, writer = self._reader, self._writer
                if reader is None or writer is None:
                    raise _Gone
                request: dict[str, Any] = {"execute": command}
                if arguments:
                    request["arguments"] = arguments
                await self._send(writer, json.dumps(request).encode() + b"\n")
                if not expect_reply:
                    return await self._maybe_error(reader, command, limit)
                deadline = asyncio.get_running_loop().time() + limit
                while True:
                    reply = _parse(await self._line(reader, deadline))
                    if isinstance(reply, dict) and ("return" in reply or "error" in reply):
                        break
                return self._result(command, reply)
            except TimeoutError as err:
                self._drop()
                raise AgentUnavailable(
                    f"The guest agent in domain '{self.domain}' did not answer "
                    f"'{command}' within {limit:g} s; it may be hung. Restart "
                    "qemu-guest-agent in the guest (or shut the domain down with ACPI)."
                ) from err
            except _Gone as err:
                self._drop()
                if not self.port_open:
                    raise AgentUnavailable(
                        f"The guest agent in domain '{self.domain}' closed its port during "
                        f"'{command}'; check that qemu-guest-agent keeps running in the "
                        "guest, then try again."
                    ) from err
                raise AgentUnavailable(
                    f"The guest agent in domain '{self.domain}' disconnected during "
                    f"'{command}'; check that qemu-guest-agent keeps running in the guest, "
                    "then try again."
                ) from err

    async def _maybe_error(self, reader: asyncio.StreamReader, command: str, limit: float) -> Any:
        """For commands the agent answers only when they fail: an error reply within
        the grace period raises; silence, EOF or a closed port mean it went ahead."""
        deadline = asyncio.get_running_loop().time() + min(limit, SHUTDOWN_GRACE)
        try:
            while True:
                reply = _parse(await self._line(reader, deadline))
                if isinstance(reply, dict) and ("return" in reply or "error" in reply):
                    return self._result(command, reply)
        except (TimeoutError, _Gone):
            self._drop()
            return None

    def _result(self, command: str, reply: dict[str, Any]) -> Any:
        if "error" in reply:
            error = reply["error"]
            desc = error.get("desc", error) if isinstance(error, dict) else error
            raise OperationFailed(
                f"The guest agent in domain '{self.domain}' refused '{command}': {_inert(desc)}."
            )
        return reply["return"]

    async def ping(self) -> None:
        await self.execute("guest-ping")

    async def info(self) -> dict[str, Any]:
        """``guest-info``: the agent's version and its commands."""
        value = await self.execute("guest-info")
        return value if isinstance(value, dict) else {}

    async def shutdown(self, mode: str = "powerdown") -> None:
        """``guest-shutdown``: the agent powers the guest off (no reply when it works)."""
        await self.execute("guest-shutdown", {"mode": mode}, expect_reply=False)

    async def network_interfaces(self) -> list[InterfaceAddresses]:
        """``guest-network-get-interfaces`` as typed values (malformed entries skipped)."""
        return parse_interfaces(await self.execute("guest-network-get-interfaces"))


def _parse(data: bytes) -> Any:
    text = data.strip(b" \t\r\n" + _SENTINEL)
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None


def parse_interfaces(value: Any) -> list[InterfaceAddresses]:
    """The guest's own report of its interfaces; what is not well-formed is left out
    (the guest controls this data)."""
    found: list[InterfaceAddresses] = []
    if not isinstance(value, list):
        return found
    for item in value[:256]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        hwaddr = item.get("hardware-address")
        addresses: list[IPAddress] = []
        raw_addresses = item.get("ip-addresses")
        for raw in raw_addresses[:256] if isinstance(raw_addresses, list) else []:
            if not isinstance(raw, dict):
                continue
            kind, text, prefix = (
                raw.get("ip-address-type"),
                raw.get("ip-address"),
                raw.get("prefix"),
            )
            if kind not in ("ipv4", "ipv6") or not isinstance(text, str):
                continue
            try:
                parsed = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                continue
            if parsed.version != (4 if kind == "ipv4" else 6):
                continue
            high = 32 if kind == "ipv4" else 128
            if not isinstance(prefix, int) or isinstance(prefix, bool) or not 0 <= prefix <= high:
                continue
            addresses.append(IPAddress(type=kind, address=text, prefix=prefix))
        found.append(
            InterfaceAddresses(
                name=item["name"][:64],
                hwaddr=hwaddr[:64] if isinstance(hwaddr, str) else None,
                addresses=tuple(addresses),
            )
        )
    return found
