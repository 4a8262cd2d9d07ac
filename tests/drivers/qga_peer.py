"""A scripted guest agent: a unix-socket server that speaks qemu-ga's protocol.

It stands where QEMU's channel socket would be and plays the guest's qemu-ga: it answers
``guest-sync-delimited`` with the 0xFF sentinel (after whatever stale bytes the test wants
in front of it), then each command from a script — a reply, silence (a hung agent), or a
hang-up in the middle of the command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

HANG = "hang"
CLOSE = "close"
SILENT = "silent"

Reply = dict[str, Any] | str
Script = Callable[[str, dict[str, Any]], Reply]

INTERFACES = [
    {
        "name": "lo",
        "hardware-address": "00:00:00:00:00:00",
        "ip-addresses": [
            {"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
            {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128},
        ],
    },
    {
        "name": "enp1s0",
        "hardware-address": "52:54:00:11:22:33",
        "ip-addresses": [
            {"ip-address-type": "ipv4", "ip-address": "192.168.122.50", "prefix": 24},
            {"ip-address-type": "ipv6", "ip-address": "fe80::5054:ff:fe11:2233", "prefix": 64},
        ],
        "statistics": {"rx-bytes": 1},
    },
]


def qga_like(command: str, args: dict[str, Any]) -> Reply:
    """Answers as qemu-ga 7.2 does for the commands virtdeck sends."""
    if command == "guest-ping":
        return {"return": {}}
    if command == "guest-info":
        return {"return": {"version": "7.2.0", "supported_commands": []}}
    if command == "guest-network-get-interfaces":
        return {"return": INTERFACES}
    if command == "guest-shutdown":
        return SILENT  # qemu-ga does not answer a shutdown that works
    return {
        "error": {"class": "CommandNotFound", "desc": f"The command {command} has not been found"}
    }


class QgaPeer:
    """Serve one agent at ``path``; ``script`` decides each reply."""

    def __init__(self, path: Path, script: Script = qga_like, stale: bytes = b"") -> None:
        self.path = path
        self.script = script
        #: Sent to each new connection before anything else (leftovers of an old client).
        self.stale = stale
        #: Every command received, in order, with its arguments (the handshake included).
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> QgaPeer:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        return self

    async def stop(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def __aenter__(self) -> QgaPeer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def commands(self) -> list[str]:
        return [name for name, _ in self.received if name != "guest-sync-delimited"]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            if self.stale:
                writer.write(self.stale)
            while True:
                line = await reader.readline()
                if not line:
                    return
                text = line.replace(b"\xff", b"").strip()
                if not text:
                    continue
                request = json.loads(text)
                name, args = request["execute"], request.get("arguments", {})
                self.received.append((name, args))
                if name == "guest-sync-delimited":
                    writer.write(b"\xff" + json.dumps({"return": args["id"]}).encode() + b"\n")
                    await writer.drain()
                    continue
                reply = self.script(name, args)
                if reply == HANG:
                    await reader.read()  # never answers, until the client hangs up
                    return
                if reply == CLOSE:
                    return
                if isinstance(reply, dict):
                    writer.write(json.dumps(reply).encode() + b"\n")
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
