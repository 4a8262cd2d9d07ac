"""A qemu+ssh:// client that keeps working while test_ssh_cut.py cuts its link.

    python tests/chaos/ssh_chaos_client.py URI PREFIX DOMAINS SEED

Follows the host through a ReconnectingConnection and runs random operations (define,
start, suspend, resume, destroy) on its own diskless domains PREFIXd0.. and PREFIXn1..
while the link is up. It never retries an operation whose outcome it did not learn; after
a reconnect it reads the state again from the snapshot. One JSON object per line (flushed)
says what happened: ``status``, ``snapshot``, ``event``, ``op``. It stops when a line
``stop`` arrives on stdin, and prints ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from drivers.errors import ConnectionLost, VirtError
from drivers.model import DomainState, LifecycleEvent
from drivers.reconnect import LinkState, LinkStatus, ReconnectingConnection, Snapshot
from tests.e2e.helpers import diskless_xml

#: After a snapshot the client waits this long before its next operation, so the test
#: can compare the snapshot with the host.
QUIET = 0.4


def emit(kind: str, **data: Any) -> None:
    print(json.dumps({"kind": kind, "t": time.monotonic(), **data}), flush=True)


class Client:
    def __init__(self, uri: str, prefix: str, domains: int, seed: int) -> None:
        self.link = ReconnectingConnection(uri, backoff=(0.2, 0.3, 0.5))
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.states: dict[str, DomainState] = {}
        self.uuids = {f"{prefix}d{i}": self._uuid() for i in range(domains)}
        self.ready = asyncio.Event()
        self.resync_at = 0.0
        self.made = 0
        self.stopping = False

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    async def follow(self) -> None:
        async for update in self.link.updates():
            if isinstance(update, LinkStatus):
                emit("status", state=update.state.value, message=update.message)
                if update.state is not LinkState.CONNECTED:
                    self.ready.clear()
            elif isinstance(update, Snapshot):
                mine = {s.name: s for s in update.summaries if s.name.startswith(self.prefix)}
                self.states = {n: s.state for n, s in mine.items()}
                emit(
                    "snapshot",
                    states={n: [s.state.name, s.reason.name] for n, s in mine.items()},
                )
                self.resync_at = time.monotonic()
                self.ready.set()
            elif isinstance(update, LifecycleEvent) and update.domain.startswith(self.prefix):
                emit("event", domain=update.domain, words=update.words)

    async def one_op(self) -> None:
        conn = self.link.require()
        missing = [n for n in self.uuids if n not in self.states]
        if missing or self.rng.random() < 0.08:
            if missing:
                name = missing[0]
            else:
                self.made += 1
                name = f"{self.prefix}n{self.made}"
                self.uuids[name] = self._uuid()
            await self.run("define", name, conn.define_xml(
                diskless_xml(name, memory_mib=32, uuid=self.uuids[name])
            ))  # fmt: skip
            self.states[name] = DomainState.SHUTOFF
            return
        name = self.rng.choice(sorted(self.states))
        state = self.states[name]
        dom = await conn.lookup(name)
        if state is DomainState.SHUTOFF:
            await self.run("start", name, dom.start())
            self.states[name] = DomainState.RUNNING
        elif state is DomainState.RUNNING and self.rng.random() < 0.5:
            await self.run("suspend", name, dom.suspend())
            self.states[name] = DomainState.PAUSED
        elif state is DomainState.PAUSED and self.rng.random() < 0.6:
            await self.run("resume", name, dom.resume())
            self.states[name] = DomainState.RUNNING
        else:
            await self.run("destroy", name, dom.destroy())
            self.states[name] = DomainState.SHUTOFF

    async def run(self, op: str, name: str, call: Any) -> None:
        emit("op", op=op, domain=name, result="sent")
        try:
            await asyncio.wait_for(call, 30)
        except VirtError as err:
            emit("op", op=op, domain=name, result="error", error=type(err).__name__,
                 message=err.message)  # fmt: skip
            # Lost: its outcome is not known, the next snapshot says. Refused: ask again.
            self.states.pop(name, None)
            if not isinstance(err, ConnectionLost):
                with contextlib.suppress(VirtError):
                    state, _ = await (await self.link.require().lookup(name)).state()
                    self.states[name] = state
            raise
        emit("op", op=op, domain=name, result="ok")

    async def work(self) -> None:
        while not self.stopping:
            await self.ready.wait()
            wait = self.resync_at + QUIET - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                await self.one_op()
            except ConnectionLost:
                self.ready.clear()
            except VirtError:
                pass  # reported; the next snapshot or op says more
            await asyncio.sleep(0.03)


async def main(uri: str, prefix: str, domains: int, seed: int) -> int:
    client = Client(uri, prefix, domains, seed)
    follower = asyncio.create_task(client.follow())
    worker = asyncio.create_task(client.work())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while (line := await reader.readline()) and line.strip() != b"stop":
        pass
    # Let the operation in flight finish: cancelling it here would not stop the host from
    # performing it, and the final list below must come after it.
    client.stopping = True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(worker), 40)
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    conn = client.link.conn
    if conn is not None:
        final = {s.name: s.state.name for s in await conn.list_summaries()}
        emit("final", states={n: s for n, s in final.items() if n.startswith(prefix)})
    await client.link.close()
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
