"""Live migration between simulated QEMUs, as QEMU 7.2 does it (machine-facts.md §4).

The destination's ``migrate-incoming {"uri": "tcp:0.0.0.0:PORT"}`` really listens on that
port, and the source's ``migrate {"uri": "tcp:HOST:PORT"}`` really connects to it, so two
test-driver hosts migrate whether they live in one process (the demo, the TUI tests) or
in two daemons. No guest memory crosses the connection: the source models the transfer
(pre-copy passes over the guest's touched memory at the link's rate, the pages the guest
dirties meanwhile, the switchover once what is left fits in the downtime limit), sends a
line per step, and reports the figures ``query-migrate`` gives. A few hundred
milliseconds for an idle demo guest, longer under a bandwidth limit.

The events are QEMU's: the source sends MIGRATION setup → MIGRATION_PASS 1 → MIGRATION
active → MIGRATION_PASS … → STOP (if its vCPUs ran) → MIGRATION completed and is then
``postmigrate``; the destination (``inmigrate``) sends MIGRATION active → completed and
stays paused until ``cont``. ``migrate_cancel`` ends the stream (MIGRATION cancelling →
cancelled; the source's vCPUs run again if the switchover had stopped them); the
destination then fails (MIGRATION failed) and, like QEMU 7.2, exits a moment later unless
it is killed first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from drivers.errors import HypervisorError

#: Bytes per second the simulated network carries (2 Gbit/s; QEMU reached 3 on loopback, §4).
LINK_RATE = 250e6
#: QEMU's defaults for max-bandwidth (bytes/s) and downtime-limit (ms).
DEFAULT_BANDWIDTH = 134217728
DEFAULT_DOWNTIME_LIMIT = 300
PAGE = 4096
#: Seconds between the source's steps.
TICK = 0.05
#: The memory an idle guest has touched (what pre-copy sends), bounds in bytes.
RESIDENT_MIN = 32 << 20
RESIDENT_MAX = 400 << 20
#: Milliseconds the device state takes at the switchover, on top of the last pages.
DEVICE_STATE_MS = 2.0
#: Seconds a destination whose stream failed lives on before it exits (QEMU 7.2 exits).
INCOMING_EXIT_DELAY = 1.0
#: Seconds the source waits for the connection to the destination.
CONNECT_TIMEOUT = 5.0


class Vm(Protocol):
    """What the migration needs from the simulated QEMU it belongs to."""

    status: str

    def emit(self, name: str, data: Mapping[str, Any] | None = None) -> None: ...

    def exit_later(self, delay: float) -> None: ...


def _traits(uuid: str, total: int) -> tuple[int, int]:
    """(bytes touched, pages dirtied per second) of a guest, fixed by its UUID."""
    digest = hashlib.sha256(uuid.encode()).digest()
    share = 0.05 + 0.10 * digest[0] / 255
    resident = min(total, max(RESIDENT_MIN, min(RESIDENT_MAX, int(total * share))))
    dirty = 200 + int(2300 * digest[1] / 255)
    return resident, dirty


def parse_tcp(uri: str) -> tuple[str, int]:
    """(host, port) of ``tcp:HOST:PORT`` (``tcp:[V6]:PORT``); raises HypervisorError."""
    if not uri.startswith("tcp:"):
        raise HypervisorError(
            f"QEMU refused the migration URI '{uri}': the simulated QEMU speaks tcp: only."
        )
    rest = uri.removeprefix("tcp:").removeprefix("//")
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = tail.removeprefix(":")
    else:
        host, _, port = rest.rpartition(":")
    try:
        return host, int(port)
    except ValueError:
        raise HypervisorError(f"QEMU refused the migration URI '{uri}': no port.") from None


class Outgoing:
    """The source's side of one migration: connects, models the transfer, reports it."""

    def __init__(
        self,
        vm: Vm,
        uuid: str,
        total: int,
        uri: str,
        bandwidth: int,
        downtime_limit: int,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self.vm = vm
        self.uuid = uuid
        self.host, self.port = parse_tcp(uri)
        self.total = total
        self.resident, self.dirty_rate = _traits(uuid, total)
        self.bandwidth = bandwidth
        self.downtime_limit = downtime_limit
        self.status = "setup"
        self.error = ""
        self.started = time.monotonic()
        self.ended: float | None = None
        self.passes = 0
        self.transferred = 0.0
        self.to_send = float(self.resident)
        self.dirty = 0.0
        self.throughput = 0.0
        self.downtime: int | None = None
        self.vm_was_running = False
        self._on_end = on_end
        self._writer: asyncio.StreamWriter | None = None
        vm.emit("MIGRATION", {"status": "setup"})
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"sim-migrate-{uuid}")

    @property
    def active(self) -> bool:
        return self.status in ("setup", "active", "device", "cancelling")

    def rate(self) -> float:
        return float(min(LINK_RATE, self.bandwidth))

    # --- query-migrate ----------------------------------------------------------------

    def reply(self) -> dict[str, Any]:
        end = self.ended if self.ended is not None else time.monotonic()
        found: dict[str, Any] = {"status": self.status}
        if self.status == "failed":
            found["error-desc"] = self.error
            return found
        found["total-time"] = int(1000 * (end - self.started))
        if self.status == "setup":
            found["expected-downtime"] = self.downtime_limit
            return found
        found["setup-time"] = 1
        pending = self.to_send + self.dirty
        if self.passes <= 1:
            scanned = 1 - self.to_send / self.resident if self.resident else 1.0
            remaining = (self.total - self.resident) * (1 - scanned) + pending
            expected = self.downtime_limit
        else:
            remaining = pending
            expected = int(1000 * pending / self.rate())
        if self.status == "completed":
            remaining = 0.0
        sent_pages = int(self.transferred) // PAGE
        zero_pages = int((self.total - remaining - self.transferred) // PAGE)
        ram = {
            "total": self.total,
            "transferred": int(self.transferred) + 8 * max(0, zero_pages),
            "remaining": int(max(0.0, remaining)),
            "duplicate": max(0, zero_pages),
            "normal": sent_pages,
            "normal-bytes": sent_pages * PAGE,
            "mbps": round(self.throughput * 8 / 1e6, 3),
            "dirty-pages-rate": self.dirty_rate if self.vm.status == "running" else 0,
            "page-size": PAGE,
            "dirty-sync-count": self.passes,
            "pages-per-second": int(self.throughput / PAGE),
        }
        found["ram"] = ram
        if self.downtime is not None:
            found["downtime"] = self.downtime
        else:
            found["expected-downtime"] = expected
        return found

    # --- the transfer -----------------------------------------------------------------

    def _set(self, status: str) -> None:
        self.status = status
        self.vm.emit("MIGRATION", {"status": status})

    def _end(self, status: str, error: str = "") -> None:
        if self.ended is not None:
            return
        self.ended = time.monotonic()
        self.error = error
        if status != "completed" and self.vm_was_running and self.vm.status == "finish-migrate":
            # QEMU lets the guest go on at the source when the migration did not finish.
            self.vm.status = "running"
            self.vm.emit("RESUME")
        self._set(status)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._on_end is not None:
            self._on_end()

    def cancel(self) -> None:
        """``migrate_cancel``."""
        if not self.active or self.status == "cancelling":
            return
        self._set("cancelling")
        self.task.cancel()

    def close(self) -> None:
        """The QEMU went away: the connection ends with it."""
        self.task.cancel()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _run(self) -> None:
        try:
            await self._transfer()
        except asyncio.CancelledError:
            if self.status == "cancelling":
                self._end("cancelled")
            raise
        except (OSError, ConnectionError) as err:
            self._end("failed", f"Unable to write to socket: {err.strerror or err}")
        except _StreamBroke as err:
            self._end("failed", str(err))

    async def _transfer(self) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as err:
            why = getattr(err, "strerror", None) or "timed out"
            self._end("failed", f"Failed to connect to '{self.host}:{self.port}': {why}")
            return
        self._writer = writer
        writer.write(json.dumps({"uuid": self.uuid}).encode() + b"\n")
        answer = asyncio.ensure_future(reader.readline())
        try:
            await self._precopy(writer, answer)
            await self._switchover(writer, answer)
        finally:
            answer.cancel()

    async def _send(
        self, writer: asyncio.StreamWriter, answer: asyncio.Future[bytes], data: object
    ) -> None:
        if answer.done():
            raise _StreamBroke("Unable to write to socket: Connection reset by peer")
        writer.write(json.dumps(data).encode() + b"\n")
        await writer.drain()

    async def _precopy(self, writer: asyncio.StreamWriter, answer: asyncio.Future[bytes]) -> None:
        self.passes = 1
        self.vm.emit("MIGRATION_PASS", {"pass": 1})
        self._set("active")
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            step, last = now - last, now
            sent = min(self.rate() * step, self.to_send)
            self.to_send -= sent
            self.transferred += sent
            self.throughput = sent / step if step > 0 else 0.0
            if self.vm.status == "running":
                self.dirty = min(float(self.resident), self.dirty + self.dirty_rate * PAGE * step)
            await self._send(writer, answer, {"sent": int(sent)})
            if self.to_send > 0:
                continue
            self.passes += 1
            self.vm.emit("MIGRATION_PASS", {"pass": self.passes})
            self.to_send, self.dirty = self.dirty, 0.0
            if 1000 * self.to_send / self.rate() <= self.downtime_limit:
                return

    async def _switchover(
        self, writer: asyncio.StreamWriter, answer: asyncio.Future[bytes]
    ) -> None:
        self.status = "device"
        self.vm_was_running = self.vm.status == "running"
        if self.vm_was_running:
            self.vm.status = "finish-migrate"
            self.vm.emit("STOP")
        downtime = DEVICE_STATE_MS + 1000 * self.to_send / self.rate()
        await asyncio.sleep(downtime / 1000)
        self.transferred += self.to_send
        self.to_send = 0.0
        self.passes += 1
        self.vm.emit("MIGRATION_PASS", {"pass": self.passes})
        await self._send(writer, answer, {"done": True})
        try:
            line = await asyncio.wait_for(answer, CONNECT_TIMEOUT)
        except TimeoutError:
            line = b""
        if not line.strip():
            raise _StreamBroke("Unable to read from socket: Connection reset by peer")
        self.downtime = max(1, round(downtime))
        if self.vm_was_running:
            self.vm.status = "postmigrate"
        elif self.vm.status == "paused":
            self.vm.status = "postmigrate"
        self._end("completed")


class _StreamBroke(Exception):
    """The destination went away in the middle."""


class Incoming:
    """The destination's side: listens, takes one stream, ends paused (or running after an
    early ``cont``)."""

    def __init__(self, vm: Vm, uuid: str, uri: str) -> None:
        self.vm = vm
        self.uuid = uuid
        host, port = parse_tcp(uri)
        self.status = "setup"
        self.autostart = False
        self._writer: asyncio.StreamWriter | None = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError as err:
            sock.close()
            raise HypervisorError(
                f"QEMU refused 'migrate-incoming': Failed to bind socket: {err.strerror}"
            ) from None
        sock.setblocking(False)
        self._socket = sock
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(self) -> None:
        self._server = await asyncio.start_server(self._stream, sock=self._socket)

    def reply(self) -> dict[str, Any]:
        return {"status": self.status}

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def close(self) -> None:
        self._stop_listening()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.status != "setup":
            writer.close()
            return
        self._stop_listening()
        self._writer = writer
        try:
            hello = json.loads(await reader.readline() or b"{}")
            if hello.get("uuid") != self.uuid:
                raise ValueError("the stream is of another domain")
            self.status = "active"
            self.vm.emit("MIGRATION", {"status": "active"})
            while True:
                line = await reader.readline()
                if not line:
                    raise ValueError("the stream ended early")
                if json.loads(line).get("done"):
                    break
            self.status = "completed"
            if self.autostart:
                self.vm.status = "running"
                self.vm.emit("RESUME")
            else:
                self.vm.status = "paused"
            self.vm.emit("MIGRATION", {"status": "completed"})
            writer.write(b'{"ok": true}\n')
            with contextlib.suppress(OSError, ConnectionError):
                await writer.drain()
        except (OSError, ConnectionError, ValueError):
            self.status = "failed"
            self.vm.emit("MIGRATION", {"status": "failed"})
            self.vm.exit_later(INCOMING_EXIT_DELAY)
        finally:
            writer.close()
            self._writer = None


__all__ = ["Incoming", "Outgoing", "parse_tcp"]
