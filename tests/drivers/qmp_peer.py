"""A scripted QMP peer: a unix-socket server that speaks QMP like QEMU, driven by the test.

It sends the greeting, accepts ``qmp_capabilities``, answers each command from a script
(a reply, and events to send *before* the reply, as QEMU usually does), lets the test push
events at any time, and can hang up (EOF) or stop answering (a hung QEMU).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Script = Callable[[str, dict[str, Any]], tuple[list[tuple[str, dict[str, Any]]], Any]]


def qemu_like(status: dict[str, str]) -> Script:
    """Answers like QEMU 7.2 for the commands the runtime sends (status is mutable)."""

    def script(command: str, args: dict[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
        if command == "cont":
            if status["status"] == "running":
                return [], {}
            status["status"] = "running"
            return [("RESUME", {})], {}
        if command == "stop":
            if status["status"] != "running":
                return [], {}
            status["status"] = "paused"
            return [("STOP", {})], {}
        if command == "system_reset":
            return [("RESET", {"guest": False, "reason": "host-qmp-system-reset"})], {}
        if command == "system_powerdown":
            return [("POWERDOWN", {})], {}
        if command == "query-status":
            return [], {"status": status["status"], "running": status["status"] == "running"}
        return [], {}

    return script


class QmpPeer:
    def __init__(self, path: Path, script: Script) -> None:
        self.path = path
        self.script = script
        self.commands: list[str] = []
        self.hung = False
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        version = {"qemu": {"major": 7, "minor": 2, "micro": 22}, "package": ""}
        greeting = {"QMP": {"version": version, "capabilities": []}}
        await self._send(greeting)
        self.connected.set()
        # QMP clients need not end a command with a newline: decode a stream of JSON values.
        decoder = json.JSONDecoder()
        buffer = ""
        while True:
            chunk = await reader.read(4096)
            if not chunk:
                return
            buffer += chunk.decode()
            while buffer.strip():
                try:
                    msg, end = decoder.raw_decode(buffer.lstrip())
                except json.JSONDecodeError:
                    break
                buffer = buffer.lstrip()[end:]
                await self._handle(msg)

    async def _handle(self, msg: dict[str, Any]) -> None:
        command = msg["execute"]
        self.commands.append(command)
        reply: dict[str, Any] = {"return": {}}
        if "id" in msg:
            reply["id"] = msg["id"]
        if command == "qmp_capabilities":
            await self._send(reply)
            return
        if self.hung:
            return
        events, result = self.script(command, msg.get("arguments", {}))
        for name, data in events:
            await self.emit(name, data)
        reply["return"] = result
        await self._send(reply)

    async def _send(self, obj: dict[str, Any]) -> None:
        assert self._writer is not None
        self._writer.write(json.dumps(obj).encode() + b"\n")
        await self._writer.drain()

    async def emit(self, name: str, data: dict[str, Any] | None = None) -> None:
        now = time.time()
        event: dict[str, Any] = {
            "event": name,
            "timestamp": {"seconds": int(now), "microseconds": int(now % 1 * 1e6)},
        }
        if data:
            event["data"] = data
        await self._send(event)

    async def hang_up(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def close(self) -> None:
        await self.hang_up()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
